"""Annotations: one in-memory model for the COCO-like JSON and the raw JSON-lines files.

Sources (see ``DATA.md`` of the bundled dataset):

* ``annotations/{train,val}.json`` (COCO-like): ``images`` = keyframes (``id``, ``sensor_id``,
  ``timestamp`` ms, ``frame_idx``, ``width``, ``height``); ``annotations`` = person boxes
  (``image_id``, YOLO-normalised ``bbox`` = cx, cy, w, h, ``category_id`` = action class,
  ``object_id`` = person track id within the recording, ``attribute_obscured`` like ``"25%"``);
  ``categories`` = ``[{id, name}]``.
* ``raw_annotations/<recording>_annotation.json`` (JSON lines, one annotated frame each):
  ``data_id`` (recording), ``data_time`` (ms), ``annotations`` with ``bbox`` (YOLO),
  ``category`` (person / object / furniture), ``subcategory`` (the action class for persons,
  e.g. ``"water kettle"`` or ``"bed"`` otherwise), ``object_id``, ``attribute_obscured``.

Internally every box is **pixel XYXY** over the sensor frame (see :mod:`thermact.ops.boxes`).
Person boxes carry one action class id (the classes are mutually exclusive); non-person boxes
(hot objects, furniture) are kept separately, for teaching a detector what is not a person.

Validation (each a problem naming the file and record; see :class:`thermact.errors.ProblemLog`):
unknown class id or a name that disagrees with the id, a box off the frame by more than
:data:`BOX_TOLERANCE_PX` (boxes within it are clipped to the frame), a box of zero or negative
area, a duplicate image or annotation id, a duplicate track id within one keyframe, an annotation
for an unknown image, a malformed JSON line or record.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from thermact.data.recording import SENSOR_FRAME_SIZE
from thermact.errors import DataError, ProblemLog
from thermact.ops.boxes import yolo_to_xyxy

FRAME_HEIGHT, FRAME_WIDTH = SENSOR_FRAME_SIZE
BOX_TOLERANCE_PX = 0.5
"""Boxes may overhang the frame by at most this many pixels; they are clipped to it."""

BoxKind = Literal["person", "object", "furniture"]


@dataclasses.dataclass(frozen=True)
class Box:
    """One annotated box of a keyframe.

    Attributes:
        xyxy: pixel ``(x1, y1, x2, y2)``, clipped to the frame.
        kind: ``"person"``, ``"object"`` (hot object) or ``"furniture"``.
        label: action class id for persons, ``None`` for other kinds.
        name: the class name for persons, the subcategory (``"water kettle"``) otherwise.
        track_id: ``object_id`` of the source, the identity within the recording.
        obscured: fraction occluded, 0..1 (from ``"25%"``).
    """

    xyxy: tuple[float, float, float, float]
    kind: BoxKind
    label: int | None
    name: str
    track_id: int
    obscured: float = 0.0


@dataclasses.dataclass(frozen=True)
class Keyframe:
    """An annotated frame of a recording."""

    keyframe_id: str
    recording_id: str
    timestamp_ms: int
    frame_index: int | None
    """Index in the HDF5 file as stored by the source, when known (used only as a cross-check)."""
    persons: tuple[Box, ...]
    others: tuple[Box, ...] = ()
    given_split: str | None = None
    """``"train"`` / ``"val"`` when the keyframe comes from the given (leaky) COCO split."""
    others_known: bool = False
    """True when raw annotations cover this frame, so that ``others`` lists every hot object and
    piece of furniture in it; False when they were not annotated (``others`` empty means unknown,
    not absent): a detector must not learn "nothing warm here" from such a frame."""


@dataclasses.dataclass(frozen=True)
class ClassList:
    """The action classes, in id order (ids are 0..N-1)."""

    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    def id_of(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(name) from None


@dataclasses.dataclass
class AnnotationSet:
    """All keyframes of a dataset with their boxes, sorted by recording and time."""

    classes: ClassList
    keyframes: list[Keyframe]
    frame_size: tuple[int, int] = (FRAME_HEIGHT, FRAME_WIDTH)

    def __post_init__(self) -> None:
        self.keyframes.sort(key=lambda k: (k.recording_id, k.timestamp_ms))

    @property
    def recording_ids(self) -> list[str]:
        return sorted({k.recording_id for k in self.keyframes})

    def by_recording(self) -> dict[str, list[Keyframe]]:
        out: dict[str, list[Keyframe]] = {}
        for kf in self.keyframes:
            out.setdefault(kf.recording_id, []).append(kf)
        return out

    def num_persons(self) -> int:
        return sum(len(k.persons) for k in self.keyframes)

    def class_counts(self, keyframes: Iterable[Keyframe] | None = None) -> dict[str, int]:
        """Person boxes per class name (every class listed, zero included)."""
        counts = Counter(
            p.label for k in (self.keyframes if keyframes is None else keyframes) for p in k.persons
        )
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes.names)}

    def subset(self, keyframe_ids: Iterable[str]) -> AnnotationSet:
        wanted = set(keyframe_ids)
        return AnnotationSet(
            self.classes, [k for k in self.keyframes if k.keyframe_id in wanted], self.frame_size
        )


# ---------------------------------------------------------------------------------------------
# Reading helpers


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON: {err}") from err


def load_classes(path: str | Path) -> ClassList:
    """Read ``class_mapping.json`` (``{"classes": [...], "class_to_id": {...}}``)."""
    p = Path(path)
    data = _read_json(p)
    names = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"{p}: expected a non-empty list of class names under 'classes'")
    if len(set(names)) != len(names):
        dup = [n for n, c in Counter(names).items() if c > 1]
        raise DataError(f"{p}: duplicate class names {dup}")
    mapping = data.get("class_to_id")
    if isinstance(mapping, dict):
        for name, idx in mapping.items():
            if name not in names or names.index(name) != idx:
                raise DataError(f"{p}: class_to_id[{name!r}] = {idx!r} disagrees with the 'classes' list")
    return ClassList(tuple(names))


def _parse_obscured(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, (int, float)):
        return float(value) / (100.0 if value > 1 else 1.0)
    text = str(value).strip().rstrip("%")
    try:
        return float(text) / 100.0
    except ValueError:
        return 0.0


def convert_box(
    bbox: Any,
    where: str,
    problems: ProblemLog,
    width: int = FRAME_WIDTH,
    height: int = FRAME_HEIGHT,
) -> tuple[float, float, float, float] | None:
    """Validate a YOLO ``[cx, cy, w, h]`` box; return clipped pixel XYXY or None (problem reported)."""
    if (
        not isinstance(bbox, (list, tuple))
        or len(bbox) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)
    ):
        problems.report(f"{where}: bbox must be 4 finite numbers [cx, cy, w, h], got {bbox!r}")
        return None
    x1, y1, x2, y2 = (float(v) for v in yolo_to_xyxy(bbox, width, height))
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        problems.report(f"{where}: box has zero or negative area (w={bbox[2]!r}, h={bbox[3]!r})")
        return None
    tol = BOX_TOLERANCE_PX
    if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
        problems.report(
            f"{where}: box [{x1:.2f}, {y1:.2f}, {x2:.2f}, {y2:.2f}] px lies off the {width}x{height} frame"
        )
        return None
    x1, x2 = max(0.0, x1), min(float(width), x2)
    y1, y2 = max(0.0, y1), min(float(height), y2)
    return (x1, y1, x2, y2)


def _check_category(
    cat_id: Any, name: Any, classes: ClassList, where: str, problems: ProblemLog
) -> int | None:
    if not isinstance(cat_id, int) or isinstance(cat_id, bool) or not 0 <= cat_id < len(classes):
        problems.report(f"{where}: unknown class id {cat_id!r} (valid: 0..{len(classes) - 1})")
        return None
    if name is not None and name != classes.names[cat_id]:
        problems.report(
            f"{where}: class name {name!r} disagrees with class id {cat_id} ({classes.names[cat_id]!r})"
        )
        return None
    return cat_id


# ---------------------------------------------------------------------------------------------
# COCO-like files


def load_coco(
    path: str | Path,
    classes: ClassList,
    problems: ProblemLog | None = None,
    split_name: str | None = None,
) -> list[Keyframe]:
    """Read a COCO-like annotation file into keyframes with person boxes.

    Args:
        path: the JSON file.
        classes: the class list the ``category_id`` values index.
        problems: strict (default) or lenient problem log.
        split_name: stored as :attr:`Keyframe.given_split`.
    """
    p = Path(path)
    problems = problems if problems is not None else ProblemLog()
    data = _read_json(p)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        raise DataError(f"{p}: expected a JSON object with lists 'images' and 'annotations'")
    _check_categories(data.get("categories"), classes, p, problems)
    images, key_of = _coco_images(data["images"], p, problems)
    persons = _coco_persons(data["annotations"], key_of, classes, p, problems)
    return [
        Keyframe(
            keyframe_id=key,
            recording_id=str(img["sensor_id"]),
            timestamp_ms=int(img["timestamp"]),
            frame_index=int(img["frame_idx"]) if isinstance(img.get("frame_idx"), int) else None,
            persons=tuple(sorted(persons.get(key, []), key=lambda b: b.track_id)),
            given_split=split_name,
        )
        for key, img in images.items()
    ]


def _check_categories(categories: Any, classes: ClassList, p: Path, problems: ProblemLog) -> None:
    """Every listed category must be the class of its id."""
    if not isinstance(categories, list):
        return
    for cat in categories:
        if not isinstance(cat, dict):
            continue
        cid, cname = cat.get("id"), cat.get("name")
        if not isinstance(cid, int) or not 0 <= cid < len(classes) or classes.names[cid] != cname:
            problems.report(f"{p}: category {cat!r} is not in the class list")


def _coco_images(
    entries: list[Any], p: Path, problems: ProblemLog
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The valid ``images`` by keyframe id, and str(image id) → keyframe id (the id itself for
    string ids, ``<sensor_id>_<timestamp>`` for integers)."""
    images: dict[str, dict[str, Any]] = {}
    key_of: dict[str, str] = {}
    for i, img in enumerate(entries):
        where = f"{p}: images[{i}]"
        if not isinstance(img, dict) or not all(k in img for k in ("id", "sensor_id", "timestamp")):
            problems.report(f"{where}: an image needs 'id', 'sensor_id' and 'timestamp'")
            continue
        image_id = img["id"]
        if not isinstance(image_id, (str, int)) or isinstance(image_id, bool) or image_id == "":
            problems.report(f"{where}: image id must be a string or an integer, got {image_id!r}")
            continue
        if not isinstance(img["timestamp"], int) or isinstance(img["timestamp"], bool):
            problems.report(f"{where} (id {image_id!r}): timestamp must be integer milliseconds")
            continue
        if str(image_id) in key_of:
            problems.report(f"{where}: duplicate image id {image_id!r}")
            continue
        key = image_id if isinstance(image_id, str) else f"{img['sensor_id']}_{img['timestamp']}"
        if key in images:
            problems.report(f"{where} (id {image_id!r}): same recording and timestamp as an earlier image")
            continue
        for name, expected in (("width", FRAME_WIDTH), ("height", FRAME_HEIGHT)):
            if name in img and img[name] != expected:
                problems.report(f"{where} (id {image_id!r}): {name} {img[name]!r} != {expected}")
        key_of[str(image_id)] = key
        images[key] = img
    return images, key_of


