"""Tests of thermact.models.factory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from thermact.config import build_config
from thermact.errors import CheckpointError, ConfigError
from thermact.models.factory import MODEL_NAMES, ModelConfig, build_backbone, build_model
from thermact.models.thermal_net import ThermalNet


def test_build_thermal_net_detector_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "name: thermal_net_s\nnum_classes: 5\ninput_size: [80, 120]\nhead:\n  mlp_dim: 32\n  roi_size: 5\n"
    )
    cfg = build_config(ModelConfig, path, ["head.dropout=0.1"])
    assert cfg.input_size == (80, 120) and cfg.head.dropout == 0.1
    model = build_model(cfg)
    assert isinstance(model.backbone, ThermalNet)
    assert model.head.spatial_scale == 0.25 and model.head.roi_size == 5 and model.head.num_classes == 5
    assert model.head.mlp[2].p == 0.1
    assert model.input_size == (80, 120)
    assert model(torch.zeros(1, 1, 8, 40, 60), torch.tensor([[0.0, 1.0, 1.0, 9.0, 9.0]])).shape == (1, 5)


def test_slowfast_backbones_and_fusion_style() -> None:
    r50 = build_backbone(ModelConfig(name="slowfast_r50_4x16", num_frames=32))
    assert r50.pathway_strides == (8, 1) and r50.spatial_stride == 16 and r50.out_channels == (2048, 256)
    r101 = build_backbone(ModelConfig(name="slowfast_r101_8x8", num_frames=32, fusion_style="conv_bias"))
    assert r101.pathway_strides == (4, 1) and r101.fusion_style == "conv_bias"
    assert r50.fusion_style == "conv_bn_relu"
    assert set(MODEL_NAMES) == {
        "thermal_net_t",
        "thermal_net_s",
        "thermal_net_m",
        "slowfast_r50_4x16",
        "slowfast_r101_8x8",
    }


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="alpha=8"):
        build_model(ModelConfig(name="slowfast_r50_4x16", num_frames=12))
    with pytest.raises(ConfigError, match="frozen_bn"):
        build_model(ModelConfig(name="thermal_net_s", frozen_bn=True))
    with pytest.raises(ConfigError, match="no pretrained weights"):
        build_model(ModelConfig(name="thermal_net_s", pretrained="x.pth"))
    with pytest.raises(ConfigError, match="'name'"):
        build_config(ModelConfig, None, ["name=resnet"])
    with pytest.raises(ConfigError, match="num_classes"):
        build_config(ModelConfig, None, ["num_classes=0"])
    with pytest.raises(CheckpointError):
        build_model(
            ModelConfig(name="slowfast_r50_4x16", num_frames=32, pretrained=str(tmp_path / "none.pth"))
        )
