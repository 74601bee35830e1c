"""Tests for thermact.ops.nms (box_area, box_iou, nms, batched_nms, sorted_nms_mask) on hand-computed cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from thermact.ops.nms import batched_nms, box_area, box_iou, nms, sorted_nms_mask


def _greedy_reference(boxes: torch.Tensor, scores: torch.Tensor, thr: float) -> list[int]:
    """Textbook greedy NMS with Python floats (stable order for equal scores)."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    keep: list[int] = []
    for i in order:
        ok = True
        for j in keep:
            a, b = boxes[i].tolist(), boxes[j].tolist()
            w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = w * h
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            if union > 0 and inter / union > thr:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def test_box_area() -> None:
    boxes = torch.tensor([[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 1.0, 5.0], [-1.0, 2.0, 3.5, 2.5]])
    assert torch.equal(box_area(boxes), torch.tensor([6.0, 0.0, 2.25]))
    assert box_area(torch.zeros(2, 3, 4)).shape == (2, 3)


def test_box_iou_known_values() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    b = torch.tensor(
        [
            [1.0, 1.0, 3.0, 3.0],  # overlap 1, union 7 with a[0]
            [0.0, 0.0, 2.0, 2.0],  # identical to a[0]
            [5.0, 5.0, 6.0, 6.0],  # disjoint
            [2.0, 0.0, 4.0, 2.0],  # touching edge: zero intersection
            [0.0, 0.0, 2.0, 1.0],  # half of a[0]
        ],
        dtype=torch.float64,
    )
    iou = box_iou(a, b)
    expected = torch.tensor(
        [[1 / 7, 1.0, 0.0, 0.0, 0.5], [0.0, 0.25, 0.0, 0.0, 0.5]],
        dtype=torch.float64,
    )
    assert iou.shape == (2, 5)
    assert torch.allclose(iou, expected, atol=1e-15, rtol=0)
    assert box_iou(a, b[:0]).shape == (2, 0)
    with pytest.raises(ValueError, match=r"\[K, 4\]"):
        box_iou(a[:, :3], b)


def test_nms_identical_boxes_keep_highest() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    scores = torch.tensor([0.2, 0.9, 0.5])
    keep = nms(boxes, scores, 0.5)
    assert keep.dtype == torch.int64
    assert keep.tolist() == [1]
    # IoU is 1.0, which is not > 1.0: nothing is suppressed at threshold 1.
    assert nms(boxes, scores, 1.0).tolist() == [1, 2, 0]


def test_nms_disjoint_boxes_all_kept_sorted_by_score() -> None:
    boxes = torch.tensor([[0.0, 0, 1, 1], [2.0, 2, 3, 3], [4.0, 4, 5, 5], [1.0, 0, 2, 1]])
    scores = torch.tensor([0.1, 0.7, 0.3, 0.5])
    assert nms(boxes, scores, 0.0).tolist() == [1, 3, 2, 0]


def test_nms_threshold_is_strict() -> None:
    # IoU of the two boxes is exactly 1/7 (representable comparison done in float64).
    boxes = torch.tensor([[0.0, 0, 2, 2], [1.0, 1, 3, 3]], dtype=torch.float64)
    scores = torch.tensor([0.4, 0.6], dtype=torch.float64)
    assert nms(boxes, scores, 1 / 7).tolist() == [1, 0]
    assert nms(boxes, scores, 0.14).tolist() == [1]
    # Half-overlap: IoU 0.5 is kept at threshold 0.5, suppressed at 0.49.
    half = torch.tensor([[0.0, 0, 2, 2], [0.0, 0, 2, 1]])
    assert nms(half, torch.tensor([1.0, 0.5]), 0.5).tolist() == [0, 1]
    assert nms(half, torch.tensor([1.0, 0.5]), 0.49).tolist() == [0]


def test_nms_chain_is_greedy_not_transitive() -> None:
    # A overlaps B, B overlaps C, A and C disjoint: B is suppressed by A, so C survives.
    boxes = torch.tensor([[0.0, 0, 4, 4], [2.0, 0, 6, 4], [4.0, 0, 8, 4]])
    scores = torch.tensor([0.9, 0.8, 0.7])  # IoU(A,B) = IoU(B,C) = 8/24 = 1/3
    assert nms(boxes, scores, 0.3).tolist() == [0, 2]
    # If B is best it suppresses both A and C.
    assert nms(boxes, torch.tensor([0.8, 0.9, 0.7]), 0.3).tolist() == [1]


def test_nms_ties_keep_original_order() -> None:
    boxes = torch.tensor([[0.0, 0, 1, 1], [5.0, 5, 6, 6], [0.0, 0, 1, 1], [10.0, 0, 11, 1]])
    scores = torch.tensor([0.5, 0.5, 0.5, 0.5])
    assert nms(boxes, scores, 0.5).tolist() == [0, 1, 3]


