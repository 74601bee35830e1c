"""Loss of the centre-point detector (separate from the model).

* Heatmap: CenterNet's penalty-reduced pixel-wise focal loss on the sigmoid of the logits,
  summed over all cells and classes and divided by the number of centre cells (at least 1)::

      pos (y == 1):  -(1 - p)^α log p
      neg (y <  1):  -(1 - y)^β p^α log(1 - p)

  computed from ``logsigmoid`` (no clamping of probabilities needed).
* Size and offset: L1 at the centre cells only (``mask``), summed over both coordinates and
  divided by the number of centre cells.

``total = heatmap + size_weight * size + offset_weight * offset``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thermact.models.person_detector import DetectorOutput
from thermact.models.person_targets import DetectionTargets

__all__ = ["CenterNetLoss", "focal_heatmap_loss", "masked_l1"]


def focal_heatmap_loss(
    logits: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0, known: Tensor | None = None
) -> Tensor:
    """Penalty-reduced focal loss; ``logits`` and ``target`` ``[B, K, h, w]``, target 1 at centres.
    ``known`` ``[B, K]`` (bool or 0/1): the heatmaps of classes not annotated in an image are left out."""
    if logits.shape != target.shape:
        raise ValueError(f"heatmap logits {list(logits.shape)} and target {list(target.shape)} differ")
    pos = target.eq(1.0).to(logits.dtype)
    log_p = F.logsigmoid(logits)
    log_1mp = F.logsigmoid(-logits)
    p = torch.sigmoid(logits)
    pos_loss = -((1.0 - p) ** alpha) * log_p * pos
    neg_loss = -((1.0 - target) ** beta) * (p**alpha) * log_1mp * (1.0 - pos)
    if known is not None:
        weight = known.to(logits.dtype)[:, :, None, None]
        pos_loss, neg_loss = pos_loss * weight, neg_loss * weight
    num_pos = pos.sum().clamp(min=1.0)
    return (pos_loss.sum() + neg_loss.sum()) / num_pos


def masked_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``sum(|pred - target| * mask) / max(1, sum(mask))``; pred/target ``[B, C, h, w]``, mask ``[B, h, w]``."""
    m = mask.unsqueeze(1).to(pred.dtype)
    return ((pred - target).abs() * m).sum() / mask.sum().clamp(min=1.0)


class CenterNetLoss(nn.Module):
    """Heatmap focal loss + weighted L1 size and offset losses (see the module docstring).

    Args:
        size_weight: weight of the L1 loss on ``log`` box sizes.
        offset_weight: weight of the L1 loss on centre offsets.
        alpha, beta: focal loss exponents.
    """

    def __init__(
        self, size_weight: float = 1.0, offset_weight: float = 1.0, alpha: float = 2.0, beta: float = 4.0
    ) -> None:
        super().__init__()
        self.size_weight = size_weight
        self.offset_weight = offset_weight
        self.alpha = alpha
        self.beta = beta

    def forward(
        self, out: DetectorOutput, targets: DetectionTargets, known: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Total loss (a scalar with grad) and its parts as floats; ``known`` ``[B, K]``: which
        classes are annotated in each image (default: all)."""
        heat = focal_heatmap_loss(out.heatmap.float(), targets.heatmap, self.alpha, self.beta, known)
        size = masked_l1(out.size.float(), targets.size, targets.mask)
        offset = masked_l1(out.offset.float(), targets.offset, targets.mask)
        total = heat + self.size_weight * size + self.offset_weight * offset
        parts = {
            "heatmap": float(heat.detach()),
            "size": float(size.detach()),
            "offset": float(offset.detach()),
        }
        return total, parts
