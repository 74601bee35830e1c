"""Tests for the NumPy box conversions in thermact.ops.boxes."""

from __future__ import annotations

import numpy as np
import pytest

from thermact.ops.boxes import box_area_np, normalized_to_xyxy, xyxy_to_normalized, xyxy_to_yolo, yolo_to_xyxy

W, H = 60.0, 40.0


def _random_xyxy(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(-5, W, n)
    y1 = rng.uniform(-5, H, n)
    return np.stack([x1, y1, x1 + rng.uniform(0, 30, n), y1 + rng.uniform(0, 20, n)], axis=-1)


def test_yolo_to_xyxy_hand_computed() -> None:
    got = yolo_to_xyxy([[0.5, 0.5, 0.2, 0.25], [0.1, 0.9, 0.1, 0.1]], W, H)
    expected = np.array([[24.0, 15.0, 36.0, 25.0], [3.0, 34.0, 9.0, 38.0]])
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_xyxy_to_yolo_hand_computed() -> None:
    got = xyxy_to_yolo([0.0, 0.0, 60.0, 40.0], W, H)
    np.testing.assert_allclose(got, [0.5, 0.5, 1.0, 1.0], rtol=0, atol=1e-15)
    got = xyxy_to_yolo([[12.0, 8.0, 18.0, 16.0]], W, H)
    np.testing.assert_allclose(got, [[0.25, 0.3, 0.1, 0.2]], rtol=0, atol=1e-15)


def test_yolo_xyxy_round_trip_exact() -> None:
    boxes = _random_xyxy(1000, 0)
    back = yolo_to_xyxy(xyxy_to_yolo(boxes, W, H), W, H)
    assert np.abs(back - boxes).max() < 1e-9
    yolo = np.random.default_rng(1).uniform(0, 1, (500, 4))
    again = xyxy_to_yolo(yolo_to_xyxy(yolo, W, H), W, H)
    assert np.abs(again - yolo).max() < 1e-9


def test_normalized_round_trip_and_values() -> None:
    boxes = _random_xyxy(1000, 2).reshape(10, 100, 4)  # arbitrary leading dims
    norm = xyxy_to_normalized(boxes, W, H)
    assert norm.shape == boxes.shape
    np.testing.assert_allclose(norm[..., 0], boxes[..., 0] / W, rtol=0, atol=1e-15)
    np.testing.assert_allclose(norm[..., 3], boxes[..., 3] / H, rtol=0, atol=1e-15)
    assert np.abs(normalized_to_xyxy(norm, W, H) - boxes).max() < 1e-9
    np.testing.assert_allclose(normalized_to_xyxy([0.5, 0.25, 1.0, 1.0], W, H), [30.0, 10.0, 60.0, 40.0])


def test_yolo_via_normalized_is_consistent() -> None:
    # YOLO → pixel XYXY → normalised XYXY equals the direct normalised corners cx ± w/2.
    yolo = np.array([[0.4, 0.6, 0.2, 0.3]])
    norm = xyxy_to_normalized(yolo_to_xyxy(yolo, W, H), W, H)
    np.testing.assert_allclose(norm, [[0.3, 0.45, 0.5, 0.75]], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("box", "area"),
    [
        ([0.0, 0.0, 2.0, 3.0], 6.0),
        ([1.0, 1.0, 1.0, 5.0], 0.0),
        ([3.0, 0.0, 1.0, 2.0], 0.0),
        ([-1.0, -1.0, 1.5, 0.0], 2.5),
    ],
)
def test_box_area_np(box: list[float], area: float) -> None:
    assert box_area_np(box) == pytest.approx(area, abs=1e-15)
    assert box_area_np(np.array([box, box])).tolist() == [area, area]
