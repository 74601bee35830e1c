"""The per-person action model as a task: its run config, data, loss, validation, restore.

:data:`ACTION` implements :class:`thermact.engine.task.Task`; :func:`thermact.engine.run.train`
runs it. One run (:class:`ActionRun`): the dataset and the split fold, the temperature
normalisation from the training keyframes only, clip datasets around the keyframes (ground-truth
person boxes, with box jitter when training), the model of ``model:`` (:func:`build_model`), the
loss (class weights from the training counts), and validation by frame-mAP and classification
metrics on the fold's test keyframes.

Interaction head (``model.head.interaction``, AlphAction's IA structure): the run keeps a
:class:`~thermact.models.memory.FeatureBank` of pooled person features. Each step reads the memory
of its batch from the bank (features written by earlier steps: AlphAction's asynchronous memory),
then writes the batch's detached features. The bank is saved in every checkpoint (``memory``,
plain tensors) and restored on resume. Validation never reads it (see
:func:`thermact.evaluation.evaluate.predict`).

Determinism: the batch order of epoch ``e`` comes from a generator seeded with ``(seed, e)`` and
each clip's augmentation from ``(seed, e, index)``; dropout draws from the global torch RNG,
whose state the checkpoint holds, and the loaders draw their own seeds from private generators.
Resuming from any checkpoint therefore reproduces the losses of an uninterrupted run exactly (on
the same device and thread count).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from thermact.config import check_number, embedded
from thermact.data.annotations import Keyframe
from thermact.data.clips import ClipConfig
from thermact.data.dataset import ClipBatch, ClipDataset, collate_clips, real_clips
from thermact.data.source import ThermalData, fingerprint_dataset, load_dataset
from thermact.data.splits import resolve_split
from thermact.data.transforms import NormStats, compute_norm_stats
from thermact.engine.config import AugmentSection, DataSection, OptimSection, RunSection
from thermact.engine.distributed import DistContext
from thermact.engine.restore import TrainedModel, restore
from thermact.engine.run import keyframes_by_id, make_loaders, select_fold
from thermact.engine.samplers import EpochSampler
from thermact.errors import CheckpointError, ConfigError
from thermact.evaluation.evaluate import merge_predictions, predict, score_predictions
from thermact.models.action import ActionModel
from thermact.models.ensemble import ActionEnsemble
from thermact.models.factory import ModelConfig, build_model, resolve_model_config
from thermact.models.losses import ActionLoss, class_groups, class_weights_from_counts, distillation_loss
from thermact.models.memory import FeatureBank
from thermact.models.tta import TTA, with_tta
from thermact.ops.fuse import prepare_for_inference
from thermact.tasks.detected_boxes import TrainBoxesSection, detected_training_boxes

logger = logging.getLogger(__name__)

__all__ = [
    "ACTION",
    "ActionRun",
    "ActionRunConfig",
    "ActionTask",
    "EvalSection",
    "LossSection",
    "TrainedActionModel",
    "class_counts",
    "restore_model",
]


# ---------------------------------------------------------------------------------------------
# Config


@dataclasses.dataclass
class LossSection:
    kind: Literal["ce", "focal", "bce", "sigmoid_focal"] = "ce"
    """ce (softmax cross-entropy), focal, bce or sigmoid_focal."""
    class_weights: Literal["none", "inverse", "sqrt_inverse", "effective"] = "sqrt_inverse"
    """Per-class loss weights from the training counts."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy."""
    gamma: float = 2.0
    """Focusing exponent of the focal losses."""
    sampler: Literal["none", "balanced"] = "none"
    """none or balanced (class-balanced keyframe sampling)."""
    group_weight: float = 0.0
    """Weight of the class-group NLL added to ce/focal (groups: the class name before '-'; 0: off)."""
    distill_from: str | None = None
    """A trained action model or ensemble (checkpoint path or shipped name) to learn from as well:
    its softened probabilities on every training box (knowledge distillation); ``{fold}`` in the
    path becomes ``data.fold`` (one teacher per fold of ``thermact cv``)."""
    distill_weight: float = 0.5
    """Share of the distillation term: ``(1 - w) * loss + w * distillation``."""
    distill_temperature: float = 2.0
    """Softmax temperature of the distillation term (above 1: the teacher's wrong-class ranking counts)."""

    def __post_init__(self) -> None:
        check_number("label_smoothing", self.label_smoothing, low=0.0, high=1.0, high_open=True)
        check_number("gamma", self.gamma, low=0.0)
        check_number("group_weight", self.group_weight, low=0.0)
        if self.group_weight and self.kind not in ("ce", "focal"):
            raise ValueError(f"group_weight: needs kind ce or focal, not {self.kind}")
        check_number("distill_weight", self.distill_weight, low=0.0, high=1.0)
        check_number("distill_temperature", self.distill_temperature, low=0.0, low_open=True)
        if self.distill_from is not None and self.kind not in ("ce", "focal"):
            raise ValueError(f"distill_from: needs a softmax loss, kind ce or focal, not {self.kind}")


