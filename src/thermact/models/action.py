"""The action detector: a backbone, an RoI head and optionally an interaction head wired together.

``ActionModel(clip, rois)`` optionally resizes the clip (for backbones pre-trained on large
frames), splits it into pathways with :func:`thermact.models.base.make_pathways`, runs the
backbone and classifies every person box with the head.

With an interaction head (:class:`~thermact.models.interaction.InteractionHead`, AlphAction's IA
structure), classification runs in two halves that callers may run apart:

1. :meth:`ActionModel.person_features` ``(clip, rois) -> [K, D]``: the pooled RoI features
   (before the MLP), which are also what a memory bank stores;
2. :meth:`ActionModel.classify` ``(pooled, batch_index, memory) -> logits``: the interaction
   head refines the pooled features given the other persons of each clip and the memory
   (:class:`~thermact.models.memory.MemoryContext`), its output is added to them
   (AlphAction ``FUSION: add``), then the MLP and the classifier.

``forward(clip, rois, memory=None)`` chains both; without memory the memory blocks pass their
residual. Without an interaction head ``forward`` is the plain head, exactly as before.

With box cues (:class:`~thermact.models.box_cues.BoxCueEncoder`), an embedding of each box's
size and heat, read from the clip as given (before any resize), is appended to the pooled RoI
features before the MLP in every path (``forward``, :meth:`ActionModel.features`, and
:meth:`ActionModel.classify` through its ``cues`` argument, see :meth:`ActionModel.box_cues`).
RoIAlign resamples every box to the same grid, so without them the head cannot see a box's size.

Shapes and box format:
    clip: ``[B, 1, T, H, W]`` float.
    rois: ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` in pixel coordinates of the *given*
        clip (before any resize), pixel ``i`` covering ``[i, i + 1)``.
    output: logits ``[K, num_classes]``.
"""

from __future__ import annotations

from typing import Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thermact.models.base import Backbone, make_pathways
from thermact.models.box_cues import BoxCueEncoder
from thermact.models.head import RoIActionHead
from thermact.models.interaction import InteractionHead
from thermact.models.memory import FeatureBank, MemoryContext

__all__ = ["ActionModel"]


