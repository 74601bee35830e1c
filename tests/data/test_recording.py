from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from thermact.data.recording import INVALID_SENTINEL_C, Recording, invalid_mask, repair_invalid_pixels
from thermact.errors import DataError, ProblemLog


def _raw(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as f:
        return f["frames"][()], f["timestamps"][()]


def _write(path: Path, frames: np.ndarray, timestamps: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=frames)
        f.create_dataset("timestamps", data=timestamps)
    return path


def test_sl14_r1_dead_pixels_are_masked_and_repaired(bundled_root: Path) -> None:
    path = bundled_root / "frames" / "SL14_R1.h5"
    raw, _ = _raw(path)
    rec = Recording(path)
    assert rec.num_frames == 498
    assert rec.frame_size == (40, 60)
    # 39 frames carry blocks of -273.2, 31,680 pixels in all
    assert int((~rec.valid).sum()) == 31680
    assert int((~rec.valid).any(axis=(1, 2)).sum()) == 39
    assert np.all(raw[~rec.valid] == np.float32(INVALID_SENTINEL_C))
    assert rec.frames.min() > 0.0  # nothing near absolute zero reaches a model
    # frame 8: row 31 onwards is dead; frame 7 is complete, so the repair copies it (earlier frame wins)
    assert not rec.valid[8, 31:].any() and rec.valid[8, :30].all()
    assert rec.valid[7].all()
    np.testing.assert_array_equal(rec.frames[8, 31:], raw[7, 31:])
    np.testing.assert_array_equal(rec.frames[8, :30], raw[8, :30])  # valid pixels untouched


def test_timing_of_real_recordings(bundled_root: Path) -> None:
    t = Recording(bundled_root / "frames" / "SL14_R1.h5").timing
    assert t.num_frames == 498
    assert t.duration_s == pytest.approx(84.248)
    assert t.fps == pytest.approx(497 / 84.248)
    assert t.max_gap_ms == 1388
    assert t.duplicates_removed == 0
    t4 = Recording(bundled_root / "frames" / "SL14_R4.h5").timing
    assert t4.max_gap_ms == 2633  # the longest gap of the dataset, 2.6 s
    t18 = Recording(bundled_root / "frames" / "SL18_R1.h5").timing
    assert 5.9 < t18.fps < 6.1 and t18.max_gap_ms == 561


def test_invalid_mask_covers_nan_inf_and_impossible_values() -> None:
    x = np.array([[20.0, np.nan, np.inf, -np.inf, -273.2, 200.0, -50.0, 37.0]], dtype=np.float32)
    assert invalid_mask(x).tolist() == [[False, True, True, True, True, True, True, False]]


def test_repair_prefers_nearest_frame_then_spatial_median() -> None:
    frames = np.stack([np.full((3, 3), v, dtype=np.float32) for v in (10.0, 20.0, 30.0)])
    frames[1, 1, 1] = np.nan
    valid = ~invalid_mask(frames)
    out = repair_invalid_pixels(frames, valid, temporal_radius=1)
    assert out[1, 1, 1] == 10.0  # earlier neighbouring frame wins the tie
    frames[0, 1, 1] = frames[2, 1, 1] = np.nan
    valid = ~invalid_mask(frames)
    out = repair_invalid_pixels(frames, valid, temporal_radius=1)
    assert out[1, 1, 1] == 20.0  # no valid neighbour in time: median of its 3x3 neighbourhood
    assert np.isfinite(out).all()


def test_nan_pixels_in_a_file_are_repaired(tmp_path: Path) -> None:
    frames = np.full((4, 40, 60), 21.0, dtype=np.float32)
    frames[2, 5, 5] = np.nan
    frames[3, 0, :] = np.inf
    rec = Recording(_write(tmp_path / "r.h5", frames, np.arange(4, dtype=np.int64) * 170))
    assert int((~rec.valid).sum()) == 61
    assert np.all(rec.frames == 21.0)


def test_duplicate_and_unordered_timestamps(tmp_path: Path) -> None:
    frames = np.stack([np.full((40, 60), v, dtype=np.float32) for v in (1.0, 2.0, 3.0, 4.0)])
    path = _write(tmp_path / "r.h5", frames, np.array([100, 300, 200, 300], dtype=np.int64))
    with pytest.raises(
        DataError, match=r"r\.h5: 1 frame\(s\) out of time order \(first: frame 2 at 200 ms after 300 ms\)$"
    ):
        Recording(path).load()
    warnings: list[str] = []
    rec = Recording(path, problems=ProblemLog(lenient=True, warn=warnings.append))
    assert rec.timestamps.tolist() == [100, 200, 300]
    assert warnings[0].endswith("; sorting the frames by time")
    assert warnings[1].endswith(
        "r.h5: 1 frame(s) repeat an earlier timestamp (first: frame 3 at 300 ms); "
        "dropping the repeats (the first frame of each timestamp is kept)"
    )
    assert rec.frames[:, 0, 0].tolist() == [1.0, 3.0, 2.0]  # first of the duplicates kept
    assert rec.timing.duplicates_removed == 1
    assert rec.timing.out_of_order == 1
    assert rec.index_at(np.array([0, 149, 151, 260, 10_000])).tolist() == [0, 0, 1, 2, 2]
    assert rec.exact_index(200) == 1 and rec.exact_index(201) is None


def test_all_nan_frame_is_an_error_or_dropped_when_lenient(tmp_path: Path) -> None:
    frames = np.full((3, 40, 60), 20.0, dtype=np.float32)
    frames[1] = np.nan
    path = _write(tmp_path / "nanframe.h5", frames, np.array([0, 170, 340], dtype=np.int64))
    # strict: an error that names the frame and claims no action it does not take
    with pytest.raises(DataError, match=r"nanframe\.h5: frame 1 .*no valid pixel \(all NaN/inf/dead\)$"):
        Recording(path).load()
    warnings: list[str] = []
    rec = Recording(path, problems=ProblemLog(lenient=True, warn=warnings.append))
    assert rec.timestamps.tolist() == [0, 340]
    assert len(warnings) == 1 and "frame 1" in warnings[0] and warnings[0].endswith("; dropping the frame")


def test_missing_truncated_and_incomplete_files(tmp_path: Path, bundled_root: Path) -> None:
    with pytest.raises(DataError, match=r"absent\.h5: recording file not found"):
        Recording(tmp_path / "absent.h5").load()
    data = (bundled_root / "frames" / "SL18_R1.h5").read_bytes()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"truncated\.h5: .*truncated or corrupt"):
        Recording(truncated).load()
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file at all" * 100)
    with pytest.raises(DataError, match=r"garbage\.h5: not a readable HDF5 file"):
        Recording(garbage).load()
    no_ts = tmp_path / "no_ts.h5"
    with h5py.File(no_ts, "w") as f:
        f.create_dataset("frames", data=np.zeros((2, 40, 60), dtype=np.float32))
    with pytest.raises(DataError, match=r"no_ts\.h5: missing dataset 'timestamps'"):
        Recording(no_ts).load()
    bad_shape = _write(tmp_path / "bad_shape.h5", np.zeros((2, 40), dtype=np.float32), np.arange(2))
    with pytest.raises(DataError, match=r"bad_shape\.h5: 'frames' must be \[T, H, W\]"):
        Recording(bad_shape).load()
    mismatch = _write(tmp_path / "mismatch.h5", np.zeros((3, 4, 4), dtype=np.float32), np.arange(2))
    with pytest.raises(DataError, match=r"mismatch\.h5: 'timestamps' must be \[T\] with T=3"):
        Recording(mismatch).load()


