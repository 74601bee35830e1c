"""Clips by time: a uniform time grid around a keyframe, mapped to the nearest real frames.

Frames arrive irregularly (≈5.7-6 fps with gaps up to 2.6 s), so a clip is defined in
*time*, not in frame indices: ``num_frames`` grid points spaced ``window_s / num_frames`` apart
cover a window of ``window_s`` seconds; the keyframe sits at ``keyframe_position`` of the window
(0.5 = centre, the offline default; 1.0 = "causal", keyframe last, for live use). Each grid point
takes the nearest real frame by timestamp. Grid points before the first or after the last frame
take the edge frame (edge replication); an index outside the recording is never produced.

Grid point ``i`` (0-based) of a clip for keyframe time ``t`` is::

    t + (i - p * (num_frames - 1)) * window_s / num_frames        (seconds → ms)

with ``p = keyframe_position``; so with ``p = 1`` the last point is exactly the keyframe and with
``p = 0.5`` the keyframe is the centre of the grid (between the two middle points when
``num_frames`` is even). The covered window is the grid's span plus half a step on each side:
:func:`clip_window`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
import numpy.typing as npt

KeyframePosition = Literal["center", "causal"]


@dataclasses.dataclass(frozen=True)
class ClipConfig:
    """How a clip is sampled around a keyframe.

    Attributes:
        window_s: length of the time window in seconds.
        num_frames: grid points (frames) per clip.
        keyframe_position: ``"center"`` (offline) or ``"causal"`` (keyframe is the last frame).
    """

    window_s: float = 2.7
    num_frames: int = 16
    keyframe_position: KeyframePosition = "center"

    def __post_init__(self) -> None:
        if not math.isfinite(self.window_s) or self.window_s <= 0:
            raise ValueError(f"window_s must be a finite number > 0, got {self.window_s}")
        if self.keyframe_position not in ("center", "causal"):
            raise ValueError(
                f"keyframe_position must be 'center' or 'causal', got {self.keyframe_position!r}"
            )
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")

    @property
    def position(self) -> float:
        """The keyframe position as a fraction of the grid: 0.5 or 1.0."""
        return 1.0 if self.keyframe_position == "causal" else 0.5

    @property
    def step_ms(self) -> float:
        return self.window_s * 1000.0 / self.num_frames


def clip_times(keyframe_ms: int, cfg: ClipConfig) -> npt.NDArray[np.int64]:
    """Grid times in ms [num_frames] for a keyframe (rounded to the nearest ms)."""
    offsets = (
        np.arange(cfg.num_frames, dtype=np.float64) - cfg.position * (cfg.num_frames - 1)
    ) * cfg.step_ms
    return np.rint(keyframe_ms + offsets).astype(np.int64)


def clip_window(keyframe_ms: int, cfg: ClipConfig) -> tuple[int, int]:
    """Closed time interval ``[start_ms, end_ms]`` a clip of this keyframe can draw frames from."""
    times = clip_times(keyframe_ms, cfg)
    half = cfg.step_ms / 2.0
    return int(np.floor(times[0] - half)), int(np.ceil(times[-1] + half))


def nearest_indices(timestamps: npt.NDArray[np.int64], times: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Index of the nearest timestamp for each time (earlier frame wins ties).

    ``timestamps`` must be strictly increasing. Times before the first / after the last frame map
    to index 0 / T-1 (edge replication).
    """
    right = np.minimum(np.searchsorted(timestamps, times, side="left"), len(timestamps) - 1)
    left = np.maximum(right - 1, 0)
    choose_left = np.abs(times - timestamps[left]) <= np.abs(timestamps[right] - times)
    return np.where(choose_left, left, right).astype(np.int64)


def clip_indices(
    timestamps: npt.NDArray[np.int64], keyframe_ms: int, cfg: ClipConfig
) -> npt.NDArray[np.int64]:
    """Frame indices [num_frames] of the clip around ``keyframe_ms`` in a recording's timestamps."""
    return nearest_indices(timestamps, clip_times(keyframe_ms, cfg))


def pathway_offset(num_frames: int, stride: int, keyframe_position: KeyframePosition = "center") -> int:
    """First frame a pathway with temporal ``stride`` takes from a clip of ``num_frames``.

    SlowFast's slow pathway takes every ``stride``-th (``alpha``-th) frame of the fast one: ``n =
    num_frames // stride`` frames ``o, o + stride, ..., o + (n - 1) * stride``. With the spare frames
    ``spare = num_frames - 1 - (n - 1) * stride``, the offset ``o`` is ``spare // 2`` for centred clips
    (the picks sit as close to symmetric around the keyframe as integers allow) and ``spare`` for
    causal clips, so that the newest frame, the keyframe, is always part of the slow pathway.
    """
    n = num_frames // stride
    if stride < 1 or n < 1:
        raise ValueError(f"a clip of {num_frames} frames is too short for a pathway stride of {stride}")
    spare = num_frames - 1 - (n - 1) * stride
    return spare if keyframe_position == "causal" else spare // 2


def pathway_indices(
    num_frames: int, stride: int, keyframe_position: KeyframePosition = "center"
) -> npt.NDArray[np.int64]:
    """Indices of the frames a pathway with temporal ``stride`` takes from a clip of ``num_frames``
    (a multiple of ``stride``), from :func:`pathway_offset`; ``stride = 1`` returns every frame."""
    if stride < 1 or num_frames % stride:
        raise ValueError(f"num_frames {num_frames} must be a multiple of the pathway stride {stride}")
    return np.arange(
        pathway_offset(num_frames, stride, keyframe_position), num_frames, stride, dtype=np.int64
    )
