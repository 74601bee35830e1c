"""The epoch loop shared by every trainer (action detector, person detector).

:func:`fit` reads top to bottom: for each epoch, set the epoch of the data and the sampler (so a
mid-epoch resume skips the batches already seen), run ``task.train_step`` (forward + backward) on
each batch, step the optimiser every ``accumulate`` batches with the LR of the pure schedule
:func:`thermact.engine.schedule.lr_at`, log, evaluate every ``eval_every`` epochs, write
``best.pt`` when the chosen metric improves and ``last.pt`` after every epoch. Ctrl-C (or
``max_steps``) writes ``interrupted.pt``. What is trained, on what data and how it is evaluated is
the task's business (:class:`TrainTask`); what a checkpoint holds is
:func:`thermact.engine.train.checkpoint_payload`'s.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from thermact.engine.checkpoint import capture_rng_state, save_checkpoint
from thermact.engine.distributed import DistContext
from thermact.engine.schedule import lr_at
from thermact.io import atomic_open


class TrainTask(Protocol):
    """What :func:`fit` needs from a trainer."""

    sampler: Any
    """An :class:`~thermact.engine.train.EpochSampler` (``epoch``, ``start``, ``order(epoch)``)."""
    train_loader: Any
    """Iterable of batches drawn through ``sampler``."""

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws for ``epoch``."""

    def train_step(self, net: nn.Module, batch: Any) -> tuple[float, dict[str, float]]:
        """Forward and backward of one batch (gradients accumulate, scaled by ``1/accumulate``)."""

    def evaluate(self, net: nn.Module) -> dict[str, Any] | None:
        """Validation metrics on rank 0 (None on the other ranks)."""

    def batch_size_of(self, batch: Any) -> int:
        """Number of clips in ``batch`` (for the clips/s display)."""


@dataclasses.dataclass
class Progress:
    """Counters a checkpoint stores to resume exactly."""

    epoch: int = 0
    """The epoch in progress (0-based)."""
    step: int = 0
    """Optimiser steps taken."""
    batch_in_epoch: int = 0
    """Batches of ``epoch`` already consumed (mid-epoch resume)."""
    best_metric: float = -float("inf")
    best_epoch: int = -1


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    """The numbers of a run config the loop reads (from ``optim``, ``eval`` and ``log_every``)."""

    epochs: int
    batch_size: int
    accumulate: int
    lr: float
    min_lr: float
    warmup_epochs: float
    clip_grad_norm: float | None
    log_every: int
    eval_every: int
    metric: str
    """Validation metric that picks ``best.pt`` (higher is better)."""


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_metrics: dict[str, Any]
    losses: list[float]
    interrupted: bool = False


