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
    rec = Recording(_write(tmp_path / "r.h5", frames, np.array([100, 300, 200, 300], dtype=np.int64)))
    assert rec.timestamps.tolist() == [100, 200, 300]
    assert rec.frames[:, 0, 0].tolist() == [1.0, 3.0, 2.0]  # first of the duplicates kept
    assert rec.timing.duplicates_removed == 1
    assert rec.timing.out_of_order == 1
    assert rec.index_at(np.array([0, 149, 151, 260, 10_000])).tolist() == [0, 0, 1, 2, 2]
    assert rec.exact_index(200) == 1 and rec.exact_index(201) is None


def test_all_nan_frame_is_an_error_or_dropped_when_lenient(tmp_path: Path) -> None:
    frames = np.full((3, 40, 60), 20.0, dtype=np.float32)
    frames[1] = np.nan
    path = _write(tmp_path / "nanframe.h5", frames, np.array([0, 170, 340], dtype=np.int64))
    with pytest.raises(DataError, match=r"nanframe\.h5: frame 1 .*no valid pixel"):
        Recording(path).load()
    warnings: list[str] = []
    rec = Recording(path, problems=ProblemLog(lenient=True, warn=warnings.append))
    assert rec.timestamps.tolist() == [0, 340]
    assert len(warnings) == 1 and "frame 1" in warnings[0]


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
