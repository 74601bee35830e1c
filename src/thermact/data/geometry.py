"""Geometric ops on a clip: mirrors, the half-turn, shifts, the diagonal mirror, zoom and resize.

Conventions (shared with :mod:`thermact.data.transforms` and :mod:`thermact.data.dataset`):

* ``frames``: float32 ``[..., H, W]`` in °C (or normalised units).
* ``valid``: bool ``[..., H, W]``, True where the sensor value was valid.
* ``boxes``: float32 ``[N, 4]``, pixel XYXY over the frame: the frame spans ``[0, W] × [0, H]``
  and pixel ``i`` covers ``[i, i + 1)`` (see :mod:`thermact.ops.boxes`).

Every op maps the three together, so a box covers the same part of the scene before and after: a
horizontal flip moves pixel column ``j`` to ``W - 1 - j`` and the continuous coordinate ``x`` to
``W - x``, so box ``[x1, x2]`` becomes ``[W - x2, W - x1]``. The ops take torch tensors or NumPy
arrays (all three of one kind) and return the same kind, NumPy results bit-identical to the torch
ones (tested); :func:`resize` takes tensors. Only views that a sensor looking straight down could
give are provided: mirror images (about the axes and the diagonal: with them, quarter turns), a
half-turn, a small shift (the sensor mounted elsewhere over the room) and a zoom about a point
(the sensor mounted higher or lower, or a lens of another field of view); ops that move pixels off
the frame repeat the edge pixels into the uncovered border. Perspective changes are not provided.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

Arr = TypeVar("Arr", npt.NDArray[Any], torch.Tensor)


def check_boxes(boxes: Arr) -> None:
    """A ``ValueError`` unless ``boxes`` is ``[N, 4]``."""
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [N, 4] pixel XYXY, got shape {list(boxes.shape)}")


def _flip(x: Arr, axes: tuple[int, ...]) -> Arr:
    if isinstance(x, torch.Tensor):
        return x.flip(axes)
    return np.flip(x, axes)


def _map_boxes(boxes: Arr, order: list[int], sign: list[float], shift: list[float]) -> Arr:
    """``boxes[:, order] * sign + shift`` (exact for the ±1 signs of the mirrors; :func:`zoom`
    passes its scale)."""
    if isinstance(boxes, torch.Tensor):
        s = torch.tensor(sign, dtype=boxes.dtype, device=boxes.device)
        o = torch.tensor(shift, dtype=boxes.dtype, device=boxes.device)
        return boxes[:, order] * s + o
    mapped: npt.NDArray[Any] = boxes[:, order] * np.asarray(sign, dtype=boxes.dtype)
    shifted: npt.NDArray[Any] = mapped + np.asarray(shift, dtype=boxes.dtype)
    return shifted


def hflip(frames: Arr, valid: Arr, boxes: Arr) -> tuple[Arr, Arr, Arr]:
    """Mirror left-right: column ``j`` → ``W - 1 - j``; box ``[x1, y1, x2, y2]`` → ``[W - x2, y1, W - x1, y2]``.

    Shapes: frames ``[..., H, W]``, valid ``[..., H, W]``, boxes ``[N, 4]``; all tensors or all
    NumPy arrays (frames and mask come back as flipped *views* then; boxes are always new).
    """
    check_boxes(boxes)
    w = float(frames.shape[-1])
    return (
        _flip(frames, (-1,)),
        _flip(valid, (-1,)),
        _map_boxes(boxes, [2, 1, 0, 3], [-1, 1, -1, 1], [w, 0, w, 0]),
    )


def vflip(frames: Arr, valid: Arr, boxes: Arr) -> tuple[Arr, Arr, Arr]:
    """Mirror top-bottom: row ``i`` → ``H - 1 - i``; box ``[x1, y1, x2, y2]`` → ``[x1, H - y2, x2, H - y1]``.

    Shapes and types as in :func:`hflip`.
    """
    check_boxes(boxes)
    h = float(frames.shape[-2])
    return (
        _flip(frames, (-2,)),
        _flip(valid, (-2,)),
        _map_boxes(boxes, [0, 3, 2, 1], [1, -1, 1, -1], [0, h, 0, h]),
    )


def rotate180(frames: Arr, valid: Arr, boxes: Arr) -> tuple[Arr, Arr, Arr]:
    """Half-turn about the frame centre (= :func:`hflip` then :func:`vflip`). Shapes as in :func:`hflip`."""
    check_boxes(boxes)
    h, w = float(frames.shape[-2]), float(frames.shape[-1])
    return (
        _flip(frames, (-2, -1)),
        _flip(valid, (-2, -1)),
        _map_boxes(boxes, [2, 3, 0, 1], [-1, -1, -1, -1], [w, h, w, h]),
    )


def shift(frames: Arr, valid: Arr, boxes: Arr, dx: int, dy: int) -> tuple[Arr, Arr, Arr]:
    """The clip moved by ``(dx, dy)`` pixels (content and boxes to the right / down for positive
    values); the uncovered border repeats the edge pixels. Boxes are clipped to the frame."""
    check_boxes(boxes)
    height, width = frames.shape[-2], frames.shape[-1]
    rows = np.clip(np.arange(height) - dy, 0, height - 1)
    cols = np.clip(np.arange(width) - dx, 0, width - 1)
    moved = _map_boxes(boxes, [0, 1, 2, 3], [1.0, 1.0, 1.0, 1.0], [dx, dy, dx, dy])
    frames, valid = _gather(frames, valid, rows[:, None], cols[None, :])
    return frames, valid, _clip_to_frame(moved, height, width)


def _gather(frames: Arr, valid: Arr, rows: npt.NDArray[Any], cols: npt.NDArray[Any]) -> tuple[Arr, Arr]:
    """``frames[..., rows, cols]`` and the same of ``valid`` (index arrays broadcasting to ``[H, W]``)."""
    if isinstance(frames, torch.Tensor):
        r, c = torch.from_numpy(rows), torch.from_numpy(cols)
        return frames[..., r, c], valid[..., r, c]
    return frames[..., rows, cols], valid[..., rows, cols]


def _clip_to_frame(boxes: Arr, height: int, width: int) -> Arr:
    limits = [width, height, width, height]
    if isinstance(boxes, torch.Tensor):
        return torch.minimum(boxes.clamp_min(0), boxes.new_tensor(limits))
    clipped: npt.NDArray[Any] = np.minimum(np.maximum(boxes, 0), np.array(limits, dtype=boxes.dtype))
    return clipped


def transpose(frames: Arr, valid: Arr, boxes: Arr, dx: int = 0, dy: int = 0) -> tuple[Arr, Arr, Arr]:
    """Mirror about the main diagonal (x ↔ y; with :func:`hflip` or :func:`vflip` a quarter turn):
    output pixel ``(i, j)`` is input pixel ``(j - dx, i + dy)``, indices clipped to the ``H x W``
    frame (the edge pixels repeat into the uncovered border, as in :func:`shift`); box
    ``[x1, y1, x2, y2]`` → ``[y1 + dx, x1 - dy, y2 + dx, x2 - dy]``, clipped to the frame. Shapes
    and types as in :func:`hflip` (frames and mask come back as new arrays)."""
    check_boxes(boxes)
    height, width = frames.shape[-2], frames.shape[-1]
    rows = np.clip(np.arange(width) - dx, 0, height - 1)  # output column j reads input row j - dx
    cols = np.clip(np.arange(height) + dy, 0, width - 1)  # output row i reads input column i + dy
    moved = _map_boxes(boxes, [1, 0, 3, 2], [1.0, 1.0, 1.0, 1.0], [dx, -dy, dx, -dy])
    frames, valid = _gather(frames, valid, rows[None, :], cols[:, None])
    return frames, valid, _clip_to_frame(moved, height, width)


def transpose_offsets(boxes: Arr, height: int, width: int, u: float, v: float) -> tuple[int, int] | None:
    """The ``(dx, dy)`` of :func:`transpose` in ``[0, W - H]`` (``[W - H, 0]`` for a tall frame) picked
    by ``u, v`` in ``[0, 1)`` among those that keep every box centre inside the frame; None: none."""
    lo, hi = sorted((0, width - height))
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    x_lo, x_hi = _centre_offsets(cy, width, lo, hi)  # cy becomes the column cy + dx
    minus_lo, minus_hi = _centre_offsets(cx, height, -hi, -lo)  # cx becomes the row cx + (-dy)
    if x_lo > x_hi or minus_lo > minus_hi:
        return None
    return pick_int(x_lo, x_hi, u), pick_int(-minus_hi, -minus_lo, v)


def shift_range(boxes: Arr, size: int, axis: int, most: int) -> tuple[int, int]:
    """Integer shifts in ``[-most, most]`` along ``axis`` (0: x, 1: y) that keep every box centre
    strictly inside ``[0, size]``."""
    lo, hi = _centre_offsets((boxes[:, axis] + boxes[:, axis + 2]) / 2, size, -most, most)
    return (lo, hi) if lo <= hi else (0, 0)


def _centre_offsets(centres: Arr, size: int, lo: int, hi: int) -> tuple[int, int]:
    """The integer offsets ``d`` in ``[lo, hi]`` with every ``0 < centre + d < size`` (returned lo > hi: none)."""
    if centres.shape[0]:
        lo = max(lo, int(np.floor(-float(centres.min()))) + 1)
        hi = min(hi, int(np.ceil(size - float(centres.max()))) - 1)
    return lo, hi


def pick_int(lo: int, hi: int, u: float) -> int:
    """The integer of ``[lo, hi]`` that ``u`` in ``[0, 1)`` picks (uniform for a uniform ``u``)."""
    return lo + min(int(u * (hi - lo + 1)), hi - lo)


def zoom(frames: Arr, valid: Arr, boxes: Arr, scale: float, cx: float, cy: float) -> tuple[Arr, Arr, Arr]:
    """The clip magnified ``scale`` times about the point ``(cx, cy)`` (continuous pixel coordinates):
    what a sensor mounted lower (``scale > 1``) or higher (``< 1``) over that point would see.

    Output pixel ``(i, j)`` shows input point ``x = cx + (j + 0.5 - cx) / scale`` (``y`` alike),
    sampled bilinearly between pixel centres; the validity mask takes the nearest pixel; points
    off the frame repeat the edge pixels. Box coordinates map as ``x → cx + scale · (x - cx)``,
    clipped to the frame. Shapes and types as in :func:`hflip` (new arrays).
    """
    check_boxes(boxes)
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    height, width = frames.shape[-2], frames.shape[-1]
    r0, r1, wr, rn = _zoom_taps(height, scale, cy)
    c0, c1, wc, cn = _zoom_taps(width, scale, cx)
    if isinstance(frames, torch.Tensor):
        wr_t = torch.from_numpy(wr).to(frames.device, frames.dtype)[:, None]
        wc_t = torch.from_numpy(wc).to(frames.device, frames.dtype)
        rows = frames[..., r0, :] * (1 - wr_t) + frames[..., r1, :] * wr_t
        out = rows[..., c0] * (1 - wc_t) + rows[..., c1] * wc_t
    else:
        w_r, w_c = wr.astype(frames.dtype)[:, None], wc.astype(frames.dtype)
        rows_np = frames[..., r0, :] * (1 - w_r) + frames[..., r1, :] * w_r
        out = rows_np[..., c0] * (1 - w_c) + rows_np[..., c1] * w_c
    _, mask = _gather(frames, valid, rn[:, None], cn[None, :])
    moved = _map_boxes(boxes, [0, 1, 2, 3], [scale] * 4, [cx * (1 - scale), cy * (1 - scale)] * 2)
    return out, mask, _clip_to_frame(moved, height, width)


def _zoom_taps(
    size: int, scale: float, centre: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Along one axis of :func:`zoom`: the two neighbouring input pixels of every output pixel,
    the weight of the second (float64) and the nearest pixel."""
    src = centre + (np.arange(size, dtype=np.float64) + 0.5 - centre) / scale - 0.5  # pixel-index units
    src = np.clip(src, 0.0, size - 1.0)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, size - 1)
    nearest = np.minimum(np.floor(src + 0.5).astype(np.int64), size - 1)
    return lo, hi, src - lo, nearest


