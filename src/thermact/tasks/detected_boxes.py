"""Detected person boxes for the training clips of an action model (``train_boxes:``).

An action model trained on annotated boxes meets other boxes when it runs behind a person detector
in a room that detector never saw: a lying person's detected box is often shorter than the annotated
one, and the box cues read a short box as sitting. On its own training recordings a detector
reproduces the annotated boxes, so training on *those* detections would not show that error. Here
each training recording gets the boxes of a given detector that was trained on **no recording of its
session** (cross-fitting): the boxes of an unseen room, on the annotated people.

Steps, each a small function:

1. :func:`detector_sessions`: the sessions a detector checkpoint was trained on (its split fold
   resolved on this run's dataset, which must be the one it was trained on);
2. :func:`assign_detectors`: per training session, the first given detector trained on neither that
   session nor any validation session of the run (a detector that saw the test session would carry
   it into training);
3. :func:`match_detected`: per keyframe, the detections (score ``>= min_score``) matched greedily to
   the annotated persons at IoU ``>= min_iou`` → ``[N, 4]`` boxes, NaN where none matched;
4. :class:`~thermact.data.dataset.ClipDataset` swaps each matched box in with probability ``p_detected``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader

from thermact.config import check_number
from thermact.data.annotations import Keyframe, boxes_array
from thermact.data.detection import DetectionClipDataset, collate_detection
from thermact.data.sessions import find_sessions, session_groups
from thermact.data.source import DatasetFingerprint, ThermalData, fingerprint_dataset
from thermact.data.splits import resolve_split
from thermact.engine.run import select_fold
from thermact.errors import ConfigError
from thermact.evaluation.frame_map import greedy_match, iou_matrix
from thermact.models.postprocess import Detections, person_boxes
from thermact.tasks.person import TrainedDetector, predict_detections, restore_detector

logger = logging.getLogger(__name__)

__all__ = [
    "TrainBoxesSection",
    "assign_detectors",
    "detected_training_boxes",
    "detector_sessions",
    "match_detected",
]

BoxArray = npt.NDArray[np.float32]


@dataclasses.dataclass
class TrainBoxesSection:
    detectors: tuple[str, ...] = ()
    """Person detectors (checkpoint paths or shipped names) whose boxes may replace the annotated
    ones of the training clips; each training session takes the first one trained on neither it nor a
    validation session (empty: annotated boxes only)."""
    p_detected: float = 0.5
    """Probability that an annotated box the detector found is replaced by the detected box."""
    min_iou: float = 0.5
    """IoU with the annotated box from which a detection counts as that person."""
    min_score: float = 0.3
    """Lowest detection score used (the live pipeline's operating point)."""

    def __post_init__(self) -> None:
        check_number("p_detected", self.p_detected, low=0.0, high=1.0)
        check_number("min_iou", self.min_iou, low=0.0, high=1.0, low_open=True)
        check_number("min_score", self.min_score, low=0.0, high=1.0)


def detector_sessions(
    trained: TrainedDetector, data: ThermalData, groups: Mapping[str, str], digest: str
) -> set[str]:
    """The sessions (``groups``: recording id → session) of the keyframes ``trained`` was trained on;
    ``digest``: the :class:`DatasetFingerprint` digest of ``data`` (computed once by the caller).

    Raises:
        ConfigError: it was trained on another dataset, or its split cannot be resolved here.
    """
    where = f"config key 'train_boxes.detectors': {trained.path}"
    stored = trained.checkpoint.get("dataset")
    if not isinstance(stored, dict):
        raise ConfigError(f"{where} does not record its training dataset")
    seen = DatasetFingerprint.from_dict(stored, where=f"{trained.path}: dataset")
    if seen.digest != digest:
        raise ConfigError(
            f"{where} was trained on another dataset ({seen.name}): its training sessions are unknown"
        )
    cfg = trained.config
    fold = select_fold(resolve_split(data, cfg.data.split, trained.clip), cfg.data.fold)
    recording_of = {k.keyframe_id: k.recording_id for k in data.keyframes}
    return {groups[recording_of[k]] for k in fold.train}


def assign_detectors(
    trained_on: Sequence[set[str]], train_sessions: set[str], val_sessions: set[str]
) -> dict[str, int]:
    """Training session → index of the first detector (``trained_on[i]``: its sessions) that saw
    neither that session nor any of ``val_sessions``; sessions without one are left out."""
    out: dict[str, int] = {}
    for session in sorted(train_sessions):
        for i, seen in enumerate(trained_on):
            if not seen & (val_sessions | {session}):
                out[session] = i
                break
    return out


def match_detected(keyframe: Keyframe, dets: Detections, min_iou: float, min_score: float) -> BoxArray:
    """Per annotated person of ``keyframe`` (its order), the person detection matched to it, pixel
    XYXY ``[N, 4]``; NaN rows where none scored ``>= min_score`` at IoU ``>= min_iou``."""
    persons = person_boxes(dets)
    keep = persons.scores >= min_score
    boxes, scores = persons.boxes[keep].numpy(), persons.scores[keep].numpy()
    out = np.full((len(keyframe.persons), 4), np.nan, dtype=np.float32)
    match = greedy_match(iou_matrix(boxes, boxes_array(keyframe.persons)), scores, min_iou)
    for row, col in enumerate(match):
        if col is not None:
            out[col] = boxes[row]
    return out


def _detect(
    trained: TrainedDetector, data: ThermalData, keyframes: Sequence[Keyframe]
) -> dict[str, Detections]:
    """Keyframe id → detections of ``trained`` (boxes grown to the body heat as its config says)."""
    e = trained.config.eval
    dataset = DetectionClipDataset(data.recordings, keyframes, trained.clip, trained.norm)
    loader = DataLoader(dataset, batch_size=32, shuffle=False, collate_fn=collate_detection)
    return predict_detections(
        trained.model,
        loader,
        next(trained.model.parameters()).device,
        trained.model.stride,
        top_k=e.top_k,
        min_score=0.01,
        nms_iou=e.nms_iou,
        growth=e.heat_growth,
        unit_c=trained.norm.std_c,
    )


def detected_training_boxes(
    section: TrainBoxesSection,
    data: ThermalData,
    train_kfs: Sequence[Keyframe],
    val_kfs: Sequence[Keyframe],
    device: torch.device,
) -> dict[str, BoxArray]:
    """Training keyframe id → its persons' detected boxes (see the module docstring); empty without
    detectors. Logs which detector served which session and how many boxes it found.

    Raises:
        ConfigError: no given detector may serve any training session.
    """
    if not section.detectors:
        return {}
    groups = session_groups(find_sessions(data.recordings))
    detectors = [restore_detector(path, device) for path in section.detectors]
    digest = fingerprint_dataset(data).digest
    trained_on = [detector_sessions(d, data, groups, digest) for d in detectors]
    train_sessions = {groups[k.recording_id] for k in train_kfs}
    val_sessions = {groups[k.recording_id] for k in val_kfs}
    served = assign_detectors(trained_on, train_sessions, val_sessions)
    if not served:
        raise ConfigError(
            "config key 'train_boxes.detectors': every detector was trained on a training session "
            f"({', '.join(sorted(train_sessions))}) or a validation session: none can give unseen boxes"
        )
    out: dict[str, BoxArray] = {}
    for session, i in sorted(served.items()):
        kfs = [k for k in train_kfs if groups[k.recording_id] == session]
        dets = _detect(detectors[i], data, kfs)
        for k in kfs:
            out[k.keyframe_id] = match_detected(k, dets[k.keyframe_id], section.min_iou, section.min_score)
        found = sum(int(np.isfinite(out[k.keyframe_id]).all(axis=1).sum()) for k in kfs)
        logger.info(
            "train_boxes: session %s from %s: detected boxes for %d of %d persons",
            session,
            section.detectors[i],
            found,
            sum(len(k.persons) for k in kfs),
        )
    for session in sorted(train_sessions - served.keys()):
        logger.info("train_boxes: session %s keeps its annotated boxes (every detector saw it)", session)
    return out
