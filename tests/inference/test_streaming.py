"""StreamingPredictor: flat memory over long runs, torch vs onnxruntime, end to end on real models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from thermact.data.recording import Recording
from thermact.errors import CheckpointError
from thermact.export.onnx import export_action_onnx, export_detector_onnx
from thermact.export.runtime import OnnxActionModel, OnnxPersonDetector
from thermact.inference.events import LyingWithRiskEvent
from thermact.inference.pipeline import FrameInput
from thermact.inference.runners import ActionRunner, DetectorRunner, load_action_model, load_detector
from thermact.inference.sensor import raw_frames
from thermact.inference.streaming import StreamingPredictor, interleave
from thermact.models.heat_boxes import HeatGrowth
from thermact.tasks.action import restore_model
from thermact.tasks.person import restore_detector

H, W = 40, 60


def test_memory_stays_flat_over_10k_frames(fake_detector: Any, fake_action: Any, classes: list[str]) -> None:
    """2 sensors x 5000 frames (~14 min at 6 fps), people coming and going (tracks start and end)."""
    pred = StreamingPredictor(
        fake_action(classes, window_s=2.7, num_frames=4),
        fake_detector(present=lambda f: bool(f.mean() > 15)),
        events=[LyingWithRiskEvent(min_duration_s=3.0)],
        latency_window=500,
        event_queue=50,
    )
    rng = np.random.default_rng(0)
    footprints = []
    t = 1_000_000
    for i in range(5000):
        t += int(rng.integers(140, 200))
        present = (i // 150) % 3 != 2  # 25 s present, 25 s present, 25 s absent: tracks end
        value = 3.0 if (i // 40) % 2 else 20.0  # sitting / lying (class = round(mean) mod 14)
        frame = np.full((H, W), (value if present else 10.0) + 0.01 * (i % 7), np.float32)
        if i % 97 == 0:
            frame[0, :5] = -273.2
        pred.push_many([FrameInput("a", t, frame), FrameInput("b", t + 3, frame)])
        if i in (1000, 4999):
            footprints.append(pred.memory_footprint())
    early, late = footprints
    cap = pred.pipeline.buffer_frames
    assert early["buffered_frames"] == late["buffered_frames"] == 2 * cap
    assert early["buffer_bytes"] == late["buffer_bytes"]
    assert late["tracks"] <= 4 and late["track_states"] <= 12 and late["event_states"] <= 2
    assert late["latencies"] <= 1000 and late["queued_events"] <= 50
    stats = pred.stats()
    assert stats.counters.accepted == 10_000 and stats.counters.tracks_ended >= 2 * 10
    assert stats.counters.repaired_frames == 2 * len(range(0, 5000, 97))
    assert stats.times.detector_calls == 5000  # one call per push of both sensors
    assert np.isfinite(stats.frame_latency_ms).all()


@pytest.fixture(scope="module")
def onnx_models(
    action_ckpt: Path, detector_ckpt: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    from thermact.tasks.person import restore_detector

    root = tmp_path_factory.mktemp("onnx")
    a = export_action_onnx(restore_model(action_ckpt), root / "action.onnx")
    d = export_detector_onnx(restore_detector(detector_ckpt), root / "detector.onnx")
    return a, d


def _run(pred: StreamingPredictor, recs: list[Recording]) -> list[tuple[str, int, int, int, float]]:
    out = []
    for t, sensor, frame in interleave(recs):
        for r in pred.push(sensor, t, frame):
            out.append((r.sensor_id, r.timestamp_ms, r.track_id, r.top_class, r.top_score))
    return out


def test_onnx_runtime_gives_the_same_tracks_and_top_classes_as_torch(
    action_ckpt: Path, detector_ckpt: Path, onnx_models: tuple[Path, Path], short_recordings: Path
) -> None:
    recs = [Recording(p) for p in sorted(short_recordings.glob("*.h5"))]
    torch_pred = StreamingPredictor(restore_model(action_ckpt), restore_detector(detector_ckpt))
    onnx_pred = StreamingPredictor(OnnxActionModel(onnx_models[0]), OnnxPersonDetector(onnx_models[1]))
    ref, got = _run(torch_pred, recs), _run(onnx_pred, recs)
    assert len(ref) > 20
    assert len({r[3] for r in ref}) >= 2  # more than one class predicted: the comparison can fail
    assert [r[:4] for r in got] == [r[:4] for r in ref]
    np.testing.assert_allclose([r[4] for r in got], [r[4] for r in ref], atol=1e-3)
    assert isinstance(onnx_pred.pipeline.action, ActionRunner)
    assert isinstance(onnx_pred.pipeline.detector, DetectorRunner)
    # the export carries the growth of person boxes to their heat (models.heat_boxes) with it
    assert onnx_pred.pipeline.detector.heat_growth == HeatGrowth() == torch_pred.pipeline.detector.heat_growth


def test_end_to_end_on_a_bundled_recording(
    action_ckpt: Path, detector_ckpt: Path, short_recordings: Path
) -> None:
    rec = Recording(short_recordings / "SL14_R1.h5")
    pred = StreamingPredictor(
        str(action_ckpt),
        str(detector_ckpt),
        events=[LyingWithRiskEvent(min_duration_s=0.0, clear_after_s=1e9)],
    )
    fresh = []
    for t, f in zip(rec.timestamps, raw_frames(rec.frames, rec.valid), strict=True):
        fresh.extend(pred.push("SL14_R1", int(t), f))
        for fr in pred.last_frames:
            assert all(p.box[2] > p.box[0] and p.box[3] > p.box[1] for p in fr.persons)
    assert len(fresh) >= 15  # the two people of SL14_R1, once a second for 20 s
    assert {r.track_id for r in fresh} >= {1, 2}
    for r in fresh:
        assert r.scores.shape == (14,) and r.scores.sum() == pytest.approx(1.0, abs=1e-5)
        assert r.top_label == pred.classes[r.top_class] and r.top_score == pytest.approx(r.scores.max())
    stats = pred.stats()
    assert stats.counters.repaired_frames >= 11 and stats.counters.classifications == len(fresh)
    lying = [r for r in fresh if r.top_label == "lying down-lying with risk"]
    # min 0 s: raised at once; never cleared by a class change: once per track
    assert pred.events_raised == len({r.track_id for r in lying})


def test_wrong_kinds_of_model_are_refused(
    action_ckpt: Path, detector_ckpt: Path, onnx_models: tuple[Path, Path]
) -> None:
    with pytest.raises(CheckpointError, match=f"{detector_ckpt}.*person-detector checkpoint"):
        load_action_model(detector_ckpt)
    with pytest.raises(CheckpointError, match=f"{action_ckpt}.*not a person-detector"):
        load_detector(action_ckpt)
    with pytest.raises(CheckpointError, match="not an exported action model"):
        load_action_model(onnx_models[1])
    with pytest.raises(TypeError, match="not an action model"):
        StreamingPredictor(object(), str(detector_ckpt))


@pytest.fixture(scope="module")
def ia_action_ckpt(tmp_path_factory: pytest.TempPathFactory, classes: list[str]) -> Path:
    """A small ThermalNet-S with a dense-serial interaction head (memory window 3 s) whose output
    projections are randomised (they start at zero, which would hide the memory)."""
    from thermact.config import build_config, config_to_dict
    from thermact.data.transforms import NormStats
    from thermact.engine.checkpoint import save_checkpoint
    from thermact.models.factory import build_model
    from thermact.tasks.action import ActionRunConfig

    torch.manual_seed(0)
    cfg = build_config(
        ActionRunConfig,
        None,
        [
            "model.num_frames=8",
            "model.head.mlp_dim=32",
            "data.keyframe_position=causal",
            "model.head.interaction.structure=dense_serial",
            "model.head.interaction.dim_inner=16",
            "model.head.interaction.memory_window_s=3.0",
        ],
    )
    model = build_model(cfg.model, cfg.clip, verbose=False).eval()
    assert model.interaction is not None
    with torch.no_grad():
        for p in model.interaction.parameters():
            p.copy_(torch.randn(p.shape) * 0.2)
    path = tmp_path_factory.mktemp("ia") / "ia.pt"
    save_checkpoint(
        path,
        {
            "model": model.state_dict(),
            "config": config_to_dict(cfg),
            "classes": classes,
            "norm": NormStats(17.24, 1.39).to_dict(),
            "epoch": 1,
            "metrics": {},
        },
    )
    return path


def test_ia_model_streams_with_a_bounded_past_only_memory(
    ia_action_ckpt: Path, real_data: Any, fake_detector: Any
) -> None:
    from thermact.inference.runners import ClipKeys, load_action_model

    runner = load_action_model(ia_action_ckpt)
    assert runner.uses_memory and runner.memory_size == 0
    rec = next(iter(real_data.recordings.values()))
    clips = np.asarray(rec.frames[32:40], dtype=np.float32)[None]
    rois = np.array([[0, 10, 8, 24, 30]], dtype=np.float32)
    tracks = np.array([1], dtype=np.int64)
    plain = runner.scores(clips, rois)  # no keys: the memory is neither read nor written
    assert runner.memory_size == 0
    first = runner.scores(clips, rois, ClipKeys(["a"], [10_000], tracks))
    np.testing.assert_allclose(first, plain, atol=1e-6)  # nothing remembered yet
    second = runner.scores(clips, rois, ClipKeys(["a"], [11_000], tracks))
    assert np.abs(second - plain).max() > 1e-4  # 1 s later the first classification is in memory
    assert runner.memory_size == 2
    other = runner.scores(clips, rois, ClipKeys(["b"], [11_000], tracks))
    np.testing.assert_allclose(other, plain, atol=1e-6)  # sensors do not share memory
    later = runner.scores(clips, rois, ClipKeys(["a"], [20_000], tracks))
    np.testing.assert_allclose(later, plain, atol=1e-6)  # beyond the 3 s window: forgotten
    assert runner.memory_size == 2  # "a" at 20 s and "b" at 11 s
    runner.forget("a")
    assert runner.memory_size == 1

    # through the streaming predictor: memory bounded by window / cadence per sensor
    pred = StreamingPredictor(runner, fake_detector(), cadence_s=0.5)
    ts = rec.timestamps
    for i in range(120):
        pred.push("s1", int(ts[i]), np.asarray(rec.frames[i]))
        pred.push("s2", int(ts[i]), np.asarray(rec.frames[i]))
    foot = pred.memory_footprint()
    assert 2 <= foot["memory_keyframes"] <= 2 * (3.0 / 0.5 + 2) + 1
    pred.close_sensor("s1")
    pred.close_sensor("s2")
    assert pred.memory_footprint()["memory_keyframes"] == 1  # "b" of the direct calls above
