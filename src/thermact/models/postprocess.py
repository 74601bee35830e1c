"""Post-processing of the two models' raw outputs.

**Action model**: per-person logits into scores and labels. ``logits``/``scores`` are
``Tensor[K, C]`` (``K`` person boxes, ``C`` classes). Single-label models (trained with softmax
cross-entropy) use ``mode="softmax"``; multi-label ones (sigmoid BCE/focal) use ``mode="sigmoid"``.

**Person detector**: dense outputs (:class:`~thermact.models.person_detector.DetectorOutput`) into
scored pixel-XYXY boxes per image. Steps of :func:`decode` for each image:

1. scores ``sigmoid(heatmap)`` ``[K, h, w]``; a cell is a peak when it equals the maximum of its
   ``3x3`` neighbourhood (max-pool NMS);
2. the ``top_k`` highest peaks over all classes, those with score ``>= score_threshold`` kept;
3. box of a peak at cell ``(i, j)``: centre ``((j + dx) * s, (i + dy) * s)`` pixels with the
   predicted offset ``(dx, dy)`` and stride ``s``, size ``exp(size)`` pixels; clipped to the
   ``H x W`` frame (boxes that collapse to zero area are dropped);
4. class-wise greedy NMS at ``nms_iou``, sorted by score (:func:`thermact.ops.nms.sorted_nms_mask`:
   the boxes :func:`thermact.ops.nms.batched_nms` keeps, for all images at once).

The result per image is :class:`Detections` (boxes ``[N, 4]`` pixel XYXY, scores ``[N]``, labels
``[N]`` with 0 = person); :func:`person_boxes` keeps the persons.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from thermact.models.person_detector import DetectorOutput
from thermact.ops.nms import sorted_nms_mask

__all__ = [
    "PERSON",
    "Detections",
    "decode",
    "local_max_3x3",
    "person_boxes",
    "predict_labels",
    "scores_from_logits",
    "threshold_labels",
    "topk_labels",
]

ScoreMode = Literal["softmax", "sigmoid"]


def scores_from_logits(logits: Tensor, mode: ScoreMode = "softmax") -> Tensor:
    """``[K, C]`` logits -> ``[K, C]`` scores in ``[0, 1]`` (rows sum to 1 for softmax)."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be [K, C], got {list(logits.shape)}")
    if mode == "softmax":
        return torch.softmax(logits.float(), dim=1)
    if mode == "sigmoid":
        return torch.sigmoid(logits.float())
    raise ValueError(f"unknown score mode {mode!r}; use 'softmax' or 'sigmoid'")


