"""``thermact train``: the action detector's training, top to bottom.

:func:`train` does, in order: validate the run directory, seed, load the dataset and the split
fold, compute the temperature normalisation on the training keyframes only, build the datasets,
model, loss and optimiser, optionally restore a checkpoint (:func:`resume_state`), then hands the
epochs to the loop shared with the person detector, :func:`thermact.engine.loop.fit`
(``forward → loss → backward → (accumulate) → clip → step`` with the LR of the pure schedule,
evaluation every ``eval.every_epochs``, ``last.pt`` / ``best.pt`` written atomically, Ctrl-C →
``interrupted.pt``). The action-specific pieces are :class:`ActionTask` and :func:`train_batch`.

Interaction head (``model.head.interaction``, AlphAction's IA structure): the run keeps a
:class:`~thermact.models.memory.FeatureBank` of pooled person features. Each step reads the memory
of its batch from the bank (features written by earlier steps: AlphAction's asynchronous memory),
trains, then writes the batch's detached features. The bank is saved in every checkpoint
(``memory``, plain tensors) and restored on resume. Validation never reads it (see
:func:`thermact.evaluation.evaluate.predict`).

Determinism: the batch order of epoch ``e`` comes from a generator seeded with ``(seed, e)`` and
each clip's augmentation from ``(seed, e, index)``; dropout draws from the global torch RNG,
whose state the checkpoint holds, and the loaders draw their own seeds from private generators.
Resuming from any checkpoint therefore reproduces the losses of an uninterrupted run exactly (on
the same device and thread count).
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from thermact.config import config_from_dict, config_to_dict, save_config
from thermact.data.annotations import Keyframe
from thermact.data.clips import ClipConfig
from thermact.data.dataset import ClipBatch, ClipDataset, collate_clips
from thermact.data.source import ThermalData, load_dataset
from thermact.data.splits import Fold, SplitDefinition, resolve_split
from thermact.data.transforms import Augment, NormStats, compute_norm_stats
from thermact.engine.checkpoint import load_checkpoint, restore_rng_state
from thermact.engine.config import OptimSection, RunConfig
from thermact.engine.distributed import DistContext, init_distributed, shutdown_distributed
from thermact.engine.loop import LoopSettings, Progress, TrainResult, fit, state_payload
from thermact.errors import CheckpointError, ConfigError, DataError
from thermact.evaluation.evaluate import EvalResult, merge_predictions, predict, score_predictions
from thermact.models.detector import ActionDetector
from thermact.models.factory import ModelConfig, build_model
from thermact.models.losses import ActionLoss, class_weights_from_counts
from thermact.models.memory import FeatureBank
from thermact.runtime import configure_cpu_math

# ---------------------------------------------------------------------------------------------
# Set-up helpers (each small and pure where it can be)


def select_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key 'device': cuda requested but no CUDA device is available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
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


def clip_config(cfg: RunConfig) -> ClipConfig:
    return ClipConfig(cfg.data.window_s, cfg.model.num_frames, cfg.data.keyframe_position)


def select_fold(split: SplitDefinition, index: int) -> Fold:
    if not 0 <= index < len(split.folds):
        names = ", ".join(f"{i}={f.name}" for i, f in enumerate(split.folds))
        raise ConfigError(f"config key 'data.fold': {index} out of range for split {split.name!r} ({names})")
    return split.folds[index]


def keyframes_by_id(data: ThermalData, ids: Sequence[str], role: str) -> list[Keyframe]:
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


def class_counts(keyframes: Sequence[Keyframe], num_classes: int) -> list[int]:
    counts = Counter(int(b.label) for k in keyframes for b in k.persons if b.label is not None)
    return [counts.get(c, 0) for c in range(num_classes)]


class EpochSampler(Sampler[int]):
    """Indices of one epoch: a permutation (or class-balanced draw) seeded by ``(seed, epoch)``.

    With ``num_replicas > 1`` (DDP) the epoch's order is padded to a multiple of the number of
    processes and rank ``r`` takes every ``num_replicas``-th index from position ``r``, like
    ``DistributedSampler``. ``start`` skips the first indices of this rank's share (used to resume
    in the middle of an epoch).
    """

    def __init__(
        self,
        num_items: int,
        seed: int,
        weights: Sequence[float] | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.num_items = num_items
        self.seed = seed
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.start = 0

    def order(self, epoch: int) -> list[int]:
        """This rank's indices for ``epoch`` (before skipping ``start``)."""
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        if self.weights is None:
            full = torch.randperm(self.num_items, generator=gen).tolist()
        else:
            full = torch.multinomial(self.weights, self.num_items, replacement=True, generator=gen).tolist()
        per_rank = math.ceil(len(full) / self.num_replicas)
        full = (full * self.num_replicas)[: per_rank * self.num_replicas]
        return full[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order(self.epoch)[self.start :])

    def __len__(self) -> int:
        return math.ceil(self.num_items / self.num_replicas) - self.start


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + num_replicas, ...`` in order: each process evaluates its share once."""

    def __init__(self, num_items: int, num_replicas: int = 1, rank: int = 0) -> None:
        self.indices = list(range(rank, num_items, num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def balanced_weights(keyframes: Sequence[Keyframe], counts: Sequence[int]) -> list[float]:
    """Sampling weight of each keyframe: mean over its persons of 1 / class count."""
    out = []
    for kf in keyframes:
        ws = [1.0 / max(1, counts[int(b.label)]) for b in kf.persons if b.label is not None]
        out.append(float(np.mean(ws)) if ws else 1e-6)
    return out


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


def freeze_backbone_stages(model: ActionDetector, num_stages: int) -> None:
    """Freeze the first ``num_stages`` top-level children of the backbone (stem counts as one)."""
    if num_stages <= 0:
        return
    children = list(model.backbone.children())
    for child in children[:num_stages]:
        for p in child.parameters():
            p.requires_grad_(False)


def make_loss(cfg: RunConfig, counts: Sequence[int]) -> ActionLoss:
    weights = None
    if cfg.loss.class_weights != "none":
        weights = class_weights_from_counts(counts, scheme=cfg.loss.class_weights)
    return ActionLoss(cfg.loss.kind, weights, label_smoothing=cfg.loss.label_smoothing, gamma=cfg.loss.gamma)


def loss_targets(loss: ActionLoss, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    if loss.multi_label:
        return torch.nn.functional.one_hot(labels, num_classes).float()
    return labels


def prepare_run_dir(run_dir: Path, exist_ok: bool, resume: str | None) -> Path:
    """Create ``run_dir``; refuse a non-empty one unless ``exist_ok`` or resuming."""
    if run_dir.exists() and any(run_dir.iterdir()) and not (exist_ok or resume):
        raise ConfigError(
            f"run directory {str(run_dir)!r} exists and is not empty; pass exist_ok=true, resume=PATH "
            "or another run_dir"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:  # a new run over an old one (exist_ok): nothing stale may survive
        for name in ("metrics.jsonl", "best.pt", "last.pt", "interrupted.pt", "losses.json"):
            (run_dir / name).unlink(missing_ok=True)
    return run_dir


def check_resume_compatible(
    ckpt: dict[str, Any], config: dict[str, Any], classes: Sequence[str], path: str
) -> None:
    """The checkpoint must have the same classes and the same ``model`` section as the config."""
    if ckpt["config"].get("task", "action") != config.get("task", "action"):
        raise ConfigError(
            f"{path}: checkpoint of task {ckpt['config'].get('task', 'action')!r}, not {config.get('task', 'action')!r}"
        )
    if list(ckpt["classes"]) != list(classes):
        raise ConfigError(f"{path}: checkpoint was trained on other classes ({len(ckpt['classes'])} classes)")
    saved_model = _normalised_model(ckpt["config"].get("model", {}))
    now_model = _normalised_model(config["model"])
    diffs = [k for k in now_model if k != "pretrained" and saved_model.get(k) != now_model[k]]
    if diffs:
        raise ConfigError(
            f"{path}: the config contradicts the checkpoint in model.{diffs[0]} "
            f"(checkpoint: {saved_model.get(diffs[0])!r}, config: {now_model[diffs[0]]!r})"
        )


def _normalised_model(section: Any) -> Any:
    """A ``model`` config section with every default filled in (so that a checkpoint written before
    a key existed compares equal to a config that leaves the key at its default)."""
    try:
        return config_to_dict(config_from_dict(ModelConfig, section))
    except ConfigError:
        return section


def resume_state(
    path: str,
    device: torch.device,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    config: dict[str, Any],
    classes: Sequence[str],
    bank: FeatureBank | None = None,
) -> Progress:
    """Load a checkpoint's model, optimiser, scaler, RNG and memory-bank states; return its progress."""
    ckpt = load_checkpoint(path, map_location=device)
    check_resume_compatible(ckpt, config, classes, path)
    model.load_state_dict(ckpt["model"])
    if bank is not None:
        if "memory" not in ckpt:
            raise CheckpointError(
                f"{path}: checkpoint of an interaction model lacks its memory bank ('memory')"
            )
        bank.load_state_dict(ckpt["memory"], where=f"{path}: memory")
    optimizer.load_state_dict(ckpt["optimizer"])
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    restore_rng_state(ckpt["rng"])
    return Progress(**ckpt["progress"])


