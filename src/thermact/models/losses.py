"""Classification losses for per-person action logits, separate from the model.

Two target conventions:

* single-label (softmax): ``targets`` is ``Tensor[K]`` of class indices (``int64``);
  entries equal to ``ignore_index`` contribute nothing;
* multi-label (sigmoid): ``targets`` is a multi-hot ``Tensor[K, C]`` (0/1, or soft values in
  ``[0, 1]``).

``logits`` are always ``Tensor[K, C]``. With ``reduction="mean"`` the weighted single-label losses
are normalised by the sum of the target weights, exactly like :func:`torch.nn.functional.cross_entropy`,
and the multi-label losses by the number of elements ``K * C``. An empty batch (``K = 0``) gives a
zero loss that still depends on ``logits`` (so ``backward`` works).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ActionLoss",
    "class_groups",
    "class_weights_from_counts",
    "cross_entropy_loss",
    "distillation_loss",
    "group_nll_loss",
    "sigmoid_bce_loss",
    "sigmoid_focal_loss",
    "softmax_focal_loss",
]

Reduction = Literal["mean", "sum", "none"]
LossKind = Literal["ce", "focal", "bce", "sigmoid_focal"]


def _check_single(logits: Tensor, targets: Tensor) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must be [K, C], got {list(logits.shape)}")
    if targets.dim() != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(f"single-label targets must be [K] = [{logits.shape[0]}], got {list(targets.shape)}")
    if targets.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"single-label targets must be integer class indices, got dtype {targets.dtype}")


def _check_multi(logits: Tensor, targets: Tensor) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must be [K, C], got {list(logits.shape)}")
    if targets.shape != logits.shape:
        raise ValueError(
            f"multi-label targets must be multi-hot [K, C] = {list(logits.shape)}, got {list(targets.shape)}"
        )


def _check_weight(weight: Tensor | None, num_classes: int) -> None:
    if weight is not None and (weight.dim() != 1 or weight.shape[0] != num_classes):
        raise ValueError(f"class weights must be [C] = [{num_classes}], got {list(weight.shape)}")


def cross_entropy_loss(
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
) -> Tensor:
    """Softmax cross-entropy; see :func:`torch.nn.functional.cross_entropy` for the semantics."""
    _check_single(logits, targets)
    _check_weight(weight, logits.shape[1])
    if logits.shape[0] == 0 and reduction != "none":
        return logits.sum() * 0.0
    return F.cross_entropy(
        logits,
        targets.long(),
        weight=None if weight is None else weight.to(logits.dtype),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


def softmax_focal_loss(
    logits: Tensor,
    targets: Tensor,
    gamma: float = 2.0,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
) -> Tensor:
    """Multi-class focal loss ``-w_t (1 - p_t)^gamma log p_t`` (Lin et al. 2017, softmax form).

    ``p_t`` is the softmax probability of the target class and ``w_t = weight[target]`` (1 when
    ``weight`` is None; the class-balancing ``alpha`` of the paper is such a per-class weight). With
    ``gamma = 0`` this is exactly :func:`cross_entropy_loss` with the same weights.
    """
    _check_single(logits, targets)
    _check_weight(weight, logits.shape[1])
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    targets = targets.long()
    valid = targets != ignore_index
    safe_t = torch.where(valid, targets, torch.zeros_like(targets))
    log_p = F.log_softmax(logits, dim=1)
    log_pt = log_p.gather(1, safe_t[:, None]).squeeze(1)  # [K]
    pt = log_pt.exp()
    w = torch.ones_like(log_pt) if weight is None else weight.to(logits.dtype)[safe_t]
    w = w * valid.to(logits.dtype)
    modulator = (1.0 - pt).clamp(min=0.0).pow(gamma) if gamma != 0 else torch.ones_like(pt)
    loss = -w * modulator * log_pt
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    # All targets ignored (or K = 0): 0 / eps = 0 instead of NaN, still differentiable.
    return loss.sum() / w.sum().clamp(min=1e-12)


def sigmoid_bce_loss(
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None = None,
    pos_weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Per-class binary cross-entropy on sigmoid outputs (multi-label).

    ``weight`` (``[C]``) scales every term of class ``c``; ``pos_weight`` (``[C]``) scales only the
    positive terms, as in :func:`torch.nn.functional.binary_cross_entropy_with_logits`.
    """
    _check_multi(logits, targets)
    _check_weight(weight, logits.shape[1])
    _check_weight(pos_weight, logits.shape[1])
    if logits.shape[0] == 0 and reduction != "none":
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(
        logits,
        targets.to(logits.dtype),
        weight=None if weight is None else weight.to(logits.dtype)[None, :],
        pos_weight=None if pos_weight is None else pos_weight.to(logits.dtype),
        reduction=reduction,
    )


