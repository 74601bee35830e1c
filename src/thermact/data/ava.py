"""AVA-style CSV files and label maps, for MMAction2, PySlowFast and the official AVA evaluator.

One CSV row per (person box, action), no header. Ground truth (as the AVA annotation files)::

    video_id, timestamp, x1, y1, x2, y2, action_id, person_id

Detections (as the official evaluator, MMAction2 and PySlowFast write and read them)::

    video_id, timestamp, x1, y1, x2, y2, action_id, score

The official ActivityNet evaluator accepts only these 7/8-column forms (its 8th column is the
score; a ground-truth person id lands there harmlessly). thermact can also write detections with
the person (track) id before the score, 9 columns, for its own use (``detection_person_ids=True``);
such files are for thermact only.

* ``video_id``: the recording id (``SL14_R1``).
* ``timestamp``: the keyframe time in **absolute Unix time**, not seconds into the video as in
  AVA (our recordings are overlapping windows of one stream, so absolute time is the one
  unambiguous key, and a file can be read back without the recordings). Two units:

  - ``"ms"`` (default): integer milliseconds, ``1760482260170``. The official ActivityNet
    evaluator and PySlowFast key a keyframe by ``(video_id, int(timestamp))`` and reject a decimal
    point; integer milliseconds keep keyframes ~170 ms apart distinct (integer seconds would merge
    them);
  - ``"s"``: seconds with exactly three decimals, ``1760482260.170``, for thermact and
    spreadsheets only (``int("1760482260.170")`` fails in the official readers).

  Both convert back to the exact integer millisecond.
* ``x1, y1, x2, y2``: the box normalised by the frame width and height (0..1), top-left origin.
  Written with Python's shortest round-trip float repr, so normalising and reading back gives the
  pixel box to float rounding (≈1e-14 px).
* ``action_id``: **1-based** as in AVA: ``class_id + 1`` (thermact class ids are 0-based); reading
  subtracts 1 again. The label map (:func:`write_label_map`) uses the same ids.
* ``person_id``: the track id within the recording (ground truth; optional for detections).
* ``score``: detection confidence (detection files only).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from thermact.data.annotations import Box, ClassList, Keyframe
from thermact.errors import DataError, ProblemLog
from thermact.io import atomic_open, write_text_atomic
from thermact.ops.boxes import normalized_to_xyxy, xyxy_to_normalized

TimeUnit = Literal["s", "ms"]
BOX_TOLERANCE = 1e-6
"""Normalised coordinates may exceed [0, 1] by this much (float rounding) and are then clipped."""


@dataclasses.dataclass(frozen=True)
class AvaRow:
    """One CSV row: a person box with one action (and a score for detections).

    Attributes:
        recording_id: the video id.
        timestamp_ms: keyframe time, absolute Unix milliseconds.
        box: normalised ``(x1, y1, x2, y2)`` in 0..1.
        class_id: thermact's 0-based class id (the file holds ``class_id + 1``).
        person_id: track id (None when the file has none).
        score: confidence, or None for ground truth.
    """

    recording_id: str
    timestamp_ms: int
    box: tuple[float, float, float, float]
    class_id: int
    person_id: int | None
    score: float | None = None


# ---------------------------------------------------------------------------------------------
# Building rows


def keyframes_to_ava_rows(keyframes: Iterable[Keyframe], frame_size: tuple[int, int]) -> list[AvaRow]:
    """Ground-truth rows for the person boxes of ``keyframes``; ``frame_size`` is ``(H, W)``."""
    height, width = frame_size
    rows = []
    for kf in keyframes:
        for p in kf.persons:
            if p.label is None:
                continue
            norm = xyxy_to_normalized(p.xyxy, width, height)
            box = (float(norm[0]), float(norm[1]), float(norm[2]), float(norm[3]))
            rows.append(AvaRow(kf.recording_id, kf.timestamp_ms, box, p.label, p.track_id))
    return rows


def detection_rows(
    recording_id: str,
    timestamp_ms: int,
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    frame_size: tuple[int, int],
    labels: npt.ArrayLike | None = None,
    person_ids: Sequence[int] | None = None,
    min_score: float = 0.0,
) -> list[AvaRow]:
    """Rows for the detections of one keyframe.

    Args:
        boxes: ``[N, 4]`` pixel XYXY.
        scores: ``[N, C]`` per-class scores (one row per class with score >= ``min_score``), or
            ``[N]`` scores of the classes in ``labels``.
        frame_size: ``(H, W)``.
        labels: ``[N]`` 0-based class ids, required with 1-D ``scores``.
        person_ids: one track id per box (default: none).
        min_score: rows below this score are left out.
    """
    height, width = frame_size
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float64)
    n = b.shape[0]
    ids: list[int | None] = list(person_ids) if person_ids is not None else [None] * n
    if len(ids) != n:
        raise ValueError(f"{len(ids)} person ids for {n} boxes")
    norm = [
        (float(r[0]), float(r[1]), float(r[2]), float(r[3]))
        for r in np.clip(xyxy_to_normalized(b, width, height), 0.0, 1.0)
    ]
    pairs: list[tuple[int, int, float]] = []
    if s.ndim == 2:
        if s.shape[0] != n:
            raise ValueError(f"scores {list(s.shape)} do not match {n} boxes")
        pairs = [(i, c, float(s[i, c])) for i in range(n) for c in range(s.shape[1])]
    elif s.ndim == 1:
        if labels is None:
            raise ValueError("1-D scores need labels")
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        if s.shape[0] != n or lab.shape[0] != n:
            raise ValueError(f"scores {list(s.shape)} / labels {list(lab.shape)} do not match {n} boxes")
        pairs = [(i, int(lab[i]), float(s[i])) for i in range(n)]
    else:
        raise ValueError(f"scores must be [N] or [N, C], got shape {list(s.shape)}")
    return [
        AvaRow(recording_id, int(timestamp_ms), norm[i], c, ids[i], sc)
        for i, c, sc in pairs
        if sc >= min_score
    ]


def ava_rows_to_keyframes(
    rows: Iterable[AvaRow], frame_size: tuple[int, int], classes: ClassList
) -> list[Keyframe]:
    """Group ground-truth rows into keyframes (id ``<recording>_<ms>``) with pixel person boxes.

    A person listed with several actions keeps the first one (thermact classes are exclusive);
    rows without a person id get ids 1000, 1001, ... in file order within their keyframe.
    """
    height, width = frame_size
    grouped: dict[tuple[str, int], dict[int, Box]] = {}
    for r in rows:
        persons = grouped.setdefault((r.recording_id, r.timestamp_ms), {})
        pid = r.person_id if r.person_id is not None else 1000 + len(persons)
        if pid in persons:
            continue
        px = normalized_to_xyxy(r.box, width, height)
        xyxy = (float(px[0]), float(px[1]), float(px[2]), float(px[3]))
        persons[pid] = Box(xyxy, "person", r.class_id, classes.names[r.class_id], pid)
    return [
        Keyframe(f"{rid}_{ts}", rid, ts, None, tuple(persons[k] for k in sorted(persons)))
        for (rid, ts), persons in sorted(grouped.items())
    ]


# ---------------------------------------------------------------------------------------------
# CSV


def format_timestamp(timestamp_ms: int, unit: TimeUnit = "ms") -> str:
    """``1760482260170`` → ``"1760482260170"`` (``unit="ms"``) or ``"1760482260.170"`` (``"s"``)."""
    if unit == "ms":
        return str(int(timestamp_ms))
    sign = "-" if timestamp_ms < 0 else ""
    q, r = divmod(abs(int(timestamp_ms)), 1000)
    return f"{sign}{q}.{r:03d}"


def parse_timestamp(text: str, unit: TimeUnit = "ms") -> int:
    """Inverse of :func:`format_timestamp` (exact, via :class:`~decimal.Decimal`); ValueError if not."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"timestamp {text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"timestamp {text!r} is not finite")
    ms = value * 1000 if unit == "s" else value
    if ms != ms.to_integral_value():
        raise ValueError(
            f"timestamp {text!r} is not a whole number of milliseconds"
            + (" (time_unit='ms' expects integer milliseconds)" if unit == "ms" else "")
        )
    return int(ms)


