"""A dataset on disk: finding it by name or path, loading recordings and annotations, cross-checking them.

Layout of a dataset directory (the bundled ones are ``thermact/datasets/thermal_v1`` and ``thermal_v2``)::

    frames/<recording>.h5                 one HDF5 recording each (see thermact.data.recording)
    annotations/class_mapping.json        the action classes
    annotations/train.json, val.json      COCO-like keyframes with person boxes (the given split);
                                          one of the two is enough (e.g. only val.json: a test-only dataset)
    raw_annotations/<recording>_annotation.json   optional per recording: JSON lines with all box kinds

Every command takes a dataset by **name** (a dataset bundled with the package:
:func:`bundled_datasets`, ``thermal_v1`` or ``thermal_v2``) or by **path**; one function,
:func:`resolve_dataset`, turns either into a directory. When none is given, ``$THERMACT_DATA``
(a name or a path) is used if set, else :data:`DEFAULT_DATASET`. A bundled name always means the
bundled dataset (write ``./thermal_v2`` for a directory of that name); an unknown bare name is an
error with a did-you-mean.

Loading is strict by default (the first problem raises :class:`~thermact.errors.DataError` naming
the file and record); leniently, every bad record is skipped with a warning, and so is a recording
that cannot be read at all (with its keyframes). Annotations that name a recording absent from
``frames/`` are one problem per recording, not one per keyframe.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from thermact.data.annotations import (
    AnnotationSet,
    ClassList,
    Keyframe,
    load_classes,
    load_coco,
    load_raw,
    merge_raw_into,
)
from thermact.data.recording import Recording
from thermact.errors import ConfigError, DataError, ProblemLog

DATASETS_DIR = Path(__file__).resolve().parent.parent / "datasets"
"""Where the bundled datasets live (one directory each, named by the dataset's name)."""
DEFAULT_DATASET = "thermal_v1"
"""The dataset of every command when none is given (kept for comparability with earlier numbers)."""
BUNDLED_DATASET = DATASETS_DIR / DEFAULT_DATASET
GIVEN_SPLIT_FILES = ("train", "val")


def bundled_datasets() -> dict[str, Path]:
    """Name → directory of every dataset bundled with the package, sorted by name."""
    if not DATASETS_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(DATASETS_DIR.iterdir()) if (p / "frames").is_dir()}


