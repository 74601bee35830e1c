"""The training loop on the real data: it learns, it resumes exactly, it refuses bad set-ups."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from thermact.config import build_config
from thermact.data.clips import ClipConfig
from thermact.data.source import ThermalData
from thermact.data.splits import save_split, session_split
from thermact.engine.checkpoint import load_checkpoint, save_checkpoint
from thermact.engine.distributed import DistContext
from thermact.engine.run import train
from thermact.errors import CheckpointError, ConfigError
from thermact.tasks.action import ACTION, ActionRunConfig, memory_of, restore_model

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
    other = tmp_path / "other_classes.pt"
    save_checkpoint(other, {k: v for k, v in ckpt.items() if k not in ("format", "version")})
    with pytest.raises(ConfigError, match="other classes"):
        train(ACTION, _cfg(tmp_path / "r", small_split, f"resume={other}"))
    with pytest.raises(CheckpointError, match="not found"):
        train(ACTION, _cfg(tmp_path / "r", small_split, f"resume={tmp_path / 'missing.pt'}"))
    # a run that cannot start writes nothing: a fresh run directory stays empty
    with pytest.raises(ConfigError, match="other classes"):
        train(ACTION, _cfg(tmp_path / "fresh", small_split, f"resume={other}"))
    assert list((tmp_path / "fresh").iterdir()) == []
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
    assert "x 2 processes" in proc.stdout
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
