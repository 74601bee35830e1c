"""Box IoU and non-maximum suppression in plain PyTorch (semantics of ``torchvision.ops``).

All boxes are pixel XYXY ``[x1, y1, x2, y2]`` with ``x1 <= x2`` and ``y1 <= y2`` expected. As in
torchvision, areas are ``(x2 - x1) * (y2 - y1)`` *without* clamping (unlike
:func:`thermact.ops.boxes.box_area_np`, which clamps negative extents to zero); for well-formed boxes
the two agree. The IoU of two zero-area boxes is ``0 / 0 = nan``, which never exceeds a threshold.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

__all__ = ["batched_nms", "box_area", "box_iou", "nms", "sorted_nms_mask"]


def _check_boxes(boxes: Tensor, name: str) -> None:
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape [K, 4] (x1, y1, x2, y2), got {list(boxes.shape)}")


def box_area(boxes: Tensor) -> Tensor:
    """Area ``(x2 - x1) * (y2 - y1)`` of XYXY boxes ``[..., 4]`` → ``[...]`` (no clamping, as torchvision)."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU of XYXY boxes ``boxes1 [N, 4]`` and ``boxes2 [M, 4]`` → ``[N, M]``.

    ``inter / (area1 + area2 - inter)`` with the intersection extents clamped at zero.
    """
    _check_boxes(boxes1, "box_iou: boxes1")
    _check_boxes(boxes2, "box_iou: boxes2")
    return _pairwise_iou(boxes1, boxes2)


def _pairwise_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """:func:`box_iou` over leading batch dimensions: ``[..., N, 4]``, ``[..., M, 4]`` → ``[..., N, M]``."""
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    lt = torch.max(boxes1[..., :, None, :2], boxes2[..., None, :, :2])  # [..., N, M, 2]
    rb = torch.min(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])  # [..., N, M, 2]
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area1[..., :, None] + area2[..., None, :] - inter)


def _greedy_nms(boxes: Tensor, scores: Tensor, idxs: Tensor | None, iou_threshold: float) -> Tensor:
    """Greedy NMS over boxes sorted by decreasing score; only same-``idxs`` boxes suppress each other."""
    _check_boxes(boxes, "nms: boxes")
    K = boxes.shape[0]
    if scores.dim() != 1 or scores.shape[0] != K:
        raise ValueError(f"nms: scores must have shape [{K}], got {list(scores.shape)}")
    if idxs is not None and (idxs.dim() != 1 or idxs.shape[0] != K):
        raise ValueError(f"batched_nms: idxs must have shape [{K}], got {list(idxs.shape)}")
    device = boxes.device
    if K == 0:
        return torch.zeros(0, dtype=torch.int64, device=device)
    # Stable sort: among equal scores the lower original index comes first.
    order = torch.sort(scores.detach(), descending=True, stable=True).indices
    work_dtype = boxes.dtype if boxes.dtype in (torch.float32, torch.float64) else torch.float32
    b: npt.NDArray[np.floating] = boxes.detach()[order].to("cpu", work_dtype).numpy()
    cat: npt.NDArray[np.int64] | None = None
    if idxs is not None:
        cat = idxs.detach()[order].to("cpu", torch.int64).numpy()
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    area = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(K, dtype=bool)
    keep: list[int] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(K):
            if suppressed[i]:
                continue
            keep.append(i)
            if i + 1 == K:
                break
            w = np.maximum(np.minimum(x2[i], x2[i + 1 :]) - np.maximum(x1[i], x1[i + 1 :]), 0)
            h = np.maximum(np.minimum(y2[i], y2[i + 1 :]) - np.maximum(y1[i], y1[i + 1 :]), 0)
            inter = w * h
            over = inter / (area[i] + area[i + 1 :] - inter) > iou_threshold
            if cat is not None:
                over &= cat[i + 1 :] == cat[i]
            suppressed[i + 1 :] |= over
    keep_t = torch.as_tensor(keep, dtype=torch.int64, device=order.device)
    return order[keep_t]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression (``torchvision.ops.nms`` semantics).

    Args:
        boxes: ``[K, 4]`` pixel XYXY.
        scores: ``[K]``.
        iou_threshold: a box is discarded if its IoU with an already kept, higher-scoring box is
            strictly greater than this.

    Returns:
        ``int64 [K_kept]`` indices into ``boxes``, sorted by decreasing score; equal scores keep their
        original index order. On the device of ``boxes`` (the greedy loop itself runs on the CPU).
    """
    return _greedy_nms(boxes, scores, None, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS run independently per category (``torchvision.ops.batched_nms`` semantics).

    Boxes with different ``idxs`` never suppress each other. Implemented exactly (no coordinate
    offset trick), as one greedy pass in which only same-category boxes are compared.

    Args:
        boxes: ``[K, 4]`` pixel XYXY.
        scores: ``[K]``.
        idxs: ``[K]`` integer category (or image) index of each box.
        iou_threshold: IoU strictly above which a lower-scoring box of the same category is discarded.

    Returns:
        ``int64 [K_kept]`` indices into ``boxes`` sorted by decreasing score (ties by original index).
    """
    return _greedy_nms(boxes, scores, idxs, iou_threshold)


def sorted_nms_mask(
    boxes: Tensor, labels: Tensor, candidates: Tensor, iou_threshold: float
) -> npt.NDArray[np.bool_]:
    """Class-wise greedy NMS of many images at once, over candidates already sorted by score.

    The same boxes as :func:`batched_nms` run on each image's candidates alone (with the labels as
    categories): each image's ``n`` candidates must be in order of decreasing score (as
    ``Tensor.topk`` returns them; among equal scores, the earlier one wins, as the stable sort of
    :func:`batched_nms` decides). The IoUs are those of :func:`box_iou` (float32, the same
    arithmetic as the greedy pass of :func:`batched_nms`), so the kept sets are identical; the
    greedy pass runs over the ``n`` positions for all images together instead of one call per image.

    Args:
        boxes: ``[B, n, 4]`` pixel XYXY.
        labels: ``[B, n]`` integer category of each candidate.
        candidates: bool ``[B, n]``: the boxes that take part (the others are neither kept nor
            suppress anything).
        iou_threshold: a candidate is dropped when its IoU with a kept, earlier candidate of the
            same category is strictly above it.

    Returns:
        bool ``[B, n]`` NumPy mask of the kept candidates.
    """
    if boxes.dim() != 3 or boxes.shape[2] != 4 or labels.shape != boxes.shape[:2]:
        raise ValueError(
            f"sorted_nms_mask: boxes must be [B, n, 4] and labels [B, n], got {list(boxes.shape)}, "
            f"{list(labels.shape)}"
        )
    b = boxes.detach().to("cpu", torch.float32)
    n = b.shape[1]
    over = (_pairwise_iou(b, b) > iou_threshold).numpy()  # [B, n, n]; a NaN IoU is never over
    cat = labels.detach().cpu().numpy()
    keep = candidates.detach().cpu().numpy().copy()
    over &= cat[:, :, None] == cat[:, None, :]
    over &= np.triu(np.ones((n, n), dtype=bool), k=1)  # only later candidates are suppressed
    for i in range(n - 1):
        keep &= ~(keep[:, i, None] & over[:, i])
    return keep
