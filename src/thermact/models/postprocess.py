"""Turning per-person logits into scores and labels.

``logits``/``scores`` are ``Tensor[K, C]`` (``K`` person boxes, ``C`` classes). Single-label models
(trained with softmax cross-entropy) use ``mode="softmax"``; multi-label ones (sigmoid BCE/focal)
use ``mode="sigmoid"``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["predict_labels", "scores_from_logits", "threshold_labels", "topk_labels"]

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
