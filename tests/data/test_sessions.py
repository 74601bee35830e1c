"""Sessions found from the data (device + pauses), on the bundled datasets and on edge cases."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from thermact.data.recording import Recording
from thermact.data.sessions import SESSION_GAP_S, find_sessions, session_groups
from thermact.data.source import ThermalData


def test_v1_has_the_two_sessions_of_its_file_names(real_data: ThermalData) -> None:
    sessions = find_sessions(real_data.recordings)
    assert [(s.name, s.recordings) for s in sessions] == [
        ("SL14", ("SL14_R1", "SL14_R2", "SL14_R3", "SL14_R4")),
        ("SL18", ("SL18_R1", "SL18_R2", "SL18_R3", "SL18_R4")),
    ]
    assert sessions[0].device == sessions[1].device == "02:00:1a:62:51:67"
    assert sessions[0].gap_before_s is None and sessions[1].gap_before_s == pytest.approx(156_696.067)


def test_v2_sessions_from_time_gaps(real_data_v2: ThermalData) -> None:
    sessions = find_sessions(real_data_v2.recordings)
    # R7 and R9 join SL14 (36 s and 38 s after the previous recording ends); SL19 starts 13 min 40 s
    # after SL14 ends, the same night, and is a session of its own; SL18 is two days later.
    assert [s.name for s in sessions] == ["SL14", "SL19", "SL18"]
    sl14, sl19, sl18 = sessions
    assert sl14.recordings == ("SL14_R1", "SL14_R2", "SL14_R3", "SL14_R4", "SL14_R7", "SL14_R9")
    assert sl19.recordings == tuple(f"SL19_R{i}" for i in range(1, 10))
    assert sl18.recordings == ("SL18_R1", "SL18_R2", "SL18_R3", "SL18_R4")
    assert sl19.gap_before_s == pytest.approx(819.71)
    assert (sl14.end_ms - sl14.start_ms, sl19.end_ms - sl19.start_ms) == (503_502, 679_440)
    # the rule's margin: the longest pause inside a session is 62.6 s (SL19_R2 -> SL19_R3)
    inside = [r for r in find_sessions(real_data_v2.recordings, gap_s=62.0) if r.name.startswith("SL19")]
    assert [s.recordings[0] for s in inside] == ["SL19_R1", "SL19_R3"]
    assert len(find_sessions(real_data_v2.recordings, gap_s=63.0)) == 3
    assert len(find_sessions(real_data_v2.recordings, gap_s=819.0)) == 3
    assert len(find_sessions(real_data_v2.recordings, gap_s=820.0)) == 2  # SL14 and SL19 merge
    assert SESSION_GAP_S == 300.0
    groups = session_groups(sessions)
    assert groups["SL14_R9"] == "SL14" and groups["SL19_R1"] == "SL19" and len(groups) == 19


def _rec(path: Path, start_ms: int, seconds: int, mac: str | None) -> Recording:
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=np.full((seconds * 5, 40, 60), 20.0, dtype=np.float32))
        f.create_dataset("timestamps", data=start_ms + np.arange(seconds * 5, dtype=np.int64) * 200)
        if mac is not None:
            f.attrs["mac_address"] = mac
    return Recording(path)


def test_names_come_from_the_data_not_the_file_names(tmp_path: Path) -> None:
    t0 = 1_760_000_000_000
    recs = {
        "kitchen_a": _rec(tmp_path / "kitchen_a.h5", t0, 60, "aa"),
        "kitchen_b": _rec(tmp_path / "kitchen_b.h5", t0 + 100_000, 60, "aa"),  # 40 s pause: same session
        "hall_R1": _rec(tmp_path / "hall_R1.h5", t0, 60, "bb"),  # another device at the same time
        "hall_R2": _rec(tmp_path / "hall_R2.h5", t0 + 3_600_000, 60, "bb"),  # an hour later
        "hall_R3": _rec(tmp_path / "hall_R3.h5", t0 + 3_700_000, 60, "bb"),
    }
    sessions = find_sessions(recs)
    assert [(s.name, s.recordings, s.device) for s in sessions] == [
        ("kitchen_a", ("kitchen_a", "kitchen_b"), "aa"),  # no shared '<prefix>_R<n>': its first recording
        ("hall", ("hall_R1",), "bb"),  # same start, other device: ordered by device
        ("hall-2", ("hall_R2", "hall_R3"), "bb"),  # the prefix again, an hour later: renamed
    ]
    assert sessions[2].gap_before_s == pytest.approx(3_600 - 59.8)  # hall_R1 spans 59.8 s
    assert sessions[0].gap_before_s is None and sessions[1].gap_before_s is None
    # a recording that lacks the device attribute forms sessions with the others that lack it
    recs["loose"] = _rec(tmp_path / "loose.h5", t0, 10, None)
    assert [(s.name, s.device) for s in find_sessions(recs)][:3] == [
        ("kitchen_a", "aa"),
        ("hall", "bb"),
        ("loose", None),
    ]
    with pytest.raises(ValueError, match="gap_s"):
        find_sessions(recs, gap_s=float("nan"))