def test_nms_empty_and_zero_area() -> None:
    keep = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert keep.dtype == torch.int64 and keep.shape == (0,)
    # Two identical zero-area boxes: IoU is 0/0 = nan, never > threshold, both kept (torchvision).
    deg = torch.tensor([[1.0, 1, 1, 1], [1.0, 1, 1, 1]])
    assert nms(deg, torch.tensor([0.3, 0.6]), 0.5).tolist() == [1, 0]
    assert torch.isnan(box_iou(deg, deg)).all()


def test_nms_matches_reference_on_random_boxes() -> None:
    gen = torch.Generator().manual_seed(0)
    for thr, dtype in itertools.product((0.1, 0.3, 0.5, 0.7), (torch.float32, torch.float64)):
        xy = torch.rand(60, 2, generator=gen) * 50
        wh = torch.rand(60, 2, generator=gen) * 20 + 1
        boxes = torch.cat([xy, xy + wh], dim=1).to(dtype)
        scores = torch.rand(60, generator=gen).to(dtype)
        keep = nms(boxes, scores, thr).tolist()
        assert keep == _greedy_reference(boxes.double(), scores.double(), thr)
        # Every pair of kept boxes is below the threshold; every dropped box overlaps a better kept one.
        iou = box_iou(boxes.double(), boxes.double())
        kept = torch.tensor(keep)
        sub = iou[kept][:, kept] - torch.eye(len(keep), dtype=torch.float64) * 2
        assert (sub <= thr).all()
        for i in set(range(60)) - set(keep):
            assert any(iou[i, j] > thr and scores[j] >= scores[i] for j in keep)


def test_nms_input_validation() -> None:
    with pytest.raises(ValueError, match="scores"):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(ValueError, match=r"\[K, 4\]"):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="idxs"):
        batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2, dtype=torch.int64), 0.5)


def test_batched_nms_categories_do_not_interact() -> None:
    boxes = torch.tensor(
        [[0.0, 0, 10, 10], [0.0, 0, 10, 10], [1.0, 1, 10, 10], [0.0, 0, 10, 10], [50.0, 50, 60, 60]]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95, 0.1])
    idxs = torch.tensor([0, 1, 0, 1, 0])
    keep = batched_nms(boxes, scores, idxs, 0.5)
    # Category 0: 0 suppresses 2 (IoU 0.81), 4 kept. Category 1: 3 suppresses 1.
    assert keep.tolist() == [3, 0, 4]
    # Equivalent to running nms per category and merging by score.
    merged: list[int] = []
    for c in (0, 1):
        sel = torch.nonzero(idxs == c).flatten()
        merged.extend(sel[nms(boxes[sel], scores[sel], 0.5)].tolist())
    assert sorted(merged, key=lambda i: -float(scores[i])) == keep.tolist()
    # With one category it is plain nms.
    assert torch.equal(
        batched_nms(boxes, scores, torch.zeros(5, dtype=torch.int64), 0.5), nms(boxes, scores, 0.5)
    )
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5).shape == (
        0,
    )


def test_sorted_nms_mask_keeps_what_batched_nms_keeps_per_image() -> None:
    gen = torch.Generator().manual_seed(1)
    for thr in (0.1, 0.3, 0.5, 0.7):
        xy = torch.rand(7, 20, 2, generator=gen) * 30
        wh = torch.rand(7, 20, 2, generator=gen) * 15 + 1
        boxes = torch.cat([xy, xy + wh], dim=2)
        # sorted by decreasing score, with ties (equal scores: the earlier one wins)
        scores = (torch.rand(7, 20, generator=gen) * 4).round().sort(dim=1, descending=True).values
        labels = torch.randint(0, 2, (7, 20), generator=gen)
        candidates = torch.rand(7, 20, generator=gen) < 0.8
        keep = sorted_nms_mask(boxes, labels, candidates, thr)
        for b in range(7):
            idx = torch.nonzero(candidates[b]).flatten()
            kept = idx[batched_nms(boxes[b, idx], scores[b, idx], labels[b, idx], thr)].sort().values
            assert np.flatnonzero(keep[b]).tolist() == kept.tolist()
    # a box that is not a candidate suppresses nothing; same-category duplicates keep the first
    boxes = torch.tensor([[[0.0, 0, 10, 10], [0.0, 0, 10, 10], [0.0, 0, 10, 10], [0.0, 0, 10, 10]]])
    mask = sorted_nms_mask(
        boxes, torch.tensor([[0, 0, 0, 1]]), torch.tensor([[False, True, True, True]]), 0.5
    )
    assert mask.tolist() == [[False, True, False, True]]
    with pytest.raises(ValueError, match=r"\[B, n, 4\]"):
        sorted_nms_mask(torch.zeros(3, 4), torch.zeros(3), torch.ones(3, dtype=torch.bool), 0.5)
