"""Model configuration and construction.

``ModelConfig`` is the ``model:`` section of a training config (see :mod:`thermact.config`)::

    model:
      name: thermal_net_s          # thermal_net_t | thermal_net_s | thermal_net_m | slowfast_r50_4x16 | slowfast_r101_8x8
      num_classes: 14
      num_frames: 16               # clip length T; SlowFast: a multiple of alpha (32 in the papers)
      input_size: null             # [H, W] to resize the clip to, e.g. [256, 384] for SlowFast
      backbone_dropout: 0.0        # ThermalNet only: dropout on the backbone output
      frozen_bn: false             # SlowFast only: FrozenBatchNorm3d
      fusion_style: auto           # SlowFast only: auto | conv_bn_relu | conv_bias (AlphAction)
      pretrained: null             # path of backbone weights (SlowFast checkpoints)
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
``match`` on the name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from torch import nn

from thermact.data.clips import ClipConfig
from thermact.errors import ConfigError
from thermact.models.action import ActionModel
from thermact.models.base import Backbone
from thermact.models.head import RoIActionHead
from thermact.models.interaction import InteractionHead
from thermact.models.slowfast import slowfast_r50_4x16, slowfast_r101_8x8
from thermact.models.thermal_net import thermal_net_m, thermal_net_s, thermal_net_t

__all__ = [
    "MODEL_NAMES",
    "HeadConfig",
    "InteractionConfig",
    "ModelConfig",
    "build_backbone",
    "build_interaction",
    "build_model",
]

PretrainedSource = Literal["auto", "alphaction", "pyslowfast", "pyslowfast_caffe2", "pytorchvideo"]
ModelName = Literal[
    "thermal_net_t", "thermal_net_s", "thermal_net_m", "slowfast_r50_4x16", "slowfast_r101_8x8"
]
MODEL_NAMES: tuple[ModelName, ...] = (
    "thermal_net_t",
    "thermal_net_s",
    "thermal_net_m",
    "slowfast_r50_4x16",
    "slowfast_r101_8x8",
)


@dataclass
class InteractionConfig:
    """Settings of the optional :class:`~thermact.models.interaction.InteractionHead`.

    ``structure: none`` (default) builds no interaction head: the model, its state dict and its
    numbers are those of the plain RoI head.
    """

    structure: Literal["none", "parallel", "serial", "dense_serial"] = "none"
    blocks: tuple[Literal["P", "M"], ...] = ("P", "M", "P", "M")
    dim_inner: int = 512
    num_heads: int = 1
    dropout: float = 0.2
    layer_norm: bool = True
    memory_window_s: float = 8.0
    memory_slot_s: float = 1.0
    memory_max: int = 32
    memory_same_track: bool = False
    pretrained: bool = False

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
            from thermact.models.interaction import parallel_layers

            parallel_layers(self.blocks)  # raises ValueError on uneven layers


@dataclass
class HeadConfig:
    """Settings of :class:`~thermact.models.head.RoIActionHead` and of how its logits are read.

    ``mode`` is not used by the network (which returns logits); it tells the trainer which loss
    family (softmax: ``ce``/``focal``; sigmoid: ``bce``/``sigmoid_focal``) and which
    :func:`~thermact.models.postprocess.scores_from_logits` mode go with the model.
    """

    mode: Literal["softmax", "sigmoid"] = "softmax"
    mlp_dim: int = 1024
    dropout: float = 0.2
    roi_size: int = 7
    temporal_pool: Literal["avg", "max"] = "avg"
    spatial_pool: Literal["max", "avg"] = "max"
    interaction: InteractionConfig = field(default_factory=InteractionConfig)

    def __post_init__(self) -> None:
        if self.mlp_dim < 1:
            raise ValueError(f"head.mlp_dim must be >= 1, got {self.mlp_dim}")
        if self.roi_size < 1:
            raise ValueError(f"head.roi_size must be >= 1, got {self.roi_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"head.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class ModelConfig:
    """The ``model:`` config section (see the module docstring for a YAML example)."""

    name: ModelName = "thermal_net_s"
    num_classes: int = 14
    num_frames: int = 16
    input_size: tuple[int, int] | None = None
    backbone_dropout: float = 0.0
    frozen_bn: bool = False
    fusion_style: Literal["auto", "conv_bn_relu", "conv_bias"] = "auto"
    pretrained: str | None = None
    pretrained_source: PretrainedSource = "auto"
    trust_checkpoint: bool = False
    no_head: bool = True
    head: HeadConfig = field(default_factory=HeadConfig)

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.input_size is not None and min(self.input_size) < 1:
            raise ValueError(f"input_size must be positive [H, W], got {list(self.input_size)}")
        if not 0.0 <= self.backbone_dropout < 1.0:
            raise ValueError(f"backbone_dropout must be in [0, 1), got {self.backbone_dropout}")


def _fusion_style(cfg: ModelConfig) -> Literal["conv_bn_relu", "conv_bias"]:
    """Resolve ``fusion_style: auto``: AlphAction checkpoints use biased lateral convs without BN.

    With ``pretrained_source: auto`` the checkpoint is read once to detect its format (a ``.pkl``
    is always PySlowFast Caffe2, which is not read here because it is a plain pickle).
    """
    if cfg.fusion_style != "auto":
        return cfg.fusion_style
    if cfg.pretrained is None:
        return "conv_bn_relu"
    source: str = cfg.pretrained_source
    if source == "auto" and Path(cfg.pretrained).suffix != ".pkl":
        from thermact.models.pretrained import detect_source, read_checkpoint, unwrap_state_dict

        state = unwrap_state_dict(read_checkpoint(cfg.pretrained), cfg.pretrained)
        source = detect_source(cfg.pretrained, state)
    return "conv_bias" if source == "alphaction" else "conv_bn_relu"


def build_backbone(cfg: ModelConfig) -> nn.Module:
    """The backbone named by ``cfg.name`` (random init; see :func:`build_model` for weights)."""
    backbone: nn.Module
    match cfg.name:
        case "thermal_net_t" | "thermal_net_s" | "thermal_net_m":
            if cfg.frozen_bn:
                raise ConfigError(
                    f"config key 'model.frozen_bn': not supported by {cfg.name} (it trains from scratch)"
                )
            factory = {"thermal_net_t": thermal_net_t, "thermal_net_s": thermal_net_s}.get(
                cfg.name, thermal_net_m
            )
            backbone = factory(in_chans=1, dropout=cfg.backbone_dropout)
        case "slowfast_r50_4x16" | "slowfast_r101_8x8":
            if cfg.backbone_dropout:
                raise ConfigError(f"config key 'model.backbone_dropout': not supported by {cfg.name}")
            sf = slowfast_r50_4x16 if cfg.name == "slowfast_r50_4x16" else slowfast_r101_8x8
            net = sf(in_chans=1, frozen_bn=cfg.frozen_bn, fusion_style=_fusion_style(cfg))
            alpha = net.alpha
            backbone = net
            if cfg.num_frames % alpha != 0:
                raise ConfigError(
                    f"config key 'model.num_frames': {cfg.num_frames} is not a multiple of alpha={alpha} of {cfg.name}"
                )
        case _:
            raise ConfigError(
                f"config key 'model.name': unknown model {cfg.name!r}; use one of {', '.join(MODEL_NAMES)}"
            )
    return backbone


def build_model(cfg: ModelConfig, clip: ClipConfig | None = None, verbose: bool = True) -> ActionModel:
    """Build the action model of ``cfg`` for clips ``clip``; load ``cfg.pretrained`` backbone weights if set.

    ``clip`` (default: ``cfg.num_frames`` frames, keyframe at the centre) must have
    ``cfg.num_frames`` frames; its keyframe position decides which frames the slow pathway takes.

    The pretrained weights are loaded by :func:`thermact.models.pretrained.load_pretrained` into the
    backbone only (strict: every backbone tensor must load; our head is always freshly initialised
    since the action classes differ); its report is printed when ``verbose``. ThermalNet has no
    published weights: ``pretrained`` with a ThermalNet name raises :class:`ConfigError`.
    """
    if cfg.pretrained is not None and not cfg.name.startswith("slowfast"):
        raise ConfigError(f"config key 'model.pretrained': {cfg.name} has no pretrained weights to load")
    clip = clip if clip is not None else ClipConfig(num_frames=cfg.num_frames)
    if clip.num_frames != cfg.num_frames:
        raise ConfigError(
            f"config key 'model.num_frames': {cfg.num_frames}, but the clip has {clip.num_frames} frames"
        )
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
    )
    interaction = build_interaction(cfg.head.interaction, head.dim_in)
    model = ActionModel(
        backbone,
        head,
        input_size=cfg.input_size,
        keyframe_position=clip.keyframe_position,
        interaction=interaction,
    )
    if cfg.head.interaction.pretrained and (cfg.pretrained is None or interaction is None):
        raise ConfigError(
            "config key 'model.head.interaction.pretrained': needs an interaction structure and "
            "model.pretrained (an AlphAction IA checkpoint)"
        )
    if cfg.pretrained is not None:
        from thermact.models.pretrained import load_pretrained  # lazy: only needed with weights

        report = load_pretrained(
            model.backbone,
            cfg.pretrained,
            source=cfg.pretrained_source,
            trust_checkpoint=cfg.trust_checkpoint,
            no_head=cfg.no_head,
        )
        if verbose:
            print(report)
        if cfg.head.interaction.pretrained:
            from thermact.models.pretrained import load_alphaction_interaction

            ia_report = load_alphaction_interaction(
                model, cfg.pretrained, trust_checkpoint=cfg.trust_checkpoint
            )
            if verbose:
                print(ia_report)
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