def start_run(
    cfg: Any, ctx: DistContext, dist_device: torch.device | None
) -> tuple[Path, torch.device, torch.dtype | None, dict[str, Any]]:
    """What every trainer does first: run directory (rank 0), seeds, device and autocast dtype.
    ``cfg`` is a run config dataclass with the common top-level keys (``run_dir``, ``exist_ok``,
    ``resume``, ``seed``, ``deterministic``, ``device``, ``amp``). Returns ``(run_dir, device,
    amp_dtype, config as a plain dict)``; the config file is written by :func:`resume_or_start`."""
    run_dir = Path(cfg.run_dir)
    if ctx.is_main:
        prepare_run_dir(run_dir, cfg.exist_ok, cfg.resume)
    ctx.barrier()
    seed_everything(cfg.seed + ctx.rank, cfg.deterministic)
    device = dist_device if dist_device is not None else select_device(cfg.device)
    amp_dtype = autocast_dtype(cfg.amp, device)
    return run_dir, device, amp_dtype, config_to_dict(cfg)


def resume_or_start(
    cfg: Any,
    ctx: DistContext,
    run_dir: Path,
    device: torch.device,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    config: dict[str, Any],
    classes: Sequence[str],
    bank: FeatureBank | None = None,
) -> Progress:
    """The progress to start from: ``cfg.resume``'s (see :func:`resume_state`) or a fresh one.
    Only then is ``config.yaml`` written, so a run that cannot start (a missing or incompatible
    checkpoint) leaves nothing in its run directory."""
    progress = Progress()
    if cfg.resume:
        progress = resume_state(cfg.resume, device, model, optimizer, scaler, config, classes, bank)
        if ctx.is_main:
            print(f"resumed from {cfg.resume} at epoch {progress.epoch + 1}, step {progress.step}")
    if ctx.is_main:
        save_config(cfg, run_dir / "config.yaml")
    return progress


