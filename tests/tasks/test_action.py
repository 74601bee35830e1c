"""The training loop on the real data: it learns, it resumes exactly, it refuses bad set-ups."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from thermact.config import build_config
from thermact.data.clips import ClipConfig
from thermact.data.source import ThermalData
from thermact.data.splits import save_split, session_split
from thermact.engine.checkpoint import inference_state, load_checkpoint, save_checkpoint
from thermact.engine.distributed import DistContext
from thermact.engine.run import train
from thermact.errors import CheckpointError, ConfigError
from thermact.models.losses import ActionLoss
from thermact.tasks.action import ACTION, ActionRunConfig, memory_of, restore_model, validation_loss

TINY = [
    "model.num_frames=8",
    "model.head.mlp_dim=32",
    "model.head.dropout=0.3",
    "data.window_s=2.7",
    "optim.batch_size=6",
    "optim.epochs=2",
    "optim.warmup_epochs=0.5",
    "log_every=1",
]


@pytest.fixture(scope="module")
def small_split(real_data: ThermalData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session fold cut down to 24 training and 12 validation keyframes (fast tests)."""
    full = session_split(real_data, ClipConfig(window_s=2.7, num_frames=8))
    fold = full.folds[1]  # SL14 -> SL18
    small = dataclasses.replace(
        full,
        name="small",
        folds=[dataclasses.replace(fold, train=fold.train[::7][:24], test=fold.test[::18])],
    )
    path = tmp_path_factory.mktemp("split") / "small.json"
    save_split(small, path)
    return path


def _cfg(run_dir: Path, split: Path, *extra: str) -> ActionRunConfig:
    return build_config(ActionRunConfig, None, [*TINY, f"run_dir={run_dir}", f"data.split={split}", *extra])


