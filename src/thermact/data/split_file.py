"""Split definitions as data: folds of keyframe ids, their JSON file format and its validation.

A :class:`SplitDefinition` lists, for each :class:`Fold`, the keyframe ids to train and test on,
the training keyframes *purged* because their clips would see test time, and the time ranges of
training recordings that must not be used at all (``purged_intervals``); it is written as JSON
by :func:`save_split` (``thermact data split``) and read back, validated, with :func:`load_split`.
How splits are built, purged and checked for leakage: :mod:`thermact.data.splits`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from thermact.data.clips import ClipConfig, KeyframePosition, clip_window
from thermact.data.source import ThermalData
from thermact.errors import DataError
from thermact.io import write_json_atomic

SplitProtocol = Literal["given", "group", "leave_one_recording_out", "all"]
PROTOCOLS: tuple[str, ...] = get_args(SplitProtocol)
SPLIT_FORMAT = "thermact-split"
SPLIT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class PurgedInterval:
    """A part of a training recording that lies in a fold's forbidden zone."""

    start_ms: int
    end_ms: int
    num_frames: int
    """Frames of the training recording with a timestamp in ``[start_ms, end_ms]``."""

    def to_dict(self) -> dict[str, int]:
        return {"start_ms": self.start_ms, "end_ms": self.end_ms, "num_frames": self.num_frames}


@dataclasses.dataclass
class Fold:
    """One train/test assignment of keyframe ids.

    Attributes:
        name: e.g. ``"SL14->SL18"`` (train on SL14, test on SL18) or ``"given"``.
        train: keyframe ids to train on (purged ones already removed).
        test: keyframe ids to test on.
        purged: keyframe ids of the training side removed because their clip touches test time.
        purged_intervals: training recording id → time ranges excluded from training.
        test_recordings: the held-out recordings (empty for the given split).
    """

    name: str
    train: list[str]
    test: list[str]
    purged: list[str] = dataclasses.field(default_factory=list)
    purged_intervals: dict[str, list[PurgedInterval]] = dataclasses.field(default_factory=dict)
    test_recordings: list[str] = dataclasses.field(default_factory=list)

    @property
    def purged_frames(self) -> int:
        return sum(iv.num_frames for ivs in self.purged_intervals.values() for iv in ivs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "test_recordings": list(self.test_recordings),
            "train": list(self.train),
            "test": list(self.test),
            "purged": list(self.purged),
            "purged_intervals": {
                rid: [iv.to_dict() for iv in ivs] for rid, ivs in sorted(self.purged_intervals.items())
            },
        }


