"""Box cues: what a person box and its heat say from above, as features (hand-made and for the network).

A ceiling sensor sees a standing person as a small warm blob (head and shoulders), a lying one
as a long, large blob, a walking one as a blob that moves. :func:`box_cues` turns a batch of clips
and their person boxes into a fixed vector of such cues per box (:data:`CUE_NAMES`):

==================  ==========================================================================
cue                 meaning (box ``[x1, y1, x2, y2]`` in pixels, frame ``H x W``)
==================  ==========================================================================
width_px            ``x2 - x1``
height_px           ``y2 - y1``
area_px             ``width * height``
long_side_px        ``max(width, height)`` (the same under 90° turns and mirrors)
short_side_px       ``min(width, height)``
elongation          ``long_side / short_side``
center_x            box centre ``x / W`` (0..1)
center_y            box centre ``y / H`` (0..1)
mean_above_bg       mean box temperature at the keyframe minus the background
peak_above_bg       hottest box pixel at the keyframe minus the background
hot_area_px         box pixels at least ``hot_delta`` above the background (the body)
hot_fraction        ``hot_area / box pixels``
motion_energy       mean absolute frame-to-frame change inside the box over the clip
warming             mean box temperature at the last frame minus at the first
==================  ==========================================================================

Temperatures are in the units of the clip (°C for the hand-made baseline, normalised units inside
a network). The *background* of a frame is the median of its pixels outside every person box of
its clip (all pixels if the boxes cover the frame), so the room's temperature, which differs
between rooms and days, is subtracted from every temperature cue. A box covers the pixels whose
centres ``i + 0.5`` lie inside it (at least the pixel nearest its centre).

:class:`BoxCueEncoder` embeds the room-independent cues (all but the position) for the RoI
head of an :class:`~thermact.models.action.ActionModel`, whose RoIAlign resamples every box
to the same grid and so cannot see its size.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

__all__ = [
    "CUE_NAMES",
    "HOT_DELTA_C",
    "NETWORK_CUES",
    "RADIAL_CUE_NAMES",
    "BoxCueEncoder",
    "box_cues",
    "box_pixel_masks",
    "frame_backgrounds",
    "midpoint_median",
    "radial_cues",
]

CUE_NAMES: tuple[str, ...] = (
    "width_px",
    "height_px",
    "area_px",
    "long_side_px",
    "short_side_px",
    "elongation",
    "center_x",
    "center_y",
    "mean_above_bg",
    "peak_above_bg",
    "hot_area_px",
    "hot_fraction",
    "motion_energy",
    "warming",
)

NETWORK_CUES: tuple[str, ...] = tuple(n for n in CUE_NAMES if not n.startswith("center_"))
"""The cues :class:`BoxCueEncoder` uses: the position in the frame is a cue about one room's layout."""

RADIAL_CUE_NAMES: tuple[str, ...] = ("radius", "radial_elongation")
"""Where a box lies relative to the optical axis (:func:`radial_cues`): the same in any room the
sensor looks straight down on, unlike the box centre (one room's layout)."""

HOT_DELTA_C = 1.5
"""A pixel this much warmer than the background counts as body heat (°C)."""

_LOG_CUES = frozenset({"width_px", "height_px", "area_px", "long_side_px", "short_side_px", "hot_area_px"})
"""Cues :class:`BoxCueEncoder` takes the logarithm of (sizes: a ceiling height scales them)."""


def box_pixel_masks(boxes: Tensor, frame_size: tuple[int, int]) -> Tensor:
    """Bool ``[N, H, W]``: the pixels of each pixel-XYXY box ``[N, 4]``.

    Pixel ``(i, j)`` belongs to a box when its centre ``(j + 0.5, i + 0.5)`` lies inside it; a box
    too thin to contain a centre along an axis gets the pixel nearest its centre on that axis.
    """
    height, width = frame_size

    def axis(lo: Tensor, hi: Tensor, size: int) -> Tensor:
        index = torch.arange(size, device=boxes.device)
        centres = index.to(boxes.dtype) + 0.5
        inside = (centres >= lo[:, None]) & (centres <= hi[:, None])
        nearest = ((lo + hi) / 2).floor().clamp(0, size - 1).long()
        fallback = index == nearest[:, None]
        empty = ~inside.any(dim=1, keepdim=True)
        return inside | (fallback & empty)  # (not torch.where: onnxruntime has no bool Where)

    cols = axis(boxes[:, 0], boxes[:, 2], width)
    rows = axis(boxes[:, 1], boxes[:, 3], height)
    return rows[:, :, None] & cols[:, None, :]


