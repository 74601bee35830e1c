"""Tests for thermact.tracking.metrics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thermact.tracking.metrics import EvalFrame, IdMetrics, evaluate_ids

A = [10.0, 10.0, 20.0, 20.0]
B = [30.0, 10.0, 40.0, 20.0]
NEAR_A = [11.0, 10.0, 21.0, 20.0]  # IoU with A = 90 / 110 = 0.818
FAR = [45.0, 25.0, 55.0, 35.0]


def frame(t: int, gt: dict[int, list[float]], pred: dict[int, list[float]]) -> EvalFrame:
    return EvalFrame.build(t, list(gt.values()), list(gt), list(pred.values()), list(pred))


def test_perfect_tracking() -> None:
    frames = [frame(t, {0: A, 1: B}, {7: A, 9: B}) for t in range(5)]
    m = evaluate_ids(frames)
    assert (m.num_frames, m.num_gt, m.num_pred, m.matches, m.misses, m.false_positives) == (
        5,
        10,
        10,
        10,
        0,
        0,
    )
    assert (m.id_switches, m.fragmentations, m.idtp, m.idfp, m.idfn) == (0, 0, 10, 0, 0)
    assert (m.num_gt_ids, m.num_pred_ids) == (2, 2)
    assert m.idf1 == 1.0 and m.mota == 1.0 and m.motp_iou == 1.0


def test_swap_counts_two_switches() -> None:
    frames = [frame(t, {0: A, 1: B}, {1: A, 2: B}) for t in (0, 1)]
    frames += [frame(t, {0: A, 1: B}, {2: A, 1: B}) for t in (2, 3)]
    m = evaluate_ids(frames)
    assert (m.matches, m.id_switches, m.fragmentations) == (8, 2, 0)
    assert (m.idtp, m.idfp, m.idfn) == (4, 4, 4)  # A-1 and B-2 (or A-2, B-1): 2 frames each
    assert m.idf1 == 0.5
    assert m.mota == 0.75


def test_swap_and_back_counts_four_switches() -> None:
    normal, swapped = {1: A, 2: B}, {2: A, 1: B}
    frames = [frame(t, {0: A, 1: B}, p) for t, p in enumerate([normal, normal, swapped, normal])]
    m = evaluate_ids(frames)
    assert m.id_switches == 4
    assert m.idtp == 6 and m.idf1 == 0.75


def test_fragmentation_and_switch_after_a_gap() -> None:
    # matched, missed, matched (same id), missed at the end: one fragmentation, two misses
    frames = [frame(t, {0: A}, {5: A} if t in (0, 1, 3) else {}) for t in range(5)]
    m = evaluate_ids(frames)
    assert (m.matches, m.misses, m.id_switches, m.fragmentations) == (3, 2, 0, 1)
    # matched, missed, matched by another id: one switch (against the match before the gap) + one fragmentation
    frames = [frame(0, {0: A}, {5: A}), frame(1, {0: A}, {}), frame(2, {0: A}, {6: A})]
    m = evaluate_ids(frames)
    assert (m.id_switches, m.fragmentations, m.misses) == (1, 1, 1)
    # frames in which the identity is not annotated are no misses and no fragmentation
    frames = [frame(0, {0: A}, {5: A}), frame(1, {}, {}), frame(2, {0: A}, {5: A})]
    m = evaluate_ids(frames)
    assert (m.id_switches, m.fragmentations, m.misses, m.num_frames) == (0, 0, 0, 3)


def test_false_positives_and_iou_threshold() -> None:
    shifted = [15.0, 10.0, 25.0, 20.0]  # IoU with A = 50 / 150 = 1/3
    m = evaluate_ids([frame(0, {0: A}, {1: shifted, 2: FAR})])
    assert (m.matches, m.misses, m.false_positives) == (0, 1, 2)
    assert m.mota == -2.0
    assert math.isnan(m.motp_iou)
    m = evaluate_ids([frame(0, {0: A}, {1: shifted})], iou_threshold=0.3)
    assert (m.matches, m.misses, m.false_positives) == (1, 0, 0)
    assert m.motp_iou == pytest.approx(1 / 3)


def test_previous_correspondence_is_kept() -> None:
    # frame 1: track 2 fits A better, but track 1 (A's previous match) still has IoU >= 0.5
    frames = [frame(0, {0: A}, {1: NEAR_A}), frame(1, {0: A}, {1: NEAR_A, 2: A})]
    m = evaluate_ids(frames)
    assert (m.matches, m.false_positives, m.id_switches) == (2, 1, 0)


def test_idf1_uses_the_optimal_global_assignment() -> None:
    # A co-occurs with track 1 in 4 frames and with track 2 in 3, B with track 1 in 3.
    # Greedy (A-1 first) gets 4; the optimum A-2 + B-1 gets 6.
    frames = [frame(t, {0: A}, {1: A}) for t in range(4)]
    frames += [frame(t, {0: A}, {2: A}) for t in range(4, 7)]
    frames += [frame(t, {1: B}, {1: B}) for t in range(7, 10)]
    m = evaluate_ids(frames)
    assert (m.idtp, m.idfp, m.idfn) == (6, 4, 4)
    assert m.idf1 == pytest.approx(0.6)
    assert m.id_switches == 1  # A: 1 -> 2; B's first match is no switch


def test_frames_are_sorted_and_metrics_add_up() -> None:
    frames = [frame(0, {0: A}, {1: A}), frame(1, {0: A}, {2: A}), frame(2, {0: A}, {2: A})]
    m1 = evaluate_ids(frames)
    assert m1 == evaluate_ids(list(reversed(frames)))
    m2 = evaluate_ids([frame(0, {3: B}, {})])
    total = m1 + m2
    assert (total.num_frames, total.num_gt, total.matches, total.misses, total.id_switches) == (4, 4, 3, 1, 1)
    assert total.idf1 == pytest.approx(2 * 2 / (4 + 3))
    assert total.mota == pytest.approx(1 - 2 / 4)
    d = total.to_dict()
    assert d["idf1"] == total.idf1 and d["id_switches"] == 1


def test_empty_and_invalid_input() -> None:
    m = evaluate_ids([])
    assert m == IdMetrics()
    assert math.isnan(m.mota) and math.isnan(m.idf1)
    with pytest.raises(ValueError, match="repeated gt id"):
        EvalFrame.build(0, [A, B], [1, 1], np.zeros((0, 4)), [])
    with pytest.raises(ValueError, match="2 pred boxes but 1 pred ids"):
        EvalFrame.build(0, [A], [1], [A, B], [1])
    with pytest.raises(ValueError, match="iou_threshold"):
        evaluate_ids([], iou_threshold=0.0)