@dataclasses.dataclass
class SplitDefinition:
    """A named set of folds with the clip parameters its purge was computed for.

    Attributes:
        name: file stem, e.g. ``"session"``.
        protocol: ``"given"``, ``"group"`` or ``"leave_one_recording_out"``.
        leaky: True when test clips share time with training clips (always for ``given``).
        clip: the clip window the purge and the leakage check used.
        folds: the folds, in a fixed order.
        groups: recording id → group (empty for ``given``).
        dataset: name of the dataset directory it was built from (informative).
    """

    name: str
    protocol: SplitProtocol
    leaky: bool
    clip: ClipConfig
    folds: list[Fold]
    groups: dict[str, str] = dataclasses.field(default_factory=dict)
    dataset: str = ""

    def fold(self, name: str) -> Fold:
        for f in self.folds:
            if f.name == name:
                return f
        raise DataError(
            f"split {self.name!r} has no fold {name!r} (folds: {', '.join(f.name for f in self.folds)})"
        )

    def covers(self, clip: ClipConfig) -> bool:
        """True when every clip window of ``clip`` lies inside the one this split was purged for.

        The purge's sampled-frame test was made for this split's own grid; with another grid a
        frame across a gap next to the window could still differ, so an exact match of the clip
        parameters is the safe case (what :func:`resolve_split` uses for the standard splits).
        """
        a0, a1 = clip_window(0, clip)
        b0, b1 = clip_window(0, self.clip)
        return b0 <= a0 and a1 <= b1

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SPLIT_FORMAT,
            "version": SPLIT_VERSION,
            "name": self.name,
            "protocol": self.protocol,
            "leaky": self.leaky,
            "dataset": self.dataset,
            "clip": {
                "window_s": self.clip.window_s,
                "num_frames": self.clip.num_frames,
                "keyframe_position": self.clip.keyframe_position,
            },
            "groups": dict(sorted(self.groups.items())),
            "folds": [f.to_dict() for f in self.folds],
        }

    @classmethod
    def from_dict(cls, obj: Any, source: str = "split") -> SplitDefinition:
        """Validate plain JSON types into a split; errors name ``source`` and the key at fault."""
        top = _mapping(obj, source)
        if top.get("format", SPLIT_FORMAT) != SPLIT_FORMAT:
            raise DataError(f"{source}: 'format' is {top.get('format')!r}, expected {SPLIT_FORMAT!r}")
        version = top.get("version", SPLIT_VERSION)
        if version != SPLIT_VERSION:
            raise DataError(
                f"{source}: unsupported split file version {version!r} (this thermact reads {SPLIT_VERSION})"
            )
        name = _field(top, "name", str, source)
        protocol = _field(top, "protocol", str, source)
        if protocol not in PROTOCOLS:
            raise DataError(f"{source}: 'protocol' is {protocol!r}, expected one of {', '.join(PROTOCOLS)}")
        leaky = _field(top, "leaky", bool, source)
        dataset = top.get("dataset", "")
        if not isinstance(dataset, str):
            raise DataError(f"{source}: 'dataset' must be a string, got {dataset!r}")
        clip_obj = _mapping(top.get("clip"), f"{source}: 'clip'")
        window_s = _field(clip_obj, "window_s", (int, float), f"{source}: clip")
        num_frames = _field(clip_obj, "num_frames", int, f"{source}: clip")
        position = _field(clip_obj, "keyframe_position", str, f"{source}: clip")
        if position not in get_args(KeyframePosition):
            raise DataError(f"{source}: clip.keyframe_position {position!r} is not 'center' or 'causal'")
        try:
            clip = ClipConfig(float(window_s), num_frames, position)
        except ValueError as err:
            raise DataError(f"{source}: clip: {err}") from err
        groups_obj = _mapping(top.get("groups", {}), f"{source}: 'groups'")
        groups: dict[str, str] = {}
        for rid, group in groups_obj.items():
            if not isinstance(group, str):
                raise DataError(f"{source}: groups[{rid!r}] must be a string, got {group!r}")
            groups[str(rid)] = group
        folds_obj = top.get("folds")
        if not isinstance(folds_obj, list) or not folds_obj:
            raise DataError(f"{source}: 'folds' must be a non-empty list")
        folds = [_fold_from_dict(f, f"{source}: folds[{i}]") for i, f in enumerate(folds_obj)]
        names = [f.name for f in folds]
        if len(set(names)) != len(names):
            raise DataError(f"{source}: duplicate fold names in {names}")
        check_test_sides(protocol, folds, source)
        return cls(name, protocol, leaky, clip, folds, groups, dataset)

    def check_against(self, data: ThermalData, source: str = "split") -> SplitDefinition:
        """This split with only keyframes and recordings of ``data``.

        An id the dataset lacks is a problem of ``data.problems``: strict, a DataError naming
        ``source``, the fold and the ids; lenient (the dataset skipped bad records), the ids are
        dropped from the returned copy with a warning per fold part.
        """
        known = {k.keyframe_id for k in data.keyframes}
        recs = data.recordings
        folds = []
        for fold in self.folds:
            where = f"{source}: fold {fold.name!r}"
            train, test, purged = (
                _known_ids(getattr(fold, part), known, f"{where} {part}", data)
                for part in ("train", "test", "purged")
            )
            for rid in [*fold.test_recordings, *fold.purged_intervals]:
                if rid not in recs:
                    data.problems.report(
                        f"{where} names recording {rid!r}, which is not in dataset {data.root}",
                        consequence="ignoring it",
                    )
            intervals = {r: v for r, v in fold.purged_intervals.items() if r in recs}
            held = [r for r in fold.test_recordings if r in recs]
            folds.append(Fold(fold.name, train, test, purged, intervals, held))
        unknown = [rid for rid in self.groups if rid not in data.recordings]
        if unknown:
            data.problems.report(
                f"{source}: groups name unknown recording(s) {unknown}", consequence="ignoring them"
            )
        groups = {r: g for r, g in self.groups.items() if r in data.recordings}
        return dataclasses.replace(self, folds=folds, groups=groups)