def test_train_writes_everything_and_resumes_exactly(tmp_path: Path, small_split: Path) -> None:
    full = train(ACTION, _cfg(tmp_path / "full", small_split))
    assert len(full.losses) == 2 * 4  # 24 keyframes / batch 6 = 4 steps per epoch
    for name in ("config.yaml", "best.pt", "last.pt", "metrics.jsonl", "losses.json"):
        assert (full.run_dir / name).is_file(), name
    records = [json.loads(line) for line in (full.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "val" in r] == [1, 2]
    assert all(r["loss"] > 0 and r["lr"] > 0 for r in records if "loss" in r)
    epochs = [r for r in records if "train_loss" in r]  # the mean over every batch of each epoch
    assert [(r["epoch"], r["step"]) for r in epochs] == [(1, 4), (2, 8)]
    assert [r["train_loss"] for r in epochs] == pytest.approx(
        [sum(full.losses[:4]) / 4, sum(full.losses[4:]) / 4]
    )
    assert all(0.0 < r["val"]["val_loss"] < 20.0 for r in records if "val" in r)
    ckpt = load_checkpoint(full.last_checkpoint)
    assert ckpt["step"] == 8 and ckpt["epoch"] == 2 and len(ckpt["classes"]) == 14
    assert 10.0 < ckpt["norm"]["mean_c"] < 30.0

    # stop after 3 optimiser steps (mid-epoch 1), then resume: the losses continue exactly
    part = train(ACTION, _cfg(tmp_path / "part", small_split), max_steps=3)
    assert part.interrupted and part.losses == full.losses[:3]
    resumed = train(
        ACTION, _cfg(tmp_path / "part", small_split, f"resume={tmp_path / 'part' / 'interrupted.pt'}")
    )
    assert resumed.losses == full.losses[3:]
    a, b = load_checkpoint(full.last_checkpoint)["model"], load_checkpoint(resumed.last_checkpoint)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = (tmp_path / "part" / "log.txt").read_text()  # one log, appended to by the resumed run
    assert (
        log.index("interrupted: state saved") < log.index("resumed from") < log.index("epoch 2: frame_map=")
    )
    assert log.count("device cpu") == 2 and "epoch 1: train_loss=" in (full.run_dir / "log.txt").read_text()

    # the best checkpoint rebuilds into a working model
    trained = restore_model(full.best_checkpoint)
    assert trained.classes[3] == "lying down-lying with risk"
    assert trained.norm.mean_c == pytest.approx(ckpt["norm"]["mean_c"])


def test_refuses_existing_run_dir_and_contradicting_resume(tmp_path: Path, small_split: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "something").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        train(ACTION, _cfg(tmp_path / "busy", small_split))
    first = train(ACTION, _cfg(tmp_path / "r", small_split, "optim.epochs=1"))
    with pytest.raises(ConfigError, match=r"contradicts the checkpoint in model\.head"):
        train(
            ACTION,
            _cfg(tmp_path / "r", small_split, f"resume={first.last_checkpoint}", "model.head.mlp_dim=64"),
        )
    ckpt = load_checkpoint(first.last_checkpoint)
    ckpt["classes"] = ckpt["classes"][:5]
    other = tmp_path / "r" / "other_classes.pt"
    save_checkpoint(other, {k: v for k, v in ckpt.items() if k not in ("format", "version")})
    with pytest.raises(ConfigError, match="other classes"):
        train(ACTION, _cfg(tmp_path / "r", small_split, f"resume={other}"))
    with pytest.raises(CheckpointError, match="not found"):
        train(ACTION, _cfg(tmp_path / "r", small_split, f"resume={tmp_path / 'r' / 'missing.pt'}"))
    with pytest.raises(ConfigError, match="continues in its checkpoint's directory"):
        train(ACTION, _cfg(tmp_path / "elsewhere", small_split, f"resume={first.last_checkpoint}"))
    # a run that cannot start writes nothing: the directory holds only what it held
    (tmp_path / "fresh").mkdir()
    lone = tmp_path / "fresh" / "other.pt"
    lone.write_bytes(other.read_bytes())
    with pytest.raises(ConfigError, match="other classes"):
        train(ACTION, _cfg(tmp_path / "fresh", small_split, f"resume={lone}"))
    assert list((tmp_path / "fresh").iterdir()) == [lone]
    lone.unlink()
    train(ACTION, _cfg(tmp_path / "fresh", small_split, "optim.epochs=1"))  # and does not block a new run


def test_wrong_split_or_fold_is_named(tmp_path: Path, small_split: Path) -> None:
    with pytest.raises(ConfigError, match="data.fold"):
        train(ACTION, _cfg(tmp_path / "a", small_split, "data.fold=3"))
    with pytest.raises(ConfigError, match="neither"):
        train(ACTION, _cfg(tmp_path / "b", tmp_path / "nope.json"))


def test_ddp_two_processes_on_gloo(tmp_path: Path, small_split: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
        "-m", "thermact", "train", *TINY, "optim.epochs=1", f"run_dir={tmp_path / 'ddp'}", f"data.split={small_split}",
        "device=cpu",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("run directory:") == 1  # only rank 0 prints and writes
    assert "x 2 processes" in proc.stderr  # progress and information: logged to stderr
    assert (tmp_path / "ddp" / "log.txt").read_text().count("x 2 processes") == 1
    ckpt = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert ckpt["step"] == 2  # 24 keyframes over 2 ranks, batch 6 → 2 steps
    val = [
        json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines() if '"val"' in x
    ]
    assert len(val) == 1 and 0.0 <= val[0]["val"]["accuracy"] <= 1.0


def test_empty_training_side_is_named(tmp_path: Path, small_split: Path) -> None:
    from thermact.data.splits import load_split
    from thermact.errors import DataError

    split = load_split(small_split)
    empty = dataclasses.replace(split, folds=[dataclasses.replace(split.folds[0], train=[])])
    path = tmp_path / "empty.json"
    save_split(empty, path)
    with pytest.raises(DataError, match="training side of the split is empty"):
        train(ACTION, _cfg(tmp_path / "run", path))
    assert not (tmp_path / "run" / "last.pt").exists()


IA = ["model.head.interaction.structure=dense_serial", "model.head.interaction.dim_inner=16"]


def test_interaction_model_trains_with_memory_resumes_exactly_and_evaluates(
    tmp_path: Path, small_split: Path
) -> None:
    """The IA head trains with its asynchronous memory bank, which checkpoints carry as plain tensors."""
    from thermact.evaluation.evaluate import predict, score_predictions
    from thermact.models.memory import FeatureBank

    full = train(ACTION, _cfg(tmp_path / "full", small_split, *IA))
    ckpt = torch.load(full.last_checkpoint, weights_only=True)  # the bank loads without pickled objects
    state = ckpt["memory"]
    assert state["recordings"] and state["features"].shape == (int(state["offsets"][-1]), 128)
    assert len(state["keyframe_ms"]) == 24  # every training keyframe was written once (and rewritten)
    records = [json.loads(line) for line in (full.run_dir / "metrics.jsonl").read_text().splitlines()]
    vals = [r["val"] for r in records if "val" in r]
    assert len(vals) == 2 and all(v["balanced_accuracy"] is not None for v in vals)

    part = train(ACTION, _cfg(tmp_path / "part", small_split, *IA), max_steps=3)
    assert part.interrupted and part.losses == full.losses[:3]
    mid = FeatureBank.from_state_dict(
        torch.load(tmp_path / "part" / "interrupted.pt", weights_only=True)["memory"]
    )
    assert 0 < len(mid) < 24  # 3 batches of 6 keyframes
    resumed = train(
        ACTION, _cfg(tmp_path / "part", small_split, *IA, f"resume={tmp_path / 'part' / 'interrupted.pt'}")
    )
    assert resumed.losses == full.losses[3:]

    trained = restore_model(full.last_checkpoint)
    memory = memory_of(trained)
    assert trained.model.interaction is not None and memory is not None and len(memory) == 24
    # evaluation builds its memory from the evaluated keyframes only: same scores as at the last epoch
    run = ACTION.build(_cfg(tmp_path / "x", small_split, *IA), DistContext(), torch.device("cpu"), None)
    preds = predict(trained.model, run.val_loader, torch.device("cpu"))
    assert len(preds) > 0 and abs(float(preds.scores.sum(1).mean()) - 1.0) < 1e-5
    summary = score_predictions(preds, 14).summary()
    assert summary["balanced_accuracy"] == pytest.approx(vals[-1]["balanced_accuracy"])
    assert summary["frame_map"] == pytest.approx(vals[-1]["frame_map"])


def _train_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "thermact", "train", *args]


def test_ctrl_c_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path: Path, small_split: Path) -> None:
    """A real SIGINT to a training process: it stops at the next step with a consistent state, and
    resuming from its interrupted.pt (the checkpoint alone) gives the uninterrupted run bit for bit:
    weights, losses.json and metrics.jsonl (no repeated record)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = [*TINY, "optim.batch_size=2", f"data.split={small_split}"]  # 12 steps per epoch, 2 epochs
    full = subprocess.run(
        _train_cli(*args, f"run_dir={tmp_path / 'full'}"), env=env, capture_output=True, timeout=300
    )
    assert full.returncode == 0, full.stderr
    run = tmp_path / "cut"
    proc = subprocess.Popen(
        _train_cli(*args, f"run_dir={run}"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    log = run / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (log.is_file() and sum(1 for _ in log.open()) >= 3) and proc.poll() is None:
        assert time.monotonic() < deadline, "the training never logged 3 steps"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    cut = load_checkpoint(run / "interrupted.pt")
    assert 3 <= cut["progress"]["step"] < 24 and cut["progress"]["batch_in_epoch"] % 12 > 0  # mid-epoch
    resumed = subprocess.run(
        _train_cli(f"resume={run / 'interrupted.pt'}"), env=env, capture_output=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(run / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert (run / "losses.json").read_text() == (tmp_path / "full" / "losses.json").read_text()
    assert log.read_text() == (tmp_path / "full" / "metrics.jsonl").read_text()
    assert not (run / "interrupted.pt").exists()  # the interrupted run is complete now

    # kill -9 after the first epoch: resume from last.pt, and the history reads as one run
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _train_cli(*args, f"run_dir={killed}"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    while not ((killed / "last.pt").is_file() and sum(1 for _ in (killed / "metrics.jsonl").open()) >= 15):
        assert proc.poll() is None and time.monotonic() < deadline + 240, "no epoch finished"
        time.sleep(0.02)
    proc.kill()
    proc.communicate(timeout=60)
    (killed / ".last.pt.x1y2.tmp").write_bytes(b"half a checkpoint")  # as a kill during a write leaves
    again = subprocess.run(
        _train_cli(f"resume={killed / 'last.pt'}"), env=env, capture_output=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert (killed / "metrics.jsonl").read_text() == (tmp_path / "full" / "metrics.jsonl").read_text()
    assert (killed / "losses.json").read_text() == (tmp_path / "full" / "losses.json").read_text()
    assert not list(killed.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("kind", "smoothing"), [("ce", 0.0), ("ce", 0.1), ("focal", 0.0), ("bce", 0.0), ("sigmoid_focal", 0.0)]
)
def test_validation_loss_is_the_training_loss_of_the_probabilities(kind: str, smoothing: float) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 14, generator=gen) * 2.0
    labels = torch.randint(0, 14, (40,), generator=gen)
    weights = torch.rand(14, generator=gen) + 0.5
    loss = ActionLoss(kind, class_weights=weights, label_smoothing=smoothing)  # type: ignore[arg-type]
    targets = torch.nn.functional.one_hot(labels, 14).float() if loss.multi_label else labels
    probs = torch.sigmoid(logits) if loss.multi_label else torch.softmax(logits, dim=1)
    got = validation_loss(loss, probs.numpy(), labels.numpy())
    assert got == pytest.approx(float(loss(logits, targets)), rel=1e-4)
    assert got > 0.1  # random logits: far from a perfect fit


def test_quiet_and_verbose_training(
    tmp_path: Path, small_split: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-q: only the result on stdout (progress still in log.txt); default: progress on stderr;
    -v: each logged step too."""
    from thermact.cli import main

    args = ["train", *TINY, "optim.epochs=1", "device=cpu", f"data.split={small_split}"]
    assert main([*args, f"run_dir={tmp_path / 'q'}", "-q"]) == 0
    out, err = capsys.readouterr()
    assert "run directory:" in out and "epoch 1" not in out + err and "device cpu" not in err
    log = (tmp_path / "q" / "log.txt").read_text()
    assert "epoch 1: train_loss=" in log and "epoch 1: frame_map=" in log and "device cpu" in log
    assert "step 1 (epoch 1)" not in log
    assert main([*args, f"run_dir={tmp_path / 'd'}"]) == 0
    out, err = capsys.readouterr()
    assert "epoch 1: frame_map=" in err and "epoch 1" not in out and "step 1 (epoch 1)" not in err
    assert main([*args, f"run_dir={tmp_path / 'v'}", "--verbose"]) == 0
    err = capsys.readouterr().err
    assert "step 1 (epoch 1): loss " in err and "epoch 1: frame_map=" in err
    assert "step 1 (epoch 1): loss " in (tmp_path / "v" / "log.txt").read_text()