def loop_settings(optim: OptimSection, log_every: int, eval_every: int, metric: str) -> LoopSettings:
    return LoopSettings(
        epochs=optim.epochs,
        batch_size=optim.batch_size,
        accumulate=optim.accumulate,
        lr=optim.lr,
        min_lr=optim.min_lr,
        warmup_epochs=optim.warmup_epochs,
        clip_grad_norm=optim.clip_grad_norm,
        log_every=log_every,
        eval_every=eval_every,
        metric=metric,
    )


def wrap_ddp(model: nn.Module, device: torch.device, ctx: DistContext) -> nn.Module:
    if not ctx.enabled:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


# ---------------------------------------------------------------------------------------------
# Main loop


@dataclasses.dataclass
class TrainData:
    """The data side of a run: split fold, datasets, loaders, class counts and normalisation."""

    data: ThermalData
    fold: Fold
    train_set: ClipDataset
    val_set: ClipDataset
    train_loader: DataLoader[Any]
    val_loader: DataLoader[Any]
    sampler: EpochSampler
    counts: list[int]
    norm: NormStats


def build_train_data(cfg: RunConfig, ctx: DistContext) -> TrainData:
    """Load the dataset and the fold; normalisation from the training keyframes only."""
    data = load_dataset(cfg.data.root, lenient=cfg.data.lenient)
    if cfg.model.num_classes != len(data.classes):
        raise ConfigError(
            f"config key 'model.num_classes': {cfg.model.num_classes} but the dataset has {len(data.classes)} classes"
        )
    clip = clip_config(cfg)
    fold = select_fold(resolve_split(data, cfg.data.split, clip), cfg.data.fold)
    train_kfs = [k for k in keyframes_by_id(data, fold.train, "training") if k.persons]
    val_kfs = keyframes_by_id(data, fold.test, "validation")
    counts = class_counts(train_kfs, len(data.classes))
    val_counts = class_counts(val_kfs, len(data.classes))
    unseen = [data.classes.names[c] for c in range(len(counts)) if val_counts[c] and not counts[c]]
    if unseen and ctx.is_main:
        print(
            f"warning: classes in validation but absent from training: {', '.join(unseen)}", file=sys.stderr
        )
    norm = compute_norm_stats(data.recordings, train_kfs, clip, cfg.data.normalize)
    augment = None
    if cfg.augment.enabled:
        a = cfg.augment
        augment = Augment(a.p_hflip, a.p_vflip, a.p_rot180, a.offset_c, a.gain, a.box_jitter)
    train_set = ClipDataset.from_data(data, train_kfs, clip, norm=norm, augment=augment, seed=cfg.seed)
    val_set = ClipDataset.from_data(data, val_kfs, clip, norm=norm)
    weights = balanced_weights(train_kfs, counts) if cfg.loss.sampler == "balanced" else None
    sampler = EpochSampler(len(train_set), cfg.seed, weights, ctx.world_size, ctx.rank)
    val_sampler = ShardSampler(len(val_set), ctx.world_size, ctx.rank)
    # Own generators: a DataLoader draws its workers' base seed from the global RNG otherwise, which
    # would make the dropout draws depend on how often a loader was (re)started, breaking resume.
    loader_kw: dict[str, Any] = {"collate_fn": collate_clips, "num_workers": cfg.data.num_workers}
    train_loader = DataLoader(
        train_set,
        batch_size=cfg.optim.batch_size,
        sampler=sampler,
        generator=torch.Generator().manual_seed(cfg.seed),
        **loader_kw,
    )
    val_loader = DataLoader(
        val_set,
        batch_size=cfg.optim.batch_size,
        sampler=val_sampler,
        generator=torch.Generator().manual_seed(cfg.seed),
        **loader_kw,
    )
    return TrainData(data, fold, train_set, val_set, train_loader, val_loader, sampler, counts, norm)


