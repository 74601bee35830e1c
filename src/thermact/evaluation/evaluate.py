"""Run a model over a dataset of keyframes and score its predictions.

:func:`predict` runs the action detector on the person boxes of each keyframe (ground-truth
boxes here; detector boxes once a person detector exists) and returns every box with its class
scores. A model with an interaction head (AlphAction's IA structure) is run in two passes: the
first computes the pooled person features of every keyframe and writes them into a memory bank
built from the evaluated data only (never the training bank: no leakage), the second classifies
every keyframe given the other persons of its clip and that memory. :func:`score_predictions`
turns them into frame-mAP@0.5 detections (each box yields one detection per class, scored by
that class's probability, as in AVA) and, because the boxes are the GT ones, into
classification metrics of the arg-max class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from thermact.data.dataset import ClipBatch
from thermact.evaluation.classification import ClassificationReport, classification_report
from thermact.evaluation.frame_map import Detection, FrameMAP, GroundTruth, frame_map
from thermact.models.action import ActionModel
from thermact.models.postprocess import scores_from_logits


@dataclasses.dataclass
class Predictions:
    """Per-box predictions over a set of keyframes (rows aligned across fields)."""

    keyframe_ids: list[str]
    recording_ids: list[str]
    keyframe_ms: npt.NDArray[np.int64]
    boxes: npt.NDArray[np.float32]
    """[K, 4] pixel XYXY in the sensor frame."""
    labels: npt.NDArray[np.int64]
    """[K] ground-truth class of each box."""
    track_ids: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]
    """[K, C] class probabilities."""

    def __len__(self) -> int:
        return len(self.keyframe_ids)


@torch.no_grad()
def predict(
    model: nn.Module,
    batches: Iterable[ClipBatch],
    device: torch.device,
    mode: Literal["softmax", "sigmoid"] = "softmax",
    autocast_dtype: torch.dtype | None = None,
) -> Predictions:
    """Scores of every person box of every batch (model in eval mode, restored afterwards).

    ``model``: an :class:`ActionModel` (or a wrapper with it as ``.module``, e.g. DDP). Models
    with an interaction head are run in two passes over ``batches`` (see the module docstring);
    under DDP each process's memory holds only its own shard of keyframes.
    """
    core = getattr(model, "module", model)
    items: Iterable[ClipBatch | _Classified] = batches
    if isinstance(core, ActionModel) and core.interaction is not None:
        items = _with_memory_logits(core, batches, device, autocast_dtype)
    was_training = model.training
    model.eval()
    kf_ids: list[str] = []
    rec_ids: list[str] = []
    kf_ms: list[int] = []
    boxes: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    tracks: list[torch.Tensor] = []
    scores: list[torch.Tensor] = []
    try:
        for item in items:
            batch = item.batch if isinstance(item, _Classified) else item
            if batch.rois.shape[0] == 0:
                continue
            if isinstance(item, _Classified):
                logits = item.logits
            else:
                clip = batch.frames.to(device)
                rois = batch.rois.to(device)
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    logits = model(clip, rois)
            scores.append(scores_from_logits(logits.float(), mode).cpu())
            index = batch.rois[:, 0].long()
            kf_ids.extend(batch.keyframe_ids[i] for i in index.tolist())
            rec_ids.extend(batch.recording_ids[i] for i in index.tolist())
            kf_ms.extend(int(batch.keyframe_ms[i]) for i in index.tolist())
            boxes.append(batch.rois[:, 1:].cpu())
            labels.append(batch.labels.cpu())
            tracks.append(batch.track_ids.cpu())
    finally:
        model.train(was_training)
    num_classes = scores[0].shape[1] if scores else 0
    return Predictions(
        keyframe_ids=kf_ids,
        recording_ids=rec_ids,
        keyframe_ms=np.asarray(kf_ms, dtype=np.int64),
        boxes=torch.cat(boxes).numpy() if boxes else np.zeros((0, 4), np.float32),
        labels=torch.cat(labels).numpy() if labels else np.zeros(0, np.int64),
        track_ids=torch.cat(tracks).numpy() if tracks else np.zeros(0, np.int64),
        scores=torch.cat(scores).numpy() if scores else np.zeros((0, num_classes), np.float32),
    )


@dataclasses.dataclass(frozen=True)
class _Classified:
    """A batch with its logits already computed (pass 2 of an interaction model)."""

    batch: ClipBatch
    logits: torch.Tensor


@torch.no_grad()
def _with_memory_logits(
    model: ActionModel,
    batches: Iterable[ClipBatch],
    device: torch.device,
    autocast_dtype: torch.dtype | None,
) -> list[_Classified]:
    """Two passes of an interaction model: pooled features of every batch into a fresh memory bank,
    then logits given the other persons and that memory."""
    was_training = model.training
    model.eval()
    bank = model.new_memory_bank()
    pooled: list[tuple[ClipBatch, torch.Tensor]] = []
    try:
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            for batch in batches:
                if batch.rois.shape[0] == 0:
                    continue
                feats = model.person_features(batch.frames.to(device), batch.rois.to(device))
                bank.write(batch.recording_ids, batch.keyframe_ms, feats, batch.rois[:, 0], batch.track_ids)
                pooled.append((batch, feats))
            out = []
            for batch, feats in pooled:
                index = batch.rois[:, 0].to(device=device, dtype=torch.int64)
                memory = bank.gather(
                    batch.recording_ids, batch.keyframe_ms, index, batch.track_ids.to(device)
                )
                out.append(_Classified(batch, model.classify(feats, index, memory)))
    finally:
        model.train(was_training)
    return out


def merge_predictions(parts: Sequence[Predictions]) -> Predictions:
    """Concatenate predictions (e.g. the shards of several processes), dropping repeated boxes.

    A box is identified by ``(keyframe_id, track_id)``; the first occurrence is kept.
    """
    seen: set[tuple[str, int]] = set()
    rows: list[tuple[int, int]] = []
    for p_i, part in enumerate(parts):
        for r in range(len(part)):
            key = (part.keyframe_ids[r], int(part.track_ids[r]))
            if key not in seen:
                seen.add(key)
                rows.append((p_i, r))
    num_classes = next((p.scores.shape[1] for p in parts if p.scores.ndim == 2), 0)

    def take(field: str) -> Any:
        return [getattr(parts[p], field)[r] for p, r in rows]

    return Predictions(
        keyframe_ids=take("keyframe_ids"),
        recording_ids=take("recording_ids"),
        keyframe_ms=np.asarray(take("keyframe_ms"), dtype=np.int64),
        boxes=np.asarray(take("boxes"), dtype=np.float32).reshape(-1, 4),
        labels=np.asarray(take("labels"), dtype=np.int64),
        track_ids=np.asarray(take("track_ids"), dtype=np.int64),
        scores=np.asarray(take("scores"), dtype=np.float32).reshape(-1, num_classes),
    )


@dataclasses.dataclass
class EvalResult:
    frame_map: FrameMAP
    classification: ClassificationReport
    num_keyframes: int
    num_boxes: int

    def summary(self) -> dict[str, float | None]:
        """The headline numbers (for logs and best-checkpoint selection)."""
        return {
            "frame_map": self.frame_map.map,
            "accuracy": self.classification.accuracy,
            "balanced_accuracy": self.classification.balanced_accuracy,
            "macro_f1": self.classification.macro_f1,
        }

    def to_dict(self, class_names: list[str] | tuple[str, ...]) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "num_keyframes": self.num_keyframes,
            "num_boxes": self.num_boxes,
            "frame_map": {
                "iou_threshold": self.frame_map.iou_threshold,
                "map": self.frame_map.map,
                "per_class": {
                    class_names[c.label]: {"ap": c.ap, "num_gt": c.num_gt, "num_detections": c.num_detections}
                    for c in self.frame_map.per_class
                },
            },
            "classification": {
                "accuracy": self.classification.accuracy,
                "balanced_accuracy": self.classification.balanced_accuracy,
                "macro_f1": self.classification.macro_f1,
                "per_class": {
                    class_names[pc.label]: dataclasses.asdict(pc) for pc in self.classification.per_class
                },
                "confusion": self.classification.confusion,
            },
        }


def detections_from_predictions(preds: Predictions) -> list[Detection]:
    """One detection per (box, class), scored by the class probability."""
    dets: list[Detection] = []
    for i in range(len(preds)):
        box = (
            float(preds.boxes[i, 0]),
            float(preds.boxes[i, 1]),
            float(preds.boxes[i, 2]),
            float(preds.boxes[i, 3]),
        )
        for c in range(preds.scores.shape[1]):
            dets.append(Detection(preds.keyframe_ids[i], box, c, float(preds.scores[i, c])))
    return dets


def ground_truth_from_predictions(preds: Predictions) -> list[GroundTruth]:
    return [
        GroundTruth(
            preds.keyframe_ids[i],
            (
                float(preds.boxes[i, 0]),
                float(preds.boxes[i, 1]),
                float(preds.boxes[i, 2]),
                float(preds.boxes[i, 3]),
            ),
            int(preds.labels[i]),
        )
        for i in range(len(preds))
    ]


def score_predictions(preds: Predictions, num_classes: int) -> EvalResult:
    """Frame-mAP@0.5 and classification metrics of predictions on GT boxes."""
    if len(preds) == 0:
        raise ValueError("no person box to evaluate")
    fmap = frame_map(detections_from_predictions(preds), ground_truth_from_predictions(preds), num_classes)
    cls = classification_report(preds.labels, preds.scores.argmax(axis=1), num_classes)
    return EvalResult(fmap, cls, len(set(preds.keyframe_ids)), len(preds))
