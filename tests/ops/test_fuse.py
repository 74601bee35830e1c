"""Tests of thermact.ops.fuse: BatchNorm folding gives the same outputs and leaves the input model alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from thermact.models.person_detector import person_detector_t
from thermact.models.thermal_net import thermal_net_t
from thermact.ops.fuse import fold_batchnorm, fuse_conv_bn


def _randomise_bn(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            assert m.running_mean is not None and m.running_var is not None
            m.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)


def test_fuse_conv_bn_matches_by_hand() -> None:
    conv = nn.Conv2d(1, 2, 1, bias=True)
    conv.weight.data = torch.tensor([[[[2.0]]], [[[-1.0]]]])
    conv.bias.data = torch.tensor([1.0, 0.0])
    bn = nn.BatchNorm2d(2, eps=0.0).eval()
    assert bn.running_mean is not None and bn.running_var is not None
    bn.running_mean.copy_(torch.tensor([1.0, 2.0]))
    bn.running_var.copy_(torch.tensor([4.0, 1.0]))
    bn.weight.data = torch.tensor([1.0, 3.0])
    bn.bias.data = torch.tensor([0.5, -1.0])
    fused = fuse_conv_bn(conv, bn)
    # channel 0: (2x + 1 - 1) / 2 + 0.5 = x + 0.5 ; channel 1: 3 (-x - 2) - 1 = -3x - 7
    assert fused.weight.flatten().tolist() == [1.0, -3.0]
    assert fused.bias is not None and fused.bias.tolist() == [0.5, -7.0]
    assert conv.weight.flatten().tolist() == [2.0, -1.0]  # inputs unchanged


@pytest.mark.parametrize(
    ("build", "shape", "folded"),
    [
        (person_detector_t, (3, 1, 3, 40, 60), 11),
        (thermal_net_t, (2, 1, 8, 40, 60), 15),
    ],
)
def test_fold_batchnorm_same_outputs_no_bn_left(
    build: type[nn.Module], shape: tuple[int, ...], folded: int
) -> None:
    torch.manual_seed(0)
    model = build().eval()
    _randomise_bn(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused, count = fold_batchnorm(model)
    assert count == folded
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    x = torch.randn(shape)
    with torch.no_grad():
        if isinstance(model, nn.Module) and hasattr(model, "stages"):
            a, b = model([x])[0], fused([x])[0]
        else:
            a, b = model(x).heatmap, fused(x).heatmap
    assert torch.allclose(a, b, atol=1e-4), float((a - b).abs().max())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # not modified


def test_only_direct_conv_bn_pairs_are_folded() -> None:
    seq = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(3 + 1)
    )
    fused, count = fold_batchnorm(seq)
    assert count == 1  # the BN after the ReLU stays
    assert isinstance(fused[2], nn.BatchNorm2d) and isinstance(fused[4], nn.Identity)
