"""The action detector: a backbone and an RoI head wired together.

``ActionDetector(clip, rois)`` optionally resizes the clip (for backbones pre-trained on large
frames), splits it into pathways with :func:`thermact.models.base.make_pathways`, runs the
backbone and classifies every person box with the head.

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
from thermact.models.head import RoIActionHead

__all__ = ["ActionDetector"]


class ActionDetector(nn.Module):
    """Backbone + :class:`RoIActionHead`.

    Args:
        backbone: an ``nn.Module`` implementing :class:`~thermact.models.base.Backbone`.
        head: the RoI head; its ``spatial_scale`` must be ``1 / backbone.spatial_stride``.
        input_size: ``(height, width)`` the clip is bilinearly resized to before the backbone
            (``None``: used as given). Boxes are scaled by the same factors, consistent with
            ``align_corners=False`` (continuous coordinate ``u`` maps to ``u * out / in``).
        keyframe_position: ``"center"`` or ``"causal"``; decides which frames the slow pathway
            takes (see :func:`thermact.models.base.make_pathways`).
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: RoIActionHead,
        input_size: tuple[int, int] | None = None,
        keyframe_position: Literal["center", "causal"] = "center",
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

    def features(self, clip: Tensor, rois: Tensor) -> Tensor:
        """Per-person MLP features ``[K, mlp_dim]``."""
        self._check(clip, rois)
        clip, rois = self.resize(clip, rois)
        return self.head.features(self.backbone_features(clip), rois)

    def forward(self, clip: Tensor, rois: Tensor) -> Tensor:
        """Logits ``[K, num_classes]``."""
        self._check(clip, rois)
        clip, rois = self.resize(clip, rois)
        logits: Tensor = self.head(self.backbone_features(clip), rois)
        return logits