def _box_and_track(
    ann: dict[str, Any], where: str, problems: ProblemLog
) -> tuple[tuple[float, float, float, float], int] | None:
    """The pixel XYXY box and the ``object_id`` of an annotation (None, reported, when invalid)."""
    xyxy = convert_box(ann.get("bbox"), where, problems)
    if xyxy is None:
        return None
    track = ann.get("object_id")
    if not isinstance(track, int) or isinstance(track, bool):
        problems.report(f"{where}: object_id must be an integer, got {track!r}")
        return None
    return xyxy, track


def _coco_persons(
    entries: list[Any], key_of: dict[str, str], classes: ClassList, p: Path, problems: ProblemLog
) -> dict[str, list[Box]]:
    """The valid person boxes of ``annotations``, by keyframe id."""
    persons: dict[str, list[Box]] = {k: [] for k in key_of.values()}
    seen_ids: set[Any] = set()
    for i, ann in enumerate(entries):
        where = f"{p}: annotations[{i}]"
        if not isinstance(ann, dict):
            problems.report(f"{where}: not an object")
            continue
        where = f"{where} (id {ann.get('id')!r}, image {ann.get('image_id')!r})"
        if "id" in ann:
            if ann["id"] in seen_ids:
                problems.report(f"{where}: duplicate annotation id")
                continue
            seen_ids.add(ann["id"])
        image_id = ann.get("image_id")
        image = key_of.get(str(image_id)) if isinstance(image_id, (str, int)) else None
        if image is None or isinstance(image_id, bool):
            problems.report(f"{where}: refers to an unknown image")
            continue
        label = _check_category(ann.get("category_id"), ann.get("category_name"), classes, where, problems)
        if label is None:
            continue
        located = _box_and_track(ann, where, problems)
        if located is None:
            continue
        xyxy, track = located
        if any(b.track_id == track for b in persons[image]):
            problems.report(f"{where}: duplicate object_id {track} in the same keyframe")
            continue
        obscured = _parse_obscured(ann.get("attribute_obscured"))
        persons[image].append(Box(xyxy, "person", label, classes.names[label], track, obscured))
    return persons


