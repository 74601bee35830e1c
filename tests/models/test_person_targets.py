"""Target encoding: gaussian radius, heatmap values, size/offset at the centre cell."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from thermact.models.person_targets import draw_gaussian, encode_batch, encode_targets, gaussian_radius

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread


def test_gaussian_radius_hand_values() -> None:
    # case 3 of CornerNet dominates for person-sized boxes: a = 2.8, b = -15.4, c = -9 for 5 x 6 cells
    b3, a3, c3 = -2 * 0.7 * 11, 4 * 0.7, -0.3 * 30
    expected = (b3 + math.sqrt(b3 * b3 - 4 * a3 * c3)) / 2
    assert gaussian_radius(5, 6) == pytest.approx(expected)
    assert 1.0 < gaussian_radius(5, 6) < 2.0
    assert gaussian_radius(10, 12) > gaussian_radius(5, 6)  # grows with the box


def test_draw_gaussian_values_and_clipping() -> None:
    heat = np.zeros((5, 6), np.float32)
    draw_gaussian(heat, 0, 0, 1)  # corner: only the in-map quarter is drawn
    sigma = 3 / 6
    assert heat[0, 0] == 1.0
    assert heat[0, 1] == pytest.approx(math.exp(-1 / (2 * sigma**2)))
    assert heat[1, 1] == pytest.approx(math.exp(-2 / (2 * sigma**2)))
    assert heat[2, 0] == 0.0 and heat[0, 2] == 0.0
    draw_gaussian(heat, 1, 1, 1)  # max-combined, not summed
    assert heat[0, 0] == 1.0 and heat[1, 1] == 1.0 and heat.max() == 1.0
    assert heat[2, 2] == pytest.approx(math.exp(-2 / (2 * sigma**2)))  # from the second gaussian only


def test_encode_one_box_hand_checked() -> None:
    # box 10 x 8 px centred at (21, 13) → cell (10, 6) at stride 2, offset (0.5, 0.5)
    t = encode_targets(torch.tensor([[16.0, 9.0, 26.0, 17.0]]), torch.tensor([0]), 2, (20, 30), 2)
    assert t.heatmap.shape == (2, 20, 30) and t.size.shape == (2, 20, 30) and t.mask.shape == (20, 30)
    assert t.heatmap[0, 6, 10] == 1.0
    assert (t.heatmap[0] == 1.0).sum() == 1 and t.heatmap[1].abs().sum() == 0
    r = max(0, int(gaussian_radius(4, 5)))
    assert r == 1  # 5 x 4 cells
    assert t.heatmap[0, 6, 11] == pytest.approx(math.exp(-1 / (2 * (3 / 6) ** 2)))
    assert t.heatmap[0, 6, 12] == 0.0  # outside the radius
    assert t.mask.sum() == 1 and t.mask[6, 10] == 1
    assert t.size[:, 6, 10].tolist() == pytest.approx([math.log(10), math.log(8)])
    assert t.offset[:, 6, 10].tolist() == pytest.approx([0.5, 0.5])


def test_encode_two_classes_and_edge_box() -> None:
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [50.0, 30.0, 60.0, 40.0]])
    t = encode_targets(boxes, torch.tensor([1, 0]), 2, (20, 30), 2)
    assert t.heatmap[1, 1, 1] == 1.0 and t.heatmap[0, 17, 27] == 1.0
    assert t.offset[:, 17, 27].tolist() == pytest.approx([0.5, 0.5])
    # a centre on the last pixel border stays inside the map
    edge = encode_targets(torch.tensor([[58.0, 38.0, 60.0, 40.0]]), torch.tensor([0]), 1, (20, 30), 2)
    assert edge.heatmap[0, 19, 29] == 1.0


def test_encode_rejects_bad_labels_and_batches() -> None:
    with pytest.raises(ValueError, match="labels must be in 0..1"):
        encode_targets(torch.tensor([[0.0, 0.0, 4.0, 4.0]]), torch.tensor([2]), 2, (20, 30), 2)
    empty = encode_targets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 2, (20, 30), 2)
    assert empty.heatmap.abs().sum() == 0 and empty.mask.sum() == 0
    batch = encode_batch(
        [torch.tensor([[16.0, 9.0, 26.0, 17.0]]), torch.zeros(0, 4)],
        [torch.tensor([0]), torch.zeros(0, dtype=torch.int64)],
        2,
        (20, 30),
        2,
    )
    assert batch.heatmap.shape == (2, 2, 20, 30) and batch.mask.shape == (2, 20, 30)
    assert batch.mask[0].sum() == 1 and batch.mask[1].sum() == 0
