"""Tensor operations written in plain PyTorch (no compiled ops, no torchvision)."""

from thermact.ops.nms import batched_nms, box_area, box_iou, nms
from thermact.ops.roi_align import RoIAlign, roi_align

__all__ = ["RoIAlign", "batched_nms", "box_area", "box_iou", "nms", "roi_align"]