class JsonlLog:
    """Appends one JSON object per line (flushed each time)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def progress_bar(total: int, desc: str, initial: int = 0) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        initial=initial,
        leave=False,
        file=sys.stderr,
        dynamic_ncols=True,
        disable=None,
    )


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    lr: float,
    clip_grad_norm: float | None,
) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
    if scaler is not None:
        scaler.unscale_(optimizer)
    if clip_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def fmt(value: Any) -> str:
    return "N/A" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def fit(
    task: TrainTask,
    net: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    settings: LoopSettings,
    progress: Progress,
    run_dir: Path,
    ctx: DistContext,
    payload: Callable[[Progress, dict[str, Any] | None], dict[str, Any]],
    max_steps: int | None = None,
    tensorboard: Any = None,
) -> TrainResult:
    """Run the remaining epochs of a run (see module docstring).

    Args:
        task: data, per-batch step and evaluation.
        net: what is called on batches (``model`` or its DDP wrapper).
        model: the bare model (gradient clipping, checkpoints).
        payload: builds a checkpoint dict for the current state (called on rank 0 only).
        max_steps: stop as if interrupted after that many optimiser steps (tests).
        tensorboard: a ``SummaryWriter`` on rank 0, or None.
    """
    s = settings
    batches_per_epoch = -(-len(task.sampler.order(0)) // s.batch_size)
    steps_per_epoch = -(-batches_per_epoch // s.accumulate)
    total_steps = steps_per_epoch * s.epochs
    warmup_steps = round(s.warmup_epochs * steps_per_epoch)
    log = JsonlLog(run_dir / "metrics.jsonl") if ctx.is_main else None

    def save(name: str, metrics: dict[str, Any] | None) -> None:
        if ctx.is_main:
            save_checkpoint(run_dir / name, payload(progress, metrics))

    losses: list[float] = []
    best_metrics: dict[str, Any] = {}
    interrupted = False
    net.train()
    try:
        while progress.epoch < s.epochs:
            epoch = progress.epoch
            task.set_epoch(epoch)
            task.sampler.epoch, task.sampler.start = epoch, progress.batch_in_epoch * s.batch_size
            bar = progress_bar(batches_per_epoch, f"epoch {epoch + 1}/{s.epochs}", progress.batch_in_epoch)
            t0, seen = time.perf_counter(), 0
            optimizer.zero_grad(set_to_none=True)
            for batch in task.train_loader:
                loss_value, parts = task.train_step(net, batch)
                losses.append(loss_value)
                progress.batch_in_epoch += 1
                seen += task.batch_size_of(batch)
                if (
                    progress.batch_in_epoch % s.accumulate == 0
                    or progress.batch_in_epoch == batches_per_epoch
                ):
                    lr = lr_at(progress.step, s.lr, total_steps, warmup_steps, 0.1, s.min_lr)
                    optimizer_step(model, optimizer, scaler, lr, s.clip_grad_norm)
                    progress.step += 1
                    rate = seen * ctx.world_size / max(1e-9, time.perf_counter() - t0)
                    bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", clips_s=f"{rate:.1f}")
                    if log is not None and progress.step % s.log_every == 0:
                        log.write(
                            {"step": progress.step, "epoch": epoch + 1, "loss": loss_value, "lr": lr, **parts}
                        )
                        if tensorboard is not None:
                            tensorboard.add_scalar("train/loss", loss_value, progress.step)
                            tensorboard.add_scalar("train/lr", lr, progress.step)
                bar.update(1)
                if max_steps is not None and progress.step >= max_steps:
                    raise KeyboardInterrupt
            bar.close()
            progress.epoch += 1
            progress.batch_in_epoch = 0
            metrics: dict[str, Any] = {}
            if progress.epoch % s.eval_every == 0 or progress.epoch == s.epochs:
                metrics = task.evaluate(net) or {}
                if log is not None:
                    log.write({"step": progress.step, "epoch": epoch + 1, "val": metrics})
                    if tensorboard is not None:
                        for key, value in metrics.items():
                            if isinstance(value, (int, float)):
                                tensorboard.add_scalar(f"val/{key}", value, progress.step)
                    print(f"epoch {epoch + 1}: " + ", ".join(f"{k}={fmt(v)}" for k, v in metrics.items()))
                    value = metrics.get(s.metric)
                    if value is not None and float(value) > progress.best_metric:
                        progress.best_metric, progress.best_epoch = float(value), epoch
                        best_metrics = dict(metrics, epoch=epoch + 1)
                        save("best.pt", metrics)
                progress = ctx.broadcast(progress)
            save("last.pt", metrics)
    except KeyboardInterrupt:
        interrupted = True
        save("interrupted.pt", None)
        if ctx.is_main:
            print(
                f"interrupted: state saved to {run_dir / 'interrupted.pt'} (continue with resume=...)",
                file=sys.stderr,
            )
    finally:
        if tensorboard is not None:
            tensorboard.close()
    if ctx.is_main:
        with atomic_open(run_dir / "losses.json") as handle:
            json.dump(losses, handle)
    return TrainResult(run_dir, run_dir / "best.pt", run_dir / "last.pt", best_metrics, losses, interrupted)


def state_payload(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    progress: Progress,
    config: dict[str, Any],
    classes: Sequence[str],
    norm: dict[str, Any],
    metrics: dict[str, Any] | None,
) -> dict[str, Any]:
    """Everything a checkpoint holds (see :mod:`thermact.engine.checkpoint`), as plain types + tensors."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": capture_rng_state(),
        "progress": dataclasses.asdict(progress),
        "step": progress.step,
        "epoch": progress.epoch,
        "config": config,
        "classes": list(classes),
        "norm": norm,
        "metrics": metrics or {},
    }
