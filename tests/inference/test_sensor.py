"""Per-sensor state: the ring buffer and the causal dead-pixel repair."""

from __future__ import annotations

import numpy as np
import pytest

from thermact.data.recording import INVALID_SENTINEL_C
from thermact.inference.sensor import FrameRing, buffer_capacity, repair_frame


def test_ring_buffer_is_bounded_and_gathers_nearest_with_edge_replication() -> None:
    ring = FrameRing(5, (2, 3))
    assert ring.last_timestamp is None
    for i in range(12):
        ring.append(100 * i, np.full((2, 3), float(i), np.float32))
    assert len(ring) == 5 and ring.capacity == 5 and ring.last_timestamp == 1100
    np.testing.assert_array_equal(ring.timestamps(), [700, 800, 900, 1000, 1100])
    got = ring.gather(np.array([0, 749, 750, 751, 1100, 5000], dtype=np.int64))
    # before the oldest buffered frame: edge replication; ties go to the earlier frame
    np.testing.assert_array_equal(got[:, 0, 0], [7, 7, 7, 8, 11, 11])
    assert ring.nbytes == 5 * 2 * 3 * 4 + 5 * 8


def test_repair_uses_the_recent_past_then_the_spatial_median() -> None:
    first = np.arange(12, dtype=np.float32).reshape(3, 4) + 20.0
    out, bad = repair_frame(first, None, None)
    assert out is not None and not bad.any()
    np.testing.assert_array_equal(out, first)
    frame = first + 1.0
    frame[0, 0] = INVALID_SENTINEL_C
    frame[1, 1] = np.nan
    last_valid = first.copy()
    age = np.zeros((3, 4), dtype=np.int64)
    age[1, 1] = 3  # seen 4 frames ago: too old for temporal_radius=3 -> spatial median
    out, bad = repair_frame(frame, last_valid, age, temporal_radius=3)
    assert out is not None
    assert bad.sum() == 2 and bad[0, 0] and bad[1, 1]
    assert out[0, 0] == first[0, 0]  # the same pixel one frame ago
    neighbours = frame[0:3, 0:3][~bad[0:3, 0:3]]
    assert out[1, 1] == pytest.approx(float(np.median(neighbours)))
    np.testing.assert_array_equal(out[~bad], frame[~bad])
    dead, bad = repair_frame(np.full((3, 4), INVALID_SENTINEL_C, np.float32), last_valid, age)
    assert dead is None and bad.all()


def test_default_buffer_covers_the_longest_clip() -> None:
    assert buffer_capacity(2.7, 12.0) == int(np.ceil(3.7 * 12)) + 1