class ActionModel(nn.Module):
    """Backbone + :class:`RoIActionHead` (+ optional :class:`InteractionHead`).

    Args:
        backbone: an ``nn.Module`` implementing :class:`~thermact.models.base.Backbone`.
        head: the RoI head; its ``spatial_scale`` must be ``1 / backbone.spatial_stride``.
        input_size: ``(height, width)`` the clip is bilinearly resized to before the backbone
            (``None``: used as given). Boxes are scaled by the same factors, consistent with
            ``align_corners=False`` (continuous coordinate ``u`` maps to ``u * out / in``).
        keyframe_position: ``"center"`` or ``"causal"``; decides which frames the slow pathway
            takes (see :func:`thermact.models.base.make_pathways`).
        interaction: optional interaction head over the pooled features; its ``dim_person`` and
            ``dim_out`` must equal ``head.dim_in``.
        cues: optional box-cue encoder whose embedding is appended to the pooled features
            (``head.extra_dim`` must equal ``cues.dim``); not combined with ``interaction``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: RoIActionHead,
        input_size: tuple[int, int] | None = None,
        keyframe_position: Literal["center", "causal"] = "center",
        interaction: InteractionHead | None = None,
        cues: BoxCueEncoder | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, Backbone):
            raise TypeError(
                f"{type(backbone).__name__} does not implement the Backbone protocol "
                "(out_channels, spatial_stride, pathway_strides, forward(list[Tensor]))"
            )
        spec = cast(Backbone, backbone)
        if tuple(head.in_channels) != tuple(spec.out_channels):
            raise ValueError(
                f"head in_channels {head.in_channels} != backbone out_channels {spec.out_channels}"
            )
        if abs(head.spatial_scale * spec.spatial_stride - 1.0) > 1e-6:
            raise ValueError(
                f"head spatial_scale {head.spatial_scale} != 1 / backbone spatial_stride {spec.spatial_stride}"
            )
        if input_size is not None and (len(input_size) != 2 or min(input_size) < 1):
            raise ValueError(f"input_size must be (height, width) > 0, got {input_size!r}")
        self.backbone = backbone
        self.head = head
        self.input_size: tuple[int, int] | None = (
            None if input_size is None else (int(input_size[0]), int(input_size[1]))
        )
        self.pathway_strides: tuple[int, ...] = tuple(int(s) for s in spec.pathway_strides)
        self.spatial_stride: int = int(spec.spatial_stride)
        self.keyframe_position: Literal["center", "causal"] = keyframe_position
        if interaction is not None and not (interaction.dim_person == interaction.dim_out == head.dim_in):
            raise ValueError(
                f"interaction head maps {interaction.dim_person} -> {interaction.dim_out} features, "
                f"the RoI head pools {head.dim_in}"
            )
        self.interaction = interaction
        cue_dim = 0 if cues is None else cues.dim
        if head.extra_dim != cue_dim:
            raise ValueError(f"box cues of size {cue_dim} for a head taking {head.extra_dim} extra features")
        if cues is not None and interaction is not None:
            raise ValueError("box cues are not combined with an interaction head")
        self.cues = cues

    def _check(self, clip: Tensor, rois: Tensor) -> None:
        if clip.dim() != 5:
            raise ValueError(f"clip must be [B, 1, T, H, W], got {list(clip.shape)}")
        if rois.dim() != 2 or rois.shape[1] != 5:
            raise ValueError(f"rois must be [K, 5] (batch_index, x1, y1, x2, y2), got {list(rois.shape)}")

    def resize(self, clip: Tensor, rois: Tensor) -> tuple[Tensor, Tensor]:
        """Resize ``clip`` to ``input_size`` and scale ``rois`` accordingly (no-op when None)."""
        if self.input_size is None:
            return clip, rois
        B, C, T, H, W = clip.shape
        oh, ow = self.input_size
        if (oh, ow) == (H, W):
            return clip, rois
        frames = clip.transpose(1, 2).reshape(B * T, C, H, W)
        frames = F.interpolate(frames, size=(oh, ow), mode="bilinear", align_corners=False)
        clip = frames.reshape(B, T, C, oh, ow).transpose(1, 2)
        scale = torch.tensor([1.0, ow / W, oh / H, ow / W, oh / H], dtype=rois.dtype, device=rois.device)
        return clip, rois * scale

    def backbone_features(self, clip: Tensor) -> list[Tensor]:
        """Backbone feature maps ``[B, C_i, T_i', H'/s, W'/s]`` of an (already resized) clip."""
        feats = self.backbone(make_pathways(clip, self.pathway_strides, self.keyframe_position))
        return cast(list[Tensor], feats)

    def box_cues(self, clip: Tensor, rois: Tensor) -> Tensor | None:
        """The box-cue embedding ``[K, cues.dim]`` of a clip as given (None without box cues)."""
        return None if self.cues is None else self.cues(clip, rois)

    def features(self, clip: Tensor, rois: Tensor) -> Tensor:
        """Per-person MLP features ``[K, mlp_dim]`` (without interaction)."""
        self._check(clip, rois)
        cues = self.box_cues(clip, rois)
        clip, rois = self.resize(clip, rois)
        return self.head.features(self.backbone_features(clip), rois, cues)

    def person_features(self, clip: Tensor, rois: Tensor) -> Tensor:
        """Pooled per-person RoI features ``[K, head.dim_in]`` (before interaction and MLP; without
        the box cues, which :meth:`classify` takes apart)."""
        self._check(clip, rois)
        clip, rois = self.resize(clip, rois)
        return self.head.pooled(self.backbone_features(clip), rois)

    def classify(
        self,
        pooled: Tensor,
        batch_index: Tensor,
        memory: MemoryContext | None = None,
        cues: Tensor | None = None,
    ) -> Tensor:
        """Logits ``[K, num_classes]`` of pooled features ``[K, D]``.

        Args:
            pooled: :meth:`person_features` of the ``K`` persons.
            batch_index: int64 ``[K]``, the clip of each person (persons of the same clip
                interact; ``rois[:, 0]``).
            memory: ``[K, M, D]`` memory of each person (ignored without an interaction head;
                None: no memory).
            cues: :meth:`box_cues` of the ``K`` persons (required by a model with box cues).
        """
        if self.interaction is not None:
            pooled = pooled + self.interaction(pooled, batch_index.to(torch.int64), memory)
        return self.head.classify_pooled(pooled, cues)

    def new_memory_bank(self, capacity: int = 20_000) -> FeatureBank:
        """An empty bank with the memory settings of the interaction head (which must exist)."""
        if self.interaction is None:
            raise ValueError("this model has no interaction head, hence no memory")
        ia = self.interaction
        return FeatureBank(ia.dim_memory, ia.memory_window_s, ia.memory_max, ia.memory_same_track, capacity)

    def forward(
        self, clip: Tensor, rois: Tensor, memory: MemoryContext | None = None, return_pooled: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Logits ``[K, num_classes]``; with ``return_pooled`` also the pooled features ``[K, D]``
        (what a memory bank stores). ``memory``: see :meth:`classify`."""
        self._check(clip, rois)
        cues = self.box_cues(clip, rois)
        clip, rois = self.resize(clip, rois)
        feats = self.backbone_features(clip)
        if self.interaction is None and not return_pooled:
            logits: Tensor = self.head(feats, rois, cues)
            return logits
        pooled = self.head.pooled(feats, rois)
        logits = self.classify(pooled, rois[:, 0].to(torch.int64), memory, cues)
        return (logits, pooled) if return_pooled else logits
