"""Person AP, recall/precision and hot-object false positives on hand-made detections."""

from __future__ import annotations

import pytest
import torch

from thermact.data.annotations import Box, Keyframe
from thermact.evaluation.detection import detection_metrics, person_ap
from thermact.models.postprocess import Detections

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread


def _kf(key: str, persons: list[tuple[float, ...]], others: list[tuple[float, ...]]) -> Keyframe:
    return Keyframe(
        key,
        "R",
        0,
        None,
        tuple(Box((p[0], p[1], p[2], p[3]), "person", 3, "x", i) for i, p in enumerate(persons)),
        tuple(
            Box((o[0], o[1], o[2], o[3]), "object", None, "water kettle", 10 + i)
            for i, o in enumerate(others)
        ),
    )


def _dets(rows: list[tuple[float, float, float, float, float, int]]) -> Detections:
    t = torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)
    return Detections(t[:, :4], t[:, 4], t[:, 5].long())


def test_metrics_hand_values() -> None:
    kfs = [
        _kf("a", [(0, 0, 10, 10)], [(40, 20, 50, 30)]),
        _kf("b", [(20, 20, 30, 30), (0, 0, 10, 10)], []),
    ]
    dets = {
        # TP 0.9; FP on the kettle 0.8; a non-person label never counts as a person
        "a": _dets([(0, 0, 10, 10, 0.9, 0), (40, 20, 50, 30, 0.8, 0), (40, 20, 50, 30, 0.99, 1)]),
        # TP 0.7, missed second person, a low-score TP 0.1
        "b": _dets([(20, 20, 30, 31, 0.7, 0), (0, 0, 10, 10, 0.1, 0)]),
    }
    m = detection_metrics(dets, kfs, score_threshold=0.3)
    # ranked: 0.9 TP, 0.8 FP, 0.7 TP, 0.1 TP; interpolated precision 1, 3/4, 3/4 at recall 1/3, 2/3, 1
    assert m.person_ap == pytest.approx((1 + 3 / 4 + 3 / 4) / 3)
    assert m.recall == pytest.approx(2 / 3) and m.precision == pytest.approx(2 / 3)
    assert m.hot_object_fp == 1 and m.hot_object_fp_rate == pytest.approx(1.0)
    assert (m.num_keyframes, m.num_persons, m.num_others) == (2, 3, 1)
    assert person_ap(dets, kfs).map == pytest.approx(m.person_ap)
    assert m.summary()["person_ap"] == m.person_ap and "curve" in m.to_dict()


def test_detection_on_a_person_next_to_the_kettle_is_not_a_hot_object_fp() -> None:
    kfs = [_kf("a", [(10, 10, 20, 20)], [(12, 10, 22, 20)])]  # IoU person/kettle = 8/12
    m = detection_metrics({"a": _dets([(10, 10, 20, 20, 0.9, 0)])}, kfs)
    assert m.hot_object_fp == 0 and m.person_ap == pytest.approx(1.0)
    none = detection_metrics({}, kfs)
    assert none.person_ap == 0.0 and none.recall == 0.0 and none.precision is None
