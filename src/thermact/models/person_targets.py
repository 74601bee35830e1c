"""Training targets of the centre-point detector: gaussian heatmaps, box sizes and centre offsets.

For each box (pixel XYXY over the ``H x W`` input frame) of class ``k`` and an output stride ``s``:

* centre in output cells ``c = ((x1 + x2) / 2s, (y1 + y2) / 2s)``, its cell
  ``(i, j) = floor(c)`` (clipped into the map) and the sub-cell offset ``c - (i, j)``;
* ``heatmap[k]`` gets a gaussian ``exp(-(dx² + dy²) / 2σ²)`` around the centre cell, truncated
  at ``|dx|, |dy| <= r``, with ``σ = (2r + 1) / 6`` and the radius ``r`` of :func:`gaussian_radius`
  (a box whose corners move by ``r`` cells still overlaps the true box with IoU >= 0.7); gaussians
  of several boxes combine by element-wise maximum, so every centre cell is exactly 1;
* at the centre cell: ``size = (log w, log h)`` in input pixels, ``offset = c - (i, j)``,
  ``mask = 1`` (two boxes with the same centre cell: the later one wins).

Shapes of :class:`DetectionTargets` for one image: heatmap ``[K, h, w]``, size ``[2, h, w]``,
offset ``[2, h, w]``, mask ``[h, w]``; :func:`encode_batch` stacks them with a leading ``B``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

__all__ = ["DetectionTargets", "draw_gaussian", "encode_batch", "encode_targets", "gaussian_radius"]


@dataclasses.dataclass(frozen=True)
class DetectionTargets:
    """Dense targets (float32 tensors; shapes in the module docstring)."""

    heatmap: Tensor
    size: Tensor
    offset: Tensor
    mask: Tensor

    def to(self, device: torch.device | str) -> DetectionTargets:
        return DetectionTargets(
            self.heatmap.to(device), self.size.to(device), self.offset.to(device), self.mask.to(device)
        )


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """Largest corner shift (in the units of ``height``/``width``) keeping IoU >= ``min_overlap``.

    The minimum of the three quadratic cases of CornerNet (both corners inside, both outside, one
    each), in the form CenterNet's reference implementation uses.
    """
    h, w, o = float(height), float(width), float(min_overlap)
    b1 = h + w
    c1 = w * h * (1 - o) / (1 + o)
    r1 = (b1 + math.sqrt(b1 * b1 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - o) * w * h
    r2 = (b2 + math.sqrt(b2 * b2 - 16 * c2)) / 2
    a3 = 4 * o
    b3 = -2 * o * (h + w)
    c3 = (o - 1) * w * h
    r3 = (b3 + math.sqrt(b3 * b3 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heatmap: npt.NDArray[np.float32], cx: int, cy: int, radius: int) -> None:
    """Max-combine a truncated gaussian of ``radius`` centred on cell ``(cx, cy)`` into ``heatmap [h, w]``.

    Values: ``exp(-(dx² + dy²) / (2σ²))`` with ``σ = (2 * radius + 1) / 6``; the centre is 1.
    Modifies ``heatmap`` (a NumPy array, never a graph tensor) in place.
    """
    h, w = heatmap.shape
    sigma = (2 * radius + 1) / 6.0
    d = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(d[None, :] ** 2 + d[:, None] ** 2) / (2 * sigma * sigma)).astype(np.float32)
    x0, x1 = max(0, cx - radius), min(w, cx + radius + 1)
    y0, y1 = max(0, cy - radius), min(h, cy + radius + 1)
    if x0 >= x1 or y0 >= y1:
        return
    patch = g[y0 - cy + radius : y1 - cy + radius, x0 - cx + radius : x1 - cx + radius]
    np.maximum(heatmap[y0:y1, x0:x1], patch, out=heatmap[y0:y1, x0:x1])


def encode_targets(
    boxes: Tensor | npt.NDArray[np.floating],
    labels: Tensor | npt.NDArray[np.integer],
    num_classes: int,
    output_size: tuple[int, int],
    stride: int,
    min_overlap: float = 0.7,
) -> DetectionTargets:
    """Targets of one image.

    Args:
        boxes: ``[N, 4]`` pixel XYXY over the input frame (positive width and height).
        labels: ``[N]`` class ids in ``0..num_classes-1``.
        num_classes: ``K``.
        output_size: ``(h, w)`` of the output maps.
        stride: input pixels per output cell.
        min_overlap: IoU the gaussian radius is computed for.
    """
    b = np.asarray(boxes.detach().cpu() if isinstance(boxes, Tensor) else boxes, dtype=np.float64)
    lab = np.asarray(labels.detach().cpu() if isinstance(labels, Tensor) else labels, dtype=np.int64)
    b = b.reshape(-1, 4)
    if lab.shape != (b.shape[0],):
        raise ValueError(f"labels must have shape [{b.shape[0]}], got {list(lab.shape)}")
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}, got {sorted(set(lab.tolist()))}")
    h, w = output_size
    heat = np.zeros((num_classes, h, w), dtype=np.float32)
    size = np.zeros((2, h, w), dtype=np.float32)
    offset = np.zeros((2, h, w), dtype=np.float32)
    mask = np.zeros((h, w), dtype=np.float32)
    for (x1, y1, x2, y2), k in zip(b, lab, strict=True):
        bw, bh = x2 - x1, y2 - y1
        if bw <= 0 or bh <= 0:
            continue
        cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
        ix, iy = min(max(math.floor(cx), 0), w - 1), min(max(math.floor(cy), 0), h - 1)
        radius = max(0, int(gaussian_radius(bh / stride, bw / stride, min_overlap)))
        draw_gaussian(heat[int(k)], ix, iy, radius)
        size[:, iy, ix] = (math.log(bw), math.log(bh))
        offset[:, iy, ix] = (cx - ix, cy - iy)
        mask[iy, ix] = 1.0
    return DetectionTargets(
        torch.from_numpy(heat), torch.from_numpy(size), torch.from_numpy(offset), torch.from_numpy(mask)
    )


def encode_batch(
    boxes: Sequence[Tensor],
    labels: Sequence[Tensor],
    num_classes: int,
    output_size: tuple[int, int],
    stride: int,
    min_overlap: float = 0.7,
) -> DetectionTargets:
    """:func:`encode_targets` of each image, stacked: heatmap ``[B, K, h, w]``, size/offset ``[B, 2, h, w]``, mask ``[B, h, w]``."""
    per = [
        encode_targets(b, lab, num_classes, output_size, stride, min_overlap)
        for b, lab in zip(boxes, labels, strict=True)
    ]
    return DetectionTargets(
        torch.stack([t.heatmap for t in per]),
        torch.stack([t.size for t in per]),
        torch.stack([t.offset for t in per]),
        torch.stack([t.mask for t in per]),
    )