def write_ava_csv(
    path: str | Path,
    rows: Iterable[AvaRow],
    time_unit: TimeUnit = "ms",
    detection_person_ids: bool = False,
    decimals: int | None = None,
) -> int:
    """Write rows atomically (no header); return the number of rows.

    Rows without a score are ground truth (8 columns, person id last); rows with a score are
    detections (8 columns, score last; 9 with ``detection_person_ids``). Mixing both in one file
    is an error, and so is a ground-truth row without a person id.

    Args:
        decimals: round box coordinates to this many decimals (AVA files use 3); the default
            writes the shortest exact repr, so reading back gives the same float.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    count = 0
    with_score: bool | None = None
    for r in rows:
        has = r.score is not None
        if with_score is None:
            with_score = has
        elif has != with_score:
            raise ValueError(f"row {count}: mixes rows with and without a score in one file")
        coords = [repr(float(v)) if decimals is None else f"{float(v):.{decimals}f}" for v in r.box]
        cells = [r.recording_id, format_timestamp(r.timestamp_ms, time_unit), *coords, str(r.class_id + 1)]
        if r.score is None:
            if r.person_id is None:
                raise ValueError(f"row {count}: a ground-truth row needs a person id")
            cells.append(str(r.person_id))
        else:
            if detection_person_ids:
                if r.person_id is None:
                    raise ValueError(f"row {count}: detection_person_ids=True but the row has no person id")
                cells.append(str(r.person_id))
            cells.append(repr(float(r.score)))
        writer.writerow(cells)
        count += 1
    with atomic_open(path, "w") as handle:
        handle.write(buf.getvalue())
    return count


def _float(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: {what} {text!r} is not finite")
    return value


def _int(text: str, what: str, where: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise DataError(f"{where}: {what} {text!r} is not an integer") from None


def read_ava_csv(
    path: str | Path,
    kind: Literal["groundtruth", "detections"] = "groundtruth",
    num_classes: int | None = None,
    time_unit: TimeUnit = "ms",
    recordings: Iterable[str] | None = None,
    problems: ProblemLog | None = None,
) -> list[AvaRow]:
    """Read an AVA-style CSV written by :func:`write_ava_csv` (or by another tool).

    Args:
        path: the CSV file (no header; a first line starting with ``video_id`` is skipped).
        kind: ``"groundtruth"``: 8 columns ending in the person id (7 without it);
            ``"detections"``: 8 columns ending in the score (9 with the person id before it).
            The column count of the first row is then required of every row.
        num_classes: when given, action ids must be in ``1..num_classes``.
        time_unit: how timestamps are written (see the module docstring).
        recordings: when given, the known video ids.
        problems: strict by default (the first bad row raises :class:`DataError` naming the
            file and line); a lenient log skips bad rows with a warning each.
    """
    p = Path(path)
    problems = problems if problems is not None else ProblemLog()
    known = set(recordings) if recordings is not None else None
    if not p.is_file():
        raise DataError(f"{p}: AVA CSV file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{p}: not UTF-8 text: {err}") from err
    rows: list[AvaRow] = []
    allowed = (8, 7) if kind == "groundtruth" else (8, 9)
    expected: int | None = None
    for lineno, cells in enumerate(csv.reader(io.StringIO(text)), start=1):
        where = f"{p}:{lineno}"
        if not cells or all(not c.strip() for c in cells):
            continue
        if lineno == 1 and cells[0].strip().lower() == "video_id":
            continue
        if expected is None and len(cells) in allowed:
            expected = len(cells)
        if len(cells) != expected:
            what = " or ".join(map(str, allowed)) if expected is None else f"{expected} (like the first row)"
            problems.report(
                f"{where}: expected {what} columns for {kind}, got {len(cells)}: {','.join(cells)!r}"
            )
            continue
        try:
            rid = cells[0].strip()
            if not rid:
                raise DataError(f"{where}: empty video id")
            if known is not None and rid not in known:
                raise DataError(f"{where}: unknown recording {rid!r}")
            try:
                ts = parse_timestamp(cells[1], time_unit)
            except ValueError as err:
                raise DataError(f"{where}: {err}") from None
            box = [
                _float(c, name, where) for c, name in zip(cells[2:6], ("x1", "y1", "x2", "y2"), strict=True)
            ]
            if any(v < -BOX_TOLERANCE or v > 1 + BOX_TOLERANCE for v in box):
                raise DataError(f"{where}: box {box} is outside [0, 1] (coordinates must be normalised)")
            box = [min(1.0, max(0.0, v)) for v in box]
            if box[2] <= box[0] or box[3] <= box[1]:
                raise DataError(f"{where}: box {box} has x2 <= x1 or y2 <= y1")
            action = _int(cells[6], "action id", where)
            if action < 1 or (num_classes is not None and action > num_classes):
                valid = f"1..{num_classes}" if num_classes is not None else ">= 1"
                raise DataError(f"{where}: unknown action id {action} (valid: {valid}; ids are 1-based)")
            if kind == "groundtruth":
                person = _int(cells[7], "person id", where) if len(cells) == 8 else None
                score = None
            else:
                person = _int(cells[7], "person id", where) if len(cells) == 9 else None
                score = _float(cells[-1], "score", where)
        except DataError as err:
            problems.report(str(err))
            continue
        rows.append(AvaRow(rid, ts, (box[0], box[1], box[2], box[3]), action - 1, person, score))
    return rows


# ---------------------------------------------------------------------------------------------
# Label map (pbtxt, as the official AVA files)


def _quote(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def write_label_map(path: str | Path, classes: ClassList | Sequence[str]) -> None:
    """Write ``item { name: "sitting" id: 1 }`` entries (one field per line, ids 1-based)."""
    names = classes.names if isinstance(classes, ClassList) else tuple(classes)
    text = "".join(f'item {{\n  name: "{_quote(n)}"\n  id: {i + 1}\n}}\n' for i, n in enumerate(names))
    write_text_atomic(path, text)


_ITEM = re.compile(r"item\s*\{(.*?)\}", re.S)
_NAME = re.compile(r'name:\s*"((?:[^"\\]|\\.)*)"')
_ID = re.compile(r"\b(?:id|label_id):\s*(-?\d+)")


def read_label_map(path: str | Path) -> ClassList:
    """Read a pbtxt label map; ids must be 1..N, each once. Returns the 0-based class list."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: label map not found")
    text = p.read_text(encoding="utf-8")
    by_id: dict[int, str] = {}
    for i, m in enumerate(_ITEM.finditer(text)):
        body = m.group(1)
        name, idm = _NAME.search(body), _ID.search(body)
        if name is None or idm is None:
            raise DataError(f"{p}: item {i} needs a quoted name and an id")
        cid = int(idm.group(1))
        if cid in by_id:
            raise DataError(f"{p}: id {cid} appears twice")
        by_id[cid] = re.sub(r"\\(.)", r"\1", name.group(1))
    if not by_id:
        raise DataError(f"{p}: no 'item {{ name: ... id: ... }}' entries")
    if sorted(by_id) != list(range(1, len(by_id) + 1)):
        raise DataError(f"{p}: ids must be 1..{len(by_id)}, got {sorted(by_id)}")
    return ClassList(tuple(by_id[i] for i in range(1, len(by_id) + 1)))
