"""PersonDetectorNet: shapes, initial values, size budget, causal input, backward under anomaly detection."""

from __future__ import annotations

import math

import pytest
import torch

from thermact.models.person_detector import (
    PersonDetectorNet,
    count_parameters,
    person_detector_s,
    person_detector_t,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread


@pytest.mark.parametrize("factory", [person_detector_s, person_detector_t])
def test_shapes_and_initial_outputs(factory: type[PersonDetectorNet]) -> None:
    torch.manual_seed(0)
    net = factory().eval()
    out = net(torch.randn(2, 1, 3, 40, 60))
    assert out.heatmap.shape == (2, 2, 20, 30)
    assert out.size.shape == (2, 2, 20, 30) and out.offset.shape == (2, 2, 20, 30)
    assert net.stride == 2
    # the heatmap starts near the CenterNet prior 0.1, sizes near 10 px
    assert float(torch.sigmoid(out.heatmap.detach()).mean()) == pytest.approx(0.1, abs=0.05)
    assert float(out.size.detach().mean()) == pytest.approx(math.log(10), abs=0.5)
    assert count_parameters(net) < 500_000


def test_variant_sizes() -> None:
    assert count_parameters(person_detector_s()) == 231_862
    assert count_parameters(person_detector_t()) == 107_198


def test_uses_every_frame_and_rejects_wrong_length() -> None:
    torch.manual_seed(0)
    net = PersonDetectorNet(num_frames=3).eval()
    x = torch.randn(1, 1, 3, 40, 60)
    y = x.clone()
    y[:, :, 0] += 1.0  # change the oldest frame only
    assert not torch.allclose(net(x).heatmap, net(y).heatmap)
    with pytest.raises(ValueError, match=r"\[B, C, 3, H, W\]"):
        net(torch.randn(1, 1, 4, 40, 60))


def test_backward_under_anomaly_detection() -> None:
    torch.manual_seed(0)
    net = person_detector_s().train()
    with torch.autograd.set_detect_anomaly(True):
        out = net(torch.randn(2, 1, 3, 40, 60))
        (out.heatmap.sum() + out.size.pow(2).sum() + out.offset.abs().sum()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert not any(getattr(m, "inplace", False) for m in net.modules())
