"""CenterNet loss: hand values of the focal and L1 parts, and it trains."""

from __future__ import annotations

import math

import pytest
import torch

from thermact.models.person_detector import DetectorOutput
from thermact.models.person_loss import CenterNetLoss, focal_heatmap_loss, masked_l1
from thermact.models.person_targets import DetectionTargets

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread


def test_focal_hand_values() -> None:
    logits = torch.tensor([[[[0.0, 0.0]]]])  # p = 0.5 at both cells
    target = torch.tensor([[[[1.0, 0.5]]]])
    pos = -(0.5**2) * math.log(0.5)
    neg = -((1 - 0.5) ** 4) * 0.5**2 * math.log(0.5)
    assert float(focal_heatmap_loss(logits, target)) == pytest.approx(pos + neg)
    # no positive: divided by 1, not 0
    assert float(focal_heatmap_loss(logits[..., 1:], target[..., 1:])) == pytest.approx(neg)
    # a confident correct prediction costs almost nothing
    good = torch.tensor([[[[12.0, -12.0]]]])
    assert float(focal_heatmap_loss(good, torch.tensor([[[[1.0, 0.0]]]]))) < 1e-6


def test_masked_l1_only_at_centres() -> None:
    pred = torch.zeros(1, 2, 2, 2)
    target = torch.ones(1, 2, 2, 2) * 3
    mask = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert float(masked_l1(pred, target, mask)) == pytest.approx(6.0)  # two coordinates x 3, one centre
    assert float(masked_l1(pred, target, torch.zeros(1, 2, 2))) == 0.0


def test_total_is_weighted_sum_and_decreases() -> None:
    torch.manual_seed(0)
    heat = torch.zeros(1, 2, 4, 4)
    heat[0, 0, 1, 2] = 1.0
    mask = torch.zeros(1, 4, 4)
    mask[0, 1, 2] = 1.0
    tgt = DetectionTargets(heat, torch.full((1, 2, 4, 4), 2.0), torch.full((1, 2, 4, 4), 0.25), mask)
    params = [torch.zeros(1, 2, 4, 4, requires_grad=True) for _ in range(3)]
    loss_fn = CenterNetLoss(size_weight=0.5, offset_weight=2.0)
    out = DetectorOutput(*params)
    total, parts = loss_fn(out, tgt)
    assert parts["size"] == pytest.approx(4.0) and parts["offset"] == pytest.approx(0.5)
    assert float(total.detach()) == pytest.approx(parts["heatmap"] + 0.5 * 4.0 + 2.0 * 0.5, rel=1e-6)
    opt = torch.optim.Adam(params, lr=0.1)
    first = float(total.detach())
    for _ in range(50):
        opt.zero_grad()
        loss, _ = loss_fn(DetectorOutput(*params), tgt)
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.2 * first