def evaluate(
    model: nn.Module,
    loader: DataLoader[Any],
    device: torch.device,
    cfg: RunConfig,
    amp_dtype: torch.dtype | None,
    ctx: DistContext,
) -> EvalResult | None:
    """Validation metrics on rank 0 from the predictions of every rank (None on other ranks)."""
    preds = predict(model, loader, device, mode=cfg.model.head.mode, autocast_dtype=amp_dtype)
    shards = ctx.gather(preds)
    if not ctx.is_main:
        return None
    return score_predictions(merge_predictions(shards), cfg.model.num_classes)


class ActionTask:
    """The action detector's side of :func:`thermact.engine.loop.fit`."""

    def __init__(
        self,
        td: TrainData,
        loss_fn: ActionLoss,
        cfg: RunConfig,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        scaler: torch.amp.GradScaler | None,
        ctx: DistContext,
        bank: FeatureBank | None = None,
    ) -> None:
        self.td, self.loss_fn, self.cfg, self.device = td, loss_fn, cfg, device
        self.amp_dtype, self.scaler, self.ctx = amp_dtype, scaler, ctx
        self.bank = bank
        self.sampler = td.sampler
        self.train_loader = td.train_loader

    def set_epoch(self, epoch: int) -> None:
        self.td.train_set.set_epoch(epoch)

    def train_step(self, net: nn.Module, batch: ClipBatch) -> tuple[float, dict[str, float]]:
        loss = train_batch(
            net, self.loss_fn, batch, self.device, self.amp_dtype, self.scaler, self.cfg, self.bank
        )
        return loss, {}

    def evaluate(self, net: nn.Module) -> dict[str, Any] | None:
        result = evaluate(net, self.td.val_loader, self.device, self.cfg, self.amp_dtype, self.ctx)
        return dict(result.summary()) if result is not None else None

    def batch_size_of(self, batch: ClipBatch) -> int:
        return len(batch)


