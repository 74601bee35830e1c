"""Train/test splits built without temporal leakage, and the leakage of any split.

A :class:`~thermact.data.split_file.SplitDefinition` lists, for each fold, the keyframe ids to
train and test on, the training keyframes *purged* because their clips would see test time, and
the time ranges of training recordings that must not be used at all (``purged_intervals``); its
JSON format lives in :mod:`thermact.data.split_file` (whose names this module re-exports). The
files for the bundled datasets ship in ``thermact/datasets/<name>/splits/``.

Protocols
    ``given``
        The dataset's own ``train``/``val`` assignment. It was drawn at random per keyframe, and
        keyframes are about one second apart while a clip spans several seconds, so almost every
        test clip shares frames with training clips: the split is always flagged ``leaky``.
    ``group``
        One fold per group of recordings: the group is the test set, all other groups train. A
        recording→group mapping defines it. The ``session`` split uses the sessions found from
        the data (:func:`thermact.data.sessions.find_sessions`: same device, no pause over 5 min),
        so it is leave-one-session-out (with two sessions: train on one, test on the other, in
        both directions). Users define splits for their own data the same way.
    ``leave_one_recording_out``
        One fold per recording.
    ``all``
        One fold that trains on every keyframe and tests on none (a final model trained without
        validation). Only this protocol may have an empty test side.

Purge (all protocols but ``given``)
    Recordings of one device may overlap in time: the bundled recordings are overlapping windows
    (≈24 s) cut from one sensor stream, so the same frames appear in two recordings. All
    comparisons are therefore in absolute time (Unix ms) between recordings of the same device
    (``mac_address`` attribute; a recording without it is compared with every recording).

    The *forbidden zone* of a fold, per device, is the union of the held-out recordings' spans
    ``[start_ms, end_ms]`` and the clip windows (:func:`thermact.data.clips.clip_window`) of the
    test keyframes (these can reach beyond their recording). A training keyframe is purged when
    its clip window intersects the forbidden zone, or when one of the frames its clip actually
    samples (nearest frame to each grid point, which can lie outside the window across a gap)
    has a timestamp in it. ``purged_intervals`` lists, per training recording, the parts of its
    span inside the forbidden zone with the number of its frames there; such frames must not be
    used for training (e.g. as clip context or background samples).

The purge depends on the clip parameters, which are stored in the file; :meth:`SplitDefinition.covers`
tells whether a split is valid for another clip configuration.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thermact.data.annotations import Keyframe
from thermact.data.clips import ClipConfig, clip_indices, clip_window
from thermact.data.recording import Recording
from thermact.data.sessions import SESSION_GAP_S, find_sessions, same_device, session_groups
from thermact.data.source import ThermalData
from thermact.data.split_file import (
    PROTOCOLS,
    SPLIT_FORMAT,
    SPLIT_VERSION,
    Fold,
    PurgedInterval,
    SplitDefinition,
    SplitProtocol,
    check_test_sides,
    load_split,
    save_split,
)
from thermact.errors import ConfigError, DataError

__all__ = [
    "PROTOCOLS",
    "SPLIT_FORMAT",
    "SPLIT_NAMES",
    "SPLIT_VERSION",
    "STANDARD_SPLITS",
    "Fold",
    "FoldLeakage",
    "LeakageReport",
    "PurgedInterval",
    "SplitDefinition",
    "SplitProtocol",
    "all_keyframes_fold",
    "all_split",
    "build_split",
    "build_standard_splits",
    "check_test_sides",
    "format_split_table",
    "given_split",
    "group_split",
    "leakage",
    "leave_one_recording_out",
    "load_split",
    "make_fold",
    "merge_intervals",
    "overlap_ms",
    "read_groups",
    "resolve_split",
    "save_split",
    "session_split",
]

Interval = tuple[int, int]
"""Closed time interval ``[start_ms, end_ms]`` in absolute Unix milliseconds."""


# ---------------------------------------------------------------------------------------------
# Time geometry


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Union of closed integer intervals as a sorted list of disjoint ones."""
    out: list[list[int]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _intersects(iv: Interval, zones: Sequence[Interval]) -> bool:
    return any(iv[0] <= e and s <= iv[1] for s, e in zones)


def overlap_ms(iv: Interval, zones: Sequence[Interval]) -> int:
    """Length (ms) of the intersection of ``iv`` with the disjoint intervals ``zones``."""
    return sum(max(0, min(iv[1], e) - max(iv[0], s)) for s, e in zones)


def _keyframe_index(data: ThermalData) -> dict[str, Keyframe]:
    return {k.keyframe_id: k for k in data.keyframes}


# ---------------------------------------------------------------------------------------------
# Builders


def given_split(data: ThermalData, clip: ClipConfig | None = None) -> SplitDefinition:
    """The dataset's own train/val assignment as one fold, flagged leaky, nothing purged."""
    clip = clip if clip is not None else ClipConfig()
    train = [k.keyframe_id for k in data.keyframes if k.given_split == "train"]
    test = [k.keyframe_id for k in data.keyframes if k.given_split == "val"]
    if not train or not test:
        raise DataError(f"{data.root}: the given split needs keyframes in both train.json and val.json")
    return SplitDefinition(
        "given", "given", True, clip, [Fold("train->val", train, test)], {}, data.root.name
    )


def _fold_name(train_groups: Sequence[str], test_group: str) -> str:
    return f"{'+'.join(train_groups) if len(train_groups) <= 2 else 'rest'}->{test_group}"


def make_fold(
    data: ThermalData,
    name: str,
    test_recordings: Sequence[str],
    train_recordings: Sequence[str],
    clip: ClipConfig,
) -> Fold:
    """Test on all keyframes of ``test_recordings``, train on those of ``train_recordings`` minus the purge."""
    by_rec = data.annotations.by_recording()
    held = [data.recording(r) for r in test_recordings]
    zones_of: dict[str, list[Interval]] = {}
    for h in held:
        zones = [(h.start_ms, h.end_ms)]
        zones.extend(clip_window(k.timestamp_ms, clip) for k in by_rec.get(h.recording_id, []))
        zones_of[h.recording_id] = zones
    test = [k.keyframe_id for r in test_recordings for k in by_rec.get(r, [])]
    train: list[str] = []
    purged: list[str] = []
    intervals: dict[str, list[PurgedInterval]] = {}
    for rid in train_recordings:
        rec = data.recording(rid)
        zones = merge_intervals(z for h in held if same_device(rec, h) for z in zones_of[h.recording_id])
        ts = rec.timestamps
        for kf in by_rec.get(rid, []):
            sampled = ts[clip_indices(ts, kf.timestamp_ms, clip)]
            hit = _intersects(clip_window(kf.timestamp_ms, clip), zones) or any(
                _intersects((int(t), int(t)), zones) for t in np.unique(sampled)
            )
            (purged if hit else train).append(kf.keyframe_id)
        ivs = []
        for s, e in zones:
            lo, hi = max(s, rec.start_ms), min(e, rec.end_ms)
            if lo <= hi:
                count = int(((ts >= lo) & (ts <= hi)).sum())
                ivs.append(PurgedInterval(lo, hi, count))
        if ivs:
            intervals[rid] = ivs
    return Fold(name, train, test, purged, intervals, list(test_recordings))


def _check_groups(data: ThermalData, groups: Mapping[str, str], source: str) -> dict[str, str]:
    unknown = sorted(r for r in groups if r not in data.recordings)
    if unknown:
        raise DataError(
            f"{source}: unknown recording(s) {unknown} (dataset has: {', '.join(sorted(data.recordings))})"
        )
    with_keyframes = {k.recording_id for k in data.keyframes}
    missing = sorted(r for r in with_keyframes if r not in groups)
    if missing:
        raise DataError(f"{source}: recording(s) {missing} have keyframes but no group")
    out = {str(r): str(g) for r, g in groups.items()}
    labelled = sorted({g for r, g in out.items() if r in with_keyframes})
    if len(labelled) < 2:
        raise DataError(f"{source}: a group split needs at least two groups with keyframes, got {labelled}")
    return out


def group_split(
    data: ThermalData,
    groups: Mapping[str, str],
    clip: ClipConfig | None = None,
    name: str = "group",
    protocol: SplitProtocol = "group",
    source: str = "groups",
) -> SplitDefinition:
    """One fold per group with keyframes held out (trained on all other groups), with the purge applied."""
    clip = clip if clip is not None else ClipConfig()
    mapping = _check_groups(data, groups, source)
    names = sorted(set(mapping.values()))
    labelled = {mapping[k.recording_id] for k in data.keyframes}
    folds = []
    for g in (n for n in names if n in labelled):
        test_recs = sorted(r for r, gg in mapping.items() if gg == g)
        train_recs = sorted(r for r, gg in mapping.items() if gg != g)
        folds.append(
            make_fold(data, _fold_name([n for n in names if n != g], g), test_recs, train_recs, clip)
        )
    split = SplitDefinition(name, protocol, False, clip, folds, mapping, data.root.name)
    split.leaky = leakage(data, split).leaky_keyframes > 0
    return split


def session_split(
    data: ThermalData, clip: ClipConfig | None = None, gap_s: float = SESSION_GAP_S
) -> SplitDefinition:
    """Leave one session out (sessions found from the data, see :mod:`thermact.data.sessions`):
    :func:`group_split` by session. With two sessions: train on one, test on the other, both ways."""
    groups = session_groups(find_sessions(data.recordings, gap_s))
    return group_split(data, groups, clip, name="session", source="sessions")


def leave_one_recording_out(data: ThermalData, clip: ClipConfig | None = None) -> SplitDefinition:
    """One fold per recording held out, with the purge applied to the others."""
    return group_split(
        data,
        {r: r for r in data.recordings},
        clip,
        name="lorecording",
        protocol="leave_one_recording_out",
        source="recordings",
    )


def all_split(data: ThermalData, clip: ClipConfig | None = None) -> SplitDefinition:
    """Train on every keyframe, test on none: one fold ``"all"`` (protocol ``all``), for a final model."""
    clip = clip if clip is not None else ClipConfig()
    train = [k.keyframe_id for k in data.keyframes]
    if not train:
        raise DataError(f"{data.root}: the dataset has no keyframe to train on")
    return SplitDefinition("all", "all", False, clip, [Fold("all", train, [])], {}, data.name)


def all_keyframes_fold(data: ThermalData) -> Fold:
    """Every keyframe of ``data`` on the test side, none for training: what to score a model on a
    dataset it never saw (see :class:`thermact.data.source.DatasetFingerprint`)."""
    return Fold("all", [], [k.keyframe_id for k in data.keyframes])


STANDARD_SPLITS = ("given", "session", "lorecording")
"""The splits ``thermact data split`` writes (and the bundled datasets ship in ``splits/``)."""
SPLIT_NAMES = (*STANDARD_SPLITS, "all")
"""Every split a run can name (``all`` is built in memory: it has nothing to purge or store)."""


def build_split(data: ThermalData, name: str, clip: ClipConfig | None = None) -> SplitDefinition:
    """Build one of :data:`SPLIT_NAMES` in memory."""
    if name == "given":
        return given_split(data, clip)
    if name == "session":
        return session_split(data, clip)
    if name == "lorecording":
        return leave_one_recording_out(data, clip)
    if name == "all":
        return all_split(data, clip)
    raise ConfigError(f"unknown split {name!r}; expected one of {', '.join(SPLIT_NAMES)} or a .json file")


def resolve_split(data: ThermalData, spec: str | Path, clip: ClipConfig | None = None) -> SplitDefinition:
    """The split a run asks for: a standard name or a split file.

    A standard name uses ``<dataset>/splits/<name>.json`` when it exists and was made for exactly
    ``clip``, and builds the split in memory otherwise. A file must exist, match ``data`` and
    :meth:`~SplitDefinition.covers` ``clip`` (else :class:`DataError`: regenerate it with
    ``thermact data split window_s=...``).
    """
    clip = clip if clip is not None else ClipConfig()
    if isinstance(spec, str) and spec in SPLIT_NAMES:
        path = data.root / "splits" / f"{spec}.json"
        if spec in STANDARD_SPLITS and path.is_file():
            split = load_split(path, data)
            if split.clip == clip:
                return split
        return build_split(data, spec, clip)
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(
            f"split {str(spec)!r} is neither one of {', '.join(SPLIT_NAMES)} nor an existing split file"
        )
    split = load_split(path, data)
    if not split.covers(clip):
        raise DataError(
            f"{path}: purged for clip window {split.clip.window_s} s ({split.clip.keyframe_position}), which "
            f"does not contain the window {clip.window_s} s ({clip.keyframe_position}) asked for; regenerate "
            f"it with `thermact data split window_s={clip.window_s} keyframe_position={clip.keyframe_position}`"
        )
    return split


# ---------------------------------------------------------------------------------------------
# Leakage


@dataclasses.dataclass(frozen=True)
class FoldLeakage:
    """Test keyframes of one fold whose clip window shares absolute time with a training clip.

    ``per_class`` counts the person boxes of those keyframes by class name (every class listed).
    """

    fold: str
    num_test: int
    keyframes: tuple[str, ...]
    overlap_s: float
    """Total seconds of test clip windows covered by training clip windows."""
    per_class: dict[str, int]

    @property
    def count(self) -> int:
        return len(self.keyframes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fold": self.fold,
            "num_test": self.num_test,
            "leaky_keyframes": self.count,
            "overlap_s": self.overlap_s,
            "per_class": dict(self.per_class),
            "keyframes": list(self.keyframes),
        }


@dataclasses.dataclass(frozen=True)
class LeakageReport:
    split: str
    folds: tuple[FoldLeakage, ...]

    @property
    def leaky_keyframes(self) -> int:
        return sum(f.count for f in self.folds)

    @property
    def overlap_s(self) -> float:
        return round(sum(f.overlap_s for f in self.folds), 3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "leaky_keyframes": self.leaky_keyframes,
            "overlap_s": self.overlap_s,
            "folds": [f.to_dict() for f in self.folds],
        }


def leakage(data: ThermalData, split: SplitDefinition, clip: ClipConfig | None = None) -> LeakageReport:
    """Per fold, the test keyframes whose clip window intersects a training keyframe's clip window.

    Windows are compared in absolute time between recordings of the same device (see the module
    docstring); ``clip`` defaults to the split's own clip parameters.
    """
    clip = clip if clip is not None else split.clip
    split = split.check_against(data, source=f"split {split.name!r}")
    index = _keyframe_index(data)
    names = data.classes.names
    out = []
    for fold in split.folds:
        train_windows: dict[str, list[tuple[Recording, Interval]]] = {}
        for kid in fold.train:
            kf = index[kid]
            train_windows.setdefault(kf.recording_id, []).append(
                (data.recording(kf.recording_id), clip_window(kf.timestamp_ms, clip))
            )
        zones_for: dict[str, list[Interval]] = {}
        leaky: list[str] = []
        total_ms = 0
        counts = dict.fromkeys(names, 0)
        for kid in fold.test:
            kf = index[kid]
            if kf.recording_id not in zones_for:
                rec = data.recording(kf.recording_id)
                zones_for[kf.recording_id] = merge_intervals(
                    w for items in train_windows.values() for other, w in items if same_device(rec, other)
                )
            window = clip_window(kf.timestamp_ms, clip)
            zones = zones_for[kf.recording_id]
            if _intersects(window, zones):
                leaky.append(kid)
                total_ms += overlap_ms(window, zones)
                for p in kf.persons:
                    if p.label is not None:
                        counts[names[p.label]] += 1
        out.append(FoldLeakage(fold.name, len(fold.test), tuple(leaky), total_ms / 1000.0, counts))
    return LeakageReport(split.name, tuple(out))


# ---------------------------------------------------------------------------------------------
# Used by thermact data split


def read_groups(path: str | Path) -> dict[str, str]:
    """Read a recording→group mapping from JSON or YAML (top level, or under a ``groups`` key)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: groups file not found")
    try:
        text = p.read_text(encoding="utf-8")
        obj = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise DataError(f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: {err}") from err
    if isinstance(obj, Mapping) and isinstance(obj.get("groups"), Mapping):
        obj = obj["groups"]
    if not isinstance(obj, Mapping) or not obj:
        raise DataError(f"{p}: expected a mapping of recording id → group name")
    out: dict[str, str] = {}
    for rid, group in obj.items():
        if not isinstance(group, (str, int)) or isinstance(group, bool):
            raise DataError(f"{p}: group of recording {rid!r} must be a name, got {group!r}")
        out[str(rid)] = str(group)
    return out


def build_standard_splits(
    data: ThermalData,
    clip: ClipConfig,
    groups: Mapping[str, str] | None = None,
    groups_source: str = "groups",
    session_gap_s: float = SESSION_GAP_S,
) -> dict[str, SplitDefinition]:
    """Those of ``given``, ``session``, ``lorecording`` that the data allows, and ``custom``.

    ``given`` needs keyframes in both ``train.json`` and ``val.json``; ``session`` at least two
    sessions with keyframes; ``lorecording`` at least two recordings with keyframes (a test-only
    dataset, e.g. only ``val.json`` of one recording, gets none of them).
    """
    splits: dict[str, SplitDefinition] = {}
    if {k.given_split for k in data.keyframes} >= {"train", "val"}:
        splits["given"] = given_split(data, clip)
    labelled = {k.recording_id for k in data.keyframes}
    sessions = session_groups(find_sessions(data.recordings, session_gap_s))
    if len({sessions[r] for r in labelled}) >= 2:
        splits["session"] = session_split(data, clip, session_gap_s)
    if len(labelled) >= 2:
        splits["lorecording"] = leave_one_recording_out(data, clip)
    if groups is not None:
        splits["custom"] = group_split(data, groups, clip, name="custom", source=groups_source)
    return splits


def format_split_table(data: ThermalData, splits: Mapping[str, SplitDefinition]) -> str:
    """A table of folds: train/test/purged keyframes, purged frames, leaky test keyframes."""
    header = f"{'split':<12} {'fold':<22} {'train':>5} {'test':>5} {'purged':>6} {'p.frames':>8} {'leaky':>5} {'overlap_s':>9}"
    lines = [header, "-" * len(header)]
    for name, split in splits.items():
        report = leakage(data, split)
        for fold, leak in zip(split.folds, report.folds, strict=True):
            lines.append(
                f"{name:<12} {fold.name:<22} {len(fold.train):>5} {len(fold.test):>5} {len(fold.purged):>6} "
                f"{fold.purged_frames:>8} {leak.count:>5} {leak.overlap_s:>9.1f}"
            )
        if split.leaky:
            lines.append(f"{'':<12} ({name} is LEAKY: test clips share frames with training clips)")
    return "\n".join(lines)
