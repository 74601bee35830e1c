"""The person detector as a task: its run config, data, loss, validation, restore.

:data:`PERSON` implements :class:`thermact.engine.task.Task`; :func:`thermact.engine.run.train`
runs it (``thermact train`` with ``task: detector``). One run (:class:`DetectorRun`): the dataset
and the split fold, the normalisation from the training keyframes' causal clips only, causal
detection clips ending at each keyframe with its person boxes and (``loss.with_others``) the hot
objects and furniture of the raw annotations as a second heatmap class, the model of ``model:``
(:func:`~thermact.models.person_detector.build_detector`), the CenterNet loss on targets encoded
per batch, and validation by person AP@0.5 (plus recall, precision and hot-object false positives
at ``eval.score_threshold``) on the fold's test keyframes.

Determinism and exact resume work as for the action model (see :mod:`thermact.tasks.action`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from thermact.config import check_number, embedded
from thermact.data.clips import ClipConfig
from thermact.data.detection import (
    NON_PERSON,
    DetectionBatch,
    DetectionClipDataset,
    collate_detection,
    detection_clip,
)
from thermact.data.source import ThermalData, fingerprint_dataset, load_dataset
from thermact.data.splits import resolve_split
from thermact.data.transforms import compute_norm_stats
from thermact.engine.config import AugmentSection, DataSection, OptimSection, RunSection
from thermact.engine.distributed import DistContext
from thermact.engine.restore import TrainedModel, restore
from thermact.engine.run import keyframes_by_id, make_loaders, select_fold
from thermact.engine.samplers import EpochSampler
from thermact.evaluation.detection import detection_metrics
from thermact.models.heat_boxes import HeatGrowth, grow_person_boxes
from thermact.models.person_detector import (
    DetectorModelConfig,
    DetectorOutput,
    PersonDetectorNet,
    build_detector,
)
from thermact.models.person_loss import CenterNetLoss
from thermact.models.person_targets import encode_batch
from thermact.models.postprocess import Detections, decode

__all__ = [
    "DETECTOR_CLASSES",
    "PERSON",
    "DetectorEvalSection",
    "DetectorLossSection",
    "DetectorRun",
    "DetectorRunConfig",
    "PersonTask",
    "TrainedDetector",
    "predict_detections",
    "restore_detector",
]

DETECTOR_CLASSES = ("person", "non-person warm object")


# ---------------------------------------------------------------------------------------------
# Config


@dataclasses.dataclass
class DetectorLossSection:
    size_weight: float = 1.0
    """Weight of the L1 loss on log box sizes."""
    offset_weight: float = 1.0
    """Weight of the L1 loss on centre offsets."""
    with_others: bool = True
    """Train the non-person heatmap class on the hot objects and furniture of the raw annotations."""

    def __post_init__(self) -> None:
        check_number("size_weight", self.size_weight, low=0.0)
        check_number("offset_weight", self.offset_weight, low=0.0)


@dataclasses.dataclass
class DetectorEvalSection:
    every_epochs: int = 1
    """Validate every this many epochs (and after the last)."""
    score_threshold: float = 0.3
    """Operating point of the recall / precision / hot-object false-positive numbers (AP uses all)."""
    top_k: int = 20
    """Most detections decoded per frame."""
    nms_iou: float = 0.5
    """IoU above which non-maximum suppression drops a box."""
    min_score: float = 0.01
    """Lowest detection score kept for the AP computation."""
    heat_growth_c: float | None = 3.0
    """Grow each person box to the body heat around it: a pixel this many °C above the background is
    heat (``models.heat_boxes``; null: boxes as decoded)."""
    heat_growth_margin: float = 0.3
    """Farthest that growth, as a fraction of the box's width / height on each side."""

    def __post_init__(self) -> None:
        for name in ("every_epochs", "top_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        check_number("score_threshold", self.score_threshold, low=0.0, high=1.0)
        check_number("nms_iou", self.nms_iou, low=0.0, high=1.0, low_open=True)
        check_number("min_score", self.min_score, low=0.0, high=1.0)
        if self.heat_growth_c is not None:
            check_number("heat_growth_c", self.heat_growth_c, low=0.0, low_open=True)
        check_number("heat_growth_margin", self.heat_growth_margin, low=0.0)

    @property
    def heat_growth(self) -> HeatGrowth | None:
        """The growth of person boxes the keys ask for (None: off)."""
        if self.heat_growth_c is None:
            return None
        return HeatGrowth(self.heat_growth_c, self.heat_growth_margin, self.score_threshold)


def _detector_data() -> DataSection:
    return DataSection(window_s=0.5, keyframe_position="causal")


def _detector_augment() -> AugmentSection:
    return AugmentSection(p_rot180=0.5, box_jitter=0.0)


def _detector_optim() -> OptimSection:
    return OptimSection(lr=0.004, weight_decay=0.01, epochs=30, batch_size=16)


@dataclasses.dataclass
class DetectorRunConfig:
    """The run config of ``thermact train`` with ``task: detector``. The shared keys and sections
    (:mod:`thermact.engine.config`) have the detector's defaults: ``run_dir: runs/person_detector``,
    causal 3-frame clips over 0.5 s, 180° rotations, no box jitter, ``lr: 0.004``, batch 16."""

    task: Literal["detector"] = "detector"
    """detector (this config) or action."""
    run: RunSection = embedded(lambda: RunSection(run_dir="runs/person_detector"))
    data: DataSection = dataclasses.field(
        default_factory=lambda: DataSection(window_s=0.5, keyframe_position="causal")
    )
    augment: AugmentSection = dataclasses.field(
        default_factory=lambda: AugmentSection(p_rot180=0.5, box_jitter=0.0)
    )
    optim: OptimSection = dataclasses.field(
        default_factory=lambda: OptimSection(lr=0.004, weight_decay=0.01, epochs=30, batch_size=16)
    )
    loss: DetectorLossSection = dataclasses.field(default_factory=DetectorLossSection)
    eval: DetectorEvalSection = dataclasses.field(default_factory=DetectorEvalSection)
    model: DetectorModelConfig = dataclasses.field(default_factory=DetectorModelConfig)

    def __post_init__(self) -> None:
        if self.data.keyframe_position != "causal":
            raise ValueError("data.keyframe_position must be 'causal' for the detector (it runs live)")
        if self.data.normalize == "background":
            raise ValueError(
                "data.normalize: 'background' needs a whole recording; the detector runs live "
                "(use dataset or clip_median)"
            )
        if self.augment.time_shift_s:
            raise ValueError(
                "augment.time_shift_s: the detector learns the keyframe's boxes at the clip's last "
                "frame, a shifted clip would put them where the people are not (use 0)"
            )

    @property
    def clip(self) -> ClipConfig:
        """The detector's causal clip: ``model.num_frames`` frames over ``data.window_s``, keyframe last."""
        return detection_clip(self.model.num_frames, self.data.window_s)


TrainedDetector = TrainedModel[PersonDetectorNet, DetectorRunConfig]


# ---------------------------------------------------------------------------------------------
# A run


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
    growth: HeatGrowth | None = None,
    unit_c: float = 1.0,
) -> dict[str, Detections]:
    """Keyframe id → decoded detections (on the CPU) for every batch of ``loader`` (eval mode),
    person boxes grown to the heat of the keyframe with ``growth`` (``unit_c``: °C per unit of the
    loader's normalised frames)."""
    was_training = model.training
    model.eval()
    out: dict[str, Detections] = {}
    try:
        for batch in loader:
            frames = batch.frames.to(device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                raw: DetectorOutput = model(frames)
            size = (int(frames.shape[-2]), int(frames.shape[-1]))
            decoded = decode(raw, stride, size, top_k, min_score, nms_iou)
            decoded = [Detections(d.boxes.cpu(), d.scores.cpu(), d.labels.cpu()) for d in decoded]
            if growth is not None:
                decoded = grow_person_boxes(batch.frames[:, 0, -1].float(), decoded, growth, unit_c)
            out.update(zip(batch.keyframe_ids, decoded, strict=True))
    finally:
        model.train(was_training)
    return out


class DetectorRun:
    """One training run of the person detector (a :class:`~thermact.engine.task.TaskRun`)."""

    def __init__(
        self, cfg: DetectorRunConfig, ctx: DistContext, device: torch.device, amp_dtype: torch.dtype | None
    ) -> None:
        self.cfg, self.ctx, self.device, self.amp_dtype = cfg, ctx, device, amp_dtype
        self.clip = cfg.clip
        self.classes = list(DETECTOR_CLASSES)
        data = load_dataset(cfg.data.root, lenient=cfg.data.lenient)
        self.fingerprint = fingerprint_dataset(data).to_dict()
        self.fold = select_fold(resolve_split(data, cfg.data.split, self.clip), cfg.data.fold)
        train_kfs = keyframes_by_id(data, self.fold.train, "training")
        self.val_keyframes = keyframes_by_id(data, self.fold.test, "validation") if self.fold.test else []
        self.norm = compute_norm_stats(data.recordings, train_kfs, self.clip, cfg.data.normalize)
        with_others = cfg.loss.with_others
        self.train_set = DetectionClipDataset(
            data.recordings,
            train_kfs,
            self.clip,
            self.norm,
            cfg.augment.build(),
            with_others,
            cfg.run.seed,
            cfg.augment.build_sensor(),
        )
        val_set = DetectionClipDataset(data.recordings, self.val_keyframes, self.clip, self.norm)
        self.sampler = EpochSampler(len(self.train_set), cfg.run.seed, None, ctx.world_size, ctx.rank)
        self.train_loader, self.val_loader = make_loaders(
            self.train_set, val_set, collate_detection, self.sampler, cfg.optim.batch_size, cfg, ctx
        )
        self.model: PersonDetectorNet = build_detector(cfg.model).to(device)
        self.loss_fn = CenterNetLoss(cfg.loss.size_weight, cfg.loss.offset_weight)
        self.metric = "person_ap"
        n_persons = sum(len(k.persons) for k in train_kfs)
        n_others = sum(len(k.others) for k in train_kfs) if with_others else 0
        self.summary = (
            f"training {cfg.model.name} on {len(self.train_set)} keyframes ({n_persons} persons, {n_others} "
            f"non-person boxes), "
            + (f"validating on {len(self.val_keyframes)}" if self.val_keyframes else "no validation")
            + f"; split {cfg.data.split} fold "
            f"{self.fold.name}"
        )

    def set_epoch(self, epoch: int) -> None:
        self.train_set.set_epoch(epoch)

    def loss(self, net: nn.Module, batch: DetectionBatch) -> tuple[Tensor | None, dict[str, float]]:
        """The CenterNet loss of one batch, its targets encoded at the output's resolution."""
        frames = batch.frames.to(self.device)
        amp = self.amp_dtype
        with torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
            out: DetectorOutput = net(frames)
        h, w = int(out.heatmap.shape[-2]), int(out.heatmap.shape[-1])
        targets = encode_batch(
            batch.boxes, batch.labels, self.cfg.model.num_classes, (h, w), self.model.stride
        )
        known = torch.ones(frames.shape[0], self.cfg.model.num_classes, dtype=torch.bool)
        known[:, NON_PERSON] = batch.others_known  # hot objects not annotated: no evidence either way
        loss, parts = self.loss_fn(out, targets.to(self.device), known.to(self.device))
        return loss, parts

    def evaluate(self, net: nn.Module) -> dict[str, Any] | None:
        """Person AP etc. on rank 0 from the detections of every rank (None on the other ranks and
        without validation keyframes: the ``all`` split)."""
        if not self.val_keyframes:
            return None
        e = self.cfg.eval
        dets = predict_detections(
            net,
            self.val_loader,
            self.device,
            self.model.stride,
            e.top_k,
            e.min_score,
            e.nms_iou,
            self.amp_dtype,
            e.heat_growth,
            self.norm.std_c,
        )
        shards = self.ctx.gather(dets)
        if not self.ctx.is_main:
            return None
        merged: dict[str, Detections] = {}
        for shard in shards:
            merged.update(shard)
        return dict(detection_metrics(merged, self.val_keyframes, e.score_threshold).summary())

    def batch_size(self, batch: DetectionBatch) -> int:
        return int(batch.frames.shape[0])

    def state_dict(self) -> dict[str, Any]:
        return {"dataset": self.fingerprint}

    def load_state_dict(self, ckpt: dict[str, Any], path: str) -> None:
        return None


# ---------------------------------------------------------------------------------------------
# Restore and the task


def _build_for_restore(cfg: DetectorRunConfig) -> tuple[PersonDetectorNet, ClipConfig]:
    return build_detector(cfg.model), cfg.clip


def restore_detector(path: str | Path, device: str | torch.device = "cpu") -> TrainedDetector:
    """Load a person-detector checkpoint and rebuild its model (eval mode) on ``device``."""
    wrong = "not a person-detector checkpoint (its config has no 'task: detector')"
    return restore(path, device, "detector", DetectorRunConfig, _build_for_restore, wrong)


class PersonTask:
    """The person detector (a :class:`~thermact.engine.task.Task`)."""

    name = "detector"
    config_type = DetectorRunConfig

    def build(
        self, cfg: DetectorRunConfig, ctx: DistContext, device: torch.device, amp_dtype: torch.dtype | None
    ) -> DetectorRun:
        return DetectorRun(cfg, ctx, device, amp_dtype)

    def restore(self, path: str | Path, device: str | torch.device = "cpu") -> TrainedDetector:
        return restore_detector(path, device)

    def export_inputs(
        self, trained: TrainedDetector, data: ThermalData, num_clips: int, batch_size: int
    ) -> list[tuple[Tensor, ...]]:
        """Normalised causal clips ``[B, 1, T, H, W]`` ending at keyframes spread over ``data``."""
        step = max(1, len(data.keyframes) // max(1, num_clips))
        ds = DetectionClipDataset(
            data.recordings, data.keyframes[::step][:num_clips], trained.clip, trained.norm
        )
        return [
            (collate_detection([ds[j] for j in range(i, min(i + batch_size, len(ds)))]).frames,)
            for i in range(0, len(ds), batch_size)
        ]


PERSON = PersonTask()
