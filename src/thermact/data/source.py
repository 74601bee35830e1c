"""A dataset on disk: locating its files, loading recordings and annotations, cross-checking them.

Layout of a dataset directory (the bundled one is ``thermact/datasets/thermal_v1``)::

    frames/<recording>.h5                 one HDF5 recording each (see thermact.data.recording)
    annotations/class_mapping.json        the action classes
    annotations/train.json, val.json      COCO-like keyframes with person boxes (the given split)
    raw_annotations/<recording>_annotation.json   optional JSON lines with all box kinds

When no dataset is given, every command uses :func:`default_dataset_root`: ``$THERMACT_DATA``
if set, else the copy bundled with the package.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

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
from thermact.errors import DataError, ProblemLog

BUNDLED_DATASET = Path(__file__).resolve().parent.parent / "datasets" / "thermal_v1"
GIVEN_SPLIT_FILES = ("train", "val")


def default_dataset_root() -> Path:
    """``$THERMACT_DATA`` if set, else the dataset bundled with the package."""
    env = os.environ.get("THERMACT_DATA")
    return Path(env) if env else BUNDLED_DATASET


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
        for name in GIVEN_SPLIT_FILES:
            if not (self.annotations_dir / f"{name}.json").is_file():
                raise DataError(f"{self.annotations_dir / f'{name}.json'}: annotation file not found")


@dataclasses.dataclass
class ThermalData:
    """Everything of one dataset in memory: classes, recordings and validated annotations."""

    root: Path
    classes: ClassList
    recordings: dict[str, Recording]
    annotations: AnnotationSet
    problems: ProblemLog

    @property
    def keyframes(self) -> list[Keyframe]:
        return self.annotations.keyframes

    def recording(self, recording_id: str) -> Recording:
        try:
            return self.recordings[recording_id]
        except KeyError:
            raise DataError(f"unknown recording {recording_id!r} in {self.root}") from None


def check_keyframes(
    keyframes: list[Keyframe], recordings: dict[str, Recording], problems: ProblemLog
) -> list[Keyframe]:
    """Keep the keyframes whose recording and frame exist; report the others."""
    kept: list[Keyframe] = []
    for kf in keyframes:
        rec = recordings.get(kf.recording_id)
        if rec is None:
            problems.report(f"keyframe {kf.keyframe_id}: unknown recording {kf.recording_id!r}")
            continue
        idx = rec.exact_index(kf.timestamp_ms)
        if idx is None:
            problems.report(
                f"keyframe {kf.keyframe_id}: no frame at {kf.timestamp_ms} ms in {rec.path.name} "
                f"(recording spans {rec.start_ms}..{rec.end_ms} ms)"
            )
            continue
        if kf.frame_index is not None and int(rec.data.source_index[idx]) != kf.frame_index:
            problems.report(
                f"keyframe {kf.keyframe_id}: frame_idx {kf.frame_index} disagrees with the frame at "
                f"{kf.timestamp_ms} ms (index {int(rec.data.source_index[idx])}) in {rec.path.name}"
            )
            continue
        kept.append(kf)
    return kept


def load_dataset(
    root: str | os.PathLike[str] | None = None,
    lenient: bool = False,
    with_raw: bool = True,
    warn: Callable[[str], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ThermalData:
    """Load and cross-check a dataset directory (default: :func:`default_dataset_root`).

    Args:
        root: dataset directory.
        lenient: skip bad records with a warning each instead of failing on the first.
        with_raw: also read ``raw_annotations/`` (non-person boxes).
        warn: receives each warning in lenient mode (default: stderr).
        progress: called with the name of each file as it is read.
    """
    paths = DatasetPaths(Path(root) if root is not None else default_dataset_root())
    paths.check()
    problems = ProblemLog(lenient=lenient, warn=warn)
    classes = load_classes(paths.class_mapping)
    recordings: dict[str, Recording] = {}
    for rec_id, path in paths.recording_files().items():
        if progress is not None:
            progress(path.name)
        rec = Recording(path, rec_id, problems)
        rec.load()
        recordings[rec_id] = rec
    coco: list[Keyframe] = []
    seen: dict[str, str] = {}
    for name in GIVEN_SPLIT_FILES:
        path = paths.annotations_dir / f"{name}.json"
        if progress is not None:
            progress(path.name)
        for kf in load_coco(path, classes, problems, split_name=name):
            if kf.keyframe_id in seen:
                problems.report(
                    f"{path}: image {kf.keyframe_id!r} also appears in {seen[kf.keyframe_id]}.json"
                )
                continue
            seen[kf.keyframe_id] = name
            coco.append(kf)
    keyframes = coco
    if with_raw:
        raw: list[Keyframe] = []
        for path in paths.raw_files():
            if progress is not None:
                progress(path.name)
            raw.extend(load_raw(path, classes, problems))
        keyframes = merge_raw_into(coco, raw, problems)
    keyframes = check_keyframes(keyframes, recordings, problems)
    return ThermalData(paths.root, classes, recordings, AnnotationSet(classes, keyframes), problems)


def load_recordings(target: str | None, problems: ProblemLog) -> list[Recording]:
    """Read every recording :func:`find_recordings` names; unreadable ones are skipped when lenient."""
    recordings: list[Recording] = []
    for path in find_recordings(target):
        rec = Recording(path, problems=problems)
        try:
            rec.load()
        except DataError as err:
            if not problems.lenient:
                raise
            problems.report(f"{err}; skipping it")
            continue
        recordings.append(rec)
    if not recordings:
        raise DataError(f"{target}: no readable recording")
    return recordings


def find_recordings(target: str | None) -> list[Path]:
    """The ``.h5`` files of ``target``: a file, a dataset directory (``frames/``) or a directory
    of recordings; None: the default dataset.

    Raises:
        DataError: the path does not exist or holds no ``.h5`` file.
    """
    path = Path(target) if target is not None else default_dataset_root()
    if not path.exists():
        raise DataError(f"{path}: recording file or directory not found")
    if path.is_file():
        return [path]
    folder = path / "frames" if (path / "frames").is_dir() else path
    files = sorted(folder.glob("*.h5"))
    if not files:
        raise DataError(f"{folder}: no .h5 recordings found")
    return files