@dataclasses.dataclass
class EvalSection:
    every_epochs: int = 1
    """Validate every this many epochs (and after the last)."""
    metric: Literal["balanced_accuracy", "macro_f1", "accuracy", "frame_map"] = "balanced_accuracy"
    """The validation metric that picks best.pt."""
    tta: TTA = "none"
    """Test-time augmentation of validation: none, or flips (scores averaged over the four flips
    of each clip, thermact.models.tta; up to 4x the validation compute)."""

    def __post_init__(self) -> None:
        if self.every_epochs < 1:
            raise ValueError(f"every_epochs: must be >= 1, got {self.every_epochs}")


@dataclasses.dataclass
class ActionRunConfig:
    """The run config of ``thermact train`` for an action model (YAML: see
    :mod:`thermact.engine.config` for the shared keys; ``loss``, ``eval`` and ``model`` are the
    action model's own, ``model`` being :class:`~thermact.models.factory.ModelConfig`)."""

    task: Literal["action"] = "action"
    """action (this config) or detector (the person detector's)."""
    run: RunSection = embedded(RunSection)
    data: DataSection = dataclasses.field(default_factory=DataSection)
    augment: AugmentSection = dataclasses.field(default_factory=AugmentSection)
    train_boxes: TrainBoxesSection = dataclasses.field(default_factory=TrainBoxesSection)
    optim: OptimSection = dataclasses.field(default_factory=OptimSection)
    loss: LossSection = dataclasses.field(default_factory=LossSection)
    eval: EvalSection = dataclasses.field(default_factory=EvalSection)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)

    @property
    def clip(self) -> ClipConfig:
        """The clip the model is fed: ``data.window_s``, ``model.num_frames``, ``data.keyframe_position``."""
        return ClipConfig(self.data.window_s, self.model.num_frames, self.data.keyframe_position)

    def __post_init__(self) -> None:
        if self.eval.tta != "none" and self.model.head.interaction.structure != "none":
            raise ValueError("eval.tta: flip averaging is not available with an interaction head")


TrainedActionModel = TrainedModel[ActionModel | ActionEnsemble, ActionRunConfig]
"""A restored action model: one network, or an ensemble of them (``model.members`` > 1)."""


# ---------------------------------------------------------------------------------------------
# Pieces of a run


def class_counts(keyframes: Sequence[Keyframe], num_classes: int) -> list[int]:
    counts = Counter(int(b.label) for k in keyframes for b in k.persons if b.label is not None)
    return [counts.get(c, 0) for c in range(num_classes)]


def balanced_weights(keyframes: Sequence[Keyframe], counts: Sequence[int]) -> list[float]:
    """Sampling weight of each keyframe: mean over its persons of 1 / class count."""
    out = []
    for kf in keyframes:
        ws = [1.0 / max(1, counts[int(b.label)]) for b in kf.persons if b.label is not None]
        out.append(float(np.mean(ws)) if ws else 1e-6)
    return out


def freeze_backbone_stages(model: ActionModel, num_stages: int) -> None:
    """Freeze the first ``num_stages`` top-level children of the backbone (stem counts as one)."""
    if num_stages <= 0:
        return
    children = list(model.backbone.children())
    for child in children[:num_stages]:
        for p in child.parameters():
            p.requires_grad_(False)


