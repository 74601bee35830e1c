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
    frame; lenient mode: the frame is dropped with a warning); a recording without any valid
    pixel is an error.

Checks (each a :class:`~thermact.errors.DataError` naming the file)
    * ``frames`` must be real numbers in °C: a recording whose typical value lies outside
      :data:`VALID_RANGE_C` is refused with its dtype and the unit it most likely is (uint16
      deci-Kelvin, Kelvin, ...), not reported frame by frame as dead pixels;
    * the frame size must be the sensor's (:data:`SENSOR_FRAME_SIZE`, 40 high × 60 wide, or the
      ``expected_size`` given) and agree with the file's ``frame_height``/``frame_width``
      attributes, so that transposed ``[T, 60, 40]`` frames are caught;
    * ``timestamps`` must be milliseconds: distinct timestamps a median
      :data:`PLAUSIBLE_INTERVAL_MS` apart (0.1-100 frames/s). Seconds (most frames sharing a
      timestamp) and microseconds are refused with the unit they look like.

Timing
    Frames arrive irregularly (about 5.7-6 fps, gaps up to 2.6 s). Timestamps must increase: a
    frame out of time order or repeating an earlier timestamp is a problem (strict mode: an
    error naming the file and the first such frame; lenient mode: the frames are sorted by time
    and repeats dropped, the first kept, with a warning, and both are counted in
    :class:`TimingStats`).

Reading is lazy and fork-safe: the HDF5 file is opened only inside :meth:`Recording.load`,
read whole (≈5 MB decoded) and closed again, so no h5py handle is ever shared across
DataLoader worker processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from thermact.data.background import background_image
from thermact.data.clips import nearest_indices
from thermact.errors import DataError, ProblemLog

INVALID_SENTINEL_C = -273.2
"""Value the sensor writes for a dead or missing pixel (°C)."""

VALID_RANGE_C = (-40.0, 150.0)
"""Temperatures outside this range (°C) are physically impossible for an indoor ceiling sensor."""

SENSOR_FRAME_SIZE = (40, 60)
"""``(height, width)`` of the sensor's frames: 40 rows, 60 columns."""

PLAUSIBLE_INTERVAL_MS = (10.0, 10_000.0)
"""Range of the median interval between distinct timestamps (ms) of a real recording: 100 to 0.1 fps."""

_UNIX_S = (946_684_800, 4_102_444_800)
"""2000-01-01 .. 2100-01-01 in Unix seconds: timestamps in this range look like seconds."""


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
    content_sha256: str = ""
    """SHA-256 of the frames and timestamps as stored (float32 / int64, in file order): equal for
    two files with the same recording whatever their other attributes (e.g. ``created_at``)."""


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


def _unit_hint(median: float) -> str:
    """The unit a recording's typical value most likely is, as advice."""
    if 200.0 <= median <= 420.0:
        return "; the values look like Kelvin: subtract 273.15"
    if 2_000.0 <= median <= 4_200.0:
        return "; the values look like deci-Kelvin (K × 10): divide by 10 and subtract 273.15"
    if 20_000.0 <= median <= 42_000.0:
        return "; the values look like centi-Kelvin (K × 100): divide by 100 and subtract 273.15"
    return "; convert them to °C"


def check_temperature_unit(path: Path, frames: npt.NDArray[np.float32], dtype: np.dtype[Any]) -> None:
    """Raise DataError unless the typical (median) valid value of ``frames`` is a °C temperature.

    ``dtype`` is the type the file stores (named in the message with the unit the values look like).
    """
    values = frames[np.isfinite(frames) & (frames != np.float32(INVALID_SENTINEL_C))]
    if values.size == 0:
        raise DataError(
            f"{path}: no valid pixel in the whole recording (every value is NaN, inf or the "
            f"dead-pixel value {INVALID_SENTINEL_C})"
        )
    median = float(np.median(values))
    lo, hi = VALID_RANGE_C
    if not lo <= median <= hi:
        raise DataError(
            f"{path}: 'frames' ({dtype}) do not hold °C: median value {median:g} (range "
            f"{float(values.min()):g}..{float(values.max()):g}) lies outside {lo:g}..{hi:g} °C"
            + _unit_hint(median)
        )


