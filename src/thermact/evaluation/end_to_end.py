"""Evaluating the person detector, alone and as the first stage of the action pipeline.

* :func:`detect_keyframes`: run a person detector (:class:`~thermact.inference.runners.DetectorLike`,
  the runner live inference uses) on the causal clip of each keyframe → keyframe id →
  :class:`~thermact.models.postprocess.Detections`.
* :func:`end_to_end_frame_map`: the two-stage pipeline of AVA-style detectors: the detector's
  person boxes replace the ground-truth boxes as the action model's RoIs, and every (box, class)
  becomes one detection scored ``detector score × class probability``; frame-mAP@0.5 against the
  ground-truth persons and their action classes. Where that number is lost is split out by
  :class:`MatchedBoxes`: the detections that found an annotated person (IoU ≥ 0.5), their top-1
  accuracy, and the frame-mAP without the detections that found no one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from thermact.data.annotations import Box, Keyframe
from thermact.data.dataset import ClipDataset, collate_clips
from thermact.data.detection import DetectionClipDataset, collate_detection
from thermact.data.source import ThermalData
from thermact.evaluation.evaluate import Predictions, predict
from thermact.evaluation.frame_map import (
    Detection,
    FrameMAP,
    GroundTruth,
    frame_map,
    greedy_match,
    iou_matrix,
)
from thermact.inference.runners import DetectorLike
from thermact.models.postprocess import Detections, person_boxes
from thermact.models.tta import TTA, with_tta
from thermact.tasks.action import TrainedActionModel

__all__ = ["EndToEnd", "MatchedBoxes", "detect_keyframes", "end_to_end_frame_map"]


def detect_keyframes(
    detector: DetectorLike,
    data: ThermalData,
    keyframes: Sequence[Keyframe],
    score_threshold: float = 0.01,
    batch_size: int = 32,
) -> dict[str, Detections]:
    """Keyframe id → detections (all classes) on the detector's causal clip ending at the keyframe."""
    dataset = DetectionClipDataset(data.recordings, keyframes, detector.clip)  # raw °C
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_detection)
    out: dict[str, Detections] = {}
    for batch in loader:
        clips = batch.frames[:, 0].numpy()
        for key, dets in zip(batch.keyframe_ids, detector.detect(clips, score_threshold), strict=True):
            out[key] = dets
    return out


