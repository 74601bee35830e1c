"""What the pipeline keeps per sensor: a ring buffer of repaired frames, the causal dead-pixel
repair, a tracker and each track's latest classification.

* :class:`FrameRing`: fixed-capacity ring buffer of repaired frames ``[H, W]`` float32 and their
  times (ms), so memory stays flat however long a sensor runs; :meth:`FrameRing.gather` samples a
  clip (nearest buffered frame per grid time, edge frames replicated).
* :func:`repair_frame`: invalid pixels (the ``-273.2`` °C sentinel, NaN, ±inf, impossible values:
  :func:`thermact.data.recording.invalid_mask`) repaired *causally*, like
  :func:`thermact.data.recording.repair_invalid_pixels` restricted to the past: the same pixel's
  last valid value if it was seen at most ``temporal_radius`` frames ago, else the median of the
  valid pixels around it (growing neighbourhood).
* :class:`SensorState`: the above plus the :class:`~thermact.tracking.Tracker` and the per-track
  bookkeeping (when each track was last classified, its latest scores), and the
  :class:`SensorCounters` of what happened to the sensor's frames.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from thermact.data.clips import nearest_indices
from thermact.data.recording import invalid_mask, repair_invalid_pixels
from thermact.tracking.tracker import TrackedBox, Tracker, TrackerConfig

__all__ = [
    "FrameRing",
    "SensorCounters",
    "SensorState",
    "buffer_capacity",
    "raw_frames",
    "repair_frame",
]

FloatArray = npt.NDArray[np.float32]


def buffer_capacity(window_s: float, max_fps: float = 12.0) -> int:
    """Frames a ring buffer needs for clips of ``window_s`` at up to ``max_fps`` (plus one second)."""
    return math.ceil((window_s + 1.0) * max_fps) + 1


class FrameRing:
    """Fixed-capacity ring buffer of repaired frames ``[H, W]`` float32 and their times (ms).

    Memory is allocated once (``capacity x H x W`` floats); the oldest frame is overwritten.
    """

    def __init__(self, capacity: int, frame_size: tuple[int, int]) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self._frames = np.zeros((self.capacity, frame_size[0], frame_size[1]), dtype=np.float32)
        self._ts = np.zeros(self.capacity, dtype=np.int64)
        self._start = 0
        self._len = 0

    def __len__(self) -> int:
        return self._len

    @property
    def nbytes(self) -> int:
        return int(self._frames.nbytes + self._ts.nbytes)

    def append(self, timestamp_ms: int, frame: FloatArray) -> None:
        slot = (self._start + self._len) % self.capacity
        self._frames[slot] = frame
        self._ts[slot] = timestamp_ms
        if self._len < self.capacity:
            self._len += 1
        else:
            self._start = (self._start + 1) % self.capacity

    def _slots(self) -> npt.NDArray[np.int64]:
        return (self._start + np.arange(self._len, dtype=np.int64)) % self.capacity

    def timestamps(self) -> npt.NDArray[np.int64]:
        """Buffered times, oldest first (a copy)."""
        return self._ts[self._slots()]

    @property
    def last_timestamp(self) -> int | None:
        return None if self._len == 0 else int(self._ts[(self._start + self._len - 1) % self.capacity])

    def gather(self, times: npt.NDArray[np.int64]) -> FloatArray:
        """Frames ``[len(times), H, W]`` nearest to ``times`` (edge frames replicated; a copy)."""
        if self._len == 0:
            raise ValueError("the ring buffer is empty")
        slots = self._slots()
        return self._frames[slots[nearest_indices(self._ts[slots], times)]]


def repair_frame(
    frame: npt.NDArray[np.floating[Any]],
    last_valid: FloatArray | None,
    age: npt.NDArray[np.int64] | None,
    temporal_radius: int = 3,
) -> tuple[FloatArray | None, npt.NDArray[np.bool_]]:
    """Causal repair of one frame (see the module docstring).

    Args:
        frame: ``[H, W]`` raw °C.
        last_valid: ``[H, W]`` last valid value of each pixel (None before the first frame).
        age: ``[H, W]`` frames ingested after the one the value was seen in (0 = the previous
            frame, so the value is ``age + 1`` frames old).

    Returns:
        ``(repaired frame or None when no pixel is valid, invalid mask)``.
    """
    bad = invalid_mask(frame)
    if not bad.any():
        return np.array(frame, dtype=np.float32, copy=True), bad
    if bad.all():
        return None, bad
    out = np.where(bad, np.float32(0.0), frame).astype(np.float32)
    filled = ~bad
    if last_valid is not None and age is not None:
        take = bad & (age < temporal_radius)
        out[take] = last_valid[take]
        filled = filled | take
    if not filled.all():  # spatial: growing-neighbourhood median of the frame's valid pixels
        raw = np.where(bad, np.float32(np.nan), out).astype(np.float32)
        fixed = repair_invalid_pixels(raw[None], (~bad)[None], temporal_radius=0)[0]
        out = np.where(filled, out, fixed).astype(np.float32)
    return out, bad


@dataclasses.dataclass
class SensorCounters:
    """What happened to one sensor's frames."""

    frames_in: int = 0
    accepted: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    empty_frames: int = 0
    """Frames without any valid pixel (dropped)."""
    repaired_frames: int = 0
    repaired_pixels: int = 0
    detections: int = 0
    classifications: int = 0
    tracks_ended: int = 0

    def add(self, other: SensorCounters) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class SensorState:
    """Everything kept per sensor: ring buffer, repair state, tracker, per-track classification."""

    def __init__(
        self, sensor_id: str, capacity: int, frame_size: tuple[int, int], tracker_config: TrackerConfig
    ) -> None:
        self.sensor_id = sensor_id
        self.frame_size = frame_size
        self.ring = FrameRing(capacity, frame_size)
        self.tracker = Tracker(tracker_config)
        self.counters = SensorCounters()
        self.last_valid: FloatArray | None = None
        self.age: npt.NDArray[np.int64] | None = None
        self.prev_ms: int | None = None
        self.last_classified: dict[int, int] = {}
        self.last_scores: dict[int, tuple[FloatArray, int]] = {}
        self.alive: set[int] = set()

    @property
    def num_track_states(self) -> int:
        """Per-track entries held (bounded by the tracker's live tracks)."""
        return len(self.last_classified) + len(self.last_scores) + len(self.alive)

    def update_tracks(
        self, timestamp_ms: int, boxes: FloatArray, scores: FloatArray
    ) -> tuple[list[TrackedBox], tuple[int, ...]]:
        """Feed this frame's person detections (pixel XYXY ``boxes [N, 4]``, ``scores [N]``) to the
        tracker; forget the per-track state of the tracks that ended. Returns the tracked boxes of
        the confirmed tracks and the ended ids."""
        self.counters.detections += len(boxes)
        tracked = self.tracker.update(timestamp_ms, boxes, scores)
        alive = {tr.id for tr in self.tracker.tracks if tr.id > 0}
        ended = tuple(sorted(self.alive - alive))
        for tid in ended:
            self.last_classified.pop(tid, None)
            self.last_scores.pop(tid, None)
        self.counters.tracks_ended += len(ended)
        self.alive = alive
        return tracked, ended

    def due(self, tracked: Sequence[TrackedBox], timestamp_ms: int, cadence_ms: float) -> list[TrackedBox]:
        """The tracked boxes whose track is due for classification at ``timestamp_ms``: never
        classified, or ``cadence_ms`` (less half the last frame interval, so the mean rate is at
        least one per cadence) after its last classification."""
        slack = 0.0 if self.prev_ms is None else min(0.5 * (timestamp_ms - self.prev_ms), 0.5 * cadence_ms)
        out = []
        for tb in tracked:
            last = self.last_classified.get(tb.track_id)
            if last is None or timestamp_ms - last >= cadence_ms - slack:
                out.append(tb)
        return out

    def record(self, track_id: int, scores: FloatArray, timestamp_ms: int) -> None:
        """A classification of ``track_id`` at ``timestamp_ms``."""
        self.last_classified[track_id] = timestamp_ms
        self.last_scores[track_id] = (scores, timestamp_ms)
        self.counters.classifications += 1

    def latest(self, track_id: int) -> tuple[FloatArray, int]:
        """The scores of ``track_id``'s latest classification and the time of its frame."""
        return self.last_scores[track_id]

    def ingest(
        self, timestamp_ms: int, frame: npt.NDArray[np.floating[Any]], temporal_radius: int
    ) -> int | None:
        """Check, repair and buffer a frame; return the number of repaired pixels or None if dropped."""
        c = self.counters
        c.frames_in += 1
        last = self.ring.last_timestamp
        if last is not None and timestamp_ms <= last:
            if timestamp_ms == last:
                c.duplicates += 1
            else:
                c.out_of_order += 1
            return None
        repaired, bad = repair_frame(frame, self.last_valid, self.age, temporal_radius)
        if repaired is None:
            c.empty_frames += 1
            return None
        if self.last_valid is None or self.age is None:
            self.last_valid = repaired.copy()
            self.age = np.full(bad.shape, 1 << 30, dtype=np.int64)  # never seen valid
        good = ~bad
        self.last_valid[good] = repaired[good]
        self.age += 1
        self.age[good] = 0
        nbad = int(bad.sum())
        if nbad:
            c.repaired_frames += 1
            c.repaired_pixels += nbad
        self.prev_ms = last
        self.ring.append(timestamp_ms, repaired)
        c.accepted += 1
        return nbad


def raw_frames(frames: FloatArray, valid: npt.NDArray[np.bool_]) -> FloatArray:
    """A recording's repaired frames with the invalid pixels put back as NaN (what a sensor sends),
    so that the pipeline repairs them causally exactly as it does live."""
    return np.where(valid, frames, np.float32(np.nan)).astype(np.float32)
