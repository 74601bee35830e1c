"""Split definitions on the bundled dataset: counts, purge, leakage, files, command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thermact.data.clips import ClipConfig, clip_indices, clip_window
from thermact.data.source import BUNDLED_DATASET, ThermalData, load_dataset
from thermact.data.splits import (
    Fold,
    SplitDefinition,
    build_standard_splits,
    given_split,
    group_split,
    leakage,
    leave_one_recording_out,
    load_split,
    merge_intervals,
    overlap_ms,
    resolve_split,
    save_split,
    session_groups,
    session_split,
)
from thermact.errors import ConfigError, DataError

CLIP = ClipConfig()


@pytest.fixture(scope="module")
def data() -> ThermalData:
    return load_dataset()


def test_session_groups() -> None:
    assert session_groups(["SL14_R1", "SL14_R12", "A_B_R3"]) == {
        "SL14_R1": "SL14",
        "SL14_R12": "SL14",
        "A_B_R3": "A_B",
    }
    with pytest.raises(DataError, match="'kitchen'"):
        session_groups(["kitchen"])


def test_merge_and_overlap() -> None:
    assert merge_intervals([(5, 8), (0, 2), (2, 3), (7, 10)]) == [(0, 3), (5, 10)]
    assert overlap_ms((1, 6), [(0, 3), (5, 10)]) == 3


def test_given_split(data: ThermalData) -> None:
    split = given_split(data)
    assert split.protocol == "given" and split.leaky
    (fold,) = split.folds
    assert (len(fold.train), len(fold.test), fold.purged) == (314, 73, [])
    report = leakage(data, split)
    # Every val keyframe has a train keyframe within one clip window: all 73 leak.
    assert report.leaky_keyframes == 73
    assert report.folds[0].overlap_s == pytest.approx(171.442)
    assert report.folds[0].per_class["lying down-lying with risk"] == 52
    assert report.folds[0].per_class["standing"] == 25
    assert sum(report.folds[0].per_class.values()) == 95
    # A wider window only makes it worse.
    assert leakage(data, split, ClipConfig(window_s=8.0)).overlap_s == pytest.approx(584.0)


def test_session_split(data: ThermalData) -> None:
    split = session_split(data)
    assert split.protocol == "group" and not split.leaky
    assert [f.name for f in split.folds] == ["SL18->SL14", "SL14->SL18"]
    a, b = split.folds
    assert (len(a.train), len(a.test), len(b.train), len(b.test)) == (216, 171, 171, 216)
    assert set(a.train) == set(b.test) and set(a.test) == set(b.train)
    assert a.test_recordings == ["SL14_R1", "SL14_R2", "SL14_R3", "SL14_R4"]
    # The sessions are days apart: nothing purged, no leakage, even with a very long window.
    assert a.purged == b.purged == [] and a.purged_intervals == b.purged_intervals == {}
    assert leakage(data, split).leaky_keyframes == 0
    wide = session_split(data, ClipConfig(window_s=60.0))
    assert all(f.purged == [] for f in wide.folds) and leakage(data, wide).leaky_keyframes == 0


def test_leave_one_recording_out_purge(data: ThermalData) -> None:
    split = leave_one_recording_out(data, CLIP)
    assert split.protocol == "leave_one_recording_out" and not split.leaky
    assert [len(f.test) for f in split.folds] == [46, 46, 42, 37, 54, 54, 54, 54]
    assert [len(f.purged) for f in split.folds] == [10, 20, 20, 11, 12, 24, 25, 13]
    assert [f.purged_frames for f in split.folds] == [141, 283, 282, 140, 144, 291, 298, 151]
    assert all(len(f.train) + len(f.test) + len(f.purged) == 387 for f in split.folds)
    assert leakage(data, split).leaky_keyframes == 0
    # Holding out SL14_R2 purges the end of SL14_R1 and the start of SL14_R3: exactly the overlaps.
    fold = split.folds[1]
    r1, r2, r3 = (data.recordings[f"SL14_R{i}"] for i in (1, 2, 3))
    ivs = fold.purged_intervals
    assert sorted(ivs) == ["SL14_R1", "SL14_R3"]
    assert (ivs["SL14_R1"][0].start_ms, ivs["SL14_R1"][0].end_ms) == (r2.start_ms, r1.end_ms)
    assert (ivs["SL14_R3"][0].start_ms, ivs["SL14_R3"][0].end_ms) == (r3.start_ms, r2.end_ms)
    assert ivs["SL14_R1"][0].num_frames == 141
    # Purge rule: kept training keyframes never see held-out time; purged ones do.
    index = {k.keyframe_id: k for k in data.keyframes}
    for f in split.folds:
        (held,) = (data.recordings[r] for r in f.test_recordings)
        zone = merge_intervals(
            [(held.start_ms, held.end_ms)] + [clip_window(index[k].timestamp_ms, CLIP) for k in f.test]
        )
        for kid in f.train:
            kf = index[kid]
            w = clip_window(kf.timestamp_ms, CLIP)
            assert overlap_ms(w, zone) == 0 and not any(s <= w[1] and w[0] <= e for s, e in zone)
            ts = data.recordings[kf.recording_id].timestamps
            assert not any(s <= t <= e for t in ts[clip_indices(ts, kf.timestamp_ms, CLIP)] for s, e in zone)
        for kid in f.purged:
            kf = index[kid]
            assert kf.recording_id not in f.test_recordings
            w = clip_window(kf.timestamp_ms, CLIP)
            ts = data.recordings[kf.recording_id].timestamps
            sampled = ts[clip_indices(ts, kf.timestamp_ms, CLIP)]
            assert any(s <= w[1] and w[0] <= e for s, e in zone) or any(
                s <= t <= e for t in sampled for s, e in zone
            )


def test_without_purge_loro_would_leak(data: ThermalData) -> None:
    split = leave_one_recording_out(data, CLIP)
    unpurged = SplitDefinition(
        "x",
        "leave_one_recording_out",
        False,
        CLIP,
        [Fold(f.name, f.train + f.purged, f.test) for f in split.folds],
    )
    report = leakage(data, unpurged)
    assert report.leaky_keyframes > 0
    # Only neighbours in time can leak: e.g. SL14_R1 tests leak only at its end, next to SL14_R2.
    assert report.folds[0].count == 1


def test_group_split_custom(data: ThermalData) -> None:
    groups = {r: ("early" if r.endswith(("_R1", "_R2")) else "late") for r in data.recordings}
    split = group_split(data, groups, CLIP, name="custom")
    assert [f.name for f in split.folds] == ["late->early", "early->late"]
    early, late = split.folds
    # R2 and R3 of each session overlap: the purge removes keyframes at the boundary.
    assert len(early.test) == 46 + 46 + 54 + 54
    assert len(early.purged) == 22 and len(late.purged) == 23
    assert leakage(data, split).leaky_keyframes == 0
    with pytest.raises(DataError, match="no group"):
        group_split(data, {"SL14_R1": "a", "SL14_R2": "b"})
    with pytest.raises(DataError, match="at least two groups"):
        group_split(data, dict.fromkeys(data.recordings, "all"))
    with pytest.raises(DataError, match="unknown recording"):
        group_split(data, {**groups, "SL99_R1": "a"})


def test_round_trip_and_load_errors(data: ThermalData, tmp_path: Path) -> None:
    split = leave_one_recording_out(data, CLIP)
    path = tmp_path / "s.json"
    save_split(split, path)
    back = load_split(path, data)
    assert back.to_dict() == split.to_dict()
    assert json.loads(path.read_text()) == split.to_dict()

    obj = split.to_dict()
    del obj["folds"][2]["test"]
    path.write_text(json.dumps(obj))
    with pytest.raises(DataError, match=r"s\.json: folds\[2\].*missing key 'test'"):
        load_split(path)
    obj = split.to_dict()
    obj["folds"][0]["train"].append("SL14_R1_1")
    path.write_text(json.dumps(obj))
    load_split(path)  # structurally fine
    with pytest.raises(DataError, match="keyframe id.*SL14_R1_1"):
        load_split(path, data)
    obj = split.to_dict()
    obj["folds"][0]["train"].append(obj["folds"][0]["test"][0])
    path.write_text(json.dumps(obj))
    with pytest.raises(DataError, match="both 'train' and 'test'"):
        load_split(path)
    obj = split.to_dict()
    obj["protocol"] = "random"
    path.write_text(json.dumps(obj))
    with pytest.raises(DataError, match="'protocol'"):
        load_split(path)
    obj = split.to_dict()
    obj["clip"]["window_s"] = -1
    path.write_text(json.dumps(obj))
    with pytest.raises(DataError, match="clip"):
        load_split(path)
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_split(path)
    with pytest.raises(DataError, match="not found"):
        load_split(tmp_path / "missing.json")


def test_bundled_split_files_are_current(data: ThermalData) -> None:
    splits = build_standard_splits(data, ClipConfig())
    assert sorted(splits) == ["given", "lorecording", "session"]
    for name, split in splits.items():
        path = BUNDLED_DATASET / "splits" / f"{name}.json"
        assert json.loads(path.read_text(encoding="utf-8")) == split.to_dict(), f"regenerate {path}"


def test_resolve_split(data: ThermalData, tmp_path: Path) -> None:
    assert resolve_split(data, "session", CLIP).to_dict() == session_split(data, CLIP).to_dict()
    wide = ClipConfig(window_s=8.0)
    assert sum(len(f.purged) for f in resolve_split(data, "lorecording", wide).folds) == 159
    path = tmp_path / "lo.json"
    save_split(leave_one_recording_out(data, CLIP), path)
    assert resolve_split(data, str(path), ClipConfig(window_s=2.0)).name == "lorecording"
    with pytest.raises(DataError, match="regenerate"):
        resolve_split(data, str(path), wide)
    with pytest.raises(ConfigError, match="neither"):
        resolve_split(data, "sesion")