def sigmoid_focal_loss(
    logits: Tensor,
    targets: Tensor,
    gamma: float = 2.0,
    alpha: float | None = 0.25,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Binary focal loss per class (RetinaNet form), multi-label.

    ``loss = w_c * alpha_t * (1 - p_t)^gamma * BCE(logit, target)`` with ``p = sigmoid(logit)``,
    ``p_t = p * t + (1 - p) * (1 - t)`` and ``alpha_t = alpha * t + (1 - alpha) * (1 - t)``
    (``alpha = None`` disables it). With ``gamma = 0`` and ``alpha = None`` this equals
    :func:`sigmoid_bce_loss`.
    """
    _check_multi(logits, targets)
    _check_weight(weight, logits.shape[1])
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] or None, got {alpha}")
    t = targets.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    loss = ce
    if gamma != 0:
        p = torch.sigmoid(logits)
        p_t = p * t + (1.0 - p) * (1.0 - t)
        loss = loss * (1.0 - p_t).clamp(min=0.0).pow(gamma)
    if alpha is not None:
        loss = loss * (alpha * t + (1.0 - alpha) * (1.0 - t))
    if weight is not None:
        loss = loss * weight.to(logits.dtype)[None, :]
    if reduction == "none":
        return loss
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return loss.sum() if reduction == "sum" else loss.mean()


def group_nll_loss(
    logits: Tensor, targets: Tensor, groups: Tensor, weight: Tensor | None = None, ignore_index: int = -100
) -> Tensor:
    """Negative log-likelihood of the target's *group* under the softmax over classes (scalar).

    ``logits`` ``[K, C]``, ``targets`` ``[K]`` class indices, ``groups`` ``[C]`` the group of each
    class (e.g. ``lower position-kneeling`` and ``lower position-bending`` in ``lower position``:
    :func:`class_groups`). A group's probability is the sum of its classes' softmax probabilities,
    so a rare class gets credit for the mass on its siblings. Weighted by ``weight[target]`` and
    normalised by the summed weights, as the cross-entropy; targets equal to ``ignore_index`` count
    for nothing.
    """
    _check_single(logits, targets)
    _check_weight(weight, logits.shape[1])
    keep = targets != ignore_index
    logits, targets = logits[keep], targets[keep]
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    log_p = F.log_softmax(logits.float(), dim=1)
    member = F.one_hot(groups.long(), int(groups.max()) + 1).to(log_p.dtype)  # [C, G]
    group_log_p = torch.logsumexp(log_p[:, :, None] + member.log()[None], dim=1)  # [K, G]
    nll = -group_log_p.gather(1, groups[targets.long()].long()[:, None])[:, 0]
    w = torch.ones_like(nll) if weight is None else weight.to(nll.dtype)[targets.long()]
    return (nll * w).sum() / w.sum()


def distillation_loss(logits: Tensor, teacher_logits: Tensor, temperature: float = 2.0) -> Tensor:
    """Knowledge distillation (Hinton et al., 2015): ``T² · KL(softmax(t / T) ‖ softmax(s / T))``,
    averaged over the boxes (scalar).

    ``logits`` ``[K, C]`` the student's, ``teacher_logits`` ``[K, C]`` the teacher's (for an
    ensemble, the log of its mean probabilities), ``temperature`` ``T > 0``: above 1 it softens
    both distributions so that the teacher's ranking of the wrong classes (a kneeling person looks
    more like crouching than walking) carries weight; the ``T²`` keeps the gradient's scale
    independent of ``T``. No gradient flows into the teacher. ``K = 0`` gives a zero that still
    depends on ``logits``.
    """
    if logits.shape != teacher_logits.shape or logits.dim() != 2:
        raise ValueError(
            f"expected student and teacher logits of one shape [K, C], got {list(logits.shape)} "
            f"and {list(teacher_logits.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    log_p = F.log_softmax(logits.float() / temperature, dim=1)
    log_q = F.log_softmax(teacher_logits.detach().float() / temperature, dim=1)
    kl = (log_q.exp() * (log_q - log_p)).sum(dim=1)
    return kl.mean() * temperature**2


def class_groups(names: Sequence[str], separator: str = "-") -> list[int]:
    """Group index of each class name: the part before ``separator`` (``"lying down-lying with risk"``
    → ``"lying down"``); groups are numbered in order of first appearance."""
    order: dict[str, int] = {}
    return [order.setdefault(n.split(separator, 1)[0], len(order)) for n in names]


def class_weights_from_counts(
    counts: Sequence[int] | Tensor,
    scheme: Literal["inverse", "sqrt_inverse", "effective"] = "inverse",
    beta: float = 0.999,
) -> Tensor:
    """Per-class loss weights from training-set class counts, normalised to mean 1.

    Schemes (``n_c`` = count of class ``c``):

    * ``"inverse"``: ``1 / n_c``;
    * ``"sqrt_inverse"``: ``1 / sqrt(n_c)``;
    * ``"effective"``: ``(1 - beta) / (1 - beta ** n_c)`` (Cui et al. 2019, "Class-Balanced Loss
      Based on Effective Number of Samples").

    The weights are then scaled so that they sum to ``C`` (mean 1), as in Cui et al. A count of
    zero is treated as one (the class has no positive targets, so its weight only matters for the
    negatives of sigmoid losses).

    Returns:
        ``Tensor[C]`` float32.
    """
    n = torch.as_tensor(counts, dtype=torch.float64).flatten()
    if n.numel() == 0:
        raise ValueError("counts is empty")
    if bool((n < 0).any()) or not bool(torch.isfinite(n).all()):
        raise ValueError(f"counts must be finite and >= 0, got {n.tolist()}")
    n = n.clamp(min=1.0)
    if scheme == "inverse":
        w = 1.0 / n
    elif scheme == "sqrt_inverse":
        w = 1.0 / n.sqrt()
    elif scheme == "effective":
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        # 1 - beta**n computed as -expm1(n * log(beta)) for accuracy when beta is close to 1.
        w = (1.0 - beta) / (-torch.expm1(n * math.log(beta))) if beta > 0 else torch.ones_like(n)
    else:
        raise ValueError(
            f"unknown class-weight scheme {scheme!r}; use 'inverse', 'sqrt_inverse' or 'effective'"
        )
    w = w * (n.numel() / w.sum())
    return w.to(torch.float32)


class ActionLoss(nn.Module):
    """Loss module selecting one of the functions above.

    Args:
        kind: ``"ce"`` (softmax cross-entropy, default), ``"focal"`` (softmax focal), ``"bce"``
            (sigmoid BCE, multi-label) or ``"sigmoid_focal"``.
        class_weights: optional ``[C]`` per-class weights (kept as a buffer so ``.to()`` moves it).
        label_smoothing: for ``"ce"`` only.
        gamma: focusing parameter of the focal losses.
        alpha: ``alpha`` of ``"sigmoid_focal"`` (None disables it).
        ignore_index: target index ignored by the single-label losses.
        groups: ``[C]`` group of each class (:func:`class_groups`), for ``group_weight``.
        group_weight: weight of :func:`group_nll_loss` added to a single-label loss (0: none).

    ``forward(logits [K, C], targets)`` with ``targets`` ``[K]`` int for ``"ce"``/``"focal"`` and
    multi-hot ``[K, C]`` for ``"bce"``/``"sigmoid_focal"``; returns a scalar (mean reduction).
    """

    class_weights: Tensor | None
    groups: Tensor | None

    def __init__(
        self,
        kind: LossKind = "ce",
        class_weights: Tensor | Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        gamma: float = 2.0,
        alpha: float | None = 0.25,
        ignore_index: int = -100,
        groups: Sequence[int] | None = None,
        group_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if kind not in ("ce", "focal", "bce", "sigmoid_focal"):
            raise ValueError(f"unknown loss kind {kind!r}; use 'ce', 'focal', 'bce' or 'sigmoid_focal'")
        if label_smoothing and kind != "ce":
            raise ValueError(f"label_smoothing is only supported by kind='ce', not {kind!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.kind: LossKind = kind
        self.label_smoothing = label_smoothing
        self.gamma = gamma
        self.alpha = alpha
        self.ignore_index = ignore_index
        weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights)
        if group_weight and (groups is None or kind not in ("ce", "focal")):
            raise ValueError("group_weight needs groups and a single-label loss ('ce' or 'focal')")
        self.group_weight = float(group_weight)
        self.register_buffer("groups", None if groups is None else torch.as_tensor(groups, dtype=torch.int64))

    @property
    def multi_label(self) -> bool:
        """True for the sigmoid losses (multi-hot targets)."""
        return self.kind in ("bce", "sigmoid_focal")

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        w = self.class_weights
        if self.kind in ("ce", "focal"):
            if self.kind == "ce":
                loss = cross_entropy_loss(logits, targets, w, self.label_smoothing, self.ignore_index)
            else:
                loss = softmax_focal_loss(logits, targets, self.gamma, w, self.ignore_index)
            if self.group_weight and self.groups is not None:
                loss = loss + self.group_weight * group_nll_loss(
                    logits, targets, self.groups, w, self.ignore_index
                )
            return loss
        if self.kind == "bce":
            return sigmoid_bce_loss(logits, targets, w)
        return sigmoid_focal_loss(logits, targets, self.gamma, self.alpha, w)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, gamma={self.gamma}, alpha={self.alpha}, label_smoothing={self.label_smoothing}"