def test_validation_with_flip_averaging_is_thermact_eval_with_tta(tmp_path: Path, small_split: Path) -> None:
    """``eval.tta=flips`` validates as ``thermact eval tta=flips`` scores the same checkpoint."""
    from thermact.commands.eval import load_options, run_evaluation

    result = train(ACTION, _cfg(tmp_path / "run", small_split, "optim.epochs=1", "eval.tta=flips"))
    logged = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[-1])["val"]
    opts = load_options(str(result.last_checkpoint), [f"out={tmp_path / 'eval'}", "device=cpu", "tta=flips"])
    report = run_evaluation(opts).result.summary()
    assert logged["frame_map"] == pytest.approx(report["frame_map"], abs=1e-6)
    assert logged["accuracy"] == pytest.approx(report["accuracy"], abs=1e-9)
    with pytest.raises(ConfigError, match="eval.tta"):
        _cfg(tmp_path / "ia", small_split, "eval.tta=flips", *IA)


def test_weight_average_is_evaluated_saved_and_resumed_exactly(tmp_path: Path, small_split: Path) -> None:
    """``optim.ema_decay``: ``model`` holds the average (what validation scored, what ``thermact
    eval`` loads), ``raw_model`` the trained weights; an interrupted run resumes both exactly."""
    from thermact.commands.eval import load_options, run_evaluation

    full = train(ACTION, _cfg(tmp_path / "full", small_split, "optim.ema_decay=0.9"))
    ckpt = load_checkpoint(full.last_checkpoint)
    averaged, raw = ckpt["model"], ckpt["raw_model"]
    assert ckpt["config"]["optim"]["ema_decay"] == 0.9
    assert any(not torch.equal(averaged[k], raw[k]) for k in averaged if averaged[k].is_floating_point())
    assert "raw_model" not in inference_state(ckpt) and inference_state(ckpt)["model"] is averaged
    logged = json.loads((full.run_dir / "metrics.jsonl").read_text().splitlines()[-1])["val"]
    opts = load_options(str(full.last_checkpoint), [f"out={tmp_path / 'eval'}", "device=cpu"])
    report = run_evaluation(opts).result.summary()
    assert logged["frame_map"] == pytest.approx(report["frame_map"], abs=1e-6)
    assert logged["accuracy"] == pytest.approx(report["accuracy"], abs=1e-9)

    part = train(ACTION, _cfg(tmp_path / "part", small_split, "optim.ema_decay=0.9"), max_steps=3)
    assert part.interrupted
    stopped = tmp_path / "part" / "interrupted.pt"
    with pytest.raises(ConfigError, match=r"optim\.ema_decay"):
        train(ACTION, _cfg(tmp_path / "part", small_split, f"resume={stopped}"))
    resumed = train(ACTION, _cfg(tmp_path / "part", small_split, "optim.ema_decay=0.9", f"resume={stopped}"))
    assert resumed.losses == full.losses[3:]
    again = load_checkpoint(resumed.last_checkpoint)
    for key in ("model", "raw_model"):
        assert all(torch.equal(ckpt[key][k], again[key][k]) for k in ckpt[key]), key


