"""The epoch loop shared by every task (action model, person detector).

:func:`fit` runs the remaining epochs of a run; :func:`train_epoch` reads top to bottom: for each
batch, **forward** (the task's loss), **backward** (gradients accumulate over ``accumulate``
batches), and every ``accumulate`` batches the optimiser **step** with the LR of the pure schedule
:func:`thermact.engine.schedule.lr_at` (and the weight average's update, with ``optim.ema_decay``),
then the log. After each epoch :func:`end_epoch` evaluates (every ``eval_every`` epochs; the weight
average when there is one), writes ``best.pt`` when the chosen metric improves, and ``last.pt``.
Ctrl-C (or ``max_steps``) writes ``interrupted.pt``. What is trained, on what data and how it is
evaluated is the task's business (:class:`~thermact.engine.task.TaskRun`); what a checkpoint
holds is :func:`state_payload`'s.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from thermact.data.transforms import NormStats
from thermact.engine.checkpoint import capture_rng_state, save_checkpoint
from thermact.engine.distributed import DistContext
from thermact.engine.ema import WeightAverage
from thermact.engine.schedule import lr_at
from thermact.engine.task import TaskRun
from thermact.errors import OutputError
from thermact.io import write_json_atomic, write_text_atomic
from thermact.logs import progress_disabled

logger = logging.getLogger(__name__)

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


@dataclasses.dataclass
class History:
    """What a run has recorded so far; every checkpoint holds it, so a resumed run continues it."""

    losses: list[float] = dataclasses.field(default_factory=list)
    """The training loss of every batch."""
    best_metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The validation metrics of ``best.pt`` (with its ``epoch``)."""


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
    """Where a run went: its directory, checkpoints (which exist only once written), the metrics of
    ``best.pt``, the losses of the batches this call trained, and whether it was interrupted."""

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_metrics: dict[str, Any]
    losses: list[float]
    interrupted: bool = False

    @property
    def checkpoints(self) -> list[Path]:
        """The checkpoints that exist (``best.pt``, ``last.pt``, ``interrupted.pt``)."""
        names = ("best.pt", "last.pt", "interrupted.pt")
        return [self.run_dir / n for n in names if (self.run_dir / n).is_file()]


class StopRequestedError(Exception):
    """Raised at a step boundary when a stop was asked for (Ctrl-C, ``max_steps``)."""


class GracefulStop:
    """Ctrl-C during training, in two stages. The first asks the loop to stop at the next optimiser
    step boundary, where the state is consistent (every consumed batch stepped, no half-applied
    forward pass), so ``interrupted.pt`` resumes exactly; a second aborts at once without saving.
    Installed only in the main thread (signal handlers cannot be set elsewhere)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("stopping at the end of this step (Ctrl-C again to abort without saving)")

    def should_stop(self, ctx: DistContext) -> bool:
        """Whether any process was asked to stop (every process stops at the same step)."""
        return ctx.any(self.requested)


class JsonlLog:
    """Appends one JSON object per line (flushed each time)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError as err:
            raise OutputError(f"{self.path}: cannot append to the log: {err.strerror or err}") from err

    def truncate_after(self, step: int) -> None:
        """Drop the records of steps after ``step`` (those a resumed run will write again)."""
        if not self.path.is_file():
            return
        kept = [
            line
            for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines()
            if line.strip() and _record_step(line) <= step
        ]
        write_text_atomic(self.path, "".join(line + "\n" for line in kept))


def _record_step(line: str) -> float:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return float("inf")
    return float(record.get("step", float("inf"))) if isinstance(record, dict) else float("inf")


def progress_bar(total: int, desc: str, initial: int = 0) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        initial=initial,
        leave=False,
        file=sys.stderr,
        dynamic_ncols=True,
        disable=progress_disabled(),
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
        logger.debug("step %d (epoch %d): loss %.4f, lr %.3g", step, epoch, loss, lr)
        if self.tensorboard is not None:
            self.tensorboard.add_scalar("train/loss", loss, step)
            self.tensorboard.add_scalar("train/lr", lr, step)

    def epoch_loss(self, step: int, epoch: int, mean_loss: float) -> None:
        """The mean training loss over every batch of ``epoch`` (the logged steps are single batches)."""
        if self.jsonl is None:
            return
        self.jsonl.write({"step": step, "epoch": epoch, "train_loss": mean_loss})
        logger.info("epoch %d: train_loss=%.3f (mean over the epoch's batches)", epoch, mean_loss)
        if self.tensorboard is not None:
            self.tensorboard.add_scalar("train/epoch_loss", mean_loss, step)

    def validation(self, step: int, epoch: int, metrics: dict[str, Any]) -> None:
        if self.jsonl is None:
            return
        self.jsonl.write({"step": step, "epoch": epoch, "val": metrics})
        if self.tensorboard is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(f"val/{key}", value, step)
        logger.info("epoch %d: %s", epoch, format_metrics(metrics))

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
    history: History,
    stop: GracefulStop,
    max_steps: int | None = None,
    ema: WeightAverage | None = None,
) -> None:
    """The rest of epoch ``progress.epoch``: forward, backward, step (see the module docstring).
    Raises :class:`StopRequestedError` right after a step when a stop was asked for."""
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
        history.losses.append(loss_value)
        progress.batch_in_epoch += 1
        seen += run.batch_size(batch)
        if (
            progress.batch_in_epoch % s.accumulate == 0
            or progress.batch_in_epoch == schedule.batches_per_epoch
        ):
            lr = lr_at(progress.step, s.lr, schedule.total_steps, schedule.warmup_steps, 0.1, s.min_lr)
            optimizer_step(run.model, optimizer, scaler, lr, s.clip_grad_norm)  # step
            progress.step += 1
            if ema is not None:
                ema.update(run.model, progress.step)
            rate = seen * ctx.world_size / max(1e-9, time.perf_counter() - t0)
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", clips_s=f"{rate:.1f}")
            if progress.step % s.log_every == 0:
                log.train_step(progress.step, epoch + 1, loss_value, lr, parts)
            bar.update(1)
            if stop.should_stop(ctx) or (max_steps is not None and progress.step >= max_steps):
                bar.close()
                raise StopRequestedError
        else:
            bar.update(1)
    bar.close()
    epoch_losses = history.losses[-schedule.batches_per_epoch :]  # this epoch's (also across a resume)
    log.epoch_loss(progress.step, epoch + 1, sum(epoch_losses) / max(1, len(epoch_losses)))