@dataclasses.dataclass(frozen=True)
class MatchedBoxes:
    """The action model on the detections that found an annotated person.

    Splits the end-to-end loss in two: the detector's (persons not found, boxes on no one) and the
    action model's on a found person's detected outline, which differs from the annotated one.
    """

    num_persons: int
    """Annotated persons with an action label."""
    found: int
    """Of them, matched by a detection (IoU ≥ 0.5, one per person, highest score first:
    :func:`~thermact.evaluation.frame_map.greedy_match`)."""
    accuracy: float | None
    """Top-1 accuracy on the matched detections (None: none matched)."""
    frame_map: float | None
    """Frame-mAP@0.5 of the matched detections alone: every detection that found no one dropped."""

    def summary(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class EndToEnd:
    """The action model on detector boxes."""

    frame_map: FrameMAP
    predictions: Predictions
    """Per detected person box: class probabilities (``track_ids`` = index into the keyframe's person detections)."""
    num_person_detections: int
    matched: MatchedBoxes

    def summary(self) -> dict[str, Any]:
        return {
            "frame_map": self.frame_map.map,
            "num_person_detections": self.num_person_detections,
            "per_class_ap": [c.ap for c in self.frame_map.per_class],
            "matched_boxes": self.matched.summary(),
        }


def _matched_boxes(
    preds: Predictions,
    det_scores: np.ndarray,
    keyframes: Sequence[Keyframe],
    gt: Sequence[GroundTruth],
    num_classes: int,
) -> MatchedBoxes:
    """:class:`MatchedBoxes` of the rows of ``preds`` (detections with scores ``det_scores``;
    ``gt``: the labelled persons of ``keyframes``, as frame-mAP takes them)."""
    rows: dict[str, list[int]] = {}
    for r, key in enumerate(preds.keyframe_ids):
        rows.setdefault(key, []).append(r)
    labels = np.full(len(preds), -1, dtype=np.int64)
    num_persons = 0
    for kf in keyframes:
        persons = [b for b in kf.persons if b.label is not None]
        num_persons += len(persons)
        idx = rows.get(kf.keyframe_id, [])
        xyxy = np.array([b.xyxy for b in persons], dtype=np.float64).reshape(-1, 4)
        matches = greedy_match(iou_matrix(preds.boxes[idx], xyxy), det_scores[idx], 0.5)
        for r, m in zip(idx, matches, strict=True):
            if m is not None:
                labels[r] = int(persons[m].label)  # type: ignore[arg-type]
    found = np.flatnonzero(labels >= 0)
    if not len(found):
        return MatchedBoxes(num_persons, 0, None, None)
    accuracy = float(np.mean(preds.scores[found].argmax(axis=1) == labels[found]))
    fmap = frame_map(_scored_detections(preds, det_scores, found), gt, num_classes)
    return MatchedBoxes(num_persons, len(found), accuracy, fmap.map)


def _scored_detections(
    preds: Predictions, det_scores: np.ndarray, rows: Sequence[int] | np.ndarray
) -> list[Detection]:
    """One detection per (row, class), scored detector score × class probability."""
    dets: list[Detection] = []
    for r in rows:
        box = (
            float(preds.boxes[r, 0]),
            float(preds.boxes[r, 1]),
            float(preds.boxes[r, 2]),
            float(preds.boxes[r, 3]),
        )
        key = preds.keyframe_ids[r]
        dets.extend(
            Detection(key, box, c, float(det_scores[r] * preds.scores[r, c]))
            for c in range(preds.scores.shape[1])
        )
    return dets


def _ground_truth(keyframes: Sequence[Keyframe]) -> list[GroundTruth]:
    return [
        GroundTruth(kf.keyframe_id, b.xyxy, int(b.label))
        for kf in keyframes
        for b in kf.persons
        if b.label is not None
    ]


def end_to_end_frame_map(
    action: TrainedActionModel,
    person_dets: Mapping[str, Detections],
    data: ThermalData,
    keyframes: Sequence[Keyframe],
    device: torch.device,
    batch_size: int = 16,
    tta: TTA = "none",
) -> EndToEnd:
    """Frame-mAP@0.5 of the action model fed with detector boxes (see the module docstring).

    ``person_dets`` holds each keyframe's detections (persons are taken from them); the action
    model samples its own clip (its config's window and keyframe position) and normalisation;
    ``tta``: see :mod:`thermact.models.tta`.
    """
    detected: list[Keyframe] = []
    person_scores: dict[str, torch.Tensor] = {}
    for kf in keyframes:
        d = person_boxes(person_dets.get(kf.keyframe_id, Detections.empty()))
        person_scores[kf.keyframe_id] = d.scores
        boxes = tuple(
            Box((b[0], b[1], b[2], b[3]), "person", 0, "detected", i) for i, b in enumerate(d.boxes.tolist())
        )
        detected.append(dataclasses.replace(kf, persons=boxes))
    dataset = ClipDataset.from_data(data, detected, action.clip, norm=action.norm)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_clips)
    mode = action.config.model.head.mode
    preds = predict(with_tta(action.model, tta, mode), loader, device, mode=mode)
    det_scores = np.array(
        [
            float(person_scores[key][int(t)])
            for key, t in zip(preds.keyframe_ids, preds.track_ids, strict=True)
        ],
        dtype=np.float64,
    )
    num_classes, gt = len(action.classes), _ground_truth(keyframes)
    fmap = frame_map(_scored_detections(preds, det_scores, range(len(preds))), gt, num_classes)
    matched = _matched_boxes(preds, det_scores, keyframes, gt, num_classes)
    return EndToEnd(fmap, preds, len(preds), matched)