def check_frame_size(
    path: Path, shape: tuple[int, ...], attrs: dict[str, Any], expected: tuple[int, int] | None
) -> None:
    """Raise DataError when frames of ``shape`` [T, H, W] disagree with the file's
    ``frame_height``/``frame_width`` attributes or with ``expected`` ``(H, W)``."""
    h, w = int(shape[1]), int(shape[2])
    ah, aw = attrs.get("frame_height"), attrs.get("frame_width")
    if isinstance(ah, int) and isinstance(aw, int) and (ah, aw) != (h, w):
        raise DataError(
            f"{path}: 'frames' are stored [T, {h}, {w}] but the file's attributes say frame_height={ah}, "
            f"frame_width={aw}" + (" (transposed?)" if (ah, aw) == (w, h) else "")
        )
    if expected is not None and (h, w) != tuple(expected):
        eh, ew = expected
        raise DataError(
            f"{path}: frames are {h} high x {w} wide (stored [T, {h}, {w}]); the sensor's frames are "
            f"{eh} high x {ew} wide" + (" (transposed?)" if (h, w) == (ew, eh) else "")
        )


def check_timestamps(path: Path, timestamps: npt.NDArray[np.int64]) -> None:
    """Raise DataError unless ``timestamps`` [T] are milliseconds (see :data:`PLAUSIBLE_INTERVAL_MS`)."""
    n = int(timestamps.shape[0])
    if n < 2:
        return
    distinct = np.unique(timestamps)
    if distinct.size == 1:
        raise DataError(f"{path}: all {n} frames have the same timestamp {int(distinct[0])}")
    median = float(np.median(np.diff(distinct)))
    lo, hi = PLAUSIBLE_INTERVAL_MS
    if lo <= median <= hi:
        return
    first, last = int(distinct[0]), int(distinct[-1])
    hint = ""
    if median < lo and _UNIX_S[0] <= first and last <= _UNIX_S[1]:
        hint = " (they look like Unix seconds: multiply by 1000)"
    elif median > hi and _UNIX_S[0] * 1_000_000 <= first and last <= _UNIX_S[1] * 1_000_000:
        hint = " (they look like Unix microseconds: divide by 1000)"
    raise DataError(
        f"{path}: 'timestamps' are not milliseconds{hint}: distinct values are a median {median:g} apart "
        f"(expected {lo:g}..{hi:g} ms) and {n - int(distinct.size)} of {n} frames repeat a timestamp; "
        f"values {first}..{last}"
    )


def _read_hdf5(
    path: Path, expected_size: tuple[int, int] | None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], dict[str, Any]]:
    import h5py  # local import keeps `import thermact` light

    try:
        handle = h5py.File(path, "r")
    except FileNotFoundError as err:
        raise DataError(f"{path}: recording file not found") from err
    except OSError as err:
        raise DataError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {err}") from err
    with handle:
        for name in ("frames", "timestamps"):
            if name not in handle or not isinstance(handle[name], h5py.Dataset):
                raise DataError(
                    f"{path}: missing dataset {name!r} (has: {', '.join(sorted(handle.keys())) or 'none'})"
                )
        dtype = handle["frames"].dtype
        if dtype.kind not in "fiu":
            raise DataError(f"{path}: 'frames' has dtype {dtype}; expected float32 temperatures in °C")
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
    check_frame_size(path, frames.shape, attrs, expected_size)
    check_temperature_unit(path, frames, dtype)
    timestamps = timestamps.astype(np.int64)
    check_timestamps(path, timestamps)
    return frames, timestamps, attrs


