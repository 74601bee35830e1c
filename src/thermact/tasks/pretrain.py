"""Self-supervised pretraining of a ThermalNet backbone on unlabelled frames, as a task.

:data:`PRETRAIN` implements :class:`thermact.engine.task.Task`; ``thermact pretrain``
(:mod:`thermact.commands.pretrain`) runs it through :func:`thermact.engine.run.train`, so it
shares the run directory, seeding, resume, DDP, schedule and atomic checkpoints of every run.

Data: every ``pretrain.frame_stride``-th frame of the fold's *training* recordings ends a clip,
labelled or not (:func:`unlabelled_keyframes`). Never used: the fold's test recordings, the
training frames the split purges because they touch test time, and any frame whose clip window
overlaps the clip window of a test keyframe (the given split tests inside training recordings).
The clips are sampled, augmented (``augment``, sensor augmentations included) and normalised as
the action model's are, with statistics from these frames only.

Model: :class:`~thermact.models.masked_clip.MaskedClipModel` (the ``model`` section's backbone and
a linear pixel decoder) learns to fill in hidden tubes of the clips (masked MSE). No validation
(the test fold is not looked at); ``last.pt`` holds the weights, optimiser and config to resume,
and its ``backbone.*`` tensors initialise an action model: ``thermact train model.pretrained=RUN/last.pt``
with the same ``model.name``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from thermact.config import check_number, embedded
from thermact.data.annotations import Keyframe
from thermact.data.clips import ClipConfig, clip_window
from thermact.data.dataset import ClipBatch, ClipDataset, collate_clips
from thermact.data.source import ThermalData, load_dataset
from thermact.data.splits import Fold, resolve_split
from thermact.data.transforms import compute_norm_stats
from thermact.engine.config import AugmentSection, DataSection, OptimSection, RunSection
from thermact.engine.distributed import DistContext
from thermact.engine.restore import TrainedModel, restore
from thermact.engine.run import make_loaders, select_fold
from thermact.engine.samplers import EpochSampler
from thermact.errors import ConfigError, DataError
from thermact.models.factory import ModelConfig, build_backbone
from thermact.models.masked_clip import PRETRAIN_TASK, MaskedClipModel, masked_mse, tube_mask
from thermact.models.thermal_net import ThermalNet

__all__ = [
    "PRETRAIN",
    "PretrainRun",
    "PretrainRunConfig",
    "PretrainSection",
    "PretrainTask",
    "build_masked_clip_model",
    "unlabelled_keyframes",
]


@dataclasses.dataclass
class PretrainSection:
    mask_ratio: float = 0.5
    """Share of the patch x patch squares hidden in every frame of a clip."""
    frame_stride: int = 2
    """A clip ends at every this-many-th frame of the training recordings (1: every frame)."""

    def __post_init__(self) -> None:
        check_number("mask_ratio", self.mask_ratio, low=0.0, high=1.0, low_open=True, high_open=True)
        if self.frame_stride < 1:
            raise ValueError(f"frame_stride: must be >= 1, got {self.frame_stride}")


@dataclasses.dataclass(frozen=True)
class _NoValidation:
    every_epochs: int = 1


@dataclasses.dataclass
class PretrainRunConfig:
    """The run config of ``thermact pretrain`` (YAML: the shared keys of :mod:`thermact.engine.config`,
    ``model`` as an action model's, and ``pretrain``). ``thermact pretrain`` also takes an action
    config or preset: its ``loss`` and ``eval`` sections are the fine-tuning's and are ignored."""

    task: Literal["pretrain"] = "pretrain"
    """pretrain (this config)."""
    run: RunSection = embedded(RunSection)
    data: DataSection = dataclasses.field(default_factory=DataSection)
    augment: AugmentSection = dataclasses.field(default_factory=AugmentSection)
    optim: OptimSection = dataclasses.field(default_factory=OptimSection)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    pretrain: PretrainSection = dataclasses.field(default_factory=PretrainSection)

    @property
    def clip(self) -> ClipConfig:
        """The clip the backbone is fed: ``data.window_s``, ``model.num_frames``, ``data.keyframe_position``."""
        return ClipConfig(self.data.window_s, self.model.num_frames, self.data.keyframe_position)

    @property
    def eval(self) -> _NoValidation:
        """Pretraining has no validation (it never looks at the test fold)."""
        return _NoValidation()


def unlabelled_keyframes(
    data: ThermalData, fold: Fold, clip: ClipConfig, frame_stride: int
) -> list[Keyframe]:
    """Person-less keyframes at every ``frame_stride``-th frame of ``fold``'s training recordings.

    Training recordings hold a training keyframe and are not test recordings; a frame whose clip
    window touches one of the fold's ``purged_intervals`` or a test keyframe's clip window is left out.

    Raises:
        DataError: no frame is left.
    """
    train_ids, test_ids = set(fold.train), set(fold.test)
    recordings = sorted(
        {k.recording_id for k in data.keyframes if k.keyframe_id in train_ids} - set(fold.test_recordings)
    )
    out: list[Keyframe] = []
    for rid in recordings:
        banned = [(iv.start_ms, iv.end_ms) for iv in fold.purged_intervals.get(rid, [])]
        banned += [
            clip_window(k.timestamp_ms, clip)
            for k in data.keyframes
            if k.recording_id == rid and k.keyframe_id in test_ids
        ]
        for i, t in enumerate(data.recording(rid).timestamps[::frame_stride].tolist()):
            start, end = clip_window(int(t), clip)
            if not any(start <= e and s <= end for s, e in banned):
                out.append(Keyframe(f"{rid}/frame{i * frame_stride}", rid, int(t), None, ()))
    if not out:
        raise DataError(f"fold {fold.name}: no unlabelled training frame to pretrain on")
    return out


def build_masked_clip_model(model: ModelConfig) -> MaskedClipModel:
    """The backbone of ``model`` (random weights) with its reconstruction decoder; ThermalNet only."""
    backbone = build_backbone(dataclasses.replace(model, pretrained=None))
    if not isinstance(backbone, ThermalNet):
        raise ConfigError(
            f"config key 'model.name': masked-clip pretraining needs a ThermalNet, not {model.name}"
        )
    if model.input_size is not None:
        raise ConfigError("config key 'model.input_size': pretraining runs at the sensor resolution (null)")
    if model.num_frames % backbone.temporal_stride:
        raise ConfigError(
            f"config key 'model.num_frames': {model.num_frames} is not a multiple of the temporal stride "
            f"{backbone.temporal_stride} of {model.name}"
        )
    return MaskedClipModel(backbone, model.num_frames, backbone.temporal_stride)


class PretrainRun:
    """One pretraining run (a :class:`~thermact.engine.task.TaskRun`)."""

    def __init__(
        self, cfg: PretrainRunConfig, ctx: DistContext, device: torch.device, amp_dtype: torch.dtype | None
    ) -> None:
        self.classes: list[str] = []
        self.metric = "none"  # no validation: best.pt is never written
        if cfg.model.pretrained is not None:
            raise ConfigError(
                "config key 'model.pretrained': pretraining starts from random weights (set it null)"
            )
        self.cfg, self.device, self.amp_dtype = cfg, device, amp_dtype
        self.clip = cfg.clip
        self.model = build_masked_clip_model(cfg.model).to(device)
        data = load_dataset(cfg.data.root, lenient=cfg.data.lenient)
        self.fold = select_fold(resolve_split(data, cfg.data.split, self.clip), cfg.data.fold)
        frames = unlabelled_keyframes(data, self.fold, self.clip, cfg.pretrain.frame_stride)
        self.norm = compute_norm_stats(data.recordings, frames, self.clip, cfg.data.normalize)
        augment = dataclasses.replace(cfg.augment, box_jitter=0.0).build()
        sensor = cfg.augment.build_sensor()
        self.train_set = ClipDataset.from_data(
            data, frames, self.clip, norm=self.norm, augment=augment, seed=cfg.run.seed, sensor=sensor
        )
        self.sampler = EpochSampler(len(self.train_set), cfg.run.seed, None, ctx.world_size, ctx.rank)
        empty = ClipDataset.from_data(data, [], self.clip, norm=self.norm)
        self.train_loader, _ = make_loaders(
            self.train_set, empty, collate_clips, self.sampler, cfg.optim.batch_size, cfg, ctx
        )
        recs = len({k.recording_id for k in frames})
        self.summary = (
            f"pretraining {cfg.model.name} on {len(frames)} unlabelled clips of {recs} training recordings "
            f"(mask ratio {cfg.pretrain.mask_ratio}); split {cfg.data.split} fold {self.fold.name}"
        )

    def set_epoch(self, epoch: int) -> None:
        self.train_set.set_epoch(epoch)

    def loss(self, net: nn.Module, batch: ClipBatch) -> tuple[Tensor | None, dict[str, float]]:
        """Masked MSE of one batch; the masks come from the global generator, whose state every
        checkpoint holds, so a resumed run draws the same masks."""
        clip = batch.frames.to(self.device)
        p = self.model.patch
        mask = tube_mask(len(batch), (clip.shape[-2] // p, clip.shape[-1] // p), self.cfg.pretrain.mask_ratio)
        mask = mask.to(self.device)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            reconstruction = net(clip, mask)
        loss: Tensor = masked_mse(reconstruction.float(), clip, mask, p)
        return loss, {}

    def evaluate(self, net: nn.Module) -> dict[str, Any] | None:
        return None

    def batch_size(self, batch: ClipBatch) -> int:
        return len(batch)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, ckpt: dict[str, Any], path: str) -> None:
        return None


TrainedPretrainModel = TrainedModel[MaskedClipModel, PretrainRunConfig]


def _build_for_restore(cfg: PretrainRunConfig) -> tuple[MaskedClipModel, ClipConfig]:
    return build_masked_clip_model(cfg.model), cfg.clip


class PretrainTask:
    """Masked-clip pretraining of a backbone (a :class:`~thermact.engine.task.Task`)."""

    name = PRETRAIN_TASK
    config_type = PretrainRunConfig

    def build(
        self, cfg: PretrainRunConfig, ctx: DistContext, device: torch.device, amp_dtype: torch.dtype | None
    ) -> PretrainRun:
        return PretrainRun(cfg, ctx, device, amp_dtype)

    def restore(self, path: str | Path, device: str | torch.device = "cpu") -> TrainedPretrainModel:
        wrong = "is not a pretrain checkpoint"
        return restore(path, device, PRETRAIN_TASK, PretrainRunConfig, _build_for_restore, wrong)

    def export_inputs(
        self, trained: TrainedPretrainModel, data: ThermalData, num_clips: int, batch_size: int
    ) -> list[tuple[Tensor, ...]]:
        raise ConfigError(
            f"{trained.path}: a pretrain checkpoint holds a backbone to fine-tune (thermact train "
            "model.pretrained=...), not a model to export"
        )


PRETRAIN = PretrainTask()
