"""train_detector on a small real split: checkpoints, exact resume, restore and detect, eval report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from thermact.commands.train import main as main_train
from thermact.config import build_config, config_to_dict
from thermact.data.detection import detection_clip
from thermact.data.source import ThermalData
from thermact.data.splits import save_split, session_split
from thermact.engine.checkpoint import load_checkpoint
from thermact.engine.config import config_task, load_config
from thermact.engine.run import train
from thermact.errors import CheckpointError, ConfigError
from thermact.inference.runners import DetectorRunner
from thermact.tasks.person import PERSON, DetectorRunConfig, restore_detector

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "person_detector.yaml"
TINY = ["optim.batch_size=8", "optim.epochs=2", "optim.warmup_epochs=0.5", "log_every=1"]


@pytest.fixture(scope="module")
def small_split(real_data: ThermalData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session fold SL14 -> SL18 cut to 16 training and 6 validation keyframes."""
    full = session_split(real_data, detection_clip(3, 0.5))
    fold = full.folds[1]
    small = dataclasses.replace(
        full,
        name="small",
        folds=[dataclasses.replace(fold, train=fold.train[::9][:16], test=fold.test[::36])],
    )
    path = tmp_path_factory.mktemp("detsplit") / "small.json"
    save_split(small, path)
    return path


def _cfg(run_dir: Path, split: Path, *extra: str) -> DetectorRunConfig:
    return load_config(
        DetectorRunConfig, str(CONFIG), [*TINY, f"run_dir={run_dir}", f"data.split={split}", *extra]
    )


def test_train_resume_restore_detect(tmp_path: Path, small_split: Path, real_data: ThermalData) -> None:
    full = train(PERSON, _cfg(tmp_path / "full", small_split))
    assert len(full.losses) == 4  # 16 keyframes / batch 8 = 2 steps per epoch
    for name in ("config.yaml", "best.pt", "last.pt", "metrics.jsonl", "losses.json", "log.txt"):
        assert (full.run_dir / name).is_file(), name
    assert list((full.run_dir / "tensorboard").glob("events.out.tfevents.*"))  # detector runs too
    assert "epoch 2: person_ap=" in (full.run_dir / "log.txt").read_text()
    records = [json.loads(x) for x in (full.run_dir / "metrics.jsonl").read_text().splitlines()]
    vals = [r["val"] for r in records if "val" in r]
    assert len(vals) == 2 and all(0.0 <= v["person_ap"] <= 1.0 for v in vals)
    assert all(r["heatmap"] > 0 for r in records if "loss" in r)
    ckpt = load_checkpoint(full.last_checkpoint)
    assert ckpt["config"]["task"] == "detector" and ckpt["classes"] == ["person", "non-person warm object"]
    assert ckpt["step"] == 4 and 10.0 < ckpt["norm"]["mean_c"] < 30.0

    part = train(PERSON, _cfg(tmp_path / "part", small_split), max_steps=3)
    assert part.interrupted and part.losses == full.losses[:3]
    resumed = train(
        PERSON, _cfg(tmp_path / "part", small_split, f"resume={tmp_path / 'part' / 'interrupted.pt'}")
    )
    assert resumed.losses == full.losses[3:]
    a, b = load_checkpoint(full.last_checkpoint)["model"], load_checkpoint(resumed.last_checkpoint)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)

    # restore + detect on raw °C frames gives what the training-time evaluation saw
    trained = restore_detector(full.last_checkpoint)
    assert trained.norm.mean_c == pytest.approx(ckpt["norm"]["mean_c"]) and not trained.model.training
    det = DetectorRunner.from_trained(trained)
    kf = real_data.keyframes[0]
    rec = real_data.recording(kf.recording_id)
    from thermact.data.clips import clip_indices

    frames = rec.frames[clip_indices(rec.timestamps, kf.timestamp_ms, trained.clip)][None]
    (dets,) = det.detect(frames, score_threshold=0.0)
    assert len(dets) > 0 and (dets.scores[:-1] >= dets.scores[1:]).all()
    assert (dets.boxes[:, 0] >= 0).all() and (dets.boxes[:, 2] <= 60).all() and (dets.boxes[:, 3] <= 40).all()
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        det.detect(frames[:, :2])


def test_clip_median_detector_sees_heat_above_the_room(
    tmp_path: Path, small_split: Path, real_data: ThermalData
) -> None:
    """``data.normalize=clip_median`` reaches the detector (it was silently ignored before): the
    checkpoint keeps the reference, and a room 4 °C warmer gives the same detections."""
    run = train(PERSON, _cfg(tmp_path, small_split, "data.normalize=clip_median", "optim.epochs=1"))
    trained = restore_detector(run.last_checkpoint)
    assert (
        trained.norm.reference == "clip_median"
        and load_checkpoint(run.last_checkpoint)["norm"]["reference"] == "clip_median"
    )
    det = DetectorRunner.from_trained(trained)
    kf = real_data.keyframes[5]
    rec = real_data.recording(kf.recording_id)
    from thermact.data.clips import clip_indices

    frames = rec.frames[clip_indices(rec.timestamps, kf.timestamp_ms, trained.clip)][None]
    (cold,), (warm,) = det.detect(frames, 0.0), det.detect(frames + 4.0, 0.0)
    assert len(cold) > 0
    torch.testing.assert_close(warm.scores, cold.scores, atol=1e-4, rtol=0)
    torch.testing.assert_close(warm.boxes, cold.boxes, atol=1e-3, rtol=0)
    with pytest.raises(ConfigError, match="runs live"):
        _cfg(tmp_path / "x", small_split, "data.normalize=background")


