"""One thermal recording stored as HDF5: frames, timestamps, invalid-pixel mask and timing.

File layout (as written by the dataset generator)::

    frames      float32 [T, H, W]   temperature in °C (H=40, W=60 for the bundled sensor)
    timestamps  int64   [T]         Unix time in milliseconds
    frame_seqs  int64   [T]         optional, the sensor's sequence numbers
    attrs                           sensor_id, mac_address, frame_height, frame_width, ...

Invalid pixels
    The sensor writes ``-273.2`` °C (absolute zero) where a pixel is dead or was not received;
    in the bundled data such pixels come in blocks of whole rows (e.g. rows 30-39). NaN, ±inf
    and values outside :data:`VALID_RANGE_C` are treated the same way. :class:`Recording` keeps
    a boolean validity mask ``valid`` [T, H, W] and *repairs* ``frames`` so that no invalid value
    ever reaches a model. Repair method, in order (see :func:`repair_invalid_pixels`):

    1. temporal: the same pixel in the nearest frame (by index, ties to the earlier frame) within
       ``temporal_radius`` frames where that pixel is valid;
    2. spatial: the median of the valid pixels in the 3×3, 5×5, ... neighbourhood of the same frame
       (growing until one is found);
    3. the median of all valid pixels of the recording (only if a whole frame has none).

    A frame with no valid pixel at all is a problem (strict mode: an error naming the file and
    frame; lenient mode: the frame is dropped with a warning).

Timing
    Frames arrive irregularly (about 5.7-6 fps, gaps up to 2.6 s). Frames are ordered by
    timestamp; frames repeating an earlier timestamp are dropped (the first is kept) and
    counted in :class:`TimingStats`.

Reading is lazy and fork-safe: the HDF5 file is opened only inside :meth:`Recording.load`,
read whole (≈5 MB decoded) and closed again, so no h5py handle is ever shared across
DataLoader worker processes.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from thermact.errors import DataError, ProblemLog

INVALID_SENTINEL_C = -273.2
"""Value the sensor writes for a dead or missing pixel (°C)."""

VALID_RANGE_C = (-40.0, 150.0)
"""Temperatures outside this range (°C) are physically impossible for an indoor ceiling sensor."""


@dataclasses.dataclass(frozen=True)
class TimingStats:
    """Frame timing of one recording (after sorting and duplicate removal)."""

    num_frames: int
    duration_s: float
    fps: float
    """Mean frame rate, (num_frames - 1) / duration."""
    median_interval_ms: float
    max_gap_ms: int
    gaps_over_1s: int
    """Number of inter-frame intervals longer than one second."""
    duplicates_removed: int
    out_of_order: int
    """Number of frames whose timestamp was smaller than their predecessor's in the file."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RecordingData:
    """The decoded, repaired content of a recording (all arrays are read-only)."""

    frames: npt.NDArray[np.float32]
    """[T, H, W] °C, invalid pixels repaired."""
    valid: npt.NDArray[np.bool_]
    """[T, H, W] True where the sensor value was valid."""
    timestamps: npt.NDArray[np.int64]
    """[T] milliseconds, strictly increasing."""
    source_index: npt.NDArray[np.int64]
    """[T] index of each kept frame in the file as stored."""
    timing: TimingStats
    attrs: dict[str, Any]


def invalid_mask(frames: npt.NDArray[np.floating]) -> npt.NDArray[np.bool_]:
    """True where a value is the dead-pixel sentinel, non-finite or outside :data:`VALID_RANGE_C`."""
    with np.errstate(invalid="ignore"):
        bad: npt.NDArray[np.bool_] = ~np.isfinite(frames)
        bad |= frames < VALID_RANGE_C[0]
        bad |= frames > VALID_RANGE_C[1]
    return bad


