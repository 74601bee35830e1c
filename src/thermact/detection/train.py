"""``thermact train`` with ``task: detector``: the person-detector training loop, top to bottom.

:func:`train_detector` does, in order: validate the run directory, seed, load the dataset and the
split fold, compute the temperature normalisation on the training keyframes' causal clips only,
build the datasets, model, loss and optimiser, optionally restore a checkpoint, then run epochs of
``forward → encode targets → loss → backward → (accumulate) → clip → step`` with the LR from the
pure schedule :func:`thermact.engine.schedule.lr_at`. Every ``eval.every_epochs`` it measures
person AP@0.5 on the fold's test keyframes and writes ``best.pt`` (best person AP) and ``last.pt``
atomically; Ctrl-C writes ``interrupted.pt`` (resumable mid-epoch).

The helpers (run directory, seeding, samplers, logging, optimiser step, checkpoint payload, resume
checks, DDP context) are those of the action loop, :mod:`thermact.engine.train`; determinism and
exact resume work the same way: the batch order of epoch ``e`` comes from ``(seed, e)``, each
clip's augmentation from ``(seed, e, index)``, and the checkpoint holds the RNG states.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from thermact.data.annotations import Keyframe
from thermact.data.source import ThermalData, load_dataset
from thermact.data.splits import Fold, resolve_split
from thermact.data.transforms import Augment, NormStats, compute_norm_stats
from thermact.detection.config import (
    DETECTOR_CLASSES,
    DetectorRunConfig,
    build_detector,
)
from thermact.detection.dataset import (
    DetectionBatch,
    DetectionClipDataset,
    collate_detection,
    detection_clip,
)
from thermact.detection.decode import Detections, decode
from thermact.detection.loss import CenterNetLoss
from thermact.detection.metrics import DetectionMetrics, detection_metrics
from thermact.detection.model import DetectorOutput, PersonDetectorNet
from thermact.detection.targets import encode_batch
from thermact.engine.distributed import DistContext, init_distributed, shutdown_distributed
from thermact.engine.loop import Progress, TrainResult, fit, state_payload
from thermact.engine.train import (
    EpochSampler,
    ShardSampler,
    keyframes_by_id,
    loop_settings,
    make_optimizer,
    resume_or_start,
    select_fold,
    start_run,
    wrap_ddp,
)
from thermact.runtime import configure_cpu_math

__all__ = ["DetectorTrainData", "predict_detections", "train_detector"]


@dataclasses.dataclass
class DetectorTrainData:
    """The data side of a detector run."""

    data: ThermalData
    fold: Fold
    train_set: DetectionClipDataset
    val_keyframes: list[Keyframe]
    train_loader: DataLoader[Any]
    val_loader: DataLoader[Any]
    sampler: EpochSampler
    norm: NormStats


def build_detector_data(cfg: DetectorRunConfig, ctx: DistContext) -> DetectorTrainData:
    """Dataset, fold, normalisation (training keyframes only), datasets and loaders."""
    data = load_dataset(cfg.data.root, lenient=cfg.data.lenient)
    clip = detection_clip(cfg.model.num_frames, cfg.data.window_s)
    fold = select_fold(resolve_split(data, cfg.data.split, clip), cfg.data.fold)
    train_kfs = keyframes_by_id(data, fold.train, "training")
    val_kfs = keyframes_by_id(data, fold.test, "validation")
    norm = compute_norm_stats(data.recordings, train_kfs, clip)
    augment = None
    if cfg.augment.enabled:
        a = cfg.augment
        augment = Augment(a.p_hflip, a.p_vflip, a.p_rot180, a.offset_c, a.gain, a.box_jitter)
    with_others = cfg.loss.with_others
    train_set = DetectionClipDataset(
        data.recordings, train_kfs, clip, norm, augment, with_others=with_others, seed=cfg.seed
    )
    val_set = DetectionClipDataset(data.recordings, val_kfs, clip, norm)
    sampler = EpochSampler(len(train_set), cfg.seed, None, ctx.world_size, ctx.rank)
    loader_kw: dict[str, Any] = {"collate_fn": collate_detection, "num_workers": cfg.data.num_workers}
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
        sampler=ShardSampler(len(val_set), ctx.world_size, ctx.rank),
        generator=torch.Generator().manual_seed(cfg.seed),
        **loader_kw,
    )
    return DetectorTrainData(data, fold, train_set, val_kfs, train_loader, val_loader, sampler, norm)


@torch.no_grad()
def predict_detections(
    model: nn.Module,
    loader: DataLoader[Any],
    device: torch.device,
    stride: int,
    top_k: int = 20,
    min_score: float = 0.01,
    nms_iou: float = 0.5,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, Detections]:
    """Keyframe id → decoded detections (on the CPU) for every batch of ``loader`` (eval mode)."""
    was_training = model.training
    model.eval()
    out: dict[str, Detections] = {}
    try:
        for batch in loader:
            frames = batch.frames.to(device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                raw: DetectorOutput = model(frames)
            size = (int(frames.shape[-2]), int(frames.shape[-1]))
            for key, dets in zip(
                batch.keyframe_ids, decode(raw, stride, size, top_k, min_score, nms_iou), strict=True
            ):
                out[key] = Detections(dets.boxes.cpu(), dets.scores.cpu(), dets.labels.cpu())
    finally:
        model.train(was_training)
    return out


def evaluate_detector(
    net: nn.Module,
    td: DetectorTrainData,
    device: torch.device,
    cfg: DetectorRunConfig,
    stride: int,
    amp_dtype: torch.dtype | None,
    ctx: DistContext,
) -> DetectionMetrics | None:
    """Person AP etc. on rank 0 from the detections of every rank (None on the other ranks)."""
    e = cfg.eval
    dets = predict_detections(net, td.val_loader, device, stride, e.top_k, e.min_score, e.nms_iou, amp_dtype)
    shards = ctx.gather(dets)
    if not ctx.is_main:
        return None
    merged: dict[str, Detections] = {}
    for shard in shards:
        merged.update(shard)
    return detection_metrics(merged, td.val_keyframes, e.score_threshold)


def train_detector_batch(
    model: nn.Module,
    loss_fn: CenterNetLoss,
    batch: DetectionBatch,
    device: torch.device,
    stride: int,
    num_classes: int,
    amp_dtype: torch.dtype | None,
    scaler: torch.amp.GradScaler | None,
    accumulate: int,
) -> tuple[float, dict[str, float]]:
    """Forward and backward of one batch (gradients accumulate); the loss value and its parts."""
    frames = batch.frames.to(device)
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        out: DetectorOutput = model(frames)
    h, w = int(out.heatmap.shape[-2]), int(out.heatmap.shape[-1])
    targets = encode_batch(batch.boxes, batch.labels, num_classes, (h, w), stride).to(device)
    loss, parts = loss_fn(out, targets)
    scaled = loss / accumulate
    if scaler is not None:
        scaler.scale(scaled).backward()
    else:
        scaled.backward()
    return float(loss.detach()), parts


class DetectorTask:
    """The person detector's side of :func:`thermact.engine.loop.fit`."""

    def __init__(
        self,
        td: DetectorTrainData,
        loss_fn: CenterNetLoss,
        cfg: DetectorRunConfig,
        stride: int,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        scaler: torch.amp.GradScaler | None,
        ctx: DistContext,
    ) -> None:
        self.td, self.loss_fn, self.cfg, self.stride = td, loss_fn, cfg, stride
        self.device, self.amp_dtype, self.scaler, self.ctx = device, amp_dtype, scaler, ctx
        self.sampler = td.sampler
        self.train_loader = td.train_loader

    def set_epoch(self, epoch: int) -> None:
        self.td.train_set.set_epoch(epoch)

    def train_step(self, net: nn.Module, batch: DetectionBatch) -> tuple[float, dict[str, float]]:
        return train_detector_batch(
            net, self.loss_fn, batch, self.device, self.stride, self.cfg.model.num_classes, self.amp_dtype,
            self.scaler, self.cfg.optim.accumulate,
        )  # fmt: skip

    def evaluate(self, net: nn.Module) -> dict[str, Any] | None:
        result = evaluate_detector(net, self.td, self.device, self.cfg, self.stride, self.amp_dtype, self.ctx)
        return dict(result.summary()) if result is not None else None

    def batch_size_of(self, batch: DetectionBatch) -> int:
        return int(batch.frames.shape[0])