def test_distillation_from_a_teacher_per_fold(tmp_path: Path, small_split: Path) -> None:
    """``loss.distill_from``: the loss is ``(1 - w) * loss + w * distillation`` on the teacher's
    logits of the same clips; a teacher normalised otherwise is fed its own normalisation; a
    teacher fed other clips is refused, naming the key."""
    from thermact.data.transforms import NormStats, denormalize, normalize
    from thermact.models.losses import distillation_loss
    from thermact.tasks.action import Teacher

    teacher_run = train(ACTION, _cfg(tmp_path / "teacher0", small_split, "optim.epochs=1"))
    keys = [f"loss.distill_from={tmp_path / 'teacher{fold}' / 'last.pt'}", "loss.distill_weight=0.25"]
    cfg = _cfg(tmp_path / "student", small_split, *keys, "loss.distill_temperature=3.0")
    run = ACTION.build(cfg, DistContext(), torch.device("cpu"), None)
    assert run.teacher is not None and (run.teacher.scale, run.teacher.shift) == (1.0, 0.0)  # same fold
    net = run.model.eval()
    batch = next(iter(run.train_loader))
    total, parts = run.loss(net, batch)
    assert total is not None
    with torch.no_grad():
        logits = net(batch.frames, batch.rois)
        teacher = restore_model(teacher_run.last_checkpoint).model(batch.frames, batch.rois)
        assert torch.allclose(run.teacher(batch.frames, batch.rois), teacher, atol=1e-4)
        distill = distillation_loss(logits, teacher, 3.0)
        plain = run.loss_fn(logits, batch.labels)
    assert parts["distill"] == pytest.approx(float(distill), rel=1e-4)
    assert float(total.detach()) == pytest.approx(float(0.75 * plain + 0.25 * distill), rel=1e-4)
    assert float(distill) > 0.0

    # a teacher trained with other statistics sees the clip in its own units
    trained = restore_model(teacher_run.last_checkpoint)
    other = NormStats(trained.norm.mean_c + 2.0, trained.norm.std_c * 1.5)
    shifted = Teacher(trained, cfg, other, trained.classes, torch.device("cpu"))
    own_units = normalize(denormalize(batch.frames, other), trained.norm)
    with torch.no_grad():
        assert torch.allclose(
            shifted(batch.frames, batch.rois), trained.model(own_units, batch.rois), atol=1e-4
        )
    cpu = torch.device("cpu")
    with pytest.raises(ConfigError, match=r"loss\.distill_from.*clip"):
        Teacher(
            dataclasses.replace(trained, clip=ClipConfig(4.0, 8, "center")),
            cfg,
            trained.norm,
            trained.classes,
            cpu,
        )
    with pytest.raises(ConfigError, match=r"loss\.distill_from.*classes"):
        Teacher(trained, cfg, trained.norm, trained.classes[::-1], cpu)
    with pytest.raises(CheckpointError, match="teacher9"):
        ACTION.build(
            _cfg(tmp_path / "s9", small_split, f"loss.distill_from={tmp_path / 'teacher9' / 'last.pt'}"),
            DistContext(),
            torch.device("cpu"),
            None,
        )
    with pytest.raises(ConfigError, match="distill_from"):
        _cfg(tmp_path / "bce", small_split, keys[0], "loss.kind=bce")
    with pytest.raises(ConfigError, match="distill_weight"):
        _cfg(tmp_path / "w", small_split, keys[0], "loss.distill_weight=1.5")