def test_lazy_and_picklable_without_cache(bundled_root: Path) -> None:
    rec = Recording(bundled_root / "frames" / "SL18_R2.h5")
    assert rec._data is None  # nothing read yet
    n = rec.num_frames
    clone = pickle.loads(pickle.dumps(rec))
    assert clone._data is None
    assert clone.num_frames == n == 507
    assert not rec.frames.flags.writeable


def _first_seconds(bundled_root: Path, seconds: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    frames, ts = _raw(bundled_root / "frames" / "SL18_R1.h5")
    n = int(np.searchsorted(ts, ts[0] + seconds * 1000))
    return frames[:n], ts[:n]


def test_frame_size_is_checked(tmp_path: Path, bundled_root: Path) -> None:
    frames, ts = _first_seconds(bundled_root)
    transposed = _write(tmp_path / "transposed.h5", np.ascontiguousarray(frames.transpose(0, 2, 1)), ts)
    with pytest.raises(
        DataError,
        match=r"transposed\.h5: frames are 60 high x 40 wide .*are 40 high x 60 wide \(transposed\?\)$",
    ):
        Recording(transposed).load()
    small = _write(tmp_path / "small.h5", frames[:, :20, :30], ts)
    with pytest.raises(DataError, match=r"small\.h5: frames are 20 high x 30 wide \(stored \[T, 20, 30\]\)"):
        Recording(small).load()
    assert Recording(small, expected_size=None).frame_size == (20, 30)  # another sensor, knowingly
    with h5py.File(small, "r+") as f:  # the file's own attributes disagree with its array
        f.attrs["frame_height"], f.attrs["frame_width"] = 30, 20
    with pytest.raises(
        DataError,
        match=r"stored \[T, 20, 30\] but the file's attributes say frame_height=30, frame_width=20 \(transposed\?\)",
    ):
        Recording(small, expected_size=None).load()


def test_frames_that_are_not_celsius_name_their_dtype_and_unit(tmp_path: Path, bundled_root: Path) -> None:
    frames, ts = _first_seconds(bundled_root)
    kelvin = frames.astype(np.float64) + 273.15
    deci = _write(tmp_path / "deci.h5", np.rint(kelvin * 10).astype(np.uint16), ts)
    with pytest.raises(DataError) as info:
        Recording(deci).load()
    message = str(info.value)
    assert message.startswith(f"{deci}: 'frames' (uint16) do not hold °C: median value 2")
    assert message.endswith("look like deci-Kelvin (K × 10): divide by 10 and subtract 273.15")
    with pytest.raises(
        DataError, match=r"'frames' \(float32\) do not hold °C.*look like Kelvin: subtract 273\.15$"
    ):
        Recording(_write(tmp_path / "k.h5", kelvin.astype(np.float32), ts)).load()
    with pytest.raises(DataError, match=r"'frames' has dtype bool; expected float32 temperatures in °C"):
        Recording(_write(tmp_path / "b.h5", frames > 20, ts)).load()
    dead = np.full_like(frames, np.float32(INVALID_SENTINEL_C))
    with pytest.raises(DataError, match=r"dead\.h5: no valid pixel in the whole recording"):
        Recording(_write(tmp_path / "dead.h5", dead, ts)).load()
    # Converted as advised, the same data loads (and equals the original within uint16 rounding)
    fixed = Recording(
        _write(tmp_path / "fixed.h5", (np.rint(kelvin * 10) / 10 - 273.15).astype(np.float32), ts)
    )
    assert (
        np.abs(fixed.frames - Recording(bundled_root / "frames" / "SL18_R1.h5").frames[: len(ts)]).max()
        < 0.051
    )


def test_timestamps_that_are_not_milliseconds(tmp_path: Path, bundled_root: Path) -> None:
    frames, ts = _first_seconds(bundled_root)  # 121 frames over 20 s
    seconds = _write(tmp_path / "seconds.h5", frames, ts // 1000)
    with pytest.raises(DataError) as info:
        Recording(seconds).load()
    assert str(info.value) == (
        f"{seconds}: 'timestamps' are not milliseconds (they look like Unix seconds: multiply by 1000): "
        f"distinct values are a median 1 apart (expected 10..10000 ms) and 100 of 121 frames repeat a "
        f"timestamp; values {ts[0] // 1000}..{ts[-1] // 1000}"
    )
    # lenient mode does not drop 99 frames as "duplicates" either: the file is refused
    with pytest.raises(DataError, match="not milliseconds"):
        Recording(seconds, problems=ProblemLog(lenient=True)).load()
    with pytest.raises(
        DataError, match=r"not milliseconds \(they look like Unix microseconds: divide by 1000\)"
    ):
        Recording(_write(tmp_path / "us.h5", frames, ts * 1000)).load()
    with pytest.raises(DataError, match=r"same\.h5: all 121 frames have the same timestamp"):
        Recording(_write(tmp_path / "same.h5", frames, np.full_like(ts, ts[0]))).load()
    shuffled = np.random.default_rng(0).permutation(len(ts))
    with pytest.raises(DataError, match=r"shuffled\.h5: 57 frame\(s\) out of time order \(first: frame 2 at"):
        Recording(_write(tmp_path / "shuffled.h5", frames[shuffled], ts[shuffled])).load()
    repeated = ts.copy()
    repeated[10:15] = repeated[9]
    with pytest.raises(
        DataError, match=r"repeated\.h5: 5 frame\(s\) repeat an earlier timestamp \(first: frame 10 at"
    ):
        Recording(_write(tmp_path / "repeated.h5", frames, repeated)).load()
    # leniently, the counts are true: 5 repeats dropped and counted, the rest kept
    rec = Recording(tmp_path / "repeated.h5", problems=ProblemLog(lenient=True, warn=lambda _: None))
    assert rec.timing.duplicates_removed == 5 and rec.num_frames == len(ts) - 5


def test_same_recording_same_content_hash(bundled_root: Path, tmp_path: Path) -> None:
    path = bundled_root / "frames" / "SL18_R2.h5"
    copy = tmp_path / "copy.h5"
    copy.write_bytes(path.read_bytes())
    with h5py.File(copy, "r+") as f:
        f.attrs["created_at"] = "another day"  # as in thermal_v2's copy of the V1 files
    a, b = Recording(path).data, Recording(copy).data
    assert a.content_sha256 == b.content_sha256 and len(a.content_sha256) == 64
    with h5py.File(copy, "r+") as f:
        f["frames"][0, 0, 0] += 0.5
    assert Recording(copy).data.content_sha256 != a.content_sha256
