"""The weight average: its decay schedule and update, buffers included."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from thermact.engine.ema import WeightAverage, ema_decay_at


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))


def test_decay_is_lowered_for_the_first_steps() -> None:
    assert ema_decay_at(0.998, 1) == pytest.approx(2 / 11)
    assert ema_decay_at(0.998, 90) == pytest.approx(91 / 100)
    assert ema_decay_at(0.998, 10_000) == 0.998


def test_update_moves_weights_and_float_buffers_and_copies_counters() -> None:
    model = _net()
    avg = WeightAverage(model, 0.9)
    start = {k: v.clone() for k, v in avg.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()(torch.randn(4, 1, 5, 5))  # BatchNorm statistics and counter move
    avg.update(model, 1000)  # decay 0.9
    now, trained = avg.module.state_dict(), model.state_dict()
    for key in ("0.weight", "0.bias", "1.weight", "1.running_mean", "1.running_var"):
        assert torch.allclose(now[key], 0.9 * start[key] + 0.1 * trained[key], atol=1e-6), key
    assert int(now["1.num_batches_tracked"]) == 1 == int(trained["1.num_batches_tracked"])
    assert not any(p.requires_grad for p in avg.module.parameters()) and not avg.module.training
    assert all(p.requires_grad for p in model.parameters())  # the trained model is left alone


def test_the_first_update_mostly_follows_the_model() -> None:
    model = _net()
    avg = WeightAverage(model, 0.999)
    before = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    avg.update(model, 1)  # decay 2 / 11
    expected = before * (2 / 11) + (before + 1.0) * (9 / 11)
    assert torch.allclose(avg.module[0].weight, expected, atol=1e-6)


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_decay_outside_zero_one_is_refused(decay: float) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        WeightAverage(_net(), decay)
