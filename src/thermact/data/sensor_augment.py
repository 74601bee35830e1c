"""Augmentations that imitate how the same sensor differs between installations and nights.

The geometric and temperature augmentations (flips, half-turn, offset, gain) live in
:class:`thermact.data.transforms.Augment`. :class:`SensorAugment` adds what the *sensor* does
differently from one place and night to the next, all valid for a ceiling array in any room:

Frame timing (:meth:`SensorAugment.indices`, where a clip's frames are picked)
    The sensor runs at 4-8 frames/s with bursts and gaps (one session of the bundled data delivers
    a regular 6 fps, the others bursts separated by gaps of up to a second). A clip is a time grid
    mapped to the nearest frames (:mod:`thermact.data.clips`); the jitter

    * stretches the grid's window by a factor drawn from ``time_stretch`` (people move at
      different speeds; a slower sensor covers the same motion with fewer frames), and
    * drops a fraction drawn from ``[0, frame_drop]`` of the recording's frames before the
      nearest-frame mapping (a lower or irregular frame rate), never the keyframe's own frame;
    * moves the whole clip by up to ``time_shift_s`` seconds before or after the keyframe, its
      boxes and labels kept (annotated keyframes lie ~1.2 s apart, a posture lasts longer: a
      shifted clip is a new view of the same labelled moment, as box jitter is in space).

Packet loss (:func:`stale_rows`)
    When the last packets of a frame are lost, its bottom rows are missing and are repaired from
    the nearest frame (:func:`thermact.data.recording.repair_invalid_pixels`): they show the scene
    of another moment. Two of the three bundled sessions have such frames, the third has none.

Dead pixels (:func:`dead_pixels`)
    A pixel that dies reads ``-273.2`` °C in every frame from then on; the recording reader marks
    it invalid and, with no valid frame near in time, repairs it from the median of its valid
    neighbours. Injected dead pixels get exactly that repair.

Randomness comes only from the generator passed in; :class:`~thermact.data.dataset.ClipDataset`
seeds it separately from the :class:`~thermact.data.transforms.Augment` generator, so enabling a
sensor augmentation leaves every other draw of a run unchanged.

Shapes: ``frames`` float32 ``[T, H, W]`` °C, ``valid`` bool ``[T, H, W]`` (NumPy; new arrays,
inputs untouched), ``timestamps`` int64 ``[N]`` ms of the whole recording.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from thermact.data.clips import ClipConfig, clip_indices, clip_window
from thermact.data.recording import repair_invalid_pixels

__all__ = ["SensorAugment", "dead_pixels", "stale_rows"]

MARGIN_MS = 2000
"""Frames this far outside a clip's window may still be picked when frames are dropped."""


def _uniform(generator: torch.Generator, n: int) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = torch.rand(n, generator=generator, dtype=torch.float64).numpy()
    return out


def stale_rows(
    frames: npt.NDArray[Any], valid: npt.NDArray[np.bool_], p: float, generator: torch.Generator
) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """Packet loss: with probability ``p`` per frame, its bottom rows come from the previous clip frame.

    The first lost row of a hit frame is uniform in ``[H / 2, H - 1]``; those pixels are marked
    invalid in the returned mask. Frame 0 has no previous frame and is never hit.
    """
    num_frames, height = frames.shape[0], frames.shape[1]
    u = _uniform(generator, 2 * num_frames).reshape(num_frames, 2)
    hit = np.nonzero(u[1:, 0] < p)[0] + 1
    if not len(hit):
        return frames, valid
    out, mask = np.array(frames, copy=True), np.array(valid, copy=True)
    for t in hit:
        first = height // 2 + int(u[t, 1] * (height - height // 2))
        out[t, first:] = out[t - 1, first:]
        mask[t, first:] = False
    return out, mask


def dead_pixels(
    frames: npt.NDArray[Any], valid: npt.NDArray[np.bool_], count: int, generator: torch.Generator
) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """``count`` distinct pixels dead in every frame, repaired from their valid neighbours' median.

    The dead pixels are marked invalid in the returned mask; the other pixels keep their values.
    """
    if count <= 0:
        return frames, valid
    height, width = frames.shape[1:]
    if count >= height * width:
        raise ValueError(f"count must be < {height * width} pixels, got {count}")
    order = torch.randperm(height * width, generator=generator).numpy()[:count]
    dead = np.zeros((height, width), dtype=bool)
    dead.flat[order] = True
    alive = np.broadcast_to(~dead, frames.shape)
    out = repair_invalid_pixels(np.asarray(frames, dtype=np.float32), alive, temporal_radius=0)
    return out.astype(frames.dtype, copy=False), valid & alive