def _report_order(path: Path, timestamps: npt.NDArray[np.int64], problems: ProblemLog) -> tuple[int, int]:
    """Report frames out of time order and repeated timestamps; return their counts."""
    back = np.nonzero(np.diff(timestamps) < 0)[0] + 1
    if back.size:
        i = int(back[0])
        problems.report(
            f"{path}: {back.size} frame(s) out of time order (first: frame {i} at {int(timestamps[i])} ms "
            f"after {int(timestamps[i - 1])} ms)",
            consequence="sorting the frames by time",
        )
    ts_sorted = np.sort(timestamps, kind="stable")
    repeats = int((ts_sorted[1:] == ts_sorted[:-1]).sum())
    if repeats:
        _, first_seen = np.unique(timestamps, return_index=True)
        later = np.setdiff1d(np.arange(len(timestamps)), first_seen)
        i = int(later[0])
        problems.report(
            f"{path}: {repeats} frame(s) repeat an earlier timestamp (first: frame {i} at "
            f"{int(timestamps[i])} ms)",
            consequence="dropping the repeats (the first frame of each timestamp is kept)",
        )
    return repeats, int(back.size)


def decode_recording(
    path: Path,
    frames: npt.NDArray[np.float32],
    timestamps: npt.NDArray[np.int64],
    attrs: dict[str, Any],
    problems: ProblemLog,
    temporal_radius: int = 3,
) -> RecordingData:
    """Order, de-duplicate, mask and repair raw arrays read from ``path`` (pure function)."""
    digest = hashlib.sha256(f"{list(frames.shape)} float32 °C, int64 ms\n".encode())
    digest.update(np.ascontiguousarray(frames, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(timestamps, dtype=np.int64).tobytes())
    duplicates, out_of_order = _report_order(path, timestamps, problems)
    order = np.argsort(timestamps, kind="stable")
    ts_sorted = timestamps[order]
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = ts_sorted[1:] != ts_sorted[:-1]
    index = order[keep].astype(np.int64)
    raw = frames[index]
    valid = ~invalid_mask(raw)
    empty = np.nonzero(~valid.any(axis=(1, 2)))[0]
    if empty.size:
        for t in empty:
            problems.report(
                f"{path}: frame {int(index[t])} (timestamp {int(ts_sorted[keep][t])}) has no valid pixel "
                "(all NaN/inf/dead)",
                consequence="dropping the frame",
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
        content_sha256=digest.hexdigest(),
    )


class Recording:
    """Lazily loaded HDF5 recording.

    Args:
        path: the ``.h5`` file.
        recording_id: identifier used by annotations (``sensor_id``); defaults to the file stem.
        problems: where problems go (strict by default).
        temporal_radius: frames searched on each side when repairing invalid pixels.
        expected_size: ``(height, width)`` the frames must have (default: the sensor's, 40 x 60);
            None accepts any size (the file's own attributes are still checked).

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
        expected_size: tuple[int, int] | None = SENSOR_FRAME_SIZE,
    ) -> None:
        self.path = Path(path)
        self.recording_id = recording_id if recording_id is not None else self.path.stem
        self.problems = problems if problems is not None else ProblemLog()
        self.temporal_radius = temporal_radius
        self.expected_size = expected_size
        self._data: RecordingData | None = None
        self._background: npt.NDArray[np.float32] | None = None

    def __repr__(self) -> str:
        return f"Recording({self.recording_id!r}, path={str(self.path)!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_data"] = None
        return state

    def load(self) -> RecordingData:
        """Read, validate and repair the file (once); return the cached content."""
        if self._data is None:
            frames, timestamps, attrs = _read_hdf5(self.path, self.expected_size)
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
    def background(self) -> npt.NDArray[np.float32]:
        """[H, W] °C: the room without its people (:func:`~thermact.data.background.background_image`, cached)."""
        if self._background is None:
            self._background = background_image(self.frames, self.valid)
        return self._background

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
        return nearest_indices(
            self.load().timestamps, np.atleast_1d(np.asarray(timestamp_ms, dtype=np.int64))
        )

    def exact_index(self, timestamp_ms: int) -> int | None:
        """Index of the frame with exactly this timestamp, or None."""
        ts = self.load().timestamps
        i = int(np.searchsorted(ts, timestamp_ms))
        return i if i < len(ts) and int(ts[i]) == timestamp_ms else None
