"""Frame-mAP by the AVA protocol.

For every class separately:

1. all detections of that class, over all evaluated keyframes, are sorted by score (highest
   first; ties keep input order);
2. each detection is matched greedily to the *unmatched* ground-truth box of that class in the
   same keyframe with the highest IoU; IoU ≥ ``iou_threshold`` (0.5) makes it a true positive and
   consumes that GT box, otherwise it is a false positive (so duplicates of an already-matched
   person are false positives, and so is every detection on a keyframe without GT of the class);
3. average precision is the all-point interpolated area under the precision/recall curve
   (PASCAL VOC 2010+): precision is made monotonically non-increasing from the right and summed
   over the recall steps.

mAP is the mean AP over the classes that have at least one GT box in the evaluated set; classes
without GT have ``ap = None`` (shown as N/A) and do not count.

Boxes are pixel XYXY (any consistent unit works, IoU is scale-free).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt

from thermact.ops.boxes import box_area_np


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """One GT person box with its action class, on keyframe ``key``."""

    key: Hashable
    box: tuple[float, float, float, float]
    label: int


@dataclasses.dataclass(frozen=True)
class Detection:
    """One scored (box, class) hypothesis on keyframe ``key``."""

    key: Hashable
    box: tuple[float, float, float, float]
    label: int
    score: float


@dataclasses.dataclass(frozen=True)
class ClassAP:
    """Average precision of one class, with its precision/recall curve."""

    label: int
    num_gt: int
    num_detections: int
    ap: float | None
    """None when the class has no GT box in the evaluated set."""
    precision: list[float]
    recall: list[float]


@dataclasses.dataclass(frozen=True)
class FrameMAP:
    """Frame-mAP over classes, and the per-class APs."""

    map: float | None
    """Mean AP over classes with GT; None when no class has GT."""
    per_class: list[ClassAP]
    iou_threshold: float


def iou_matrix(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """IoU of XYXY boxes ``a`` [N,4] and ``b`` [M,4] → [N,M]."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area_np(a)[:, None] + box_area_np(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def average_precision(
    tp: npt.ArrayLike, num_gt: int
) -> tuple[float, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """All-point interpolated AP from TP flags (1/0) of score-sorted detections.

    Returns ``(ap, precision, recall)`` with the raw (uninterpolated) curve points.
    """
    flags = np.asarray(tp, dtype=np.float64)
    if num_gt <= 0:
        raise ValueError("average_precision needs num_gt > 0")
    if flags.size == 0:
        return 0.0, np.zeros(0), np.zeros(0)
    tps = np.cumsum(flags)
    fps = np.cumsum(1.0 - flags)
    recall = tps / num_gt
    precision = tps / (tps + fps)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    ap = float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))
    return ap, precision, recall


def greedy_match(
    ious: npt.NDArray[np.float64], scores: npt.ArrayLike, iou_threshold: float
) -> list[int | None]:
    """Step 2 of the module docstring on one keyframe: detections (rows of ``ious [N, M]``, with
    ``scores [N]``) in score order, ties in row order, each take the unmatched ground-truth box
    (column) they overlap most if its IoU is ``>= iou_threshold``.

    Returns:
        per detection, the column it matched or None.
    """
    taken = np.zeros(ious.shape[1], dtype=bool)
    match: list[int | None] = [None] * ious.shape[0]
    if not ious.shape[1]:
        return match
    for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        row = np.where(taken, -1.0, ious[i])
        best = int(np.argmax(row))
        if row[best] >= iou_threshold:
            taken[best] = True
            match[int(i)] = best
    return match


def match_detections(
    detections: Sequence[Detection], ground_truth: Sequence[GroundTruth], label: int, iou_threshold: float
) -> tuple[npt.NDArray[np.float64], int]:
    """TP flags of the class-``label`` detections sorted by score, and that class's GT count."""
    gts: dict[Hashable, list[tuple[float, float, float, float]]] = {}
    for g in ground_truth:
        if g.label == label:
            gts.setdefault(g.key, []).append(g.box)
    num_gt = sum(len(v) for v in gts.values())
    dets = [d for d in detections if d.label == label]
    order = sorted(range(len(dets)), key=lambda i: -dets[i].score)
    rank = np.empty(len(dets), dtype=np.int64)
    rank[order] = np.arange(len(dets))
    by_key: dict[Hashable, list[int]] = {}
    for i, det in enumerate(dets):
        by_key.setdefault(det.key, []).append(i)
    tp = np.zeros(len(dets), dtype=np.float64)
    for key, idx in by_key.items():
        boxes = gts.get(key)
        if not boxes:
            continue
        ious = iou_matrix([dets[i].box for i in idx], boxes)
        for i, m in zip(idx, greedy_match(ious, [dets[i].score for i in idx], iou_threshold), strict=True):
            if m is not None:
                tp[rank[i]] = 1.0
    return tp, num_gt


def frame_map(
    detections: Sequence[Detection],
    ground_truth: Sequence[GroundTruth],
    num_classes: int,
    iou_threshold: float = 0.5,
) -> FrameMAP:
    """Frame-mAP@``iou_threshold`` (see module docstring)."""
    per_class: list[ClassAP] = []
    for label in range(num_classes):
        tp, num_gt = match_detections(detections, ground_truth, label, iou_threshold)
        if num_gt == 0:
            per_class.append(ClassAP(label, 0, int(tp.size), None, [], []))
            continue
        ap, precision, recall = average_precision(tp, num_gt)
        per_class.append(ClassAP(label, num_gt, int(tp.size), ap, precision.tolist(), recall.tolist()))
    scored = [c.ap for c in per_class if c.ap is not None]
    return FrameMAP(float(np.mean(scored)) if scored else None, per_class, iou_threshold)