def resolve_dataset(spec: str | os.PathLike[str] | None = None) -> Path:
    """The directory of a dataset given by name, by path, or (None) by ``$THERMACT_DATA`` / the default.

    Raises:
        ConfigError: a bare name (no path separator, no dot) that is neither bundled nor an
            existing path, with a did-you-mean.
    """
    if spec is None:
        spec = os.environ.get("THERMACT_DATA") or DEFAULT_DATASET
    bundled = bundled_datasets()
    text = os.fspath(spec)
    if text in bundled:
        return bundled[text]
    path = Path(text)
    is_bare_name = not any(c in text for c in (os.sep, "/", "."))  # "thermal_v3", not "x.h5" or "./x"
    if is_bare_name and not path.exists():
        close = difflib.get_close_matches(text, list(bundled), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"bundled: {', '.join(bundled)}"
        raise ConfigError(f"unknown dataset {text!r}: neither a bundled dataset nor a directory; {hint}")
    return path


def default_dataset_root() -> Path:
    """``$THERMACT_DATA`` (a name or a path) if set, else the default bundled dataset."""
    return resolve_dataset(None)


@dataclasses.dataclass(frozen=True)
class DatasetPaths:
    """Where the files of a dataset directory are."""

    root: Path

    @property
    def frames_dir(self) -> Path:
        return self.root / "frames"

    @property
    def annotations_dir(self) -> Path:
        return self.root / "annotations"

    @property
    def raw_dir(self) -> Path:
        return self.root / "raw_annotations"

    @property
    def class_mapping(self) -> Path:
        return self.annotations_dir / "class_mapping.json"

    def recording_files(self) -> dict[str, Path]:
        """Recording id → HDF5 path, sorted by id."""
        return {p.stem: p for p in sorted(self.frames_dir.glob("*.h5"))}

    def annotation_files(self) -> dict[str, Path]:
        """Given-split name → COCO file, for those of ``train.json``/``val.json`` that exist."""
        files = {name: self.annotations_dir / f"{name}.json" for name in GIVEN_SPLIT_FILES}
        return {name: path for name, path in files.items() if path.is_file()}

    def raw_files(self) -> list[Path]:
        return sorted(self.raw_dir.glob("*_annotation.json")) if self.raw_dir.is_dir() else []

    def check(self) -> None:
        """Raise DataError naming the first missing piece."""
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset directory not found")
        if not self.frames_dir.is_dir():
            raise DataError(f"{self.frames_dir}: missing 'frames' directory of HDF5 recordings")
        if not self.recording_files():
            raise DataError(f"{self.frames_dir}: no .h5 recordings found")
        if not self.class_mapping.is_file():
            raise DataError(f"{self.class_mapping}: class mapping not found")
        if not self.annotation_files():
            names = " or ".join(f"{n}.json" for n in GIVEN_SPLIT_FILES)
            raise DataError(f"{self.annotations_dir}: no annotation file ({names}) found")


@dataclasses.dataclass
class ThermalData:
    """Everything of one dataset in memory: classes, recordings and validated annotations."""

    root: Path
    classes: ClassList
    recordings: dict[str, Recording]
    annotations: AnnotationSet
    problems: ProblemLog

    @property
    def name(self) -> str:
        """The dataset's name: its directory's name (``thermal_v1`` for the bundled default)."""
        return self.root.name

    @property
    def keyframes(self) -> list[Keyframe]:
        return self.annotations.keyframes

    def recording(self, recording_id: str) -> Recording:
        try:
            return self.recordings[recording_id]
        except KeyError:
            raise DataError(f"unknown recording {recording_id!r} in {self.root}") from None

    def unlabelled_recordings(self) -> list[str]:
        """Recordings without any keyframe (usable as unlabelled frames only)."""
        labelled = {k.recording_id for k in self.keyframes}
        return [r for r in self.recordings if r not in labelled]


def _sources(keyframes: Iterable[Keyframe]) -> str:
    names = sorted({f"{k.given_split}.json" if k.given_split else "raw_annotations" for k in keyframes})
    return ", ".join(names)


def check_keyframes(
    keyframes: list[Keyframe],
    recordings: Mapping[str, Recording],
    problems: ProblemLog,
    frames_dir: Path | None = None,
    skipped: Iterable[str] = (),
) -> list[Keyframe]:
    """Keep the keyframes whose recording and frame exist; report the others.

    A recording named by keyframes but absent is one problem (naming the recording and how many
    keyframes name it); keyframes of ``skipped`` recordings (unreadable ones a lenient load already
    reported) are dropped without another problem.
    """
    skipped = set(skipped)
    missing: dict[str, list[Keyframe]] = {}
    kept: list[Keyframe] = []
    for kf in keyframes:
        rec = recordings.get(kf.recording_id)
        if rec is None:
            missing.setdefault(kf.recording_id, []).append(kf)
            continue
        idx = rec.exact_index(kf.timestamp_ms)
        if idx is None:
            problems.report(
                f"keyframe {kf.keyframe_id}: no frame at {kf.timestamp_ms} ms in {rec.path.name} "
                f"(recording spans {rec.start_ms}..{rec.end_ms} ms)",
                consequence="skipping the keyframe",
            )
            continue
        if kf.frame_index is not None and int(rec.data.source_index[idx]) != kf.frame_index:
            problems.report(
                f"keyframe {kf.keyframe_id}: frame_idx {kf.frame_index} disagrees with the frame at "
                f"{kf.timestamp_ms} ms (index {int(rec.data.source_index[idx])}) in {rec.path.name}",
                consequence="skipping the keyframe",
            )
            continue
        kept.append(kf)
    for rid, kfs in sorted(missing.items()):
        if rid in skipped:
            continue
        where = frames_dir / f"{rid}.h5" if frames_dir is not None else f"recording file of {rid!r}"
        problems.report(
            f"{len(kfs)} keyframe(s) in {_sources(kfs)} name recording {rid!r}, but {where} does not exist",
            consequence="skipping those keyframes",
        )
    return kept


def _read_recordings(
    files: Mapping[str, Path],
    problems: ProblemLog,
    where: object,
    consequence: str,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Recording], list[str]]:
    """Read every recording of ``files`` (id → path); leniently, an unreadable one is reported
    with ``consequence`` and its id listed second. No readable recording at all: DataError naming ``where``."""
    recordings: dict[str, Recording] = {}
    skipped: list[str] = []
    for rec_id, path in files.items():
        if progress is not None:
            progress(path.name)
        rec = Recording(path, rec_id, problems)
        try:
            rec.load()
        except DataError as err:
            problems.report(str(err), consequence=consequence)
            skipped.append(rec_id)
            continue
        recordings[rec_id] = rec
    if not recordings:
        raise DataError(f"{where}: no readable recording")
    return recordings, skipped