def end_epoch(
    run: TaskRun, net: nn.Module, s: LoopSettings, progress: Progress, log: RunLog, ctx: DistContext
) -> tuple[Progress, dict[str, Any], bool]:
    """Close epoch ``progress.epoch``: evaluate ``net`` when due. Returns the (rank-0) progress,
    the metrics (empty when not evaluated) and whether they are the best so far."""
    epoch = progress.epoch
    progress.epoch += 1
    progress.batch_in_epoch = 0
    if not (progress.epoch % s.eval_every == 0 or progress.epoch == s.epochs):
        return progress, {}, False
    result = run.evaluate(net)
    if not ctx.any(result is not None):  # no validation data (the ``all`` split): nothing to log
        return progress, {}, False
    metrics = result or {}
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
    history: History,
    run_dir: Path,
    ctx: DistContext,
    payload: Callable[[Progress, History, dict[str, Any] | None], dict[str, Any]],
    max_steps: int | None = None,
    tensorboard: Any = None,
    ema: WeightAverage | None = None,
) -> TrainResult:
    """Run the remaining epochs of a run (see the module docstring).

    Args:
        run: the task's data, loss and evaluation (its ``model`` is the bare model: gradient
            clipping, checkpoints).
        net: what is called on batches (``run.model`` or its DDP wrapper).
        history: the losses and best metrics so far (continued, and saved in every checkpoint).
        payload: builds a checkpoint dict for the current state (called on rank 0 only).
        max_steps: stop as if interrupted after that many optimiser steps (tests).
        tensorboard: a ``SummaryWriter`` on rank 0, or None.
        ema: the weight average, updated after every step and evaluated instead of ``net``.
    """
    schedule = Schedule.of(run, settings)
    log = RunLog(run_dir, ctx, tensorboard)

    def save(name: str, metrics: dict[str, Any] | None) -> None:
        if ctx.is_main:
            path = run_dir / name
            try:
                save_checkpoint(path, payload(progress, history, metrics))
            except OSError as err:
                raise OutputError(
                    f"{path}: cannot write the checkpoint: {err.strerror or err} (the log up to this "
                    f"epoch is in {run_dir / 'metrics.jsonl'})"
                ) from err

    first = len(history.losses)
    interrupted = False
    net.train()
    try:
        with GracefulStop() as stop:
            while progress.epoch < settings.epochs:
                if stop.should_stop(ctx):  # asked while evaluating or saving
                    raise StopRequestedError
                train_epoch(
                    run,
                    net,
                    optimizer,
                    scaler,
                    settings,
                    schedule,
                    progress,
                    log,
                    ctx,
                    history,
                    stop,
                    max_steps,
                    ema,
                )
                evaluated = ema.module if ema is not None else net
                progress, metrics, improved = end_epoch(run, evaluated, settings, progress, log, ctx)
                if improved:
                    history.best_metrics = dict(metrics, epoch=progress.epoch)
                    save("best.pt", metrics)
                save("last.pt", metrics)
    except StopRequestedError:
        interrupted = True
        save("interrupted.pt", None)
        if ctx.is_main:
            logger.warning(
                "interrupted: state saved to %s (continue with resume=...)", run_dir / "interrupted.pt"
            )
    except KeyboardInterrupt:
        interrupted = True
        if ctx.is_main:
            logger.warning("aborted: nothing saved since the last checkpoint")
    finally:
        log.close()
    if ctx.is_main and not interrupted:
        (run_dir / "interrupted.pt").unlink(missing_ok=True)  # the run it resumed from is complete
    if ctx.is_main:
        try:
            write_json_atomic(run_dir / "losses.json", history.losses, indent=None)
        except OSError as err:
            raise OutputError(f"{run_dir / 'losses.json'}: cannot write: {err.strerror or err}") from err
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    return TrainResult(run_dir, best, last, dict(history.best_metrics), history.losses[first:], interrupted)


def state_payload(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    progress: Progress,
    config: dict[str, Any],
    classes: Sequence[str],
    norm: NormStats,
    metrics: dict[str, Any] | None,
    history: History | None = None,
    ema: WeightAverage | None = None,
) -> dict[str, Any]:
    """Everything a checkpoint holds (see :mod:`thermact.engine.checkpoint`), as plain types +
    tensors. With ``ema``, ``model`` holds the averaged weights and ``raw_model`` ``model``'s own."""
    raw = {"raw_model": model.state_dict()} if ema is not None else {}
    return {
        "model": (ema.module if ema is not None else model).state_dict(),
        **raw,
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
        "history": dataclasses.asdict(history if history is not None else History()),
    }