class Teacher:
    """A trained action model or ensemble that a run distils from (``loss.distill_from``): logits
    ``[K, C]`` of the student's training clips ``[B, 1, T, H, W]`` and RoIs ``[K, 5]``.

    It must be fed as the student is (clip, input size, classes, softmax scores); a teacher
    normalised with other statistics of the same kind gets the clip mapped to its own (affine:
    the student's normalised temperatures back to °C, then the teacher's normalisation). Frozen,
    prepared for inference (:func:`~thermact.ops.fuse.prepare_for_inference`), no gradient.
    """

    def __init__(
        self,
        trained: TrainedActionModel,
        student: ActionRunConfig,
        norm: NormStats,
        classes: Sequence[str],
        device: torch.device,
    ) -> None:
        where = f"config key 'loss.distill_from': {trained.path}"
        own = trained.config
        mismatch = [
            f"{name} {theirs!r} (this run: {ours!r})"
            for name, theirs, ours in (
                ("classes", trained.classes, list(classes)),
                ("clip", trained.clip, student.clip),
                ("model.input_size", own.model.input_size, student.model.input_size),
                ("model.head.mode", own.model.head.mode, "softmax"),
                ("data.normalize", trained.norm.reference, norm.reference),
            )
            if theirs != ours
        ]
        if mismatch:
            raise ConfigError(f"{where} cannot teach this run: it has " + "; ".join(mismatch))
        if isinstance(trained.model, ActionModel) and trained.model.interaction is not None:
            raise ConfigError(f"{where} has an interaction head (its memory is its own run's): cannot teach")
        self.model = prepare_for_inference(trained.model, device)
        self.scale = norm.std_c / trained.norm.std_c
        same_mean = norm.reference == "clip_median"  # each clip's own median is subtracted by both
        self.shift = 0.0 if same_mean else (norm.mean_c - trained.norm.mean_c) / trained.norm.std_c

    def __call__(self, clip: Tensor, rois: Tensor) -> Tensor:
        with torch.no_grad():
            if self.scale != 1.0 or self.shift != 0.0:
                clip = clip * self.scale + self.shift
            out: Tensor = self.model(clip, rois).float()
        return out


def load_teacher(
    cfg: ActionRunConfig, norm: NormStats, classes: Sequence[str], device: torch.device
) -> Teacher | None:
    """The :class:`Teacher` of ``loss.distill_from`` (``{fold}`` → ``data.fold``), None without one."""
    if cfg.loss.distill_from is None:
        return None
    trained = restore_model(cfg.loss.distill_from.replace("{fold}", str(cfg.data.fold)), device)
    return Teacher(trained, cfg, norm, classes, device)


def make_loss(cfg: ActionRunConfig, counts: Sequence[int], classes: Sequence[str]) -> ActionLoss:
    weights = None
    if cfg.loss.class_weights != "none":
        weights = class_weights_from_counts(counts, scheme=cfg.loss.class_weights)
    return ActionLoss(
        cfg.loss.kind,
        weights,
        label_smoothing=cfg.loss.label_smoothing,
        gamma=cfg.loss.gamma,
        groups=class_groups(classes) if cfg.loss.group_weight else None,
        group_weight=cfg.loss.group_weight,
    )


def validation_loss(
    loss: ActionLoss, scores: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]
) -> float:
    """The training loss (same kind, class weights and smoothing) of validation boxes, from their
    class probabilities ``scores [K, C]`` and true classes ``labels [K]``: the logits are recovered
    as ``log p`` (softmax: log-softmax of ``log p`` is ``log p``) or ``logit p`` (sigmoid), so the
    value equals the loss on the model's own logits up to float rounding (probabilities are
    clipped to ``[1e-7, 1 - 1e-7]``)."""
    device = next((b.device for b in loss.buffers()), torch.device("cpu"))
    p = torch.from_numpy(np.asarray(scores, dtype=np.float32)).to(device).clamp(1e-7, 1.0 - 1e-7)
    logits = torch.logit(p) if loss.multi_label else torch.log(p)
    targets = loss_targets(loss, torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device), p.shape[1])
    with torch.no_grad():
        return float(loss(logits, targets))


