"""Evaluating the person detector, alone and as the first stage of the action pipeline.

* :func:`detect_keyframes`: run a person detector (:class:`~thermact.inference.runners.DetectorLike`,
  the runner live inference uses) on the causal clip of each keyframe → keyframe id →
  :class:`~thermact.models.postprocess.Detections`.
* :func:`end_to_end_frame_map`: the two-stage pipeline of AVA-style detectors: the detector's
  person boxes replace the ground-truth boxes as the action model's RoIs, and every (box, class)
  becomes one detection scored ``detector score × class probability``; frame-mAP@0.5 against the
  ground-truth persons and their action classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from thermact.data.annotations import Box, Keyframe
from thermact.data.dataset import ClipDataset, collate_clips
from thermact.data.detection import DetectionClipDataset, collate_detection
from thermact.data.source import ThermalData
from thermact.evaluation.evaluate import Predictions, predict
from thermact.evaluation.frame_map import Detection, FrameMAP, GroundTruth, frame_map
from thermact.inference.runners import DetectorLike
from thermact.models.postprocess import Detections, person_boxes
from thermact.models.tta import TTA, with_tta
from thermact.tasks.action import TrainedActionModel

__all__ = ["EndToEnd", "detect_keyframes", "end_to_end_frame_map"]


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


@dataclasses.dataclass
class EndToEnd:
    """The action model on detector boxes."""

    frame_map: FrameMAP
    predictions: Predictions
    """Per detected person box: class probabilities (``track_ids`` = index into the keyframe's person detections)."""
    num_person_detections: int

    def summary(self) -> dict[str, Any]:
        return {
            "frame_map": self.frame_map.map,
            "num_person_detections": self.num_person_detections,
            "per_class_ap": [c.ap for c in self.frame_map.per_class],
        }


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
    for kf in keyframes:
        d = person_boxes(person_dets.get(kf.keyframe_id, Detections.empty()))
        boxes = tuple(
            Box((b[0], b[1], b[2], b[3]), "person", 0, "detected", i) for i, b in enumerate(d.boxes.tolist())
        )
        detected.append(dataclasses.replace(kf, persons=boxes))
    dataset = ClipDataset.from_data(data, detected, action.clip, norm=action.norm)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_clips)
    mode = action.config.model.head.mode
    preds = predict(with_tta(action.model, tta, mode), loader, device, mode=mode)
    dets: list[Detection] = []
    for r in range(len(preds)):
        kf_id = preds.keyframe_ids[r]
        det_score = float(person_boxes(person_dets[kf_id]).scores[int(preds.track_ids[r])])
        box = (
            float(preds.boxes[r, 0]),
            float(preds.boxes[r, 1]),
            float(preds.boxes[r, 2]),
            float(preds.boxes[r, 3]),
        )
        for c in range(preds.scores.shape[1]):
            dets.append(Detection(kf_id, box, c, det_score * float(preds.scores[r, c])))
    gt = [
        GroundTruth(kf.keyframe_id, b.xyxy, int(b.label))
        for kf in keyframes
        for b in kf.persons
        if b.label is not None
    ]
    fmap = frame_map(dets, gt, len(action.classes))
    return EndToEnd(fmap, preds, len(preds))
