"""The shared pipeline: ring buffer, causal repair, dropping, batching, cadence, causal clips,
and offline (frame by frame) == live (batched across sensors) on real models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thermact.data.recording import INVALID_SENTINEL_C, Recording
from thermact.errors import DataError
from thermact.inference.pipeline import (
    FrameInput,
    FrameRing,
    InferencePipeline,
    buffer_capacity,
    load_action_model,
    load_detector,
    raw_frames,
    repair_frame,
)

H, W = 40, 60


def _frames(
    n: int, value: float = 20.0, step_ms: int = 167, t0: int = 1_000_000
) -> list[tuple[int, np.ndarray]]:
    return [(t0 + i * step_ms, np.full((H, W), value + 0.001 * i, np.float32)) for i in range(n)]


def test_ring_buffer_is_bounded_and_gathers_nearest_with_edge_replication() -> None:
    ring = FrameRing(5, (2, 3))
    assert ring.last_timestamp is None
    for i in range(12):
        ring.append(100 * i, np.full((2, 3), float(i), np.float32))
    assert len(ring) == 5 and ring.capacity == 5 and ring.last_timestamp == 1100
    np.testing.assert_array_equal(ring.timestamps(), [700, 800, 900, 1000, 1100])
    got = ring.gather(np.array([0, 749, 750, 751, 1100, 5000], dtype=np.int64))
    # before the oldest buffered frame: edge replication; ties go to the earlier frame
    np.testing.assert_array_equal(got[:, 0, 0], [7, 7, 7, 8, 11, 11])
    assert ring.nbytes == 5 * 2 * 3 * 4 + 5 * 8


def test_repair_uses_the_recent_past_then_the_spatial_median() -> None:
    first = np.arange(12, dtype=np.float32).reshape(3, 4) + 20.0
    out, bad = repair_frame(first, None, None)
    assert out is not None and not bad.any()
    np.testing.assert_array_equal(out, first)
    frame = first + 1.0
    frame[0, 0] = INVALID_SENTINEL_C
    frame[1, 1] = np.nan
    last_valid = first.copy()
    age = np.zeros((3, 4), dtype=np.int64)
    age[1, 1] = 3  # seen 4 frames ago: too old for temporal_radius=3 -> spatial median
    out, bad = repair_frame(frame, last_valid, age, temporal_radius=3)
    assert out is not None
    assert bad.sum() == 2 and bad[0, 0] and bad[1, 1]
    assert out[0, 0] == first[0, 0]  # the same pixel one frame ago
    neighbours = frame[0:3, 0:3][~bad[0:3, 0:3]]
    assert out[1, 1] == pytest.approx(float(np.median(neighbours)))
    np.testing.assert_array_equal(out[~bad], frame[~bad])
    dead, bad = repair_frame(np.full((3, 4), INVALID_SENTINEL_C, np.float32), last_valid, age)
    assert dead is None and bad.all()


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


def test_default_buffer_covers_the_longest_clip() -> None:
    assert buffer_capacity(2.7, 12.0) == int(np.ceil(3.7 * 12)) + 1


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


def test_thermact_export_of_a_detector_checkpoint(
    detector_ckpt: Path, action_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from thermact.cli import main
    from thermact.engine.restore import restore_model
    from thermact.errors import CheckpointError

    out = tmp_path / "det.onnx"
    assert main(["export", f"checkpoint={detector_ckpt}", f"out={out}", "num_clips=4"]) == 0
    printed = capsys.readouterr().out
    assert "person_detector" in printed and "top-1 agreement 100.0%" in printed
    assert out.is_file()
    with pytest.raises(CheckpointError, match="not an action model"):
        restore_model(detector_ckpt)


def test_runners_prepared_for_inference_equal_the_trained_models(
    action_ckpt: Path, detector_ckpt: Path, real_data: Any
) -> None:
    """BatchNorm folding and channels-last weights (prepare_for_inference) change no result."""
    import torch

    from thermact.data.transforms import normalize
    from thermact.detection.restore import restore_detector
    from thermact.engine.restore import restore_model
    from thermact.inference.pipeline import prepare_for_inference

    rec = next(iter(real_data.recordings.values()))
    raw = np.asarray(rec.frames[40:48], dtype=np.float32)  # 8 real frames, °C
    trained = restore_model(action_ckpt)
    runner = load_action_model(action_ckpt)
    rois = np.array([[0, 10, 8, 24, 30], [0, 30, 5, 50, 20]], dtype=np.float32)
    clip = torch.from_numpy(np.ascontiguousarray(normalize(raw, trained.norm)[None, None], dtype=np.float32))
    with torch.no_grad():
        ref = torch.softmax(trained.model.eval()(clip, torch.from_numpy(rois)), dim=1).numpy()
    got = runner.scores(raw[None, -trained.config.model.num_frames :], rois)
    np.testing.assert_allclose(got, ref, atol=1e-5)

    det = restore_detector(detector_ckpt)
    prepared = prepare_for_inference(det.model, torch.device("cpu"))
    assert prepared is not det.model
    x = torch.from_numpy(np.ascontiguousarray(normalize(raw[-3:], det.norm)[None, None], dtype=np.float32))
    with torch.no_grad():
        a, b = det.model.eval()(x), prepared(x)
    torch.testing.assert_close(b.heatmap, a.heatmap, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(b.size, a.size, atol=1e-4, rtol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in prepared.modules())


def test_bf16_runners_agree_with_fp32(action_ckpt: Path, detector_ckpt: Path, real_data: Any) -> None:
    """precision="bf16" (bfloat16 autocast) changes the scores by at most a few hundredths and the
    person boxes by less than a pixel on real clips; fp32 stays the default."""
    rec = next(iter(real_data.recordings.values()))
    clips = np.stack([np.asarray(rec.frames[i : i + 8], dtype=np.float32) for i in range(0, 64, 8)])
    rois = np.array(
        [[b, 8, 6, 22, 28] for b in range(8)] + [[b, 30, 5, 50, 20] for b in range(8)], np.float32
    )
    a32, a16 = load_action_model(action_ckpt), load_action_model(action_ckpt, precision="bf16")
    s32, s16 = a32.scores(clips, rois), a16.scores(clips, rois)
    assert s16.dtype == np.float32 and np.abs(s16 - s32).max() < 0.1  # 0.028 for the trained live model
    assert (s16.argmax(1) == s32.argmax(1)).mean() >= 0.9
    d32, d16 = load_detector(detector_ckpt), load_detector(detector_ckpt, precision="bf16")
    for det32, det16 in zip(d32.detect(clips[:, -3:], 0.3), d16.detect(clips[:, -3:], 0.3), strict=True):
        assert len(det32) == len(det16)
        if len(det32):
            assert float((det32.boxes - det16.boxes).abs().max()) < 1.0
    with pytest.raises(ValueError, match="precision"):
        load_action_model(action_ckpt, precision="fp16")  # type: ignore[arg-type]
