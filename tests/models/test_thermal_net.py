"""Tests of thermact.models.thermal_net."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from thermact.models.info import temporal_receptive_field
from thermact.models.thermal_net import (
    Conv2Plus1dBlock,
    ThermalNet,
    thermal_net_m,
    thermal_net_s,
    thermal_net_t,
)


@pytest.mark.parametrize(
    ("factory", "channels", "rf"),
    [(thermal_net_t, 64, 27), (thermal_net_s, 128, 27), (thermal_net_m, 192, 35)],
)
def test_factories_shapes_params_and_rf(factory: type[ThermalNet], channels: int, rf: int) -> None:
    net = factory()
    assert net.out_channels == (channels,)
    assert net.spatial_stride == 4
    assert net.pathway_strides == (1,)
    assert sum(p.numel() for p in net.parameters()) < 2_000_000
    (y,) = net([torch.randn(2, 1, 16, 40, 60)])
    assert y.shape == (2, channels, 8, 10, 15)
    assert net.temporal_receptive_field() == rf
    # >= 15 frames = 2.5 s at 6 fps, as required for the thermal data
    assert rf >= 15


def test_thermal_net_s_parameter_count() -> None:
    assert sum(p.numel() for p in thermal_net_s().parameters()) == 431_920


def test_thermal_net_t_is_a_quarter_of_s() -> None:
    """The live variant: half the widths everywhere, so about a quarter of the parameters (and MACs)."""
    t, s = thermal_net_t(), thermal_net_s()
    assert sum(p.numel() for p in t.parameters()) == 108_568
    widths = [m.out_channels for m in t.modules() if isinstance(m, nn.Conv3d)]
    assert widths == [m.out_channels // 2 for m in s.modules() if isinstance(m, nn.Conv3d)]


def test_analytic_rf_matches_gradient_measurement() -> None:
    torch.manual_seed(0)
    net = ThermalNet(
        widths=(8, 16),
        depths=(2, 1),
        spatial_strides=(2, 1),
        temporal_strides=(2, 1),
        temporal_dilations=(3, 2),
        temporal_kernel=5,
        stem_widths=(4, 8),
        stem_stride=1,
    )
    # stem 5; stage0: block0 d3 -> +12 (jump 1, then 2), block1 d3 -> +24; stage1 d2 jump 2 -> +16
    assert net.temporal_receptive_field() == 5 + 12 + 24 + 16
    assert temporal_receptive_field(net, (1,), frame_size=(8, 8)) == 57
    assert temporal_receptive_field(thermal_net_s(), (1,), frame_size=(16, 16)) == 27


def test_block_with_zero_temporal_conv_is_relu_of_input() -> None:
    block = Conv2Plus1dBlock(4, 4, temporal_dilation=2).eval()
    assert isinstance(block.shortcut, nn.Identity)
    nn.init.zeros_(block.conv_t.weight)
    x = torch.randn(2, 4, 5, 3, 3)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_block_downsampling_shortcut_shapes() -> None:
    block = Conv2Plus1dBlock(4, 8, spatial_stride=2, temporal_stride=2)
    assert not isinstance(block.shortcut, nn.Identity)
    assert block(torch.randn(1, 4, 7, 9, 10)).shape == (1, 8, 4, 5, 5)


def test_centre_output_ignores_frames_outside_rf() -> None:
    torch.manual_seed(0)
    net = thermal_net_s().eval()
    x = torch.randn(1, 1, 64, 40, 60)
    with torch.no_grad():
        y = net([x])[0][:, :, 16]  # output frame 16 <-> input frames ~32 +- 13
        x2 = x.clone()
        x2[:, :, :17] = 5.0  # frames 0..16 lie outside [32 - 14, 32 + 14]
        x2[:, :, 48:] = -5.0
        y2 = net([x2])[0][:, :, 16]
        x3 = x.clone()
        x3[:, :, 32] = 5.0
        y3 = net([x3])[0][:, :, 16]
    torch.testing.assert_close(y, y2)
    assert not torch.allclose(y, y3)


def test_input_validation() -> None:
    net = thermal_net_s()
    with pytest.raises(ValueError, match="one pathway"):
        net([torch.zeros(1, 1, 4, 8, 8), torch.zeros(1, 1, 4, 8, 8)])
    with pytest.raises(ValueError, match=r"\[B, 1, T, H, W\]"):
        net([torch.zeros(1, 3, 4, 8, 8)])
    with pytest.raises(ValueError, match="odd"):
        ThermalNet(temporal_kernel=4)
    with pytest.raises(ValueError, match="same length"):
        ThermalNet(depths=(1, 1))


def test_dropout_only_in_train_mode() -> None:
    torch.manual_seed(0)
    net = thermal_net_s(dropout=0.5)
    x = torch.randn(2, 1, 8, 16, 16)
    net.eval()
    with torch.no_grad():
        a, b = net([x])[0], net([x])[0]
    torch.testing.assert_close(a, b)
    net.train()
    with torch.no_grad():
        c = net([x])[0]
    assert float((c == 0).float().mean()) > float((a == 0).float().mean()) + 0.2