def zoom_centre(boxes: Arr, size: int, axis: int, scale: float, u: float) -> float | None:
    """A centre of :func:`zoom` along ``axis`` (0: x, 1: y) picked by ``u`` in ``[0, 1)``, uniformly
    among those in ``[0, size]`` that keep every box centre inside ``[0, size]``; None: none
    does (a zoom out keeps every centre inside whatever the point)."""
    lo, hi = 0.0, float(size)
    centres = (boxes[:, axis] + boxes[:, axis + 2]) / 2
    if scale > 1 and centres.shape[0]:
        lo = max(lo, (scale * float(centres.max()) - size) / (scale - 1))
        hi = min(hi, scale * float(centres.min()) / (scale - 1))
        if not lo < hi:
            return None
    return lo + (hi - lo) * u


def nearest_exact_indices(in_size: int, out_size: int) -> npt.NDArray[np.int64]:
    """Source index of each output index for nearest resizing by pixel centres.

    Output pixel ``i`` (centre ``i + 0.5``) takes the input pixel whose area contains its centre
    mapped back, ``floor((i + 0.5) * in / out)``, computed in float32 exactly as
    ``F.interpolate(mode="nearest-exact")`` does (so a centre landing exactly on a pixel border,
    e.g. 40 → 33, goes the same way as in PyTorch).
    """
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.floor((np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale)
    idx: npt.NDArray[np.int64] = np.minimum(src.astype(np.int64), in_size - 1)
    return idx


def resize(
    frames: torch.Tensor, valid: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Resize a clip to ``size = (h, w)``.

    Frames: ``F.interpolate`` bilinear (``align_corners=False``, pixel centres at ``i + 0.5``, no
    antialiasing); the validity mask: nearest by pixel centres (:func:`nearest_exact_indices`, as
    ``"nearest-exact"``), done by indexing so a bool mask stays bool; boxes: scaled by ``w / W``
    and ``h / H``, so they keep covering the same part of the scene.

    Shapes: frames ``[T, H, W]`` float, valid ``[T, H, W]`` bool, boxes ``[N, 4]`` → the same
    with ``h, w`` (new tensors; the inputs themselves when the size is unchanged).
    """
    check_boxes(boxes)
    if frames.ndim != 3 or valid.shape != frames.shape:
        raise ValueError(
            f"resize expects frames and valid of the same shape [T, H, W], got {list(frames.shape)} "
            f"and {list(valid.shape)}"
        )
    new_h, new_w = int(size[0]), int(size[1])
    if new_h < 1 or new_w < 1:
        raise ValueError(f"size must be positive (h, w), got {size}")
    height, width = frames.shape[-2], frames.shape[-1]
    if (new_h, new_w) == (height, width):
        return frames, valid, boxes
    out_frames = F.interpolate(frames.unsqueeze(1), size=(new_h, new_w), mode="bilinear", align_corners=False)
    rows, cols = nearest_exact_indices(height, new_h), nearest_exact_indices(width, new_w)
    if valid.device.type == "cpu":
        # NumPy gather: single-threaded, no intra-op synchronisation for a small mask.
        out_valid = torch.from_numpy(np.ascontiguousarray(valid.numpy()[:, rows][:, :, cols]))
    else:
        r = torch.from_numpy(rows).to(valid.device)
        c = torch.from_numpy(cols).to(valid.device)
        out_valid = valid.index_select(1, r).index_select(2, c)
    scale = torch.tensor(
        [new_w / width, new_h / height, new_w / width, new_h / height], dtype=boxes.dtype, device=boxes.device
    )
    return out_frames.squeeze(1), out_valid, boxes * scale
