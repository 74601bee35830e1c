"""thermact.ops.cpu_layout: temporal and spatial 3D convolutions computed as 2D ones give the 3D
convolution's values, in either memory format, and a laid-out model gives the model's results."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from thermact.data.clips import ClipConfig
from thermact.data.source import ThermalData
from thermact.models.factory import ModelConfig, build_model
from thermact.ops.cpu_layout import SpatialConv, TemporalConv, is_spatial, is_temporal, to_cpu_layout

pytestmark = pytest.mark.usefixtures("one_thread")

TEMPORAL = [
    dict(in_channels=6, out_channels=8, kernel_size=(3, 1, 1), padding=(1, 0, 0)),
    dict(
        in_channels=6, out_channels=8, kernel_size=(3, 1, 1), padding=(1, 0, 0), stride=(2, 1, 1), bias=False
    ),
    dict(
        in_channels=6, out_channels=4, kernel_size=(5, 1, 1), padding=(4, 0, 0), dilation=(2, 1, 1), groups=2
    ),
]
SPATIAL = [
    dict(in_channels=6, out_channels=8, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
    dict(
        in_channels=6, out_channels=8, kernel_size=(1, 3, 3), padding=(0, 1, 1), stride=(1, 2, 2), bias=False
    ),
    dict(in_channels=6, out_channels=9, kernel_size=(1, 7, 5), padding=(0, 3, 2), groups=3),
]


@pytest.mark.parametrize(
    ("kind", "settings"), [(TemporalConv, s) for s in TEMPORAL] + [(SpatialConv, s) for s in SPATIAL]
)
def test_the_2d_computation_equals_the_3d_convolution(kind: type[nn.Module], settings: dict) -> None:
    torch.manual_seed(0)
    conv = nn.Conv3d(**settings).eval()
    x = torch.randn(3, 6, 7, 9, 11)
    want = conv(x)
    fast = kind(conv)
    for memory_format in (torch.contiguous_format, torch.channels_last_3d):
        got = fast(x.contiguous(memory_format=memory_format))
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # channels-last in, channels-last out: the flattening was a view, not a copy
    assert fast(x.contiguous(memory_format=torch.channels_last_3d)).is_contiguous(
        memory_format=torch.channels_last_3d
    )


def test_only_convolutions_over_time_or_space_alone_are_rewritten() -> None:
    both = nn.Conv3d(4, 4, (3, 3, 3), padding=1)
    strided_in_time = nn.Conv3d(4, 4, (1, 3, 3), stride=(2, 1, 1))
    padded_in_space = nn.Conv3d(4, 4, (3, 1, 1), padding=(1, 1, 1))
    same = nn.Conv3d(4, 4, (3, 1, 1), padding="same")  # padding given by name: left as it is
    assert is_temporal(nn.Conv3d(4, 4, (3, 1, 1))) and is_spatial(nn.Conv3d(4, 4, (1, 3, 3)))
    assert not any(is_temporal(c) or is_spatial(c) for c in (both, strided_in_time, padded_in_space, same))
    with pytest.raises(ValueError, match="k x 1 x 1"):
        TemporalConv(both)
    with pytest.raises(ValueError, match="1 x kh x kw"):
        SpatialConv(strided_in_time)
    model = to_cpu_layout(
        nn.Sequential(
            both, nn.Conv3d(4, 4, (3, 1, 1)), nn.Conv3d(4, 4, (1, 3, 3)), nn.Conv3d(1, 4, (1, 3, 3))
        )
    )
    assert [type(m) for m in model] == [
        nn.Conv3d,
        TemporalConv,
        SpatialConv,
        nn.Conv3d,
    ]  # one input channel: kept
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize("name", ["thermal_net_t", "slowfast_r50_8x8"])
def test_laid_out_models_give_the_models_results_on_real_clips(name: str, real_data: ThermalData) -> None:
    torch.manual_seed(0)
    clip_cfg = ClipConfig(2.7, 8, "causal")
    model = build_model(ModelConfig(name=name, num_frames=8), clip_cfg, verbose=False).eval()
    rec = next(iter(real_data.recordings.values()))
    frames = np.asarray(rec.frames[40:56], dtype=np.float32)
    clips = torch.from_numpy((np.stack([frames[:8], frames[8:]])[:, None] - 20.0) / 3.0)
    rois = torch.tensor([[0, 10, 8, 24, 30], [1, 30, 5, 50, 20]], dtype=torch.float32)
    with torch.no_grad():
        want = model(clips, rois)
        laid_out = to_cpu_layout(model)
        got = laid_out(clips, rois)
    rewritten = sum(isinstance(m, (TemporalConv, SpatialConv)) for m in laid_out.modules())
    assert rewritten >= 10
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert float(want.std()) > 1e-3  # the comparison is not between constants
