"""Clip transforms: temperature normalisation, resizing and top-down-view augmentations.

Conventions (shared with :mod:`thermact.data.dataset`):

* ``frames``: float32 ``[T, H, W]`` in °C (or normalised units after :func:`normalize`).
* ``valid``: bool ``[T, H, W]``, True where the sensor value was valid
  (see :class:`thermact.data.recording.Recording`).
* ``boxes``: float32 ``[N, 4]``, pixel XYXY over the frame: the frame spans
  ``[0, W] × [0, H]`` and pixel ``i`` covers ``[i, i + 1)`` (see :mod:`thermact.ops.boxes`).

The flips, the half-turn, the shift, the diagonal mirror, the jitters, :func:`normalize` and :meth:`Augment.apply` take either
torch tensors or NumPy arrays (all three of one kind) and return the same kind; NumPy results
are bit-identical to the torch ones (tested). :func:`resize` takes tensors.

Every geometric op maps the three together, so a box covers the same pixels (and thus the same
temperatures) before and after: a horizontal flip moves pixel column ``j`` to ``W - 1 - j`` and
the continuous coordinate ``x`` to ``W - x``, so box ``[x1, x2]`` becomes ``[W - x2, W - x1]``.
Only augmentations that are valid for a sensor looking straight down are provided: mirror images
(about the axes and the diagonal: with them, quarter turns), a half-turn and a small shift (the
sensor mounted elsewhere over the room; :func:`shift` repeats the edge pixels into the uncovered
border) of a ceiling view are plausible ceiling views; perspective or scale changes are not.

Normalisation
    ``(frames - mean_c) / std_c`` with :class:`NormStats` computed by :func:`compute_norm_stats`
    from the **training** keyframes only, over the *valid* pixels of exactly the frames their
    clips use (repaired dead pixels never enter the statistics). The statistics are part of a
    trained model and are stored in its checkpoint (:meth:`NormStats.to_dict`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from thermact.data.clips import ClipConfig, clip_indices
from thermact.errors import CheckpointError, DataError

if TYPE_CHECKING:
    from thermact.data.annotations import Keyframe
    from thermact.data.recording import Recording

ArrayOrTensor = TypeVar("ArrayOrTensor", npt.NDArray[np.floating[Any]], torch.Tensor)
Arr = TypeVar("Arr", npt.NDArray[Any], torch.Tensor)

Reference = Literal["dataset", "clip_median", "background"]
REFERENCES: tuple[str, ...] = ("dataset", "clip_median", "background")

MIN_STD_C = 1e-3
"""Smallest standard deviation accepted in :class:`NormStats` (°C); a constant input is an error."""


# ---------------------------------------------------------------------------------------------
# Normalisation


@dataclasses.dataclass(frozen=True)
class NormStats:
    """Temperature normalisation statistics (°C).

    Attributes:
        mean_c: mean temperature of the valid training pixels.
        std_c: their (population) standard deviation, ``>= MIN_STD_C``.
        num_pixels: number of pixels the statistics were computed from (0 = unknown).
        reference: what is subtracted before dividing by ``std_c``: ``"dataset"`` subtracts
            ``mean_c``; ``"clip_median"`` subtracts the median temperature of each clip (its
            background), which removes the ambient-temperature offset between rooms, days and
            sessions and keeps only the contrast of people against their surroundings;
            ``"background"`` expects frames from which their recording's per-pixel background
            (:attr:`Recording.background <thermact.data.recording.Recording.background>`) was
            already subtracted (by :class:`~thermact.data.dataset.ClipDataset`) and then
            subtracts ``mean_c`` as ``"dataset"``.
    """

    mean_c: float
    std_c: float
    num_pixels: int = 0
    reference: Reference = "dataset"

    def __post_init__(self) -> None:
        if not math.isfinite(self.mean_c) or not math.isfinite(self.std_c) or self.std_c < MIN_STD_C:
            raise ValueError(
                f"NormStats needs a finite mean and a std >= {MIN_STD_C}, got mean_c={self.mean_c}, "
                f"std_c={self.std_c}"
            )
        if self.reference not in REFERENCES:
            raise ValueError(f"NormStats.reference must be one of {REFERENCES}, got {self.reference!r}")

    def to_dict(self) -> dict[str, float | int | str]:
        """Plain JSON/checkpoint-safe types."""
        return {
            "mean_c": float(self.mean_c),
            "std_c": float(self.std_c),
            "num_pixels": int(self.num_pixels),
            "reference": self.reference,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "norm_stats") -> NormStats:
        """Inverse of :meth:`to_dict`; ``where`` names the source in error messages."""
        if not isinstance(data, Mapping):
            raise CheckpointError(f"{where}: expected a mapping with 'mean_c' and 'std_c', got {data!r}")
        values: dict[str, float] = {}
        for key in ("mean_c", "std_c"):
            value = data.get(key)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise CheckpointError(f"{where}: key {key!r} must be a number, got {value!r}")
            values[key] = float(value)
        num = data.get("num_pixels", 0)
        if not isinstance(num, int) or isinstance(num, bool):
            raise CheckpointError(f"{where}: key 'num_pixels' must be an integer, got {num!r}")
        reference = data.get("reference", "dataset")
        if reference not in REFERENCES:
            raise CheckpointError(f"{where}: key 'reference' must be one of {REFERENCES}, got {reference!r}")
        try:
            return cls(values["mean_c"], values["std_c"], num, reference)
        except ValueError as err:
            raise CheckpointError(f"{where}: {err}") from None


def norm_stats_from_arrays(
    frames: Sequence[npt.NDArray[np.floating[Any]]], valid: Sequence[npt.NDArray[np.bool_]]
) -> NormStats:
    """Mean and std (float64, two passes) of ``frames[i][valid[i]]`` over all ``i``.

    Raises:
        DataError: no valid pixel, or all valid pixels have the same value.
    """
    if len(frames) != len(valid):
        raise ValueError(f"got {len(frames)} frame arrays but {len(valid)} masks")
    values = [
        np.asarray(f, dtype=np.float64)[np.asarray(v, dtype=bool)] for f, v in zip(frames, valid, strict=True)
    ]
    count = sum(int(v.size) for v in values)
    if count == 0:
        raise DataError("cannot compute normalisation statistics: no valid pixel in the training frames")
    mean = sum(float(v.sum()) for v in values) / count
    var = sum(float(np.square(v - mean).sum()) for v in values) / count
    std = math.sqrt(var)
    if std < MIN_STD_C:
        raise DataError(f"cannot normalise: the training pixels are constant ({mean:.3f} °C, std {std:.2g})")
    return NormStats(mean_c=mean, std_c=std, num_pixels=count)


def clip_frame_union(
    recordings: Mapping[str, Recording], keyframes: Sequence[Keyframe], clip: ClipConfig
) -> dict[str, npt.NDArray[np.int64]]:
    """Recording id → sorted unique indices of the frames used by the clips of ``keyframes``."""
    used: dict[str, set[int]] = {}
    for kf in keyframes:
        rec = recordings.get(kf.recording_id)
        if rec is None:
            raise DataError(f"keyframe {kf.keyframe_id}: unknown recording {kf.recording_id!r}")
        idx = clip_indices(rec.timestamps, kf.timestamp_ms, clip)
        used.setdefault(kf.recording_id, set()).update(int(i) for i in idx)
    return {rid: np.asarray(sorted(s), dtype=np.int64) for rid, s in sorted(used.items())}


def compute_norm_stats(
    recordings: Mapping[str, Recording],
    keyframes: Sequence[Keyframe],
    clip: ClipConfig,
    reference: Reference = "dataset",
) -> NormStats:
    """Normalisation statistics from the training keyframes only.

    The statistics cover the **union of the frames the clips of ``keyframes`` use** (each frame
    counted once, even if several clips share it), and within those frames only the pixels that
    were valid in the sensor data (``Recording.valid``), so repaired dead pixels (``-273.2`` °C in
    the file) do not enter them. Pass the training keyframes of a split: frames that only
    validation or test clips use are never looked at.

    Args:
        recordings: recording id → :class:`Recording`.
        keyframes: the training keyframes.
        clip: the clip sampling the model is trained with.
        reference: ``"dataset"`` (subtract the training mean), ``"clip_median"`` (subtract each
            clip's median; the scale is then the spread of the valid training pixels around
            their frame's median) or ``"background"`` (mean and spread of the valid training
            pixels above their recording's background).
    """
    if not keyframes:
        raise DataError("cannot compute normalisation statistics: no training keyframes given")
    union = clip_frame_union(recordings, keyframes, clip)
    frames = [recordings[rid].frames[idx] for rid, idx in union.items()]
    valid = [recordings[rid].valid[idx] for rid, idx in union.items()]
    if reference == "background":
        above = [recordings[rid].frames[idx] - recordings[rid].background for rid, idx in union.items()]
        return dataclasses.replace(norm_stats_from_arrays(above, valid), reference="background")
    stats = norm_stats_from_arrays(frames, valid)
    if reference == "dataset":
        return stats
    # clip_median: the scale is the spread of temperatures around each frame's own median
    centred = [
        f - np.nanmedian(np.where(v, f, np.nan), axis=(1, 2), keepdims=True)
        for f, v in zip(frames, valid, strict=True)
    ]
    around = norm_stats_from_arrays([np.nan_to_num(c) for c in centred], valid)
    return NormStats(stats.mean_c, around.std_c, stats.num_pixels, "clip_median")


def normalize(frames: ArrayOrTensor, stats: NormStats) -> ArrayOrTensor:
    """``(frames - ref) / std_c`` for the frames of ONE clip, NumPy or torch, any shape (new object).

    ``ref`` is ``mean_c``, or the median of ``frames`` when ``stats.reference == "clip_median"``
    (``"background"``: ``frames`` must already be above their recording's background).
    """
    if stats.reference == "clip_median":
        values = frames if isinstance(frames, np.ndarray) else frames.detach().cpu().numpy()
        ref = float(np.median(values))  # NumPy's median for both types (torch's takes the lower middle)
        return (frames - ref) / stats.std_c
    return (frames - stats.mean_c) / stats.std_c


def denormalize(frames: ArrayOrTensor, stats: NormStats) -> ArrayOrTensor:
    """Inverse of :func:`normalize`: back to °C (relative to the clip median for ``"clip_median"``)."""
    return frames * stats.std_c + stats.mean_c


# ---------------------------------------------------------------------------------------------
# Geometric ops (frames [..., H, W], valid [..., H, W], boxes [N, 4] pixel XYXY)


def _check_boxes(boxes: Arr) -> None:
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [N, 4] pixel XYXY, got shape {list(boxes.shape)}")


def _flip(x: Arr, axes: tuple[int, ...]) -> Arr:
    if isinstance(x, torch.Tensor):
        return x.flip(axes)
    return np.flip(x, axes)


def _map_boxes(boxes: Arr, order: list[int], sign: list[float], shift: list[float]) -> Arr:
    """``boxes[:, order] * sign + shift`` (exact for the sign ±1 maps used here)."""
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
    _check_boxes(boxes)
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
    _check_boxes(boxes)
    h = float(frames.shape[-2])
    return (
        _flip(frames, (-2,)),
        _flip(valid, (-2,)),
        _map_boxes(boxes, [0, 3, 2, 1], [1, -1, 1, -1], [0, h, 0, h]),
    )


def rotate180(frames: Arr, valid: Arr, boxes: Arr) -> tuple[Arr, Arr, Arr]:
    """Half-turn about the frame centre (= :func:`hflip` then :func:`vflip`). Shapes as in :func:`hflip`."""
    _check_boxes(boxes)
    h, w = float(frames.shape[-2]), float(frames.shape[-1])
    return (
        _flip(frames, (-2, -1)),
        _flip(valid, (-2, -1)),
        _map_boxes(boxes, [2, 3, 0, 1], [-1, -1, -1, -1], [w, h, w, h]),
    )


def shift(frames: Arr, valid: Arr, boxes: Arr, dx: int, dy: int) -> tuple[Arr, Arr, Arr]:
    """The clip moved by ``(dx, dy)`` pixels (content and boxes to the right / down for positive
    values); the uncovered border repeats the edge pixels. Boxes are clipped to the frame."""
    _check_boxes(boxes)
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
    _check_boxes(boxes)
    height, width = frames.shape[-2], frames.shape[-1]
    rows = np.clip(np.arange(width) - dx, 0, height - 1)  # output column j reads input row j - dx
    cols = np.clip(np.arange(height) + dy, 0, width - 1)  # output row i reads input column i + dy
    moved = _map_boxes(boxes, [1, 0, 3, 2], [1.0, 1.0, 1.0, 1.0], [dx, -dy, dx, -dy])
    frames, valid = _gather(frames, valid, rows[None, :], cols[:, None])
    return frames, valid, _clip_to_frame(moved, height, width)


def _transpose_offsets(boxes: Arr, height: int, width: int, u: float, v: float) -> tuple[int, int] | None:
    """The ``(dx, dy)`` of :func:`transpose` in ``[0, W - H]`` (``[W - H, 0]`` for a tall frame) picked
    by ``u, v`` in ``[0, 1)`` among those that keep every box centre inside the frame; None: none."""
    lo, hi = sorted((0, width - height))
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    x_lo, x_hi = _centre_offsets(cy, width, lo, hi)  # cy becomes the column cy + dx
    minus_lo, minus_hi = _centre_offsets(cx, height, -hi, -lo)  # cx becomes the row cx + (-dy)
    if x_lo > x_hi or minus_lo > minus_hi:
        return None
    return _pick(x_lo, x_hi, u), _pick(-minus_hi, -minus_lo, v)


def _shift_range(boxes: Arr, size: int, axis: int, most: int) -> tuple[int, int]:
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


def _pick(lo: int, hi: int, u: float) -> int:
    """The integer of ``[lo, hi]`` that ``u`` in ``[0, 1)`` picks (uniform for a uniform ``u``)."""
    return lo + min(int(u * (hi - lo + 1)), hi - lo)


def temperature_jitter(frames: Arr, offset_c: float, gain: float, center_c: float | None = None) -> Arr:
    """``center + gain * (frames - center) + offset`` in °C (new tensor/array, same shape and dtype).

    ``gain`` changes the contrast around ``center_c`` (default: the mean of ``frames``) without
    shifting it; ``offset_c`` shifts every temperature. Apply before :func:`normalize`.
    """
    if center_c is not None:
        center = center_c
    elif isinstance(frames, torch.Tensor):
        # NumPy's float64 pairwise sum gives the same value whatever torch's thread count (a
        # DataLoader worker runs single-threaded), so a sample is bit-identical in every worker.
        center = float(frames.detach().cpu().to(torch.float64).numpy().mean())
    else:
        center = float(np.mean(frames, dtype=np.float64))
    return (frames - center) * gain + (center + offset_c)


def jitter_boxes(
    boxes: Arr,
    max_shift_frac: float,
    frame_size: tuple[int, int],
    generator: torch.Generator | None = None,
) -> Arr:
    """Move each box edge by a uniform random amount, then clip to the frame.

    Each of ``x1, x2`` moves by up to ``max_shift_frac`` × the box width, each of ``y1, y2`` by up
    to ``max_shift_frac`` × its height. With ``0 <= max_shift_frac < 0.5`` a box of positive area
    keeps a positive area and stays inside ``[0, W] × [0, H]``.

    Args:
        boxes: ``[N, 4]`` pixel XYXY inside the frame, positive area (tensor or NumPy array).
        max_shift_frac: largest shift as a fraction of the box size, in ``[0, 0.5)``.
        frame_size: ``(H, W)``.
        generator: source of randomness (for reproducible samples).

    Returns:
        new boxes of the same type and dtype.
    """
    _check_boxes(boxes)
    if not 0.0 <= max_shift_frac < 0.5:
        raise ValueError(f"max_shift_frac must be in [0, 0.5), got {max_shift_frac}")
    height, width = frame_size
    u = torch.rand((int(boxes.shape[0]), 4), generator=generator, dtype=torch.float64).numpy() * 2.0 - 1.0
    b = boxes.detach().cpu().numpy() if isinstance(boxes, torch.Tensor) else np.asarray(boxes)
    b = b.astype(np.float64)
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    moved = b + u * np.stack([w, h, w, h], axis=1) * max_shift_frac
    limit = np.array([width, height, width, height], dtype=np.float64)
    out = np.clip(moved, 0.0, limit)
    if isinstance(boxes, torch.Tensor):
        result = torch.from_numpy(out).to(dtype=boxes.dtype, device=boxes.device)
        # float32 rounding could in principle collapse a tiny box: keep the original then.
        bad = ((result[:, 2] - result[:, 0]) <= 0) | ((result[:, 3] - result[:, 1]) <= 0)
        return torch.where(bad.unsqueeze(1), boxes, result)
    result_np = out.astype(boxes.dtype)
    bad_np = ((result_np[:, 2] - result_np[:, 0]) <= 0) | ((result_np[:, 3] - result_np[:, 1]) <= 0)
    return np.where(bad_np[:, None], boxes, result_np)


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
    _check_boxes(boxes)
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


# ---------------------------------------------------------------------------------------------
# Random augmentation


def _check_range(name: str, value: tuple[float, float]) -> tuple[float, float]:
    lo, hi = float(value[0]), float(value[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"{name} must be a finite (low, high) range with low <= high, got {value}")
    return lo, hi


def _check_prob(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
    return float(value)


class Augment:
    """Random top-down-view augmentation of one clip, applied consistently to frames, mask and boxes.

    Args:
        p_hflip: probability of a left-right mirror.
        p_vflip: probability of a top-bottom mirror.
        p_rot180: probability of a half-turn (applied after the flips).
        offset_c: range ``(low, high)`` of a uniform temperature offset in °C.
        gain: range ``(low, high)`` of a uniform contrast gain around the clip mean.
        box_jitter: largest box-edge shift as a fraction of the box size, in ``[0, 0.5)``.
        shift_px: largest shift of the whole clip along x and y in pixels (:func:`shift`, last),
            uniform over the integer shifts that keep every box centre inside the frame.
        p_transpose: probability of a mirror about the diagonal (:func:`transpose`, after the
            flips: with them, every quarter turn of the room), placed uniformly among the offsets
            that keep every box centre in the frame (none: the clip is left as it is).

    Randomness comes only from the ``generator`` passed to each call, and the same number of
    values is drawn whatever the probabilities (two more with ``shift_px > 0``, three more with
    ``p_transpose > 0``), so a given generator state always gives the same result. The whole clip (all ``T`` frames) gets the same
    transform.
    """

    def __init__(
        self,
        p_hflip: float = 0.5,
        p_vflip: float = 0.5,
        p_rot180: float = 0.0,
        offset_c: tuple[float, float] = (-1.0, 1.0),
        gain: tuple[float, float] = (0.9, 1.1),
        box_jitter: float = 0.05,
        shift_px: int = 0,
        p_transpose: float = 0.0,
    ) -> None:
        self.p_hflip = _check_prob("p_hflip", p_hflip)
        self.p_vflip = _check_prob("p_vflip", p_vflip)
        self.p_rot180 = _check_prob("p_rot180", p_rot180)
        self.offset_c = _check_range("offset_c", offset_c)
        self.gain = _check_range("gain", gain)
        if self.gain[0] <= 0:
            raise ValueError(f"gain must be positive, got {gain}")
        if not 0.0 <= box_jitter < 0.5:
            raise ValueError(f"box_jitter must be in [0, 0.5), got {box_jitter}")
        self.box_jitter = float(box_jitter)
        if shift_px < 0:
            raise ValueError(f"shift_px must be >= 0, got {shift_px}")
        self.shift_px = int(shift_px)
        self.p_transpose = _check_prob("p_transpose", p_transpose)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"Augment({args})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "p_hflip": self.p_hflip,
            "p_vflip": self.p_vflip,
            "p_rot180": self.p_rot180,
            "offset_c": list(self.offset_c),
            "gain": list(self.gain),
            "box_jitter": self.box_jitter,
            "shift_px": self.shift_px,
            "p_transpose": self.p_transpose,
        }

    def apply(
        self,
        frames: Arr,
        valid: Arr,
        boxes: Arr,
        generator: torch.Generator | None = None,
    ) -> tuple[Arr, Arr, Arr]:
        """Augment frames ``[T, H, W]`` °C, valid ``[T, H, W]`` and boxes ``[N, 4]`` pixel XYXY.

        All tensors or all NumPy arrays (NumPy frames/mask may come back as views: flips are free
        there, which is what :class:`~thermact.data.dataset.ClipDataset` uses).
        """
        u = torch.rand(5, generator=generator, dtype=torch.float64).tolist()
        if u[0] < self.p_hflip:
            frames, valid, boxes = hflip(frames, valid, boxes)
        if u[1] < self.p_vflip:
            frames, valid, boxes = vflip(frames, valid, boxes)
        if u[2] < self.p_rot180:
            frames, valid, boxes = rotate180(frames, valid, boxes)
        if self.p_transpose > 0:
            w = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
            offsets = _transpose_offsets(boxes, frames.shape[-2], frames.shape[-1], w[1], w[2])
            if w[0] < self.p_transpose and offsets is not None:
                frames, valid, boxes = transpose(frames, valid, boxes, *offsets)
        offset = self.offset_c[0] + (self.offset_c[1] - self.offset_c[0]) * u[3]
        gain = self.gain[0] + (self.gain[1] - self.gain[0]) * u[4]
        if offset != 0.0 or gain != 1.0:
            frames = temperature_jitter(frames, offset, gain)
        if self.box_jitter > 0 and boxes.shape[0] > 0:
            boxes = jitter_boxes(boxes, self.box_jitter, (frames.shape[-2], frames.shape[-1]), generator)
        if self.shift_px > 0:
            v = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
            (x_lo, x_hi), (y_lo, y_hi) = (
                _shift_range(boxes, frames.shape[-1], 0, self.shift_px),
                _shift_range(boxes, frames.shape[-2], 1, self.shift_px),
            )
            dx, dy = _pick(x_lo, x_hi, v[0]), _pick(y_lo, y_hi, v[1])
            frames, valid, boxes = shift(frames, valid, boxes, dx, dy)
        return frames, valid, boxes