def frame_backgrounds(key: Tensor, masks: Tensor, batch_index: Tensor) -> Tensor:
    """``[B]`` median of each frame ``key [B, H, W]`` outside the boxes ``masks [K, H, W]`` that
    ``batch_index [K]`` gives it (midpoint median, as NumPy's; all pixels when they cover the frame)."""
    owner = batch_index[None, :] == torch.arange(key.shape[0], device=key.device)[:, None]  # [B, K]
    # boxes covering each pixel, [B, H * W] (a product, not index_put: exports to ONNX exactly)
    occupied = owner.to(key.dtype) @ masks.flatten(1).to(key.dtype)
    free = occupied == 0
    free = free | ~free.any(dim=1, keepdim=True)
    return midpoint_median(key.flatten(1), free)


def midpoint_median(values: Tensor, keep: Tensor) -> Tensor:
    """``[B]`` median of the ``keep`` entries of each row of ``values [B, N]`` (every row keeps at
    least one): the mean of the two middle ones for an even count, as ``numpy.median``.

    Computed by selection (``nanmedian`` gives the lower middle one; the upper one is the same
    value unless fewer than ``count // 2 + 1`` kept entries are at most it, and then the smallest
    kept entry above it), about 2x faster on a CPU than sorting every row; when exporting to ONNX,
    which has no median, by sorting (the same values).
    """
    count = keep.sum(dim=1)
    if torch.onnx.is_in_onnx_export():
        ordered, _ = values.masked_fill(~keep, float("inf")).sort(dim=1)
        low = ordered.gather(1, ((count - 1) // 2)[:, None])[:, 0]
        high = ordered.gather(1, (count // 2)[:, None])[:, 0]
        return (low + high) / 2
    kept = values.masked_fill(~keep, float("nan"))
    low = kept.nanmedian(dim=1).values
    at_most = (kept <= low[:, None]).sum(dim=1)  # NaN compares false
    above = kept.masked_fill(~(kept > low[:, None]), float("inf")).amin(dim=1)
    high = torch.where(at_most >= count // 2 + 1, low, above)
    return (low + high) / 2


@torch.no_grad()
def box_cues(frames: Tensor, rois: Tensor, key_index: int, hot_delta: float = HOT_DELTA_C) -> Tensor:
    """The :data:`CUE_NAMES` of every box.

    Args:
        frames: ``[B, T, H, W]`` clips (oldest frame first), °C or normalised units.
        rois: ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)``, pixel XYXY at the keyframe.
        key_index: the keyframe's index in ``0..T-1`` (``T - 1`` for causal clips).
        hot_delta: the body-heat threshold above the background, in the units of ``frames``.

    Returns:
        ``[K, len(CUE_NAMES)]`` in the dtype of ``frames``.
    """
    if frames.dim() != 4 or rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(
            f"expected frames [B, T, H, W] and rois [K, 5], got {list(frames.shape)}, {list(rois.shape)}"
        )
    num_frames, height, width = frames.shape[1:]
    if not 0 <= key_index < num_frames:
        raise ValueError(f"key_index {key_index} outside the clip of {num_frames} frames")
    boxes = rois[:, 1:].to(frames.dtype)
    index = rois[:, 0].long()
    masks = box_pixel_masks(boxes, (height, width))
    area = masks.sum(dim=(1, 2)).to(frames.dtype)
    key = frames[:, key_index]
    background = frame_backgrounds(key, masks, index)[index]
    at_key = key[index]
    mean_key = (at_key * masks).sum(dim=(1, 2)) / area
    peak = at_key.masked_fill(~masks, float("-inf")).amax(dim=(1, 2))
    hot = ((at_key >= (background + hot_delta)[:, None, None]) & masks).sum(dim=(1, 2)).to(frames.dtype)
    clips = frames[index]
    if num_frames > 1:
        steps = (clips[:, 1:] - clips[:, :-1]).abs()
        motion = (steps * masks[:, None]).sum(dim=(2, 3)).mean(dim=1) / area
    else:
        motion = torch.zeros_like(area)
    warming = ((clips[:, -1] - clips[:, 0]) * masks).sum(dim=(1, 2)) / area
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    long_side, short_side = torch.maximum(w, h), torch.minimum(w, h)
    cues = [
        w,
        h,
        w * h,
        long_side,
        short_side,
        long_side / short_side.clamp_min(1e-6),
        (boxes[:, 0] + boxes[:, 2]) / 2 / width,
        (boxes[:, 1] + boxes[:, 3]) / 2 / height,
        mean_key - background,
        peak - background,
        hot,
        hot / area,
        motion,
        warming,
    ]
    return torch.stack(cues, dim=1)


def radial_cues(boxes: Tensor, frame_size: tuple[int, int]) -> Tensor:
    """``[K, 2]`` :data:`RADIAL_CUE_NAMES` of pixel-XYXY ``boxes [K, 4]`` in a frame of ``(H, W)``.

    A sensor looking straight down sees a person under it from above (a compact blob) and one
    towards the edge of its view obliquely (a blob stretched away from the centre: in the bundled
    data the boxes of people on a bed are; those of standing people are not). And a room has its
    free floor under a ceiling-centred sensor, its furniture and doors by the walls, so the
    distance from the centre is also a prior about rooms in general, not a map of one. ``radius``: the
    distance of the box centre from the frame centre over half the frame diagonal (0 at the optical
    axis, 1 in a corner). ``radial_elongation``: the box's extent along the direction from the
    frame centre over its extent across it, ``(|dx| w + |dy| h) / (|dy| w + |dx| h)`` for the offset
    ``(dx, dy)`` of the box centre and its size ``w x h`` (1 at the centre). Both are unchanged by
    the mirrors and the half-turn about the frame centre.
    """
    height, width = frame_size
    dx = (boxes[:, 0] + boxes[:, 2]) / 2 - width / 2
    dy = (boxes[:, 1] + boxes[:, 3]) / 2 - height / 2
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    radius = (dx.square() + dy.square()).sqrt() / (0.5 * (width**2 + height**2) ** 0.5)
    along = (dx.abs() * w + dy.abs() * h).clamp_min(1e-6)
    across = (dy.abs() * w + dx.abs() * h).clamp_min(1e-6)
    return torch.stack([radius, along / across], dim=1)


class BoxCueEncoder(nn.Module):
    """Embeds the :data:`NETWORK_CUES` of each person box: ``relu(linear(batchnorm(cues)))``
    (with ``position``, all the :data:`CUE_NAMES`: the box centre too, as a fraction of the frame;
    with ``radial``, the :data:`RADIAL_CUE_NAMES` after them).

    Sizes enter as logarithms (a different ceiling height scales them, which becomes a shift).

    Args:
        dim: size of the embedding.
        keyframe_position: ``"causal"`` (keyframe = last clip frame) or ``"center"`` (frame ``T // 2``).
        hot_delta: the body-heat threshold in the units of the clips the model gets.
        position: also embed the box centre (``center_x``, ``center_y``).
        radial: also embed the box's place relative to the optical axis (:func:`radial_cues`).

    Shapes: ``forward(frames [B, 1, T, H, W], rois [K, 5])`` → ``[K, dim]``.
    """

    def __init__(
        self,
        dim: int = 32,
        keyframe_position: Literal["center", "causal"] = "causal",
        hot_delta: float = 1.0,
        position: bool = False,
        radial: bool = False,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.keyframe_position = keyframe_position
        self.hot_delta = hot_delta
        self.radial = radial
        names = CUE_NAMES if position else NETWORK_CUES
        self.columns = [CUE_NAMES.index(n) for n in names]
        self.log_columns = [i for i, n in enumerate(names) if n in _LOG_CUES]
        width = len(names) + (len(RADIAL_CUE_NAMES) if radial else 0)
        self.norm = nn.BatchNorm1d(width)
        self.proj = nn.Linear(width, dim)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, clip: Tensor, rois: Tensor) -> Tensor:
        num_frames = clip.shape[2]
        key_index = num_frames - 1 if self.keyframe_position == "causal" else num_frames // 2
        cues = box_cues(clip[:, 0].float(), rois.float(), key_index, self.hot_delta)[:, self.columns]
        logs = cues[:, self.log_columns].clamp_min(0).log1p()
        cues = cues.index_copy(1, torch.tensor(self.log_columns, device=cues.device), logs)
        if self.radial:
            cues = torch.cat(
                [cues, radial_cues(rois[:, 1:].float(), (clip.shape[-2], clip.shape[-1]))], dim=1
            )
        out: Tensor = self.relu(self.proj(self.norm(cues.to(clip.dtype))))
        return out