# ---------------------------------------------------------------------------------------------
# Raw JSON-lines files


def load_raw(path: str | Path, classes: ClassList, problems: ProblemLog | None = None) -> list[Keyframe]:
    """Read one ``raw_annotations/*.json`` JSON-lines file into keyframes (all box kinds)."""
    p = Path(path)
    problems = problems if problems is not None else ProblemLog()
    if not p.is_file():
        raise DataError(f"{p}: raw annotation file not found")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"{p}: not UTF-8 text: {err}") from err
    keyframes: list[Keyframe] = []
    seen: set[tuple[str, int]] = set()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{p}:{lineno}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            problems.report(f"{where}: malformed JSON line: {err.msg}")
            continue
        if (
            not isinstance(rec, dict)
            or not isinstance(rec.get("data_id"), str)
            or not isinstance(rec.get("data_time"), int)
        ):
            problems.report(f"{where}: a record needs 'data_id' (string) and 'data_time' (integer ms)")
            continue
        key = (rec["data_id"], rec["data_time"])
        if key in seen:
            problems.report(f"{where}: duplicate frame {key[0]} at {key[1]} ms")
            continue
        seen.add(key)
        anns = rec.get("annotations", [])
        if not isinstance(anns, list):
            problems.report(f"{where}: 'annotations' must be a list")
            continue
        persons, others = _raw_boxes(anns, where, classes, problems)
        keyframes.append(
            Keyframe(
                keyframe_id=f"{rec['data_id']}_{rec['data_time']}",
                recording_id=rec["data_id"],
                timestamp_ms=rec["data_time"],
                frame_index=None,
                persons=tuple(sorted(persons, key=lambda b: b.track_id)),
                others=tuple(sorted(others, key=lambda b: b.track_id)),
                others_known=True,
            )
        )
    return keyframes