def test_config_dispatch_and_errors(tmp_path: Path, small_split: Path) -> None:
    assert config_task(str(CONFIG), []) == "detector"
    assert config_task(None, ["task=detector"]) == "detector"
    assert config_task(None, []) == "action"
    assert config_task(None, ["config=configs/thermal_net_s.yaml"]) == "action"
    with pytest.raises(ConfigError, match="causal"):
        _cfg(tmp_path / "x", small_split, "data.keyframe_position=center")
    with pytest.raises(ConfigError, match="did you mean"):
        _cfg(tmp_path / "x", small_split, "optim.lrr=0.1")
    default = build_config(DetectorRunConfig)
    assert config_to_dict(default)["task"] == "detector" and default.data.window_s == 0.5
    run = tmp_path / "cli"
    assert main_train(None, [f"config={CONFIG}", "task=detector", *TINY[:-1], "optim.epochs=1",
                             f"run_dir={run}", f"data.split={small_split}"], False) == 0  # fmt: skip
    with pytest.raises(ConfigError, match="checkpoint of task 'action', not 'detector'"):
        action_like = tmp_path / "r" / "action.pt"
        action_like.parent.mkdir()
        ckpt = load_checkpoint(run / "last.pt")
        ckpt["config"] = {k: v for k, v in ckpt["config"].items() if k != "task"}
        torch.save(ckpt, action_like)
        train(PERSON, _cfg(tmp_path / "r", small_split, f"resume={action_like}"))
    with pytest.raises(CheckpointError, match="not a person-detector checkpoint"):
        restore_detector(action_like)


def test_heat_growth_keys(tmp_path: Path, small_split: Path) -> None:
    """``eval.heat_growth_c`` / ``eval.heat_growth_margin`` (models.heat_boxes): on by default at
    3 °C and 0.3, off with null, checked; the context score is the operating point."""
    from thermact.models.heat_boxes import HeatGrowth

    assert _cfg(tmp_path, small_split).eval.heat_growth == HeatGrowth(3.0, 0.3, 0.3)
    cfg = _cfg(
        tmp_path,
        small_split,
        "eval.heat_growth_c=2.0",
        "eval.heat_growth_margin=0.5",
        "eval.score_threshold=0.4",
    )
    assert cfg.eval.heat_growth == HeatGrowth(2.0, 0.5, 0.4)
    assert _cfg(tmp_path, small_split, "eval.heat_growth_c=null").eval.heat_growth is None
    with pytest.raises(ConfigError, match="heat_growth_c"):
        _cfg(tmp_path, small_split, "eval.heat_growth_c=0")
    with pytest.raises(ConfigError, match="heat_growth_margin"):
        _cfg(tmp_path, small_split, "eval.heat_growth_margin=-1")


def test_sensor_augmentations_reach_the_detector_training_clips(tmp_path: Path, small_split: Path) -> None:
    from thermact.engine.distributed import DistContext
    from thermact.tasks.person import DetectorRun

    keys = ["augment.time_stretch=[0.8,1.25]", "augment.frame_drop=0.5", "augment.dead_pixels=0.01"]
    run = DetectorRun(_cfg(tmp_path, small_split, *keys), DistContext(), torch.device("cpu"), None)
    sensor = run.train_set.sensor
    assert sensor is not None and sensor.time_stretch == (0.8, 1.25) and sensor.dead_pixels == 0.01
    plain = DetectorRun(_cfg(tmp_path / "p", small_split), DistContext(), torch.device("cpu"), None)
    assert plain.train_set.sensor is None
    changed = [not torch.equal(run.train_set[i].frames, plain.train_set[i].frames) for i in range(8)]
    assert sum(changed) >= 4


@pytest.mark.cuda
def test_detector_trains_on_cuda_and_detects_on_the_cpu(tmp_path: Path, small_split: Path) -> None:
    run = train(PERSON, _cfg(tmp_path / "gpu", small_split, "device=cuda", "optim.epochs=1"))
    assert len(run.losses) == 2 and all(x > 0.0 for x in run.losses)
    assert "device cuda" in (run.run_dir / "log.txt").read_text()
    on_cpu, on_gpu = restore_detector(run.last_checkpoint), restore_detector(run.last_checkpoint, "cuda")
    clip = torch.randn(1, 1, 3, 40, 60, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = on_cpu.model(clip), on_gpu.model(clip.cuda())
    for name in ("heatmap", "size", "offset"):
        torch.testing.assert_close(getattr(got, name).cpu(), getattr(want, name), rtol=0.0, atol=2e-2)
