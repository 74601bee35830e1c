"""The one skeleton of every training run, whatever the task.

:func:`train` does, in order: start the process group (``torchrun``) or not, prepare the run
directory, seed, pick the device and the autocast dtype, let the task build its run (data of the
split fold, model, loss, validation: :meth:`thermact.engine.task.Task.build`), wrap the model for
DDP, build the optimiser, resume from a checkpoint or start afresh, write ``config.yaml``, then hand
the epochs to :func:`thermact.engine.loop.fit` (forward, backward, step; evaluation; checkpoints).

The helpers are small and usable alone: :func:`select_device`, :func:`autocast_dtype`,
:func:`seed_everything`, :func:`make_optimizer`, :func:`prepare_run_dir`, :func:`resume_state`,
and the data-side :func:`select_fold` / :func:`keyframes_by_id` the tasks share.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from thermact.config import config_from_dict, config_to_dict, save_config
from thermact.data.annotations import Keyframe
from thermact.data.source import ThermalData
from thermact.data.splits import Fold, SplitDefinition
from thermact.engine.checkpoint import load_checkpoint, restore_rng_state
from thermact.engine.config import DataSection, OptimSection, RunSection
from thermact.engine.distributed import DistContext, init_distributed, shutdown_distributed, wrap_ddp
from thermact.engine.ema import WeightAverage
from thermact.engine.loop import History, JsonlLog, LoopSettings, Progress, TrainResult, fit, state_payload
from thermact.engine.samplers import EpochSampler, ShardSampler
from thermact.engine.task import Task, TaskRun
from thermact.errors import CheckpointError, ConfigError, DataError
from thermact.io import DirectoryLock, remove_stale_temporaries
from thermact.logs import log_file
from thermact.runtime import configure_cpu_math

logger = logging.getLogger(__name__)

__all__ = [
    "RunConfigLike",
    "autocast_dtype",
    "keyframes_by_id",
    "make_loaders",
    "make_optimizer",
    "prepare_run_dir",
    "resume_state",
    "seed_everything",
    "select_device",
    "select_fold",
    "train",
]


class RunConfigLike(Protocol):
    """What :func:`train` reads of a task's run config (both embed :class:`RunSection`)."""

    @property
    def task(self) -> str: ...
    @property
    def run(self) -> RunSection: ...
    @property
    def data(self) -> DataSection: ...
    @property
    def optim(self) -> OptimSection: ...
    @property
    def model(self) -> Any: ...
    @property
    def eval(self) -> Any:
        """A section with ``every_epochs``."""


ConfigT = TypeVar("ConfigT", bound=RunConfigLike)


# ---------------------------------------------------------------------------------------------
# Device, precision, seeds


def select_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu`` or ``cuda`` (a :class:`ConfigError` without CUDA)."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key 'device': cuda requested but no CUDA device is available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``amp`` (``none``, ``bf16`` or ``fp16``, the last on CUDA only)."""
    if amp == "none":
        return None
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("config key 'amp': fp16 autocast needs CUDA; use bf16 on CPU")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


# ---------------------------------------------------------------------------------------------
# Data side (shared by the tasks)


def select_fold(split: SplitDefinition, index: int) -> Fold:
    """Fold ``index`` of ``split`` (a :class:`ConfigError` naming ``data.fold`` and the folds)."""
    if not 0 <= index < len(split.folds):
        names = ", ".join(f"{i}={f.name}" for i, f in enumerate(split.folds))
        raise ConfigError(f"config key 'data.fold': {index} out of range for split {split.name!r} ({names})")
    return split.folds[index]


def keyframes_by_id(data: ThermalData, ids: Sequence[str], role: str) -> list[Keyframe]:
    """The keyframes of ``ids`` in that order (a :class:`DataError` for unknown ids or none)."""
    index = {k.keyframe_id: k for k in data.keyframes}
    missing = [i for i in ids if i not in index]
    if missing:
        raise DataError(
            f"{role} keyframes not in the dataset: {missing[:5]}{' ...' if len(missing) > 5 else ''}"
        )
    chosen = [index[i] for i in ids]
    if not chosen:
        raise DataError(f"the {role} side of the split is empty")
    return chosen


def make_loaders(
    train_set: Dataset[Any],
    val_set: Dataset[Any],
    collate: Callable[[list[Any]], Any],
    sampler: EpochSampler,
    batch_size: int,
    cfg: RunConfigLike,
    ctx: DistContext,
) -> tuple[DataLoader[Any], DataLoader[Any]]:
    """The training loader (batches drawn through ``sampler``) and the validation loader (this
    rank's shard, in order). Both draw their worker seeds from private generators: a DataLoader
    otherwise takes them from the global RNG, which would make the dropout draws depend on how
    often a loader was (re)started, breaking exact resume."""
    kw: dict[str, Any] = {
        "collate_fn": collate,
        "num_workers": cfg.data.num_workers,
        "batch_size": batch_size,
    }
    seed = cfg.run.seed
    train = DataLoader(train_set, sampler=sampler, generator=torch.Generator().manual_seed(seed), **kw)
    shard = ShardSampler(len(val_set), ctx.world_size, ctx.rank)  # type: ignore[arg-type]
    val = DataLoader(val_set, sampler=shard, generator=torch.Generator().manual_seed(seed), **kw)
    return train, val


