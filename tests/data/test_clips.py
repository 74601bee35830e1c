"""Tests for thermact.data.clips: the time grid, nearest-frame mapping and pathway strides."""

from __future__ import annotations

import numpy as np
import pytest

from thermact.data.clips import (
    ClipConfig,
    clip_indices,
    clip_times,
    clip_window,
    nearest_indices,
    pathway_indices,
)
from thermact.data.source import load_dataset


def _brute_nearest(timestamps: np.ndarray, times: np.ndarray) -> np.ndarray:
    """argmin |timestamps - t|, the earliest index on ties."""
    dist = np.abs(timestamps[None, :].astype(np.int64) - times[:, None].astype(np.int64))
    out: np.ndarray = np.argmin(dist, axis=1)  # argmin returns the first minimum = earliest frame
    return out


def test_clip_config_validation_and_properties() -> None:
    with pytest.raises(ValueError, match="window_s"):
        ClipConfig(window_s=0.0)
    with pytest.raises(ValueError, match="num_frames"):
        ClipConfig(num_frames=0)
    cfg = ClipConfig(window_s=3.2, num_frames=16, keyframe_position="causal")
    assert cfg.position == 1.0
    assert cfg.step_ms == pytest.approx(200.0)
    assert ClipConfig().position == 0.5


def test_clip_times_causal_ends_at_keyframe() -> None:
    cfg = ClipConfig(window_s=3.2, num_frames=16, keyframe_position="causal")
    times = clip_times(1_000_000, cfg)
    assert times.dtype == np.int64
    assert times[-1] == 1_000_000
    np.testing.assert_array_equal(times, 1_000_000 + 200 * np.arange(-15, 1))


def test_clip_times_center_odd_has_keyframe_in_middle() -> None:
    cfg = ClipConfig(window_s=1.5, num_frames=5)
    times = clip_times(10_000, cfg)
    np.testing.assert_array_equal(times, [9400, 9700, 10000, 10300, 10600])


def test_clip_times_center_even_is_symmetric() -> None:
    cfg = ClipConfig(window_s=2.7, num_frames=16)
    kf = 1_760_482_260_170
    times = clip_times(kf, cfg)
    # symmetric about the keyframe (up to 1 ms of rounding on each side)
    assert np.all(np.abs(times + times[::-1] - 2 * kf) <= 1)
    assert np.all(np.abs(np.diff(times) - cfg.step_ms) <= 1.0)
    assert times[7] < kf < times[8]


def test_clip_window_covers_grid_with_half_step() -> None:
    cfg = ClipConfig(window_s=2.0, num_frames=8)  # step 250 ms
    start, end = clip_window(5000, cfg)
    times = clip_times(5000, cfg)
    assert start == times[0] - 125 and end == times[-1] + 125
    assert end - start == 2000


def test_nearest_indices_ties_and_edges() -> None:
    ts = np.array([100, 200, 300, 350], dtype=np.int64)
    times = np.array([0, 100, 149, 150, 151, 325, 349, 350, 10_000], dtype=np.int64)
    np.testing.assert_array_equal(nearest_indices(ts, times), [0, 0, 0, 0, 1, 2, 3, 3, 3])
    single = np.array([42], dtype=np.int64)
    np.testing.assert_array_equal(nearest_indices(single, np.array([0, 42, 99])), [0, 0, 0])


def test_nearest_indices_matches_brute_force_on_irregular_timestamps() -> None:
    rng = np.random.default_rng(0)
    gaps = rng.choice([1, 5, 40, 96, 164, 1300, 2600], size=300)
    ts = np.cumsum(gaps).astype(np.int64) + 10_000
    times = rng.integers(ts[0] - 3000, ts[-1] + 3000, size=2000).astype(np.int64)
    # include exact hits and exact midpoints (ties)
    times = np.concatenate([times, ts, (ts[:-1] + ts[1:]) // 2])
    got = nearest_indices(ts, times)
    np.testing.assert_array_equal(got, _brute_nearest(ts, times))
    assert got.min() >= 0 and got.max() <= len(ts) - 1


def test_clip_indices_on_real_recordings_match_brute_force() -> None:
    data = load_dataset(with_raw=False)
    cfg = ClipConfig(window_s=2.7, num_frames=16)
    for kf in data.keyframes[::7]:
        ts = data.recordings[kf.recording_id].timestamps
        got = clip_indices(ts, kf.timestamp_ms, cfg)
        np.testing.assert_array_equal(got, _brute_nearest(ts, clip_times(kf.timestamp_ms, cfg)))
        assert np.all(np.diff(got) >= 0)  # time order is kept


def test_pathway_indices() -> None:
    np.testing.assert_array_equal(pathway_indices(16, 4), [1, 5, 9, 13])
    np.testing.assert_array_equal(pathway_indices(16, 4, "causal"), [3, 7, 11, 15])  # keyframe included
    np.testing.assert_array_equal(pathway_indices(32, 8, "causal")[-1], 31)
    np.testing.assert_array_equal(pathway_indices(8, 2), [0, 2, 4, 6])
    np.testing.assert_array_equal(pathway_indices(16, 1), np.arange(16))
    np.testing.assert_array_equal(pathway_indices(9, 3), [1, 4, 7])


def test_clip_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="keyframe_position"):
        ClipConfig(keyframe_position="causl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        ClipConfig(window_s=float("nan"))
    with pytest.raises(ValueError, match="multiple"):
        pathway_indices(16, 3)
    with pytest.raises(ValueError):
        pathway_indices(16, 0)
