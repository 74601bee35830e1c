"""Tests of thermact.models.info."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from thermact.models.factory import HeadConfig, ModelConfig, build_model
from thermact.models.info import detector_info, format_model_info, model_info, temporal_receptive_field
from thermact.models.person_detector import DetectorModelConfig, build_detector


def _conv_linear_macs(cfg: ModelConfig, clip: torch.Tensor, rois: torch.Tensor) -> int:
    """Independent MAC count: out.numel() * in/groups * prod(kernel) per conv, in*out per linear row."""
    model = build_model(cfg).eval()
    total = 0

    def hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv3d):
            k = m.kernel_size[0] * m.kernel_size[1] * m.kernel_size[2]
            total += out.numel() * (m.in_channels // m.groups) * k
        elif isinstance(m, nn.Linear):
            total += inp[0].shape[0] * m.in_features * m.out_features

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv3d, nn.Linear))
    ]
    with torch.no_grad():
        model(clip, rois)
    for h in handles:
        h.remove()
    return total


def test_model_info_thermal_net_s() -> None:
    cfg = ModelConfig(name="thermal_net_s", head=HeadConfig(mlp_dim=256))
    info = model_info(cfg, batch_size=2, frame_spacing_s=2.7 / 16)  # the preset's 16 frames over 2.7 s
    model = build_model(cfg)
    assert info.total_params == sum(p.numel() for p in model.parameters())
    assert info.backbone_params == 431_920
    assert info.head_params == 128 * 256 + 256 + 256 * 256 + 256 + 256 * 14 + 14
    assert info.trainable_params == info.total_params
    assert info.input_shape == (2, 1, 16, 40, 60) and info.backbone_input_shape == (2, 1, 16, 40, 60)
    assert info.num_rois == 4 and info.output_shape == (4, 14)
    clip = torch.zeros(2, 1, 16, 40, 60)
    rois = torch.tensor([[0.0, 0.0, 10.0, 12.0, 26.0]] * 4)
    expected = _conv_linear_macs(cfg, clip, rois)
    # FlopCounterMode also counts RoIAlign's matmuls: a tiny excess (< 0.1 %)
    assert expected <= info.macs <= expected * 1.001
    assert 0.70e9 < info.macs_per_clip < 0.72e9
    assert [name for name, _ in info.stages] == ["stem", "stages.0", "stages.1", "stages.2", "dropout"]
    assert info.stages[2][1] == [(2, 64, 8, 10, 15)]
    assert info.receptive_field_frames == 27
    assert info.receptive_field_s == pytest.approx(27 * 2.7 / 16)
    text = format_model_info(info)
    assert (
        "27 frames = 4.56 s (0.169 s per clip frame; the clip: 16 frames = 2.70 s)" in text
        and "stages.2" in text
        and "[2, 128, 8, 10, 15]" in text
    )


def test_receptive_field_probe_sees_zero_initialised_branches() -> None:
    class Toy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv3d(1, 2, (5, 1, 1), padding=(4, 0, 0), dilation=(2, 1, 1))
            self.bn = nn.BatchNorm3d(2)
            nn.init.zeros_(self.bn.weight)  # as SlowFast's zero-init of the last BN of a block

        def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
            return [xs[0] + self.bn(self.conv(xs[0])).sum(1, keepdim=True)]

    assert temporal_receptive_field(Toy(), (1,), frame_size=(2, 2), start_frames=8) == 9


def test_model_info_counts_the_box_cues() -> None:
    cfg = ModelConfig(name="thermal_net_t", num_frames=8, head=HeadConfig(mlp_dim=64, box_cues=True))
    info = model_info(cfg)
    plain = model_info(ModelConfig(name="thermal_net_t", num_frames=8, head=HeadConfig(mlp_dim=64)))
    cues = 2 * 12 + 12 * 32 + 32  # BatchNorm1d(12) + Linear(12, 32)
    assert info.cue_params == cues and plain.cue_params == 0
    assert info.head_params == plain.head_params + 32 * 64  # the MLP's first layer takes 32 more inputs
    assert info.total_params == info.backbone_params + info.head_params + cues
    assert f"box cues {cues:,}" in format_model_info(info) and "box cues" not in format_model_info(plain)


def test_detector_info_person_detector_t() -> None:
    info = detector_info(DetectorModelConfig(name="person_detector_t", num_frames=3), frame_spacing_s=0.5 / 3)
    model = build_detector(DetectorModelConfig(name="person_detector_t"))
    assert info.total_params == sum(p.numel() for p in model.parameters()) == 107_198
    heads = (model.heatmap_head, model.size_head, model.offset_head)
    assert info.head_params == sum(p.numel() for h in heads for p in h.parameters())
    # the fusion conv alone: 3 frames x 3x3 x 8 channels at every one of the 40 x 60 pixels
    assert info.macs > 3 * 9 * 8 * 40 * 60 and 20e6 < info.macs < 30e6
    assert info.output_shape == (1, 2, 20, 30) and info.spatial_stride == 2 and info.num_rois == 0
    assert info.receptive_field_frames == 3 and info.receptive_field_s == pytest.approx(0.5)
    assert [name for name, _ in info.stages][:3] == ["fuse", "fuse_bn", "relu"]
    assert "heatmap          [1, 2, 20, 30]" in format_model_info(info)