def _known_ids(ids: list[str], known: set[str], where: str, data: ThermalData) -> list[str]:
    """``ids`` that are in ``known``; the others are a problem of ``data`` (lenient: dropped)."""
    missing = [k for k in ids if k not in known]
    if missing:
        data.problems.report(
            f"{where} has {len(missing)} keyframe id(s) not in dataset {data.root}: "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}",
            consequence="dropping them from the fold",
        )
    return [k for k in ids if k in known]


def check_test_sides(protocol: str, folds: Sequence[Fold], source: str) -> None:
    """Only the ``all`` protocol may (and must) have an empty test side, in its single fold."""
    if protocol == "all":
        if len(folds) != 1 or folds[0].test or not folds[0].train:
            raise DataError(
                f"{source}: an 'all' split is one fold with every keyframe in 'train' and none in 'test'"
            )
        return
    for fold in folds:
        if not fold.test:
            raise DataError(
                f"{source}: fold {fold.name!r} has no test keyframe (only the 'all' split trains without a test side)"
            )


def _mapping(obj: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _field(obj: Mapping[str, Any], key: str, tp: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise DataError(f"{where}: missing key {key!r}")
    value = obj[key]
    types = tp if isinstance(tp, tuple) else (tp,)
    if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
        names = " or ".join(t.__name__ for t in types)
        raise DataError(f"{where}: {key!r} must be {names}, got {value!r}")
    return value


def _id_list(obj: Mapping[str, Any], key: str, where: str, required: bool = True) -> list[str]:
    if not required and key not in obj:
        return []
    value = _field(obj, key, list, where)
    bad = [v for v in value if not isinstance(v, str)]
    if bad:
        raise DataError(f"{where}: {key!r} must be a list of strings, found {bad[0]!r}")
    if len(set(value)) != len(value):
        raise DataError(f"{where}: {key!r} lists a keyframe id twice")
    return list(value)


def _fold_from_dict(obj: Any, where: str) -> Fold:
    f = _mapping(obj, where)
    name = _field(f, "name", str, where)
    where = f"{where} ({name!r})"
    train = _id_list(f, "train", where)
    test = _id_list(f, "test", where)
    purged = _id_list(f, "purged", where, required=False)
    test_recordings = _id_list(f, "test_recordings", where, required=False)
    parts = {"train": train, "test": test, "purged": purged}
    for a, b in (("train", "test"), ("train", "purged"), ("test", "purged")):
        both = set(parts[a]) & set(parts[b])
        if both:
            raise DataError(f"{where}: keyframe id {sorted(both)[0]!r} is in both {a!r} and {b!r}")
    intervals: dict[str, list[PurgedInterval]] = {}
    for rid, items in _mapping(f.get("purged_intervals", {}), f"{where}: 'purged_intervals'").items():
        if not isinstance(items, list):
            raise DataError(f"{where}: purged_intervals[{rid!r}] must be a list")
        ivs = []
        for j, item in enumerate(items):
            iwhere = f"{where}: purged_intervals[{rid!r}][{j}]"
            m = _mapping(item, iwhere)
            start, end = _field(m, "start_ms", int, iwhere), _field(m, "end_ms", int, iwhere)
            count = _field(m, "num_frames", int, iwhere)
            if end < start or count < 0:
                raise DataError(f"{iwhere}: need start_ms <= end_ms and num_frames >= 0, got {item!r}")
            ivs.append(PurgedInterval(start, end, count))
        intervals[str(rid)] = ivs
    return Fold(name, train, test, purged, intervals, test_recordings)


def save_split(split: SplitDefinition, path: str | Path) -> None:
    """Write ``split`` as JSON to ``path`` atomically."""
    write_json_atomic(path, split.to_dict())


def load_split(path: str | Path, data: ThermalData | None = None) -> SplitDefinition:
    """Read a split file; with ``data``, also check that its keyframe and recording ids exist
    (see :meth:`SplitDefinition.check_against`: lenient data drops those that do not)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: split file not found")
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{p}: not valid JSON: {err}") from err
    split = SplitDefinition.from_dict(obj, source=str(p))
    return split.check_against(data, source=str(p)) if data is not None else split
