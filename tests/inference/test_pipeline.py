"""The shared pipeline: ring buffer, causal repair, dropping, batching, cadence, causal clips,
and offline (frame by frame) == live (batched across sensors) on real models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thermact.data.recording import INVALID_SENTINEL_C, Recording
from thermact.errors import DataError
from thermact.inference.pipeline import FrameInput, InferencePipeline
from thermact.inference.runners import load_action_model, load_detector
from thermact.inference.sensor import raw_frames

H, W = 40, 60


def _frames(
    n: int, value: float = 20.0, step_ms: int = 167, t0: int = 1_000_000
) -> list[tuple[int, np.ndarray]]:
    return [(t0 + i * step_ms, np.full((H, W), value + 0.001 * i, np.float32)) for i in range(n)]


def test_dead_pixels_never_reach_the_models(fake_detector: Any, fake_action: Any, classes: list[str]) -> None:
    det, act = fake_detector(), fake_action(classes)
    pipe = InferencePipeline(act, det)
    frames = _frames(40, value=21.0)
    for i, (t, f) in enumerate(frames):
        if 5 <= i < 15:
            f[30:] = INVALID_SENTINEL_C  # a burst of dead rows, longer than the temporal radius
        if i == 20:
            f[3, 4] = np.nan
        if i == 25:
            f[:] = INVALID_SENTINEL_C  # no valid pixel: dropped
        pipe.process([FrameInput("a", t, f)])
    c = pipe.counters()
    assert c.repaired_frames == 11 and c.repaired_pixels == 10 * 10 * W + 1
    assert c.empty_frames == 1 and c.accepted == 39
    assert det.min_value > 20.9 and act.min_value > 20.9 and act.calls > 0


def test_out_of_order_and_duplicate_frames_are_dropped_and_counted(
    fake_detector: Any, fake_action: Any, classes: list[str]
) -> None:
    pipe = InferencePipeline(fake_action(classes), fake_detector())
    f = np.full((H, W), 20.0, np.float32)
    order = [1000, 1167, 1167, 1100, 1334, 900, 1334, 1500]
    accepted = [len(pipe.process([FrameInput("a", t, f)])) for t in order]
    assert accepted == [1, 1, 0, 0, 1, 0, 0, 1]
    c = pipe.counters()
    assert (c.frames_in, c.accepted, c.duplicates, c.out_of_order) == (8, 4, 2, 2)
    assert pipe.sensors["a"].ring.timestamps().tolist() == [1000, 1167, 1334, 1500]
    with pytest.raises(DataError, match="sensor 'a'.*shape"):
        pipe.process([FrameInput("a", 2000, np.zeros((4, 4), np.float32))])


def test_all_sensors_of_a_round_share_one_detector_and_one_action_call(
    fake_detector: Any, fake_action: Any, classes: list[str]
) -> None:
    det, act = fake_detector(), fake_action(classes)
    pipe = InferencePipeline(act, det, max_sensors=5)
    sensors = [f"s{i}" for i in range(5)]
    f = np.full((H, W), 20.0, np.float32)
    for step in range(3):  # tracks are confirmed at their 2nd frame (min_hits=2) and then classified
        out = pipe.process([FrameInput(s, 1000 + 167 * step, f) for s in sensors])
        assert len(out) == 5
    assert det.calls == 3 and det.batch_sizes == [5, 5, 5]
    assert act.calls == 1 and act.clip_batches == [5] and act.box_batches == [5]
    # several frames per sensor in one call: rounds of one frame per sensor, in order
    out = pipe.process([FrameInput(s, 1000 + 167 * k, f) for k in (3, 4) for s in sensors])
    assert det.calls == 5 and det.batch_sizes[-2:] == [5, 5]
    assert [r.timestamp_ms for r in out] == [1000 + 167 * k for k in (3, 4) for _ in sensors]
    with pytest.raises(DataError, match=r"\['s5'\]: would exceed max_sensors=5"):
        pipe.process([FrameInput("s1", 5000, f), FrameInput("s5", 1000, f)])
    assert pipe.counters().frames_in == 5 * 5  # a refused call changes nothing
    assert pipe.close_sensor("s0") == (1,)
    assert len(pipe.process([FrameInput("s5", 1000, f)])) == 1
    assert pipe.counters().frames_in == 5 * 5 + 1


def test_each_track_is_classified_once_per_cadence_on_a_clip_ending_at_its_frame(
    fake_detector: Any, fake_action: Any, classes: list[str]
) -> None:
    act = fake_action(classes)
    pipe = InferencePipeline(act, fake_detector(), cadence_s=1.0)
    rng = np.random.default_rng(0)
    t, fresh_times = 1_000_000, []
    for i in range(120):  # ~20 s at an irregular ~6 fps
        t += int(rng.integers(120, 220))
        for r in pipe.process([FrameInput("a", t, np.full((H, W), float(i), np.float32))]):
            assert len(r.persons) == (0 if i == 0 else 1)  # confirmed at its 2nd frame (min_hits=2)
            if i == 0:
                continue
            p = r.persons[0]
            if p.fresh:
                fresh_times.append(t)
                # the causal clip: its last frame is the current one, the others are older
                clip = act.clips_seen[-1][0]
                assert clip[-1, 0, 0] == i and (clip[:, 0, 0] <= i).all() and clip[0, 0, 0] < i
            assert p.classified_ms == fresh_times[-1]
    gaps = np.diff(fresh_times)
    assert len(fresh_times) >= 19
    assert gaps.min() >= 1000 - 110 and gaps.max() <= 1000 + 220  # 1 s less half a frame .. plus a frame
    assert gaps.mean() <= 1000 + 110


def test_offline_frame_by_frame_equals_live_batched_across_sensors(
    action_ckpt: Path, detector_ckpt: Path, short_recordings: Path
) -> None:
    action, detector = load_action_model(action_ckpt), load_detector(detector_ckpt)
    recs = [Recording(p) for p in sorted(short_recordings.glob("*.h5"))]
    raws = [raw_frames(r.frames, r.valid) for r in recs]
    offline: dict[str, list[tuple[int, int, int, float]]] = {}
    for rec, raw in zip(recs, raws, strict=True):
        pipe = InferencePipeline(action, detector)
        rows = offline.setdefault(rec.recording_id, [])
        for t, f in zip(rec.timestamps, raw, strict=True):
            for r in pipe.process([FrameInput(rec.recording_id, int(t), f)]):
                rows.extend((r.timestamp_ms, p.track_id, p.top_class, p.top_score) for p in r.persons)
    live = InferencePipeline(action, detector)
    n = min(len(r) for r in raws)
    got: dict[str, list[tuple[int, int, int, float]]] = {r.recording_id: [] for r in recs}
    for i in range(0, n, 4):  # 4 frames of each sensor per call: both sensors batched together
        items = [
            FrameInput(rec.recording_id, int(rec.timestamps[j]), raw[j])
            for j in range(i, min(i + 4, n))
            for rec, raw in zip(recs, raws, strict=True)
        ]
        for r in live.process(items):
            got[r.sensor_id].extend((r.timestamp_ms, p.track_id, p.top_class, p.top_score) for p in r.persons)
    invalid = sum(int((~r.valid[:n]).any(axis=(1, 2)).sum()) for r in recs)
    assert live.times.detector_calls == n and live.counters().repaired_frames == invalid >= 11
    for rec in recs:
        rid, last = rec.recording_id, int(rec.timestamps[n - 1])
        rows, ref = got[rid], [row for row in offline[rid] if row[0] <= last]
        assert len(rows) > 10
        assert [r[:3] for r in rows] == [r[:3] for r in ref]
        np.testing.assert_allclose([r[3] for r in rows], [r[3] for r in ref], atol=1e-4)