def repair_invalid_pixels(
    frames: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    temporal_radius: int = 3,
) -> npt.NDArray[np.float32]:
    """Return a copy of ``frames`` [T,H,W] with every pixel where ``valid`` is False replaced.

    See the module docstring for the method. Every frame must have at least one valid pixel
    unless the whole recording has none (then :class:`ValueError`).
    """
    out = np.array(frames, dtype=np.float32, copy=True)
    if valid.all():
        return out
    if not valid.any():
        raise ValueError("no valid pixel in the whole recording")
    filled = valid.copy()
    num_frames = out.shape[0]
    # 1. temporal: nearest frame with a valid value at that pixel (earlier frame wins ties).
    for offset in range(1, temporal_radius + 1):
        if filled.all():
            break
        for shift in (-offset, offset):
            todo = ~filled
            src = np.arange(num_frames) + shift
            ok = (src >= 0) & (src < num_frames)
            t_idx = np.nonzero(ok)[0]
            s_idx = src[ok]
            take = todo[t_idx] & valid[s_idx]
            if not take.any():
                continue
            target = out[t_idx]
            target[take] = frames[s_idx][take]
            out[t_idx] = target
            f = filled[t_idx]
            f[take] = True
            filled[t_idx] = f
    # 2. spatial: median of valid pixels in a growing neighbourhood of the same frame.
    global_median = float(np.median(frames[valid]))
    for t in np.nonzero(~filled.all(axis=(1, 2)))[0]:
        frame_valid = valid[t]
        if not frame_valid.any():
            out[t][~filled[t]] = global_median  # 3. nothing valid in this frame at all
            continue
        for y, x in zip(*np.nonzero(~filled[t]), strict=True):
            radius = 1
            while True:
                y0, y1 = max(0, y - radius), y + radius + 1
                x0, x1 = max(0, x - radius), x + radius + 1
                patch_valid = frame_valid[y0:y1, x0:x1]
                if patch_valid.any():
                    out[t, y, x] = np.median(frames[t, y0:y1, x0:x1][patch_valid])
                    break
                radius += 1
    return out


def _timing(timestamps: npt.NDArray[np.int64], duplicates: int, out_of_order: int) -> TimingStats:
    n = int(timestamps.shape[0])
    duration_ms = int(timestamps[-1] - timestamps[0]) if n > 1 else 0
    diffs = np.diff(timestamps) if n > 1 else np.zeros(0, dtype=np.int64)
    return TimingStats(
        num_frames=n,
        duration_s=duration_ms / 1000.0,
        fps=(n - 1) / (duration_ms / 1000.0) if duration_ms > 0 else 0.0,
        median_interval_ms=float(np.median(diffs)) if diffs.size else 0.0,
        max_gap_ms=int(diffs.max()) if diffs.size else 0,
        gaps_over_1s=int((diffs > 1000).sum()),
        duplicates_removed=duplicates,
        out_of_order=out_of_order,
    )


def _attr_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _read_hdf5(path: Path) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], dict[str, Any]]:
    import h5py  # local import keeps `import thermact` light

    try:
        handle = h5py.File(path, "r")
    except FileNotFoundError as err:
        raise DataError(f"{path}: recording file not found") from err
    except OSError as err:
        raise DataError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {err}") from err
    with handle:
        for name in ("frames", "timestamps"):
            if name not in handle:
                raise DataError(
                    f"{path}: missing dataset {name!r} (has: {', '.join(sorted(handle.keys())) or 'none'})"
                )
        try:
            frames = np.asarray(handle["frames"][()], dtype=np.float32)
            timestamps = np.asarray(handle["timestamps"][()])
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise DataError(
                f"{path}: could not read frames/timestamps (truncated or corrupt?): {err}"
            ) from err
        attrs = {str(k): _attr_value(v) for k, v in handle.attrs.items()}
    if frames.ndim != 3:
        raise DataError(f"{path}: 'frames' must be [T, H, W], got shape {list(frames.shape)}")
    if timestamps.ndim != 1 or timestamps.shape[0] != frames.shape[0]:
        raise DataError(
            f"{path}: 'timestamps' must be [T] with T={frames.shape[0]} like 'frames', got shape {list(timestamps.shape)}"
        )
    if not np.issubdtype(timestamps.dtype, np.integer):
        raise DataError(f"{path}: 'timestamps' must be integer milliseconds, got dtype {timestamps.dtype}")
    if frames.shape[0] == 0:
        raise DataError(f"{path}: recording has no frames")
    return frames, timestamps.astype(np.int64), attrs