@dataclasses.dataclass(frozen=True)
class SensorAugment:
    """Random sensor behaviour of a clip (see the module docstring).

    Attributes:
        time_stretch: range ``(low, high)`` of the factor on the clip's window (1 = unchanged).
        frame_drop: largest fraction of frames dropped before picking the clip's frames, in ``[0, 1)``.
        p_stale_rows: probability per frame of packet loss (:func:`stale_rows`).
        dead_pixels: largest fraction of pixels that die for the whole clip, in ``[0, 0.5]``
            (the count is uniform in ``[0, dead_pixels * H * W]``).
        time_shift_s: largest shift of the clip's keyframe time, in seconds, ``>= 0`` (uniform in
            ``[-time_shift_s, time_shift_s]``; the shifted time is the frame never dropped).
    """

    time_stretch: tuple[float, float] = (1.0, 1.0)
    frame_drop: float = 0.0
    p_stale_rows: float = 0.0
    dead_pixels: float = 0.0
    time_shift_s: float = 0.0

    def __post_init__(self) -> None:
        lo, hi = self.time_stretch
        if not (math.isfinite(lo) and math.isfinite(hi)) or not 0 < lo <= hi:
            raise ValueError(f"time_stretch must be a range 0 < low <= high, got {self.time_stretch}")
        if not 0.0 <= self.frame_drop < 1.0:
            raise ValueError(f"frame_drop must be in [0, 1), got {self.frame_drop}")
        if not 0.0 <= self.p_stale_rows <= 1.0:
            raise ValueError(f"p_stale_rows must be a probability in [0, 1], got {self.p_stale_rows}")
        if not 0.0 <= self.dead_pixels <= 0.5:
            raise ValueError(f"dead_pixels must be in [0, 0.5], got {self.dead_pixels}")
        if not (math.isfinite(self.time_shift_s) and self.time_shift_s >= 0):
            raise ValueError(f"time_shift_s must be a number of seconds >= 0, got {self.time_shift_s}")

    @property
    def enabled(self) -> bool:
        """False when every setting is neutral (then nothing is drawn at all)."""
        return self.retimes or self.p_stale_rows > 0 or self.dead_pixels > 0

    @property
    def retimes(self) -> bool:
        return self.time_stretch != (1.0, 1.0) or self.frame_drop > 0 or self.time_shift_s > 0

    def indices(
        self,
        timestamps: npt.NDArray[np.int64],
        keyframe_ms: int,
        clip: ClipConfig,
        generator: torch.Generator,
    ) -> npt.NDArray[np.int64]:
        """Frame indices ``[clip.num_frames]`` into ``timestamps`` of a jittered clip of ``keyframe_ms``."""
        if not self.retimes:
            return clip_indices(timestamps, keyframe_ms, clip)
        u = _uniform(generator, 2)
        if self.time_shift_s > 0:  # drawn after the others: runs without a shift keep their draws
            keyframe_ms += round((2.0 * _uniform(generator, 1)[0] - 1.0) * self.time_shift_s * 1000.0)
        lo, hi = self.time_stretch
        stretched = dataclasses.replace(clip, window_s=clip.window_s * (lo + (hi - lo) * u[0]))
        if self.frame_drop <= 0:
            return clip_indices(timestamps, keyframe_ms, stretched)
        start, end = clip_window(keyframe_ms, stretched)
        near = np.nonzero((timestamps >= start - MARGIN_MS) & (timestamps <= end + MARGIN_MS))[0]
        keep = _uniform(generator, len(near)) >= self.frame_drop * u[1]
        key = int(clip_indices(timestamps, keyframe_ms, ClipConfig(1.0, 1, "causal"))[0])
        kept = np.union1d(near[keep], [key])
        picked = clip_indices(timestamps[kept], keyframe_ms, stretched)
        out: npt.NDArray[np.int64] = kept[picked].astype(np.int64)
        return out

    def corrupt(
        self, frames: npt.NDArray[Any], valid: npt.NDArray[np.bool_], generator: torch.Generator
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
        """Packet loss, then dead pixels, of one clip's frames and mask."""
        if self.p_stale_rows > 0:
            frames, valid = stale_rows(frames, valid, self.p_stale_rows, generator)
        if self.dead_pixels > 0:
            pixels = frames.shape[1] * frames.shape[2]
            count = int(_uniform(generator, 1)[0] * self.dead_pixels * pixels)
            frames, valid = dead_pixels(frames, valid, count, generator)
        return frames, valid
