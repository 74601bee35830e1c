"""Model configuration and construction.

``ModelConfig`` is the ``model:`` section of a training config (see :mod:`thermact.config`)::

    model:
      name: thermal_net_s          # thermal_net_t | thermal_net_s | thermal_net_m | slowfast_r50_4x16 | slowfast_r50_8x8 | slowfast_r101_8x8
      num_classes: 14
      num_frames: 16               # clip length T; SlowFast: a multiple of alpha (32 in the papers)
      input_size: null             # [H, W] to resize the clip to, e.g. [256, 384] for SlowFast
      backbone_dropout: 0.0        # ThermalNet only: dropout on the backbone output
      frozen_bn: false             # SlowFast only: FrozenBatchNorm3d
      fusion_style: auto           # SlowFast only: auto | conv_bn_relu | conv_bias (AlphAction)
      stem_pool_padding: auto      # SlowFast only: auto | 1 (PySlowFast, PyTorchVideo) | 0 (AlphAction)
      pretrained: null             # backbone weights: SlowFast checkpoints; ThermalNet: thermact pretrain's last.pt
      pretrained_source: auto      # auto | alphaction | pyslowfast | pyslowfast_caffe2 | pytorchvideo
      trust_checkpoint: false      # allow non-weights-only (pickle) checkpoints
      no_head: true                # drop the checkpoint's head tensors (else they fail a strict load)
      head:
        mode: softmax              # softmax (single-label CE/focal) | sigmoid (multi-label)
        mlp_dim: 1024
        dropout: 0.2
        roi_size: 7
        temporal_pool: avg         # avg | max
        spatial_pool: max          # max | avg
        box_cues: false            # append an embedding of each box's size and heat (models.box_cues)
        box_cue_dim: 32
        box_position: false        # the cues include the box centre in the frame (a room-layout cue)
        box_radial: false          # the cues include the box's place relative to the optical axis
        interaction:               # AlphAction's IA structure (thermact.models.interaction)
          structure: none          # none | parallel | serial | dense_serial
          blocks: [P, M, P, M]     # P: other persons of the clip, M: memory of neighbouring keyframes
          dim_inner: 512
          num_heads: 1
          dropout: 0.2
          layer_norm: true
          memory_window_s: 8.0     # memory: keyframes within +-8 s of the same recording
          memory_slot_s: 1.0       # temporal-position slot width (0: no temporal positions)
          memory_max: 32           # memory entries per person (nearest in time)
          memory_same_track: false # memory of the person's own track only
          pretrained: false        # also load the IA structure and head MLP of an AlphAction IA
                                   # checkpoint given as model.pretrained

:func:`build_model` turns it into an :class:`~thermact.models.action.ActionModel` with a plain
``match`` on the name. ``auto`` architecture keys take the values of the ``pretrained`` checkpoint's
source (:func:`resolve_architecture`; without weights: ``conv_bn_relu`` and 1, PySlowFast's).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Literal, cast, get_args

from torch import nn

from thermact.data.clips import ClipConfig
from thermact.errors import ConfigError
from thermact.models.action import ActionModel
from thermact.models.base import Backbone
from thermact.models.box_cues import BoxCueEncoder
from thermact.models.head import RoIActionHead
from thermact.models.interaction import InteractionHead, parallel_layers
from thermact.models.masked_clip import load_pretrained_backbone
from thermact.models.pretrained import (
    SOURCE_FACTS,
    OpenedCheckpoint,
    load_alphaction_interaction,
    load_pretrained,
    open_checkpoint,
)
from thermact.models.slowfast import SlowFast, slowfast_r50_4x16, slowfast_r50_8x8, slowfast_r101_8x8
from thermact.models.thermal_net import thermal_net_m, thermal_net_s, thermal_net_t

logger = logging.getLogger(__name__)

__all__ = [
    "MODEL_NAMES",
    "HeadConfig",
    "InteractionConfig",
    "ModelConfig",
    "build_backbone",
    "build_interaction",
    "build_model",
    "resolve_architecture",
    "resolve_model_config",
]

PretrainedSource = Literal["auto", "alphaction", "pyslowfast", "pyslowfast_caffe2", "pytorchvideo"]
ModelName = Literal[
    "thermal_net_t",
    "thermal_net_s",
    "thermal_net_m",
    "slowfast_r50_4x16",
    "slowfast_r50_8x8",
    "slowfast_r101_8x8",
]
MODEL_NAMES: tuple[ModelName, ...] = get_args(ModelName)
#: The SlowFast variants by (depth, alpha).
SLOWFAST_VARIANTS: dict[tuple[int, int], ModelName] = {
    (50, 8): "slowfast_r50_4x16",
    (50, 4): "slowfast_r50_8x8",
    (101, 4): "slowfast_r101_8x8",
}


@dataclass
class InteractionConfig:
    """Settings of the optional :class:`~thermact.models.interaction.InteractionHead`.

    ``structure: none`` (default) builds no interaction head: the model, its state dict and its
    numbers are those of the plain RoI head.
    """

    structure: Literal["none", "parallel", "serial", "dense_serial"] = "none"
    """AlphAction's IA structure: none, parallel, serial or dense_serial."""
    blocks: tuple[Literal["P", "M"], ...] = ("P", "M", "P", "M")
    """P: the other persons of the clip, M: the memory of neighbouring keyframes."""
    dim_inner: int = 512
    """Attention width."""
    num_heads: int = 1
    """Attention heads."""
    dropout: float = 0.2
    """Dropout in the interaction units."""
    layer_norm: bool = True
    """LayerNorm in the interaction units."""
    memory_window_s: float = 8.0
    """Memory: keyframes within this many seconds of the same recording."""
    memory_slot_s: float = 1.0
    """Width of the learned temporal-position slots (0: none)."""
    memory_max: int = 32
    """Memory entries per person (the nearest in time)."""
    memory_same_track: bool = False
    """Memory of the person's own track only."""
    pretrained: bool = False
    """Also load the IA weights of an AlphAction IA checkpoint given as model.pretrained."""

    @property
    def enabled(self) -> bool:
        return self.structure != "none"

    def __post_init__(self) -> None:
        if not self.blocks:
            raise ValueError("head.interaction.blocks is empty")
        if self.dim_inner < 1 or self.num_heads < 1 or self.dim_inner % self.num_heads:
            raise ValueError(
                f"head.interaction.dim_inner ({self.dim_inner}) must be a positive multiple of num_heads "
                f"({self.num_heads})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"head.interaction.dropout must be in [0, 1), got {self.dropout}")
        if self.memory_window_s <= 0 or self.memory_slot_s < 0 or self.memory_max < 1:
            raise ValueError(
                "head.interaction: memory_window_s must be > 0, memory_slot_s >= 0 and memory_max >= 1"
            )
        if self.structure == "parallel":
            parallel_layers(self.blocks)  # raises ValueError on uneven layers


@dataclass
class HeadConfig:
    """Settings of :class:`~thermact.models.head.RoIActionHead` and of how its logits are read.

    ``mode`` is not used by the network (which returns logits); it tells the trainer which loss
    family (softmax: ``ce``/``focal``; sigmoid: ``bce``/``sigmoid_focal``) and which
    :func:`~thermact.models.postprocess.scores_from_logits` mode go with the model.
    """

    mode: Literal["softmax", "sigmoid"] = "softmax"
    """softmax (single-label) or sigmoid (multi-label): loss family and score function."""
    mlp_dim: int = 1024
    """Width of the head's MLP."""
    dropout: float = 0.2
    """Dropout before the classifier."""
    roi_size: int = 7
    """RoIAlign output bins per side."""
    temporal_pool: Literal["avg", "max"] = "avg"
    """Pooling over time before RoIAlign."""
    spatial_pool: Literal["max", "avg"] = "max"
    """Pooling of the RoIAlign bins."""
    box_cues: bool = False
    """Append an embedding of each box's size, heat and motion to its pooled features (models.box_cues)."""
    box_cue_dim: int = 32
    """Size of that embedding (with box_cues)."""
    box_position: bool = False
    """The cues include the box centre as a fraction of the frame (with box_cues): where a person is
    says much in a known room, less in another (flips turn it into the distance from the edges)."""
    box_radial: bool = False
    """The cues include the box's distance from the frame centre and its elongation away from it
    (with box_cues; models.box_cues.radial_cues): the place relative to the sensor's axis, which
    means the same in any room (unlike the box centre) and is unchanged by flips and half-turns."""
    interaction: InteractionConfig = field(default_factory=InteractionConfig)

    def __post_init__(self) -> None:
        if self.mlp_dim < 1:
            raise ValueError(f"head.mlp_dim must be >= 1, got {self.mlp_dim}")
        if self.roi_size < 1:
            raise ValueError(f"head.roi_size must be >= 1, got {self.roi_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"head.dropout must be in [0, 1), got {self.dropout}")
        if self.box_cue_dim < 1:
            raise ValueError(f"head.box_cue_dim must be >= 1, got {self.box_cue_dim}")
        if self.box_cues and self.interaction.enabled:
            raise ValueError("head.box_cues is not combined with an interaction structure (head.interaction)")
        if self.box_position and not self.box_cues:
            raise ValueError("head.box_position needs head.box_cues: true")
        if self.box_radial and not self.box_cues:
            raise ValueError("head.box_radial needs head.box_cues: true")


@dataclass
class ModelConfig:
    """The ``model:`` config section (see the module docstring for a YAML example)."""

    name: ModelName = "thermal_net_s"
    """The network (see thermact model info)."""
    num_classes: int = 14
    """Action classes (the dataset's)."""
    num_frames: int = 16
    """Frames per clip (SlowFast: a multiple of its alpha)."""
    input_size: tuple[int, int] | None = None
    """[H, W] the clip is resized to (null: the sensor's 40x60)."""
    backbone_dropout: float = 0.0
    """ThermalNet: dropout on the backbone output."""
    frozen_bn: bool = False
    """SlowFast: frozen BatchNorm (transfer)."""
    fusion_style: Literal["auto", "conv_bn_relu", "conv_bias"] = "auto"
    """SlowFast lateral connections: auto (from model.pretrained), conv_bn_relu or conv_bias."""
    stem_pool_padding: Literal["auto", 0, 1] = "auto"
    """SlowFast stem max-pool padding: auto (from model.pretrained), 0 (AlphAction) or 1."""
    pretrained: str | None = None
    """Backbone weights to start from: AlphAction, PySlowFast, PyTorchVideo files (SlowFast) or a
    thermact pretrain checkpoint (ThermalNet)."""
    pretrained_source: PretrainedSource = "auto"
    """Format of model.pretrained (auto: detected)."""
    trust_checkpoint: bool = False
    """Allow pickled pretrained files (Caffe2 .pkl): only for files you trust."""
    no_head: bool = True
    """Drop the pretrained file's classifier tensors."""
    head: HeadConfig = field(default_factory=HeadConfig)
    members: int = 1
    """Models averaged (an ensemble written by ``thermact model ensemble``); training builds one."""

    def __post_init__(self) -> None:
        if self.members < 1:
            raise ValueError(f"members must be >= 1, got {self.members}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.input_size is not None and min(self.input_size) < 1:
            raise ValueError(f"input_size must be positive [H, W], got {list(self.input_size)}")
        if not 0.0 <= self.backbone_dropout < 1.0:
            raise ValueError(f"backbone_dropout must be in [0, 1), got {self.backbone_dropout}")


def _open_pretrained(cfg: ModelConfig) -> OpenedCheckpoint | None:
    """The published SlowFast weights of ``cfg.pretrained`` (None for ThermalNet: see :func:`build_model`)."""
    if cfg.pretrained is None or not cfg.name.startswith("slowfast"):
        return None
    return open_checkpoint(cfg.pretrained, cfg.pretrained_source, cfg.trust_checkpoint)


def resolve_architecture(cfg: ModelConfig, checkpoint: OpenedCheckpoint | None) -> ModelConfig:
    """``cfg`` with ``fusion_style`` / ``stem_pool_padding: auto`` replaced by concrete values.

    With a ``checkpoint`` they are its source's (AlphAction: ``conv_bias`` and 0; PySlowFast,
    Caffe2, PyTorchVideo: ``conv_bn_relu`` and 1); without, PySlowFast's. Its weights would compute
    something else in a model that differs, so :class:`ConfigError` names the one key to change
    when an explicit value contradicts the source, or when the checkpoint matches published
    layouts of one depth and alpha and ``model.name`` is not the variant with those
    (:data:`SLOWFAST_VARIANTS`). ThermalNet configs are returned unchanged.
    """
    if not cfg.name.startswith("slowfast"):
        return cfg
    arch = checkpoint.architecture if checkpoint is not None else None
    fusion = cfg.fusion_style
    if fusion == "auto":
        fusion = arch.fusion_style if arch is not None else "conv_bn_relu"
    padding = cfg.stem_pool_padding
    if padding == "auto":
        padding = arch.stem_pool_padding if arch is not None else 1
    if checkpoint is None or arch is None:
        return dataclasses.replace(cfg, fusion_style=fusion, stem_pool_padding=padding)
    for key, ours, theirs in (
        ("fusion_style", fusion, arch.fusion_style),
        ("stem_pool_padding", padding, arch.stem_pool_padding),
    ):
        if ours != theirs:
            raise ConfigError(
                f"config key 'model.{key}': {ours!r}, but checkpoint {checkpoint.path} comes from "
                f"{SOURCE_FACTS[arch.source].name} ({SOURCE_FACTS[arch.source].evidence}); its weights "
                f"compute something else with it: set model.{key}=auto (or {theirs!r})"
            )
    if arch.depth is not None and arch.alpha is not None:
        variant = SLOWFAST_VARIANTS.get((arch.depth, arch.alpha))
        if variant is not None and variant != cfg.name:
            raise ConfigError(
                f"config key 'model.name': checkpoint {checkpoint.path} is a SlowFast R{arch.depth} with "
                f"alpha {arch.alpha} (layout {' / '.join(arch.layouts)}); its weights compute something else "
                f"in {cfg.name}: set model.name={variant}"
            )
    return dataclasses.replace(cfg, fusion_style=fusion, stem_pool_padding=padding)


def resolve_model_config(cfg: ModelConfig) -> ModelConfig:
    """:func:`resolve_architecture` with ``cfg.pretrained`` read. A trained model's saved config
    should be this one: rebuilt later without the pretrained file, ``auto`` would fall back to the
    defaults and give another network."""
    return resolve_architecture(cfg, _open_pretrained(cfg))


def _slowfast(cfg: ModelConfig) -> SlowFast:
    if cfg.backbone_dropout:
        raise ConfigError(f"config key 'model.backbone_dropout': not supported by {cfg.name}")
    factory = {"slowfast_r50_4x16": slowfast_r50_4x16, "slowfast_r50_8x8": slowfast_r50_8x8}.get(
        cfg.name, slowfast_r101_8x8
    )
    fusion = "conv_bn_relu" if cfg.fusion_style == "auto" else cfg.fusion_style
    padding = 1 if cfg.stem_pool_padding == "auto" else cfg.stem_pool_padding
    net = factory(in_chans=1, frozen_bn=cfg.frozen_bn, fusion_style=fusion, stem_pool_padding=padding)
    if cfg.num_frames % net.alpha != 0:
        raise ConfigError(
            f"config key 'model.num_frames': {cfg.num_frames} is not a multiple of alpha={net.alpha} of {cfg.name}"
        )
    return net


def build_backbone(cfg: ModelConfig) -> nn.Module:
    """The backbone named by ``cfg.name`` (random init; see :func:`build_model` for weights).

    ``auto`` architecture keys give PySlowFast's (``conv_bn_relu``, 1): resolve them first
    (:func:`resolve_model_config`) to build the network of a checkpoint's source. One network:
    ``model.members`` other than 1 (an ensemble's checkpoint) is refused, so training and
    pretraining runs train single networks (ensembles are joined by ``thermact model ensemble``).
    """
    if cfg.members != 1:
        raise ConfigError(
            f"config key 'model.members': {cfg.members}, but a run trains one network (train each "
            "member with its own seed, then join them with 'thermact model ensemble')"
        )
    match cfg.name:
        case "thermal_net_t" | "thermal_net_s" | "thermal_net_m":
            for key, value in (
                ("frozen_bn", cfg.frozen_bn),
                ("fusion_style", cfg.fusion_style != "auto"),
                ("stem_pool_padding", cfg.stem_pool_padding != "auto"),
            ):
                if value:
                    raise ConfigError(
                        f"config key 'model.{key}': not supported by {cfg.name} (a SlowFast setting; "
                        "ThermalNet trains from scratch)"
                    )
            factory = {"thermal_net_t": thermal_net_t, "thermal_net_s": thermal_net_s}.get(
                cfg.name, thermal_net_m
            )
            return factory(in_chans=1, dropout=cfg.backbone_dropout)
        case "slowfast_r50_4x16" | "slowfast_r50_8x8" | "slowfast_r101_8x8":
            return _slowfast(cfg)
        case _:
            raise ConfigError(
                f"config key 'model.name': unknown model {cfg.name!r}; use one of {', '.join(MODEL_NAMES)}"
            )


def build_model(cfg: ModelConfig, clip: ClipConfig | None = None, verbose: bool = True) -> ActionModel:
    """Build the action model of ``cfg`` for clips ``clip``; load ``cfg.pretrained`` backbone weights if set.

    ``clip`` (default: ``cfg.num_frames`` frames, keyframe at the centre) must have
    ``cfg.num_frames`` frames; its keyframe position decides which frames the slow pathway takes.

    The checkpoint is read once: its source fixes the ``auto`` architecture keys
    (:func:`resolve_architecture`), then :func:`thermact.models.pretrained.load_pretrained` loads
    the backbone only (strict: every backbone tensor must load; our head is always freshly
    initialised since the action classes differ); its report is printed when ``verbose``.
    ThermalNet has no published weights: its ``pretrained`` is a ``thermact pretrain`` checkpoint,
    whose backbone loads strictly (:func:`thermact.models.masked_clip.load_pretrained_backbone`).
    """
    clip = clip if clip is not None else ClipConfig(num_frames=cfg.num_frames)
    if clip.num_frames != cfg.num_frames:
        raise ConfigError(
            f"config key 'model.num_frames': {cfg.num_frames}, but the clip has {clip.num_frames} frames"
        )
    checkpoint = _open_pretrained(cfg)
    cfg = resolve_architecture(cfg, checkpoint)
    backbone = build_backbone(cfg)
    spec = cast(Backbone, backbone)
    stride = int(spec.spatial_stride)
    out_channels = tuple(int(c) for c in spec.out_channels)
    head = RoIActionHead(
        in_channels=out_channels,
        spatial_scale=1.0 / stride,
        num_classes=cfg.num_classes,
        roi_size=cfg.head.roi_size,
        mlp_dim=cfg.head.mlp_dim,
        dropout=cfg.head.dropout,
        temporal_pool=cfg.head.temporal_pool,
        spatial_pool=cfg.head.spatial_pool,
        extra_dim=cfg.head.box_cue_dim if cfg.head.box_cues else 0,
    )
    interaction = build_interaction(cfg.head.interaction, head.dim_in)
    cues = (
        BoxCueEncoder(
            cfg.head.box_cue_dim,
            clip.keyframe_position,
            position=cfg.head.box_position,
            radial=cfg.head.box_radial,
        )
        if cfg.head.box_cues
        else None
    )
    model = ActionModel(
        backbone,
        head,
        input_size=cfg.input_size,
        keyframe_position=clip.keyframe_position,
        interaction=interaction,
        cues=cues,
    )
    if cfg.head.interaction.pretrained and (checkpoint is None or interaction is None):
        raise ConfigError(
            "config key 'model.head.interaction.pretrained': needs an interaction structure and "
            "model.pretrained (an AlphAction IA checkpoint)"
        )
    if cfg.pretrained is not None and checkpoint is None:  # ThermalNet
        thermal_report = load_pretrained_backbone(model.backbone, cfg.pretrained, cfg.name)
        if verbose:
            logger.info("%s", thermal_report)
    if checkpoint is not None:
        report = load_pretrained(model.backbone, checkpoint, no_head=cfg.no_head)
        if verbose:
            logger.info("%s", report)
        if cfg.head.interaction.pretrained:
            ia_report = load_alphaction_interaction(model, checkpoint)
            if verbose:
                logger.info("%s", ia_report)
    return model


def build_interaction(cfg: InteractionConfig, dim_person: int) -> InteractionHead | None:
    """The interaction head of ``cfg`` over pooled features of size ``dim_person`` (None if off)."""
    if cfg.structure == "none":
        return None
    return InteractionHead(
        dim_person=dim_person,
        blocks=cfg.blocks,
        structure=cfg.structure,
        dim_inner=cfg.dim_inner,
        num_heads=cfg.num_heads,
        dropout=cfg.dropout,
        layer_norm=cfg.layer_norm,
        memory_window_s=cfg.memory_window_s,
        memory_slot_s=cfg.memory_slot_s,
        memory_max=cfg.memory_max,
        memory_same_track=cfg.memory_same_track,
    )