def decode_recording(
    path: Path,
    frames: npt.NDArray[np.float32],
    timestamps: npt.NDArray[np.int64],
    attrs: dict[str, Any],
    problems: ProblemLog,
    temporal_radius: int = 3,
) -> RecordingData:
    """Order, de-duplicate, mask and repair raw arrays read from ``path`` (pure function)."""
    out_of_order = int((np.diff(timestamps) < 0).sum())
    order = np.argsort(timestamps, kind="stable")
    ts_sorted = timestamps[order]
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = ts_sorted[1:] != ts_sorted[:-1]
    duplicates = int((~keep).sum())
    index = order[keep].astype(np.int64)
    raw = frames[index]
    valid = ~invalid_mask(raw)
    empty = np.nonzero(~valid.any(axis=(1, 2)))[0]
    if empty.size:
        for t in empty:
            problems.report(
                f"{path}: frame {int(index[t])} (timestamp {int(ts_sorted[keep][t])}) has no valid pixel "
                "(all NaN/inf/dead); dropping it"
            )
        keep_frames = valid.any(axis=(1, 2))
        index, raw, valid = index[keep_frames], raw[keep_frames], valid[keep_frames]
        if index.size == 0:
            raise DataError(f"{path}: no frame with a valid pixel")
    repaired = repair_invalid_pixels(raw, valid, temporal_radius=temporal_radius)
    ts = timestamps[index]
    for arr in (repaired, valid, ts, index):
        arr.setflags(write=False)
    return RecordingData(
        frames=repaired,
        valid=valid,
        timestamps=ts,
        source_index=index,
        timing=_timing(ts, duplicates, out_of_order),
        attrs=attrs,
    )


class Recording:
    """Lazily loaded HDF5 recording.

    Args:
        path: the ``.h5`` file.
        recording_id: identifier used by annotations (``sensor_id``); defaults to the file stem.
        problems: where problems go (strict by default).
        temporal_radius: frames searched on each side when repairing invalid pixels.

    Nothing is read until :attr:`data` (or a property using it) is first accessed; the decoded
    content is then cached on the object. Pickling drops the cache, so a Recording sent to a
    DataLoader worker re-reads its file there instead of copying arrays between processes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        recording_id: str | None = None,
        problems: ProblemLog | None = None,
        temporal_radius: int = 3,
    ) -> None:
        self.path = Path(path)
        self.recording_id = recording_id if recording_id is not None else self.path.stem
        self.problems = problems if problems is not None else ProblemLog()
        self.temporal_radius = temporal_radius
        self._data: RecordingData | None = None

    def __repr__(self) -> str:
        return f"Recording({self.recording_id!r}, path={str(self.path)!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_data"] = None
        return state

    def load(self) -> RecordingData:
        """Read, validate and repair the file (once); return the cached content."""
        if self._data is None:
            frames, timestamps, attrs = _read_hdf5(self.path)
            self._data = decode_recording(
                self.path, frames, timestamps, attrs, self.problems, self.temporal_radius
            )
        return self._data

    @property
    def data(self) -> RecordingData:
        return self.load()

    @property
    def frames(self) -> npt.NDArray[np.float32]:
        """[T, H, W] °C with invalid pixels repaired."""
        return self.load().frames

    @property
    def valid(self) -> npt.NDArray[np.bool_]:
        """[T, H, W] validity mask of the raw sensor values."""
        return self.load().valid

    @property
    def timestamps(self) -> npt.NDArray[np.int64]:
        """[T] strictly increasing milliseconds."""
        return self.load().timestamps

    @property
    def timing(self) -> TimingStats:
        return self.load().timing

    @property
    def num_frames(self) -> int:
        return int(self.load().timestamps.shape[0])

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        h, w = self.load().frames.shape[1:]
        return int(h), int(w)

    @property
    def start_ms(self) -> int:
        return int(self.load().timestamps[0])

    @property
    def end_ms(self) -> int:
        return int(self.load().timestamps[-1])

    def index_at(self, timestamp_ms: int | npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Index of the frame nearest in time to each ``timestamp_ms`` (earlier frame wins ties)."""
        from thermact.data.clips import nearest_indices

        return nearest_indices(
            self.load().timestamps, np.atleast_1d(np.asarray(timestamp_ms, dtype=np.int64))
        )

    def exact_index(self, timestamp_ms: int) -> int | None:
        """Index of the frame with exactly this timestamp, or None."""
        ts = self.load().timestamps
        i = int(np.searchsorted(ts, timestamp_ms))
        return i if i < len(ts) and int(ts[i]) == timestamp_ms else None
