"""Person-detection metrics on annotated keyframes.

* **person AP@0.5** (class-agnostic: every person box is one class, whatever its action):
  :func:`thermact.evaluation.frame_map.frame_map` with a single class over the person detections;
* **recall / precision at a score threshold**: person detections with score ``>= threshold``
  matched greedily by score to GT persons at IoU ``>= 0.5`` (the frame-mAP matching);
* **hot-object false positives**: person detections (score ``>= threshold``) with IoU ``>= 0.5``
  to a non-person box (hot object or furniture) and ``< 0.5`` to every person of the keyframe.
  ``hot_object_fp`` counts them; ``hot_object_fp_rate`` is the fraction of non-person boxes that
  have at least one (i.e. "how often is a kettle or a warm bed taken for a person").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from thermact.data.annotations import Keyframe, boxes_array
from thermact.evaluation.frame_map import (
    Detection,
    FrameMAP,
    GroundTruth,
    frame_map,
    iou_matrix,
    match_detections,
)
from thermact.models.postprocess import PERSON, Detections

__all__ = ["DetectionMetrics", "detection_metrics", "person_ap"]


@dataclasses.dataclass(frozen=True)
class DetectionMetrics:
    """Headline person-detection numbers (see the module docstring)."""

    person_ap: float | None
    recall: float | None
    precision: float | None
    hot_object_fp: int
    hot_object_fp_rate: float | None
    score_threshold: float
    num_keyframes: int
    num_persons: int
    num_others: int
    curve: FrameMAP

    def summary(self) -> dict[str, float | None]:
        """The numbers for logs and best-checkpoint selection (``person_ap`` picks the best)."""
        return {
            "person_ap": self.person_ap,
            "recall": self.recall,
            "precision": self.precision,
            "hot_object_fp_rate": self.hot_object_fp_rate,
        }

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "curve"}
        out["curve"] = {
            "precision": self.curve.per_class[0].precision,
            "recall": self.curve.per_class[0].recall,
        }
        return out


def _person_detections(dets: Mapping[str, Detections]) -> list[Detection]:
    out: list[Detection] = []
    for key, d in dets.items():
        person = d.labels == PERSON
        for box, score in zip(d.boxes[person].tolist(), d.scores[person].tolist(), strict=True):
            out.append(Detection(key, (box[0], box[1], box[2], box[3]), 0, float(score)))
    return out


def _person_gt(keyframes: Sequence[Keyframe]) -> list[GroundTruth]:
    return [GroundTruth(k.keyframe_id, b.xyxy, 0) for k in keyframes for b in k.persons]


def person_ap(dets: Mapping[str, Detections], keyframes: Sequence[Keyframe], iou: float = 0.5) -> FrameMAP:
    """Class-agnostic person AP@``iou`` of ``dets`` (keyframe id → detections) on ``keyframes``."""
    return frame_map(_person_detections(dets), _person_gt(keyframes), 1, iou)


def detection_metrics(
    dets: Mapping[str, Detections],
    keyframes: Sequence[Keyframe],
    score_threshold: float = 0.3,
    iou: float = 0.5,
) -> DetectionMetrics:
    """All metrics of the module docstring; keyframes without an entry in ``dets`` have no detection."""
    curve = person_ap(dets, keyframes, iou)
    gt = _person_gt(keyframes)
    confident = [d for d in _person_detections(dets) if d.score >= score_threshold]
    tp, num_gt = match_detections(confident, gt, 0, iou)
    hits = float(tp.sum())
    fp_count = 0
    others_hit = 0
    num_others = 0
    for kf in keyframes:
        others = boxes_array(kf.others)
        num_others += len(others)
        d = dets.get(kf.keyframe_id)
        if d is None or len(others) == 0:
            continue
        keep = (d.labels == PERSON) & (d.scores >= score_threshold)
        boxes = d.boxes[keep].detach().cpu().numpy().reshape(-1, 4)
        if len(boxes) == 0:
            continue
        to_person = iou_matrix(boxes, boxes_array(kf.persons)).max(axis=1, initial=0.0)
        to_other = iou_matrix(boxes, others)
        false = (to_other.max(axis=1) >= iou) & (to_person < iou)
        fp_count += int(false.sum())
        others_hit += int(np.any(to_other[false] >= iou, axis=0).sum())
    return DetectionMetrics(
        person_ap=curve.per_class[0].ap,
        recall=hits / num_gt if num_gt else None,
        precision=hits / len(confident) if confident else None,
        hot_object_fp=fp_count,
        hot_object_fp_rate=others_hit / num_others if num_others else None,
        score_threshold=score_threshold,
        num_keyframes=len(keyframes),
        num_persons=num_gt,
        num_others=num_others,
        curve=curve,
    )
