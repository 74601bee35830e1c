"""Tests of thermact.models.postprocess."""

from __future__ import annotations

import math

import pytest
import torch

from thermact.models.postprocess import predict_labels, scores_from_logits, threshold_labels, topk_labels


def test_scores_from_logits_values() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    torch.testing.assert_close(
        scores_from_logits(logits, "softmax"), torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    )
    torch.testing.assert_close(scores_from_logits(logits, "sigmoid"), torch.tensor([[0.5, 0.75], [0.5, 0.5]]))
    assert scores_from_logits(torch.zeros(0, 3)).shape == (0, 3)
    with pytest.raises(ValueError, match="mode"):
        scores_from_logits(logits, "relu")  # type: ignore[arg-type]


def test_topk_and_thresholds() -> None:
    s = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.6]])
    v, i = topk_labels(s, 2)
    assert i.tolist() == [[1, 2], [2, 0]]
    torch.testing.assert_close(v, torch.tensor([[0.7, 0.2], [0.6, 0.5]]))
    assert topk_labels(s, 10)[1].shape == (2, 3)
    assert threshold_labels(s, 0.5).tolist() == [[False, True, False], [True, False, True]]
    per_class = torch.tensor([0.05, 0.8, 0.6])
    assert threshold_labels(s, per_class).tolist() == [[True, False, False], [True, False, True]]
    assert predict_labels(s, "softmax").tolist() == [[False, True, False], [False, False, True]]
    assert predict_labels(s, "sigmoid", 0.55).tolist() == [[False, True, False], [False, False, True]]
    with pytest.raises(ValueError, match="per-class"):
        threshold_labels(s, torch.ones(2))
