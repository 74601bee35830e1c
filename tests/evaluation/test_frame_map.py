from __future__ import annotations

import numpy as np
import pytest

from thermact.evaluation.frame_map import (
    Detection,
    GroundTruth,
    average_precision,
    frame_map,
    greedy_match,
    iou_matrix,
)

A = (0.0, 0.0, 10.0, 10.0)
B = (20.0, 20.0, 30.0, 30.0)
A_SHIFTED = (5.0, 0.0, 15.0, 10.0)  # IoU with A = 50 / 150 = 1/3


def test_iou_hand_values() -> None:
    assert iou_matrix([A], [A_SHIFTED])[0, 0] == pytest.approx(1 / 3)
    assert iou_matrix([A], [B])[0, 0] == 0.0
    assert iou_matrix([A], [A])[0, 0] == 1.0


def test_perfect_detections_give_map_one() -> None:
    gt = [GroundTruth("k1", A, 0), GroundTruth("k1", B, 1), GroundTruth("k2", A, 1)]
    dets = [Detection(g.key, g.box, g.label, 0.9) for g in gt]
    result = frame_map(dets, gt, num_classes=3)
    assert result.map == 1.0
    assert [c.ap for c in result.per_class] == [1.0, 1.0, None]  # class 2 has no GT: N/A


def test_all_wrong_class_gives_zero() -> None:
    gt = [GroundTruth("k1", A, 0)]
    dets = [Detection("k1", A, 1, 0.9)]
    result = frame_map(dets, gt, num_classes=2)
    assert result.per_class[0].ap == 0.0 and result.per_class[1].ap is None
    assert result.map == 0.0


def test_duplicate_detection_is_a_false_positive() -> None:
    gt = [GroundTruth("k1", A, 0)]
    dets = [Detection("k1", A, 0, 0.9), Detection("k1", A, 0, 0.8)]
    res = frame_map(dets, gt, 1)
    assert res.per_class[0].ap == 1.0  # the FP comes after full recall
    assert res.per_class[0].precision == [1.0, 0.5]
    dets = [Detection("k1", A_SHIFTED, 0, 0.95), Detection("k1", A, 0, 0.8)]
    # a low-IoU detection ranked first: precision 0 then 1/2 at recall 1 → AP 0.5
    assert frame_map(dets, gt, 1).per_class[0].ap == pytest.approx(0.5)


def test_detections_on_keyframes_without_gt_are_false_positives() -> None:
    gt = [GroundTruth("k1", A, 0)]
    dets = [Detection("empty", A, 0, 0.9), Detection("k1", A, 0, 0.5)]
    assert frame_map(dets, gt, 1).map == pytest.approx(0.5)


def test_partial_recall_and_missing_class() -> None:
    gt = [GroundTruth("k1", A, 0), GroundTruth("k2", B, 0), GroundTruth("k1", B, 1)]
    dets = [Detection("k1", A, 0, 0.7)]
    res = frame_map(dets, gt, 2)
    assert res.per_class[0].ap == pytest.approx(0.5)
    assert res.per_class[1].ap == 0.0  # GT but no detection
    assert res.map == pytest.approx(0.25)


def test_greedy_matching_uses_unmatched_gt() -> None:
    # two overlapping people of the same class; both detections overlap the first best
    p1 = (0.0, 0.0, 10.0, 10.0)
    p2 = (4.0, 0.0, 14.0, 10.0)  # IoU(p1, p2) = 60/140
    gt = [GroundTruth("k", p1, 0), GroundTruth("k", p2, 0)]
    dets = [Detection("k", (1.0, 0.0, 11.0, 10.0), 0, 0.9), Detection("k", (3.0, 0.0, 13.0, 10.0), 0, 0.8)]
    assert frame_map(dets, gt, 1).map == 1.0


def test_no_gt_anywhere() -> None:
    assert frame_map([Detection("k", A, 0, 1.0)], [], 2).map is None


def test_average_precision_all_point_interpolation() -> None:
    # TP, FP, TP with 3 GT: recall .33,.33,.67; precision 1,.5,.67 → AP = 1/3*1 + 1/3*2/3
    ap, _, _ = average_precision([1, 0, 1], 3)
    assert ap == pytest.approx(1 / 3 + 2 / 9)


def test_greedy_match_is_by_score_and_one_to_one() -> None:
    """One keyframe's matching, as frame-mAP and the end-to-end split (found persons) use it."""
    persons = np.array([[10.0, 10.0, 20.0, 30.0], [40.0, 5.0, 50.0, 15.0]])
    boxes = np.array(
        [
            [11.0, 10.0, 21.0, 30.0],  # person 0, IoU 0.82, lower score
            [10.0, 11.0, 20.0, 31.0],  # person 0, IoU 0.90, higher score: takes it
            [40.0, 5.0, 44.0, 15.0],  # person 1, IoU 0.4: no match
            [0.0, 0.0, 3.0, 3.0],  # no one
        ]
    )
    ious = iou_matrix(boxes, persons)
    assert greedy_match(ious, [0.6, 0.9, 0.8, 0.99], 0.5) == [None, 0, None, None]
    assert greedy_match(ious, [0.95, 0.9, 0.8, 0.99], 0.5) == [0, None, None, None]
    assert greedy_match(ious, np.ones(4), 0.3) == [0, None, 1, None]  # ties: row order
    assert greedy_match(iou_matrix(boxes, np.zeros((0, 4))), np.ones(4), 0.5) == [None] * 4