# ---------------------------------------------------------------------------------------------
# Optimiser


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and normalisation parameters (1-D tensors)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, optim: OptimSection) -> torch.optim.Optimizer:
    groups = param_groups(model, optim.weight_decay)
    if optim.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=optim.lr)


# ---------------------------------------------------------------------------------------------
# Run directory, resume


def prepare_run_dir(run_dir: Path, exist_ok: bool, resume: str | None) -> Path:
    """Create ``run_dir``; refuse a non-empty one unless ``exist_ok`` or resuming, and one that
    cannot be created or written (naming it); remove what a previous run over it left."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"config key 'run_dir': {str(run_dir)!r} exists and is not a directory")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not (exist_ok or resume):
        raise ConfigError(
            f"run directory {str(run_dir)!r} exists and is not empty; pass exist_ok=true, resume=PATH "
            "or another run_dir"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"config key 'run_dir': cannot write to {str(run_dir)!r}: {err.strerror or err}"
        ) from err
    return run_dir


def clear_previous_run(run_dir: Path) -> None:
    """A new run over an old one (``exist_ok``): nothing stale may survive (call holding the lock)."""
    for name in ("metrics.jsonl", "best.pt", "last.pt", "interrupted.pt", "losses.json", "log.txt"):
        (run_dir / name).unlink(missing_ok=True)


RESUMABLE = {"model": ("pretrained",), "data": ("num_workers", "lenient"), "augment": (), "loss": ()}
"""The config sections a resumed run must share with its checkpoint, and the keys in them that may differ."""


def check_resume_compatible(
    ckpt: dict[str, Any], cfg: RunConfigLike, classes: Sequence[str], path: str
) -> None:
    """The checkpoint must be of the same task and classes as ``cfg``, and trained on the same
    model, data, augmentation and loss (:data:`RESUMABLE`)."""
    saved_task = ckpt["config"].get("task", "action")
    if saved_task != cfg.task:
        raise ConfigError(f"{path}: checkpoint of task {saved_task!r}, not {cfg.task!r}")
    if list(ckpt["classes"]) != list(classes):
        raise ConfigError(f"{path}: checkpoint was trained on other classes ({len(ckpt['classes'])} classes)")
    for section, free in RESUMABLE.items():
        now = getattr(cfg, section, None)
        if now is None:
            continue
        saved = _normalised(type(now), ckpt["config"].get(section, {}))
        current = config_to_dict(now)
        diffs = [k for k in current if k not in free and saved.get(k) != current[k]]
        if diffs:
            raise ConfigError(
                f"{path}: the config contradicts the checkpoint in {section}.{diffs[0]} "
                f"(checkpoint: {saved.get(diffs[0])!r}, config: {current[diffs[0]]!r})"
            )


def _normalised(section_type: type[Any], section: Any) -> Any:
    """A config section with every default filled in (so that a checkpoint written before a key
    existed compares equal to a config that leaves the key at its default)."""
    try:
        return config_to_dict(config_from_dict(section_type, section))
    except ConfigError:
        return section


def resume_state(
    path: str,
    device: torch.device,
    cfg: RunConfigLike,
    run: TaskRun,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    ema: WeightAverage | None = None,
) -> tuple[Progress, History]:
    """Load a checkpoint's model (and weight average), optimiser, scaler, RNG and task states;
    return its progress and history."""
    ckpt = load_checkpoint(path, map_location=device)
    check_resume_compatible(ckpt, cfg, run.classes, path)
    saved_decay = ckpt["config"].get("optim", {}).get("ema_decay")
    if saved_decay != cfg.optim.ema_decay:
        raise ConfigError(
            f"{path}: the config contradicts the checkpoint in optim.ema_decay "
            f"(checkpoint: {saved_decay!r}, config: {cfg.optim.ema_decay!r})"
        )
    try:
        run.model.load_state_dict(ckpt["raw_model"] if ema is not None else ckpt["model"])
        if ema is not None:
            ema.module.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        detail = " ".join(str(err).strip().splitlines()[:2])
        raise CheckpointError(
            f"{path}: its weights or optimiser state do not fit the run's model: {detail}"
        ) from None
    run.load_state_dict(ckpt, path)
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    restore_rng_state(ckpt["rng"])
    history = History(**ckpt["history"]) if isinstance(ckpt.get("history"), dict) else History()
    return Progress(**ckpt["progress"]), history


def loop_settings(cfg: RunConfigLike, eval_every: int, metric: str) -> LoopSettings:
    o = cfg.optim
    return LoopSettings(
        epochs=o.epochs,
        batch_size=o.batch_size,
        accumulate=o.accumulate,
        lr=o.lr,
        min_lr=o.min_lr,
        warmup_epochs=o.warmup_epochs,
        clip_grad_norm=o.clip_grad_norm,
        log_every=cfg.run.log_every,
        eval_every=eval_every,
        metric=metric,
    )


def _tensorboard(run_dir: Path, resumed_at: int | None) -> Any:
    """A ``SummaryWriter`` in ``run_dir/tensorboard``; on resume the events after the checkpoint's
    step are purged, so the history reads as one run (None without the optional tensorboard)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # optional extra
    except ImportError:
        return None
    purge = None if resumed_at is None else resumed_at + 1
    return SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge)