def loss_targets(loss: ActionLoss, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    if loss.multi_label:
        return torch.nn.functional.one_hot(labels, num_classes).float()
    return labels


class ActionRun:
    """One training run of an action model (a :class:`~thermact.engine.task.TaskRun`)."""

    def __init__(
        self, cfg: ActionRunConfig, ctx: DistContext, device: torch.device, amp_dtype: torch.dtype | None
    ) -> None:
        # the saved config holds the architecture a pretrained file implies, not "auto"
        cfg = dataclasses.replace(cfg, model=resolve_model_config(cfg.model))
        self.cfg, self.ctx, self.device, self.amp_dtype = cfg, ctx, device, amp_dtype
        self.clip = cfg.clip
        self.data = load_dataset(cfg.data.root, lenient=cfg.data.lenient)
        if cfg.model.num_classes != len(self.data.classes):
            raise ConfigError(
                f"config key 'model.num_classes': {cfg.model.num_classes} but the dataset has "
                f"{len(self.data.classes)} classes"
            )
        self.classes = list(self.data.classes.names)
        self.fingerprint = fingerprint_dataset(self.data).to_dict()
        """What the model is trained on (stored in checkpoints: eval tells another dataset apart)."""
        self.fold = select_fold(resolve_split(self.data, cfg.data.split, self.clip), cfg.data.fold)
        train_kfs = [k for k in keyframes_by_id(self.data, self.fold.train, "training") if k.persons]
        val_kfs = keyframes_by_id(self.data, self.fold.test, "validation") if self.fold.test else []
        self.counts = class_counts(train_kfs, len(self.classes))
        self._warn_unseen(self.counts, class_counts(val_kfs, len(self.classes)))
        self.norm = compute_norm_stats(self.data.recordings, train_kfs, self.clip, cfg.data.normalize)
        self.train_set = ClipDataset.from_data(
            self.data,
            train_kfs,
            self.clip,
            norm=self.norm,
            augment=cfg.augment.build(),
            seed=cfg.run.seed,
            sensor=cfg.augment.build_sensor(),
            detected_boxes=detected_training_boxes(cfg.train_boxes, self.data, train_kfs, val_kfs, device),
            p_detected=cfg.train_boxes.p_detected,
        )
        val_set = ClipDataset.from_data(self.data, val_kfs, self.clip, norm=self.norm)
        weights = balanced_weights(train_kfs, self.counts) if cfg.loss.sampler == "balanced" else None
        self.sampler = EpochSampler(len(self.train_set), cfg.run.seed, weights, ctx.world_size, ctx.rank)
        self.train_loader, self.val_loader = make_loaders(
            self.train_set, val_set, collate_clips, self.sampler, cfg.optim.batch_size, cfg, ctx
        )
        self.model: ActionModel = build_model(cfg.model, self.clip, verbose=ctx.is_main).to(device)
        freeze_backbone_stages(self.model, cfg.optim.freeze_stages)
        self.loss_fn = make_loss(cfg, self.counts, self.classes).to(device)
        self.teacher = load_teacher(cfg, self.norm, self.classes, device)
        self.bank = self.model.new_memory_bank() if self.model.interaction is not None else None
        self.metric = cfg.eval.metric
        self.summary = (
            f"training {cfg.model.name} on {len(self.train_set)} keyframes ({sum(self.counts)} boxes), "
            + (
                f"validating on {len(val_set)}"
                if len(val_set)
                else "no validation (the split trains on every keyframe)"
            )
            + f"; split {cfg.data.split} fold {self.fold.name}"
        )

    def _warn_unseen(self, counts: Sequence[int], val_counts: Sequence[int]) -> None:
        unseen = [self.classes[c] for c in range(len(counts)) if val_counts[c] and not counts[c]]
        if unseen and self.ctx.is_main:
            logger.warning("classes in validation but absent from training: %s", ", ".join(unseen))

    def set_epoch(self, epoch: int) -> None:
        self.train_set.set_epoch(epoch)

    def loss(self, net: nn.Module, batch: ClipBatch) -> tuple[Tensor | None, dict[str, float]]:
        """The loss of one batch. With a memory bank (interaction models) the batch's memory is read
        from the bank before the forward pass and its detached pooled features written after it."""
        device, amp = self.device, self.amp_dtype
        clip, rois, labels = batch.frames.to(device), batch.rois.to(device), batch.labels.to(device)
        if rois.shape[0] == 0:
            return None, {}
        batch_index = batch.rois[:, 0].to(torch.int64)
        bank = self.bank
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            if bank is None:
                logits = net(clip, rois)
            else:
                memory = bank.gather(
                    batch.recording_ids, batch.keyframe_ms, batch_index, batch.track_ids, device
                )
                logits, pooled = net(clip, rois, memory=memory, return_pooled=True)
        if bank is not None:
            bank.write(batch.recording_ids, batch.keyframe_ms, pooled.detach(), batch_index, batch.track_ids)
        loss: Tensor = self.loss_fn(
            logits.float(), loss_targets(self.loss_fn, labels, self.cfg.model.num_classes)
        )
        if self.teacher is None:
            return loss, {}
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            teacher_logits = self.teacher(clip, rois)
        w, temperature = self.cfg.loss.distill_weight, self.cfg.loss.distill_temperature
        distill = distillation_loss(logits.float(), teacher_logits, temperature)
        return (1.0 - w) * loss + w * distill, {"distill": float(distill.detach())}

    def evaluate(self, net: nn.Module) -> dict[str, Any] | None:
        """Frame-mAP and classification metrics on rank 0, from the predictions of every rank
        (None without validation keyframes: the ``all`` split)."""
        if not self.fold.test:
            return None
        mode = self.cfg.model.head.mode
        model = with_tta(net, self.cfg.eval.tta, mode)
        preds = predict(model, self.val_loader, self.device, mode=mode, autocast_dtype=self.amp_dtype)
        shards = self.ctx.gather(preds)
        if not self.ctx.is_main:
            return None
        merged = merge_predictions(shards)
        metrics: dict[str, Any] = dict(score_predictions(merged, self.cfg.model.num_classes).summary())
        metrics["val_loss"] = validation_loss(self.loss_fn, merged.scores, merged.labels)
        return metrics

    def batch_size(self, batch: ClipBatch) -> int:
        return len(batch)

    def state_dict(self) -> dict[str, Any]:
        memory = {"memory": self.bank.state_dict()} if self.bank is not None else {}
        return {"dataset": self.fingerprint, **memory}

    def load_state_dict(self, ckpt: dict[str, Any], path: str) -> None:
        if self.bank is None:
            return
        if "memory" not in ckpt:
            raise CheckpointError(
                f"{path}: checkpoint of an interaction model lacks its memory bank ('memory')"
            )
        self.bank.load_state_dict(ckpt["memory"], where=f"{path}: memory")


# ---------------------------------------------------------------------------------------------
# Restore


def _build_for_restore(cfg: ActionRunConfig) -> tuple[ActionModel | ActionEnsemble, ClipConfig]:
    """The model of a checkpoint's config (an :class:`ActionEnsemble` of ``model.members`` models
    when more than one); its pretrained-weights path is ignored (the checkpoint holds the trained
    weights)."""
    model_cfg = dataclasses.replace(cfg.model, pretrained=None, members=1)
    if cfg.model.members == 1:
        return build_model(model_cfg, cfg.clip, verbose=False), cfg.clip
    members = [build_model(model_cfg, cfg.clip, verbose=False) for _ in range(cfg.model.members)]
    return ActionEnsemble(members, cfg.model.head.mode), cfg.clip


def restore_model(path: str | Path, device: str | torch.device = "cpu") -> TrainedActionModel:
    """Load an action-model checkpoint and rebuild its model (eval mode) on ``device``.

    A checkpoint whose tensors do not fit the model of its own config is a :class:`CheckpointError`,
    so is a person-detector checkpoint.
    """
    wrong = (
        "is a person-detector checkpoint, not an action model (person detectors load with "
        "thermact.tasks.person.restore_detector; commands take them as detector=DETECTOR.pt)"
    )
    trained = restore(path, device, "action", ActionRunConfig, _build_for_restore, wrong)
    if trained.config.model.num_classes != len(trained.classes):
        raise CheckpointError(
            f"{trained.path}: config says model.num_classes={trained.config.model.num_classes} but the "
            f"checkpoint lists {len(trained.classes)} classes"
        )
    return trained


def memory_of(trained: TrainedActionModel) -> FeatureBank | None:
    """An interaction model's memory bank as its training run saved it (None otherwise)."""
    model = trained.model
    if (
        not isinstance(model, ActionModel)
        or model.interaction is None
        or trained.checkpoint.get("memory") is None
    ):
        return None
    bank = model.new_memory_bank()
    bank.load_state_dict(trained.checkpoint["memory"], where=f"{trained.path}: memory")
    return bank


# ---------------------------------------------------------------------------------------------
# The task


class ActionTask:
    """The per-person action model (a :class:`~thermact.engine.task.Task`)."""

    name = "action"
    config_type = ActionRunConfig

    def build(
        self, cfg: ActionRunConfig, ctx: DistContext, device: torch.device, amp_dtype: torch.dtype | None
    ) -> ActionRun:
        return ActionRun(cfg, ctx, device, amp_dtype)

    def restore(self, path: str | Path, device: str | torch.device = "cpu") -> TrainedActionModel:
        return restore_model(path, device)

    def export_inputs(
        self, trained: TrainedActionModel, data: ThermalData, num_clips: int, batch_size: int
    ) -> list[tuple[Tensor, ...]]:
        clips, rois = real_clips(data, trained.clip, trained.norm, num_clips, batch_size)
        return list(zip(clips, rois, strict=True))


ACTION = ActionTask()