@pytest.mark.cuda
def test_trains_on_cuda_and_restores_on_the_cpu(tmp_path: Path, small_split: Path) -> None:
    """A run on the GPU (bf16 autocast) writes checkpoints that a CPU-only machine rebuilds and
    that compute there what they compute on the GPU (up to TF32 and bf16 rounding)."""
    run = train(ACTION, _cfg(tmp_path / "gpu", small_split, "device=cuda", "amp=bf16", "optim.epochs=1"))
    assert len(run.losses) == 4 and all(0.0 < x < 20.0 for x in run.losses)
    assert "device cuda" in (run.run_dir / "log.txt").read_text()
    ckpt = load_checkpoint(run.last_checkpoint)
    assert all(t.device.type == "cpu" for t in ckpt["model"].values())
    on_cpu, on_gpu = restore_model(run.last_checkpoint), restore_model(run.last_checkpoint, "cuda")
    gen = torch.Generator().manual_seed(0)
    clip = 20.0 + 5.0 * torch.rand(1, 1, 8, 40, 60, generator=gen)
    clip = (clip - on_cpu.norm.mean_c) / on_cpu.norm.std_c
    rois = torch.tensor([[0.0, 10.0, 5.0, 24.0, 30.0], [0.0, 30.0, 12.0, 41.0, 20.0]])
    with torch.no_grad():
        want = on_cpu.model(clip, rois)
        got = on_gpu.model(clip.cuda(), rois.cuda()).cpu()
    torch.testing.assert_close(got, want, rtol=0.0, atol=2e-2)


def test_every_augment_key_reaches_the_training_augmentation(tmp_path: Path, small_split: Path) -> None:

    keys = [
        "augment.shift_px=4",
        "augment.p_transpose=0.25",
        "augment.zoom=[0.8,1.25]",
        "augment.p_rot180=0.5",
    ]
    aug = _cfg(tmp_path, small_split, *keys).augment.build()
    assert aug is not None and aug.to_dict() == {
        "p_hflip": 0.5,
        "p_vflip": 0.5,
        "p_rot180": 0.5,
        "offset_c": [-1.0, 1.0],
        "gain": [0.9, 1.1],
        "box_jitter": 0.05,
        "shift_px": 4,
        "p_transpose": 0.25,
        "zoom": [0.8, 1.25],
    }
    assert _cfg(tmp_path, small_split, "augment.enabled=false").augment.build() is None
    with pytest.raises(ConfigError, match="augment.zoom"):
        _cfg(tmp_path, small_split, "augment.zoom=[0.0,1.2]")