def topk_labels(scores: Tensor, k: int = 1) -> tuple[Tensor, Tensor]:
    """The ``k`` best classes per box: ``(values [K, k], indices [K, k])``, best first.

    ``k`` is capped at ``C``.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be [K, C], got {list(scores.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    values, indices = torch.topk(scores, min(k, scores.shape[1]), dim=1, largest=True, sorted=True)
    return values, indices


def threshold_labels(scores: Tensor, threshold: float | Tensor = 0.5) -> Tensor:
    """Boolean ``[K, C]`` mask of ``scores >= threshold`` (a scalar or a per-class ``[C]`` tensor)."""
    if scores.dim() != 2:
        raise ValueError(f"scores must be [K, C], got {list(scores.shape)}")
    if isinstance(threshold, Tensor):
        if threshold.dim() != 1 or threshold.shape[0] != scores.shape[1]:
            raise ValueError(
                f"per-class threshold must be [C] = [{scores.shape[1]}], got {list(threshold.shape)}"
            )
        return scores >= threshold.to(scores.dtype)[None, :]
    return scores >= float(threshold)


def predict_labels(scores: Tensor, mode: ScoreMode = "softmax", threshold: float | Tensor = 0.5) -> Tensor:
    """Multi-hot ``[K, C]`` bool predictions: the arg-max class (softmax) or ``scores >= threshold``
    (sigmoid)."""
    if mode == "softmax":
        _, idx = topk_labels(scores, 1)
        out = torch.zeros_like(scores, dtype=torch.bool)
        return out.scatter(1, idx, True)
    if mode == "sigmoid":
        return threshold_labels(scores, threshold)
    raise ValueError(f"unknown score mode {mode!r}; use 'softmax' or 'sigmoid'")


# ---------------------------------------------------------------------------------------------
# Person detector

PERSON = 0
"""Heatmap class of persons (class 1 is the hot/warm non-person class)."""


@dataclasses.dataclass(frozen=True)
class Detections:
    """Detections of one image: boxes ``[N, 4]`` pixel XYXY float32, scores ``[N]``, labels ``[N]`` int64."""

    boxes: Tensor
    scores: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, keep: Tensor) -> Detections:
        """The rows ``keep`` (bool mask or indices)."""
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep])

    @staticmethod
    def empty(device: torch.device | str = "cpu") -> Detections:
        return Detections(
            torch.zeros(0, 4, device=device),
            torch.zeros(0, device=device),
            torch.zeros(0, dtype=torch.int64, device=device),
        )


def person_boxes(dets: Detections, person_label: int = PERSON) -> Detections:
    """The detections of class ``person_label`` (order kept)."""
    return dets.select(dets.labels == person_label)


def local_max_3x3(x: Tensor) -> Tensor:
    """The maximum of each ``3x3`` neighbourhood of ``x [B, K, h, w]`` (``max_pool2d(x, 3, 1, 1)``,
    computed as two separable passes of elementwise maxima: the same values, ~10x faster on a CPU
    for these small maps)."""
    padded = F.pad(x, (1, 1, 1, 1), value=float("-inf"))
    rows = torch.maximum(torch.maximum(padded[..., :-2], padded[..., 1:-1]), padded[..., 2:])
    return torch.maximum(torch.maximum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])


@torch.no_grad()
def decode(
    out: DetectorOutput,
    stride: int,
    frame_size: tuple[int, int],
    top_k: int = 20,
    score_threshold: float = 0.05,
    nms_iou: float = 0.5,
) -> list[Detections]:
    """Boxes of every image of a batch (see the module docstring).

    Args:
        out: heatmap logits ``[B, K, h, w]``, size ``[B, 2, h, w]`` (log pixels), offset
            ``[B, 2, h, w]`` (cells).
        stride: input pixels per output cell.
        frame_size: ``(H, W)`` of the input frame, for clipping.
        top_k: peaks considered per image (over all classes).
        score_threshold: lowest score kept.
        nms_iou: class-wise NMS threshold (a box is dropped when its IoU with a kept one of the
            same class is above it).
    """
    heat = torch.sigmoid(out.heatmap.float())
    b, k, h, w = heat.shape
    peaks = heat == local_max_3x3(heat)
    scores_all = torch.where(peaks, heat, torch.zeros_like(heat)).reshape(b, -1)
    n = min(top_k, k * h * w)
    top_scores, top_idx = scores_all.topk(n, dim=1)  # [B, n], by decreasing score
    labels = top_idx // (h * w)
    cell = top_idx % (h * w)
    gather = cell[:, None, :].expand(b, 2, n)
    off = out.offset.float().flatten(2).gather(2, gather)  # [B, 2, n]
    size = out.size.float().flatten(2).gather(2, gather).clamp(max=10.0).exp()
    cx = ((cell % w).to(torch.float32) + off[:, 0]) * stride
    cy = ((cell // w).to(torch.float32) + off[:, 1]) * stride
    height, width = frame_size
    boxes = torch.stack(
        [
            (cx - size[:, 0] / 2).clamp(0, width),
            (cy - size[:, 1] / 2).clamp(0, height),
            (cx + size[:, 0] / 2).clamp(0, width),
            (cy + size[:, 1] / 2).clamp(0, height),
        ],
        dim=2,
    )  # [B, n, 4]
    valid = (
        (top_scores >= score_threshold) & (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
    )
    keep = torch.from_numpy(sorted_nms_mask(boxes, labels, valid, nms_iou)).to(valid.device)
    counts = keep.sum(dim=1).tolist()
    kept_boxes, kept_scores, kept_labels = boxes[keep], top_scores[keep], labels[keep]
    results: list[Detections] = []
    start = 0
    for count in counts:
        end = start + count
        results.append(Detections(kept_boxes[start:end], kept_scores[start:end], kept_labels[start:end]))
        start = end
    return results