def _raw_boxes(
    anns: list[Any], where: str, classes: ClassList, problems: ProblemLog
) -> tuple[list[Box], list[Box]]:
    """The valid person and other (hot object, furniture) boxes of one raw record."""
    persons: list[Box] = []
    others: list[Box] = []
    for j, ann in enumerate(anns):
        awhere = f"{where} annotations[{j}]"
        if not isinstance(ann, dict):
            problems.report(f"{awhere}: not an object")
            continue
        kind = ann.get("category")
        if kind not in ("person", "object", "furniture"):
            problems.report(f"{awhere}: unknown category {kind!r} (expected person, object or furniture)")
            continue
        sub = ann.get("subcategory")
        label: int | None = None
        if kind == "person":
            if sub not in classes.names:
                problems.report(f"{awhere}: unknown action class {sub!r}")
                continue
            label = classes.id_of(str(sub))
        located = _box_and_track(ann, awhere, problems)
        if located is None:
            continue
        xyxy, track = located
        group = persons if kind == "person" else others
        if any(b.track_id == track for b in persons + others):
            problems.report(f"{awhere}: duplicate object_id {track} in the same frame")
            continue
        group.append(Box(xyxy, kind, label, str(sub), track, _parse_obscured(ann.get("attribute_obscured"))))
    return persons, others


def merge_raw_into(
    coco: Sequence[Keyframe],
    raw: Sequence[Keyframe],
    problems: ProblemLog,
) -> list[Keyframe]:
    """Attach the non-person boxes of raw keyframes to the COCO keyframes of the same frame.

    The COCO files define the keyframes and the person boxes; a raw frame with no COCO keyframe
    is added as-is (with ``given_split=None``). A person-count disagreement is a problem. Raw
    annotations are optional per recording: keyframes without a raw frame keep
    ``others_known=False``.
    """
    by_key: Mapping[tuple[str, int], Keyframe] = {(k.recording_id, k.timestamp_ms): k for k in raw}
    used: set[tuple[str, int]] = set()
    out: list[Keyframe] = []
    for kf in coco:
        key = (kf.recording_id, kf.timestamp_ms)
        r = by_key.get(key)
        if r is None:
            out.append(kf)
            continue
        used.add(key)
        if len(r.persons) != len(kf.persons):
            problems.report(
                f"keyframe {kf.keyframe_id}: {len(kf.persons)} person box(es) in the COCO file but "
                f"{len(r.persons)} in the raw annotations"
            )
        out.append(dataclasses.replace(kf, others=r.others, others_known=True))
    out.extend(k for k in raw if (k.recording_id, k.timestamp_ms) not in used)
    return out


def boxes_array(boxes: Sequence[Box]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Pixel XYXY boxes as a float32 array [N, 4]."""
    return np.asarray([b.xyxy for b in boxes], dtype=np.float32).reshape(-1, 4)
