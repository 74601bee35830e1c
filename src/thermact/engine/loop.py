"""The epoch loop shared by every task (action model, person detector).

:func:`fit` runs the remaining epochs of a run; :func:`train_epoch` reads top to bottom: for each
batch, **forward** (the task's loss), **backward** (gradients accumulate over ``accumulate``
batches), and every ``accumulate`` batches the optimiser **step** with the LR of the pure schedule
:func:`thermact.engine.schedule.lr_at`, then the log. After each epoch :func:`end_epoch` evaluates
(every ``eval_every`` epochs), writes ``best.pt`` when the chosen metric improves, and ``last.pt``.
Ctrl-C (or ``max_steps``) writes ``interrupted.pt``. What is trained, on what data and how it is
evaluated is the task's business (:class:`~thermact.engine.task.TaskRun`); what a checkpoint
holds is :func:`state_payload`'s.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from thermact.data.transforms import NormStats
from thermact.engine.checkpoint import capture_rng_state, save_checkpoint
from thermact.engine.distributed import DistContext
from thermact.engine.schedule import lr_at
from thermact.engine.task import TaskRun
from thermact.io import atomic_open

__all__ = [
    "LoopSettings",
    "Progress",
    "TrainResult",
    "end_epoch",
    "fit",
    "format_metrics",
    "state_payload",
    "train_epoch",
]


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


def format_metrics(metrics: dict[str, Any]) -> str:
    """``"a=0.123, b=N/A"`` (floats with 3 decimals)."""
    return ", ".join(f"{k}={_value(v)}" for k, v in metrics.items())


def _value(value: Any) -> str:
    return "N/A" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


class RunLog:
    """Where a run's records go on rank 0: ``metrics.jsonl``, TensorBoard scalars and the terminal.
    On the other ranks every method is a no-op."""

    def __init__(self, run_dir: Path, ctx: DistContext, tensorboard: Any = None) -> None:
        self.jsonl = JsonlLog(run_dir / "metrics.jsonl") if ctx.is_main else None
        self.tensorboard = tensorboard

    def train_step(self, step: int, epoch: int, loss: float, lr: float, parts: dict[str, float]) -> None:
        if self.jsonl is None:
            return
        self.jsonl.write({"step": step, "epoch": epoch, "loss": loss, "lr": lr, **parts})
        if self.tensorboard is not None:
            self.tensorboard.add_scalar("train/loss", loss, step)
            self.tensorboard.add_scalar("train/lr", lr, step)

    def validation(self, step: int, epoch: int, metrics: dict[str, Any]) -> None:
        if self.jsonl is None:
            return
        self.jsonl.write({"step": step, "epoch": epoch, "val": metrics})
        if self.tensorboard is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(f"val/{key}", value, step)
        print(f"epoch {epoch}: {format_metrics(metrics)}")

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Batches and optimiser steps of a run, for the LR schedule."""

    batches_per_epoch: int
    total_steps: int
    warmup_steps: int

    @classmethod
    def of(cls, run: TaskRun, s: LoopSettings) -> Schedule:
        batches = -(-len(run.sampler.order(0)) // s.batch_size)
        steps_per_epoch = -(-batches // s.accumulate)
        return cls(batches, steps_per_epoch * s.epochs, round(s.warmup_epochs * steps_per_epoch))


def train_epoch(
    run: TaskRun,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    s: LoopSettings,
    schedule: Schedule,
    progress: Progress,
    log: RunLog,
    ctx: DistContext,
    losses: list[float],
    max_steps: int | None = None,
) -> None:
    """The rest of epoch ``progress.epoch``: forward, backward, step (see the module docstring)."""
    epoch = progress.epoch
    run.set_epoch(epoch)
    run.sampler.epoch, run.sampler.start = epoch, progress.batch_in_epoch * s.batch_size
    bar = progress_bar(schedule.batches_per_epoch, f"epoch {epoch + 1}/{s.epochs}", progress.batch_in_epoch)
    t0, seen = time.perf_counter(), 0
    optimizer.zero_grad(set_to_none=True)
    for batch in run.train_loader:
        loss, parts = run.loss(net, batch)  # forward
        if loss is not None:  # backward: gradients accumulate over `accumulate` batches
            scaled = loss / s.accumulate
            if scaler is not None:
                scaled = scaler.scale(scaled)
            scaled.backward()  # type: ignore[no-untyped-call]
        loss_value = float(loss.detach()) if loss is not None else 0.0
        losses.append(loss_value)
        progress.batch_in_epoch += 1
        seen += run.batch_size(batch)
        if (
            progress.batch_in_epoch % s.accumulate == 0
            or progress.batch_in_epoch == schedule.batches_per_epoch
        ):
            lr = lr_at(progress.step, s.lr, schedule.total_steps, schedule.warmup_steps, 0.1, s.min_lr)
            optimizer_step(run.model, optimizer, scaler, lr, s.clip_grad_norm)  # step
            progress.step += 1
            rate = seen * ctx.world_size / max(1e-9, time.perf_counter() - t0)
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", clips_s=f"{rate:.1f}")
            if progress.step % s.log_every == 0:
                log.train_step(progress.step, epoch + 1, loss_value, lr, parts)
        bar.update(1)
        if max_steps is not None and progress.step >= max_steps:
            raise KeyboardInterrupt
    bar.close()


def end_epoch(
    run: TaskRun, net: nn.Module, s: LoopSettings, progress: Progress, log: RunLog, ctx: DistContext
) -> tuple[Progress, dict[str, Any], bool]:
    """Close epoch ``progress.epoch``: evaluate when due. Returns the (rank-0) progress, the
    metrics (empty when not evaluated) and whether they are the best so far."""
    epoch = progress.epoch
    progress.epoch += 1
    progress.batch_in_epoch = 0
    if not (progress.epoch % s.eval_every == 0 or progress.epoch == s.epochs):
        return progress, {}, False
    metrics = run.evaluate(net) or {}
    log.validation(progress.step, epoch + 1, metrics)
    value = metrics.get(s.metric)
    improved = ctx.is_main and value is not None and float(value) > progress.best_metric
    if improved and value is not None:
        progress.best_metric, progress.best_epoch = float(value), epoch
    return ctx.broadcast(progress), metrics, improved


def fit(
    run: TaskRun,
    net: nn.Module,
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
    """Run the remaining epochs of a run (see the module docstring).

    Args:
        run: the task's data, loss and evaluation (its ``model`` is the bare model: gradient
            clipping, checkpoints).
        net: what is called on batches (``run.model`` or its DDP wrapper).
        payload: builds a checkpoint dict for the current state (called on rank 0 only).
        max_steps: stop as if interrupted after that many optimiser steps (tests).
        tensorboard: a ``SummaryWriter`` on rank 0, or None.
    """
    schedule = Schedule.of(run, settings)
    log = RunLog(run_dir, ctx, tensorboard)

    def save(name: str, metrics: dict[str, Any] | None) -> None:
        if ctx.is_main:
            save_checkpoint(run_dir / name, payload(progress, metrics))

    losses: list[float] = []
    best_metrics: dict[str, Any] = {}
    interrupted = False
    net.train()
    try:
        while progress.epoch < settings.epochs:
            train_epoch(
                run, net, optimizer, scaler, settings, schedule, progress, log, ctx, losses, max_steps
            )
            progress, metrics, improved = end_epoch(run, net, settings, progress, log, ctx)
            if improved:
                best_metrics = dict(metrics, epoch=progress.epoch)
                save("best.pt", metrics)
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
        log.close()
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
    norm: NormStats,
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
        "norm": norm.to_dict(),
        "metrics": metrics or {},
    }