def train(cfg: RunConfig, max_steps: int | None = None) -> TrainResult:
    """Train an action detector as ``cfg`` says; return where everything went.

    ``max_steps`` stops after that many optimiser steps as if interrupted (used by tests to
    simulate Ctrl-C at a known point).
    """
    configure_cpu_math()
    ctx, dist_device = init_distributed(cfg.device)
    try:
        return _train(cfg, ctx, dist_device, max_steps)
    finally:
        shutdown_distributed(ctx)


def _train(
    cfg: RunConfig, ctx: DistContext, dist_device: torch.device | None, max_steps: int | None
) -> TrainResult:
    run_dir, device, amp_dtype, config = start_run(cfg, ctx, dist_device)
    td = build_train_data(cfg, ctx)

    model = build_model(cfg.model, verbose=ctx.is_main, keyframe_position=cfg.data.keyframe_position).to(
        device
    )
    freeze_backbone_stages(model, cfg.optim.freeze_stages)
    net = wrap_ddp(model, device, ctx)
    loss_fn = make_loss(cfg, td.counts).to(device)
    optimizer = make_optimizer(model, cfg.optim)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    classes = td.data.classes.names
    bank = model.new_memory_bank() if model.interaction is not None else None
    progress = resume_or_start(cfg, ctx, run_dir, device, model, optimizer, scaler, config, classes, bank)
    if ctx.is_main:
        print(
            f"training {cfg.model.name} on {len(td.train_set)} keyframes ({sum(td.counts)} boxes), validating on "
            f"{len(td.val_set)}; split {cfg.data.split} fold {td.fold.name}; device {device}"
            + (f" x {ctx.world_size} processes" if ctx.enabled else "")
        )

    def payload(progress: Progress, metrics: dict[str, Any] | None) -> dict[str, Any]:
        out = state_payload(model, optimizer, scaler, progress, config, classes, td.norm.to_dict(), metrics)
        if bank is not None:
            out["memory"] = bank.state_dict()
        return out

    task = ActionTask(td, loss_fn, cfg, device, amp_dtype, scaler, ctx, bank)
    settings = loop_settings(cfg.optim, cfg.log_every, cfg.eval.every_epochs, cfg.eval.metric)
    tb = _tensorboard(run_dir) if ctx.is_main else None
    return fit(task, net, model, optimizer, scaler, settings, progress, run_dir, ctx, payload, max_steps, tb)


def train_batch(
    model: nn.Module,
    loss_fn: ActionLoss,
    batch: ClipBatch,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    scaler: torch.amp.GradScaler | None,
    cfg: RunConfig,
    bank: FeatureBank | None = None,
) -> float:
    """Forward and backward of one batch (gradients accumulate); returns the loss value.

    With a memory ``bank`` (interaction models): the batch's memory is read from the bank before
    the forward pass and its detached pooled features are written after the backward pass.
    """
    clip, rois, labels = batch.frames.to(device), batch.rois.to(device), batch.labels.to(device)
    if rois.shape[0] == 0:
        return 0.0
    batch_index = batch.rois[:, 0].to(torch.int64)
    memory = None
    if bank is not None:
        memory = bank.gather(batch.recording_ids, batch.keyframe_ms, batch_index, batch.track_ids, device)
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        if bank is None:
            logits = model(clip, rois)
        else:
            logits, pooled = model(clip, rois, memory=memory, return_pooled=True)
    loss = loss_fn(logits.float(), loss_targets(loss_fn, labels, cfg.model.num_classes))
    scaled = loss / cfg.optim.accumulate
    if scaler is not None:
        scaler.scale(scaled).backward()
    else:
        scaled.backward()
    if bank is not None:
        bank.write(batch.recording_ids, batch.keyframe_ms, pooled.detach(), batch_index, batch.track_ids)
    return float(loss.detach())


def _tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))