def train_detector(cfg: DetectorRunConfig, max_steps: int | None = None) -> TrainResult:
    """Train the person detector as ``cfg`` says; return where everything went.

    ``max_steps`` stops after that many optimiser steps as if interrupted (tests simulate Ctrl-C).
    """
    configure_cpu_math()
    ctx, dist_device = init_distributed(cfg.device)
    try:
        return _train_detector(cfg, ctx, dist_device, max_steps)
    finally:
        shutdown_distributed(ctx)


def _train_detector(
    cfg: DetectorRunConfig, ctx: DistContext, dist_device: torch.device | None, max_steps: int | None
) -> TrainResult:
    run_dir, device, amp_dtype, config = start_run(cfg, ctx, dist_device)
    td = build_detector_data(cfg, ctx)

    model: PersonDetectorNet = build_detector(cfg.model).to(device)
    net = wrap_ddp(model, device, ctx)
    loss_fn = CenterNetLoss(cfg.loss.size_weight, cfg.loss.offset_weight)
    optimizer = make_optimizer(model, cfg.optim)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    progress = resume_or_start(cfg, ctx, run_dir, device, model, optimizer, scaler, config, DETECTOR_CLASSES)
    if ctx.is_main:
        n_persons = sum(len(k.persons) for k in td.train_set.keyframes)
        n_others = sum(len(k.others) for k in td.train_set.keyframes) if cfg.loss.with_others else 0
        print(
            f"training {cfg.model.name} on {len(td.train_set)} keyframes ({n_persons} persons, {n_others} "
            f"non-person boxes), validating on {len(td.val_keyframes)}; split {cfg.data.split} fold "
            f"{td.fold.name}; device {device}" + (f" x {ctx.world_size} processes" if ctx.enabled else "")
        )

    def payload(progress: Progress, metrics: dict[str, Any] | None) -> dict[str, Any]:
        norm = td.norm.to_dict()
        return state_payload(model, optimizer, scaler, progress, config, DETECTOR_CLASSES, norm, metrics)

    task = DetectorTask(td, loss_fn, cfg, model.stride, device, amp_dtype, scaler, ctx)
    settings = loop_settings(cfg.optim, cfg.log_every, cfg.eval.every_epochs, "person_ap")
    return fit(task, net, model, optimizer, scaler, settings, progress, run_dir, ctx, payload, max_steps)
