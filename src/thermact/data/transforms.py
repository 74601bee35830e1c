"""Clip transforms: temperature normalisation and the random top-down-view augmentation.

Conventions (shared with :mod:`thermact.data.dataset` and :mod:`thermact.data.geometry`, whose
geometric ops :class:`Augment` draws from):

* ``frames``: float32 ``[T, H, W]`` in °C (or normalised units after :func:`normalize`).
* ``valid``: bool ``[T, H, W]``, True where the sensor value was valid
  (see :class:`thermact.data.recording.Recording`).
* ``boxes``: float32 ``[N, 4]``, pixel XYXY over the frame: the frame spans
  ``[0, W] × [0, H]`` and pixel ``i`` covers ``[i, i + 1)`` (see :mod:`thermact.ops.boxes`).

The jitters, :func:`normalize` and :meth:`Augment.apply` take either torch tensors or NumPy
arrays (all three of one kind) and return the same kind; NumPy results are bit-identical to the
torch ones (tested).

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

from thermact.data.clips import ClipConfig, clip_indices
from thermact.data.geometry import (
    check_boxes,
    hflip,
    pick_int,
    rotate180,
    shift,
    shift_range,
    transpose,
    transpose_offsets,
    vflip,
    zoom,
    zoom_centre,
)
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
# Jitters


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
    check_boxes(boxes)
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
        zoom: range ``(low, high)`` of a magnification (:func:`~thermact.data.geometry.zoom`,
            after the mirrors), drawn log-uniformly, about a point drawn uniformly among those
            that keep every box centre in the frame (none: the clip is left as it is); a sensor
            mounted higher or lower. ``(1, 1)``: off.

    Randomness comes only from the ``generator`` passed to each call, and the same number of
    values is drawn whatever the probabilities (two more with ``shift_px > 0``, three more with
    ``p_transpose > 0``, three more with a ``zoom`` range other than ``(1, 1)``), so a given generator state always gives the same result. The whole clip (all ``T`` frames) gets the same
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
        zoom: tuple[float, float] = (1.0, 1.0),
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
        self.zoom = _check_range("zoom", zoom)
        if self.zoom[0] <= 0:
            raise ValueError(f"zoom must be positive, got {zoom}")

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
            "zoom": list(self.zoom),
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
            offsets = transpose_offsets(boxes, frames.shape[-2], frames.shape[-1], w[1], w[2])
            if w[0] < self.p_transpose and offsets is not None:
                frames, valid, boxes = transpose(frames, valid, boxes, *offsets)
        if self.zoom != (1.0, 1.0):
            frames, valid, boxes = self._zoom(frames, valid, boxes, generator)
        offset = self.offset_c[0] + (self.offset_c[1] - self.offset_c[0]) * u[3]
        gain = self.gain[0] + (self.gain[1] - self.gain[0]) * u[4]
        if offset != 0.0 or gain != 1.0:
            frames = temperature_jitter(frames, offset, gain)
        if self.box_jitter > 0 and boxes.shape[0] > 0:
            boxes = jitter_boxes(boxes, self.box_jitter, (frames.shape[-2], frames.shape[-1]), generator)
        if self.shift_px > 0:
            v = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
            (x_lo, x_hi), (y_lo, y_hi) = (
                shift_range(boxes, frames.shape[-1], 0, self.shift_px),
                shift_range(boxes, frames.shape[-2], 1, self.shift_px),
            )
            dx, dy = pick_int(x_lo, x_hi, v[0]), pick_int(y_lo, y_hi, v[1])
            frames, valid, boxes = shift(frames, valid, boxes, dx, dy)
        return frames, valid, boxes

    def _zoom(
        self, frames: Arr, valid: Arr, boxes: Arr, generator: torch.Generator | None
    ) -> tuple[Arr, Arr, Arr]:
        w = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
        lo, hi = math.log(self.zoom[0]), math.log(self.zoom[1])
        scale = math.exp(lo + (hi - lo) * w[0])
        cx = zoom_centre(boxes, frames.shape[-1], 0, scale, w[1])
        cy = zoom_centre(boxes, frames.shape[-2], 1, scale, w[2])
        if scale == 1.0 or cx is None or cy is None:
            return frames, valid, boxes
        return zoom(frames, valid, boxes, scale, cx, cy)