# ---------------------------------------------------------------------------------------------
# The run


def train(task: Task[ConfigT, Any], cfg: ConfigT, max_steps: int | None = None) -> TrainResult:
    """Train ``task`` as ``cfg`` says (see the module docstring); return where everything went.

    ``max_steps`` stops after that many optimiser steps as if interrupted (tests simulate Ctrl-C).
    """
    configure_cpu_math()
    ctx, dist_device = init_distributed(cfg.run.device)
    try:
        result = _train(task, cfg, ctx, dist_device, max_steps)
        ctx.barrier()  # every rank done before any tears its process group down (gloo aborts otherwise)
        return result
    finally:
        shutdown_distributed(ctx)


def _train(
    task: Task[ConfigT, Any],
    cfg: ConfigT,
    ctx: DistContext,
    dist_device: torch.device | None,
    max_steps: int | None,
) -> TrainResult:
    r = cfg.run
    run_dir = Path(r.run_dir)
    if r.resume and run_dir.resolve() != Path(r.resume).resolve().parent:
        raise ConfigError(
            f"config key 'run_dir': a resumed run continues in its checkpoint's directory "
            f"{str(Path(r.resume).parent)!r}, not {str(run_dir)!r}"
        )
    created = not run_dir.exists()
    if ctx.is_main:
        prepare_run_dir(run_dir, r.exist_ok, r.resume)
    ctx.barrier()
    try:
        with DirectoryLock(run_dir) if ctx.is_main else contextlib.nullcontext():
            if ctx.is_main:
                remove_stale_temporaries(run_dir)
            return _run(task, cfg, ctx, dist_device, max_steps, run_dir)
    except BaseException:
        if created and ctx.is_main and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # a run that could not start leaves no empty directory behind
        raise


def _run(
    task: Task[ConfigT, Any],
    cfg: ConfigT,
    ctx: DistContext,
    dist_device: torch.device | None,
    max_steps: int | None,
    run_dir: Path,
) -> TrainResult:
    r = cfg.run
    seed_everything(r.seed + ctx.rank, r.deterministic)
    device = dist_device if dist_device is not None else select_device(r.device)
    amp_dtype = autocast_dtype(r.amp, device)

    run = task.build(cfg, ctx, device, amp_dtype)
    net = wrap_ddp(run.model, device, ctx)
    optimizer = make_optimizer(run.model, cfg.optim)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    decay = cfg.optim.ema_decay
    ema = WeightAverage(run.model, decay) if decay is not None else None
    progress, history = Progress(), History()
    if r.resume:  # before config.yaml: a run that cannot resume leaves its directory as it was
        progress, history = resume_state(r.resume, device, run.cfg, run, optimizer, scaler, ema)
    config = config_to_dict(run.cfg)
    if ctx.is_main:
        if r.resume:
            JsonlLog(run_dir / "metrics.jsonl").truncate_after(progress.step)
        else:
            clear_previous_run(run_dir)
    with log_file(run_dir / "log.txt") if ctx.is_main else contextlib.nullcontext():
        if ctx.is_main:
            if r.resume:
                logger.info(
                    "resumed from %s at epoch %d, step %d", r.resume, progress.epoch + 1, progress.step
                )
            save_config(run.cfg, run_dir / "config.yaml")
            extra = f" x {ctx.world_size} processes" if ctx.enabled else ""
            logger.info("%s; device %s%s", run.summary, device, extra)
            logger.debug("seed %d, autocast %s, run directory %s", r.seed, amp_dtype, run_dir)

        def payload(progress: Progress, history: History, metrics: dict[str, Any] | None) -> dict[str, Any]:
            state = state_payload(
                run.model, optimizer, scaler, progress, config, run.classes, run.norm, metrics, history, ema
            )
            return {**state, "clip": dataclasses.asdict(run.clip), **run.state_dict()}

        settings = loop_settings(cfg, cfg.eval.every_epochs, run.metric)
        tb = _tensorboard(run_dir, progress.step if r.resume else None) if ctx.is_main else None
        return fit(
            run,
            net,
            optimizer,
            scaler,
            settings,
            progress,
            history,
            run_dir,
            ctx,
            payload,
            max_steps,
            tb,
            ema,
        )
