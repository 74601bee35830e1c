"""The interface every backbone implements, and the clip → pathways helper.

A backbone takes one clip per *pathway* (SlowFast has two: a slow one that sees every
``alpha``-th frame and a fast one that sees every frame; ThermalNet has one) and returns one
feature map per pathway, all with the same spatial stride so that the RoI head can concatenate
them after temporal pooling.

Shapes:
    clip: ``[B, 1, T, H, W]`` – the sampled frames, ``T`` of them.
    pathways[i]: ``[B, 1, T // pathway_strides[i], H, W]`` (see :func:`make_pathways`).
    features[i]: ``[B, out_channels[i], T_i', H / spatial_stride, W / spatial_stride]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from torch import Tensor

from thermact.data.clips import pathway_offset

__all__ = ["Backbone", "make_pathways"]


@runtime_checkable
class Backbone(Protocol):
    """Structural type of a backbone ``nn.Module``.

    Attributes:
        out_channels: channels of the feature map of each pathway.
        spatial_stride: input pixels per feature cell (the same for every pathway).
        pathway_strides: temporal subsampling of each pathway relative to the sampled clip
            frames: ``(alpha, 1)`` for SlowFast, ``(1,)`` for a single-pathway backbone.
    """

    out_channels: tuple[int, ...]
    spatial_stride: int
    pathway_strides: tuple[int, ...]

    def forward(self, pathways: list[Tensor]) -> list[Tensor]:
        """``[x_i: [B, 1, T_i, H, W]] -> [y_i: [B, C_i, T_i', H / s, W / s]]``."""
        ...


def make_pathways(
    clip: Tensor, pathway_strides: Sequence[int], keyframe_position: Literal["center", "causal"] = "center"
) -> list[Tensor]:
    """Split a clip into one input per pathway by uniform temporal subsampling.

    Pathway ``i`` gets ``n = T // s`` frames (``s = pathway_strides[i]``) taken every ``s`` frames
    from the offset :func:`thermact.data.clips.pathway_offset` (centred, or ending at the keyframe
    for causal clips). With ``s = 1`` the clip itself is returned. The results are views of
    ``clip`` (no copy).

    Args:
        clip: ``[B, C, T, H, W]``.
        pathway_strides: positive temporal strides, one per pathway.

    Returns:
        ``[clip_i: [B, C, T // s_i, H, W]]``.
    """
    if clip.dim() != 5:
        raise ValueError(f"make_pathways: expected clip [B, C, T, H, W], got {list(clip.shape)}")
    if len(pathway_strides) == 0:
        raise ValueError("make_pathways: pathway_strides is empty")
    T = clip.shape[2]
    out: list[Tensor] = []
    for s in pathway_strides:
        s = int(s)
        if s < 1:
            raise ValueError(f"make_pathways: pathway strides must be >= 1, got {tuple(pathway_strides)}")
        if s == 1:
            out.append(clip)
            continue
        try:
            offset = pathway_offset(T, s, keyframe_position)
        except ValueError as err:
            raise ValueError(f"make_pathways: {err}") from None
        out.append(clip[:, :, offset : offset + (T // s - 1) * s + 1 : s])
    return out
