"""Train/test split definitions as data files, built without temporal leakage.

A :class:`SplitDefinition` lists, for each :class:`Fold`, the keyframe ids to train and test on,
the training keyframes *purged* because their clips would see test time, and the time ranges of
training recordings that must not be used at all (``purged_intervals``). It is written as JSON
by ``thermact data split`` and read back with :func:`load_split`; the files for the bundled
dataset ship in ``thermact/datasets/thermal_v1/splits/``.

Protocols
    ``given``
        The dataset's own ``train``/``val`` assignment. It was drawn at random per keyframe, and
        keyframes are about one second apart while a clip spans several seconds, so almost every
        test clip shares frames with training clips: the split is always flagged ``leaky``.
    ``group``
        One fold per group of recordings: the group is the test set, the other groups train. A
        recording→group mapping defines it; :func:`session_groups` derives the session (``SL14``
        from ``SL14_R3``) so the session split trains on one session and tests on the other, in
        both directions. Users define splits for their own data the same way.
    ``leave_one_recording_out``
        One fold per recording.

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
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from thermact.data.annotations import Keyframe
from thermact.data.clips import ClipConfig, KeyframePosition, clip_indices, clip_window
from thermact.data.recording import Recording
from thermact.data.source import ThermalData
from thermact.errors import ConfigError, DataError
from thermact.io import write_json_atomic

Protocol = Literal["given", "group", "leave_one_recording_out"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
SPLIT_FORMAT = "thermact-split"
SPLIT_VERSION = 1
SESSION_PATTERN = re.compile(r"^(.*)_R\d+$")
"""Recording ids ``<session>_R<n>``: the session is the prefix."""

Interval = tuple[int, int]
"""Closed time interval ``[start_ms, end_ms]`` in absolute Unix milliseconds."""


# ---------------------------------------------------------------------------------------------
# Data model


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
    protocol: Protocol
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
        return cls(name, protocol, leaky, clip, folds, groups, dataset)

    def check_against(self, data: ThermalData, source: str = "split") -> None:
        """Raise DataError if a keyframe or recording id of the split is not in ``data``."""
        known = {k.keyframe_id for k in data.keyframes}
        for fold in self.folds:
            for part in ("train", "test", "purged"):
                missing = [k for k in getattr(fold, part) if k not in known]
                if missing:
                    raise DataError(
                        f"{source}: fold {fold.name!r} {part} has {len(missing)} keyframe id(s) not in "
                        f"dataset {data.root}: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
                    )
            for rid in [*fold.test_recordings, *fold.purged_intervals]:
                if rid not in data.recordings:
                    raise DataError(f"{source}: fold {fold.name!r} names unknown recording {rid!r}")
        unknown = [rid for rid in self.groups if rid not in data.recordings]
        if unknown:
            raise DataError(f"{source}: groups name unknown recording(s) {unknown}")


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
    """Read a split file; with ``data``, also check that its keyframe and recording ids exist."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: split file not found")
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{p}: not valid JSON: {err}") from err
    split = SplitDefinition.from_dict(obj, source=str(p))
    if data is not None:
        split.check_against(data, source=str(p))
    return split


# ---------------------------------------------------------------------------------------------
# Time geometry


def device_of(recording: Recording) -> str | None:
    """The recording's device (``mac_address`` attribute), or None when unknown."""
    mac = recording.data.attrs.get("mac_address")
    return str(mac) if mac not in (None, "") else None


def same_device(a: Recording, b: Recording) -> bool:
    """True when two recordings may come from one sensor (unknown devices match everything)."""
    da, db = device_of(a), device_of(b)
    return da is None or db is None or da == db


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


def session_groups(recording_ids: Iterable[str]) -> dict[str, str]:
    """Recording id → session, from ids of the form ``<session>_R<n>`` (e.g. ``SL14_R2`` → ``SL14``)."""
    groups: dict[str, str] = {}
    for rid in recording_ids:
        m = SESSION_PATTERN.match(rid)
        if m is None or not m.group(1):
            raise DataError(
                f"recording id {rid!r} does not name a session (expected '<session>_R<number>'); "
                "give a recording→group mapping instead"
            )
        groups[rid] = m.group(1)
    return groups


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
    if len(set(out.values())) < 2:
        raise DataError(f"{source}: a group split needs at least two groups, got {sorted(set(out.values()))}")
    return out


def group_split(
    data: ThermalData,
    groups: Mapping[str, str],
    clip: ClipConfig | None = None,
    name: str = "group",
    protocol: Protocol = "group",
    source: str = "groups",
) -> SplitDefinition:
    """One fold per group held out (trained on all other groups), with the purge applied."""
    clip = clip if clip is not None else ClipConfig()
    mapping = _check_groups(data, groups, source)
    names = sorted(set(mapping.values()))
    folds = []
    for g in names:
        test_recs = sorted(r for r, gg in mapping.items() if gg == g)
        train_recs = sorted(r for r, gg in mapping.items() if gg != g)
        folds.append(
            make_fold(data, _fold_name([n for n in names if n != g], g), test_recs, train_recs, clip)
        )
    split = SplitDefinition(name, protocol, False, clip, folds, mapping, data.root.name)
    split.leaky = leakage(data, split).leaky_keyframes > 0
    return split


def session_split(data: ThermalData, clip: ClipConfig | None = None) -> SplitDefinition:
    """Train on one session, test on the other (every direction): :func:`group_split` by session."""
    return group_split(data, session_groups(data.recordings), clip, name="session", source="sessions")


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


STANDARD_SPLITS = ("given", "session", "lorecording")


def build_split(data: ThermalData, name: str, clip: ClipConfig | None = None) -> SplitDefinition:
    """Build one of :data:`STANDARD_SPLITS` in memory."""
    if name == "given":
        return given_split(data, clip)
    if name == "session":
        return session_split(data, clip)
    if name == "lorecording":
        return leave_one_recording_out(data, clip)
    raise ConfigError(f"unknown split {name!r}; expected one of {', '.join(STANDARD_SPLITS)} or a .json file")


def resolve_split(data: ThermalData, spec: str | Path, clip: ClipConfig | None = None) -> SplitDefinition:
    """The split a run asks for: a standard name or a split file.

    A standard name uses ``<dataset>/splits/<name>.json`` when it exists and was made for exactly
    ``clip``, and builds the split in memory otherwise. A file must exist, match ``data`` and
    :meth:`~SplitDefinition.covers` ``clip`` (else :class:`DataError`: regenerate it with
    ``thermact data split window_s=...``).
    """
    clip = clip if clip is not None else ClipConfig()
    if isinstance(spec, str) and spec in STANDARD_SPLITS:
        path = data.root / "splits" / f"{spec}.json"
        if path.is_file():
            split = load_split(path, data)
            if split.clip == clip:
                return split
        return build_split(data, spec, clip)
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(
            f"split {str(spec)!r} is neither one of {', '.join(STANDARD_SPLITS)} nor an existing split file"
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
    split.check_against(data, source=f"split {split.name!r}")
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
# Command line: thermact data split


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
) -> dict[str, SplitDefinition]:
    """``given``, ``session`` (when recording ids name sessions), ``lorecording`` and ``custom``."""
    splits = {"given": given_split(data, clip)}
    try:
        sessions = session_groups(data.recordings)
    except DataError:
        sessions = {}
    if len(set(sessions.values())) >= 2:
        splits["session"] = session_split(data, clip)
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