def _load_keyframes(
    paths: DatasetPaths,
    classes: ClassList,
    problems: ProblemLog,
    with_raw: bool,
    progress: Callable[[str], None] | None,
) -> list[Keyframe]:
    """The COCO keyframes of every annotation file, with the raw annotations merged in."""
    coco: list[Keyframe] = []
    seen: dict[str, str] = {}
    for name, path in paths.annotation_files().items():
        if progress is not None:
            progress(path.name)
        for kf in load_coco(path, classes, problems, split_name=name):
            if kf.keyframe_id in seen:
                problems.report(
                    f"{path}: image {kf.keyframe_id!r} also appears in {seen[kf.keyframe_id]}.json",
                    consequence="keeping the first",
                )
                continue
            seen[kf.keyframe_id] = name
            coco.append(kf)
    if not with_raw:
        return coco
    raw: list[Keyframe] = []
    for path in paths.raw_files():
        if progress is not None:
            progress(path.name)
        raw.extend(load_raw(path, classes, problems))
    return merge_raw_into(coco, raw, problems)


def load_dataset(
    root: str | os.PathLike[str] | None = None,
    lenient: bool = False,
    with_raw: bool = True,
    warn: Callable[[str], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ThermalData:
    """Load and cross-check a dataset (a bundled name or a directory; see :func:`resolve_dataset`).

    Args:
        root: dataset name or directory (None: ``$THERMACT_DATA`` or the default dataset).
        lenient: skip bad records (and unreadable recordings) with a warning each instead of
            failing on the first.
        with_raw: also read ``raw_annotations/`` (non-person boxes), where they exist.
        warn: receives each warning in lenient mode (default: stderr).
        progress: called with the name of each file as it is read.
    """
    paths = DatasetPaths(resolve_dataset(root))
    paths.check()
    problems = ProblemLog(lenient=lenient, warn=warn)
    classes = load_classes(paths.class_mapping)
    recordings, skipped = _read_recordings(
        paths.recording_files(),
        problems,
        paths.frames_dir,
        "skipping the recording and its keyframes",
        progress,
    )
    keyframes = _load_keyframes(paths, classes, problems, with_raw, progress)
    keyframes = check_keyframes(keyframes, recordings, problems, paths.frames_dir, skipped)
    return ThermalData(paths.root, classes, recordings, AnnotationSet(classes, keyframes), problems)


# ---------------------------------------------------------------------------------------------
# Recordings without a dataset (detect, stream)


def load_recordings(target: str | None, problems: ProblemLog) -> list[Recording]:
    """Read every recording :func:`find_recordings` names; unreadable ones are skipped when lenient."""
    files = {path.stem: path for path in find_recordings(target)}
    recordings, _ = _read_recordings(files, problems, target, "skipping it")
    return list(recordings.values())


def find_recordings(target: str | None) -> list[Path]:
    """The ``.h5`` files of ``target``: a file, a dataset directory (``frames/``) or a directory
    of recordings, or a bundled dataset's name; None: the default dataset.

    Raises:
        DataError: the path does not exist or holds no ``.h5`` file.
    """
    path = resolve_dataset(target)
    if not path.exists():
        raise DataError(f"{path}: recording file or directory not found")
    if path.is_file():
        return [path]
    folder = path / "frames" if (path / "frames").is_dir() else path
    files = sorted(folder.glob("*.h5"))
    if not files:
        raise DataError(f"{folder}: no .h5 recordings found")
    return files


# ---------------------------------------------------------------------------------------------
# Identity


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class DatasetFingerprint:
    """What identifies a dataset's content (store it with a model to know what it was trained on).

    Attributes:
        name: the dataset's name (informative only; content decides).
        recordings: recording id → SHA-256 of its frames and timestamps
            (:attr:`~thermact.data.recording.RecordingData.content_sha256`: the same recording in two
            datasets has the same hash even when the files' other attributes differ).
        annotations: SHA-256 over the class mapping, the COCO files and the raw annotation files
            (each with its path relative to the dataset directory).
    """

    name: str
    recordings: dict[str, str]
    annotations: str

    @property
    def digest(self) -> str:
        """One SHA-256 over everything: equal digests mean the same recordings and annotations."""
        text = "\n".join([*(f"{r} {h}" for r, h in sorted(self.recordings.items())), self.annotations])
        return hashlib.sha256(text.encode()).hexdigest()

    def shared_recordings(self, other: DatasetFingerprint) -> dict[str, str]:
        """Recording id in ``other`` → id in ``self`` of every recording with identical frames and timestamps."""
        by_hash = {h: r for r, h in self.recordings.items()}
        return {r: by_hash[h] for r, h in sorted(other.recordings.items()) if h in by_hash}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": self.digest,
            "recordings": dict(sorted(self.recordings.items())),
            "annotations": self.annotations,
        }

    @classmethod
    def from_dict(cls, obj: Any, where: str = "dataset fingerprint") -> DatasetFingerprint:
        """Validate plain JSON types (as :meth:`to_dict` writes them); DataError names ``where``."""
        if not isinstance(obj, Mapping):
            raise DataError(f"{where}: expected a mapping, got {type(obj).__name__}")
        name, recs, ann = obj.get("name"), obj.get("recordings"), obj.get("annotations")
        if not isinstance(name, str) or not isinstance(ann, str) or not isinstance(recs, Mapping):
            raise DataError(f"{where}: needs 'name' (string), 'recordings' (mapping), 'annotations' (string)")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in recs.items()):
            raise DataError(f"{where}: 'recordings' must map recording ids to SHA-256 strings")
        out = cls(name, dict(recs), ann)
        if "digest" in obj and obj["digest"] != out.digest:
            raise DataError(f"{where}: 'digest' does not match its recordings and annotations")
        return out


def fingerprint_dataset(data: ThermalData) -> DatasetFingerprint:
    """The :class:`DatasetFingerprint` of a loaded dataset (hashes its annotation files)."""
    paths = DatasetPaths(data.root)
    files = [paths.class_mapping, *paths.annotation_files().values(), *paths.raw_files()]
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(paths.root).as_posix()} {_sha256(path)}\n".encode())
    recordings = {rid: rec.data.content_sha256 for rid, rec in sorted(data.recordings.items())}
    return DatasetFingerprint(data.name, recordings, digest.hexdigest())
