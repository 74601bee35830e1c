"""Tests of thermact.models.factory."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from thermact.config import build_config
from thermact.errors import CheckpointError, ConfigError
from thermact.models.factory import (
    MODEL_NAMES,
    ModelConfig,
    build_backbone,
    build_model,
    resolve_model_config,
)
from thermact.models.pretrained import read_layout
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
        "slowfast_r50_8x8",
        "slowfast_r101_8x8",
    }
    r50_8x8 = build_backbone(ModelConfig(name="slowfast_r50_8x8", num_frames=32))
    assert r50_8x8.pathway_strides == (4, 1) and r50_8x8.depth == 50
    assert {r.stem_pool_padding for r in (r50, r101, r50_8x8)} == {1}  # auto without weights: PySlowFast's
    assert build_backbone(ModelConfig(name="slowfast_r50_4x16", stem_pool_padding=0)).stem_pool_padding == 0


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="alpha=8"):
        build_model(ModelConfig(name="slowfast_r50_4x16", num_frames=12))
    with pytest.raises(ConfigError, match="frozen_bn"):
        build_model(ModelConfig(name="thermal_net_s", frozen_bn=True))
    with pytest.raises(ConfigError, match="'model.stem_pool_padding': not supported by thermal_net_s"):
        build_model(ModelConfig(name="thermal_net_s", stem_pool_padding=0))
    with pytest.raises(ConfigError, match="'stem_pool_padding': 2 is not one of 'auto', 0, 1"):
        build_config(ModelConfig, None, ["stem_pool_padding=2"])
    with pytest.raises(CheckpointError, match="x.pth does not exist"):  # ThermalNet: a thermact pretrain file
        build_model(ModelConfig(name="thermal_net_s", pretrained="x.pth"))
    with pytest.raises(ConfigError, match="'name'"):
        build_config(ModelConfig, None, ["name=resnet"])
    with pytest.raises(ConfigError, match="num_classes"):
        build_config(ModelConfig, None, ["num_classes=0"])
    with pytest.raises(CheckpointError):
        build_model(
            ModelConfig(name="slowfast_r50_4x16", num_frames=32, pretrained=str(tmp_path / "none.pth"))
        )


def _layout_file(layout_name: str, path: Path) -> Path:
    """A checkpoint with the keys and shapes of a published layout (zeros, stored as one element each)."""
    layout = read_layout(layout_name)
    state = {
        k: torch.zeros(()).expand(shape) for k, shape in {**layout["backbone"], **layout["head"]}.items()
    }
    torch.save({layout["container"]: state}, path)
    return path


def test_resolve_model_config_takes_the_checkpoints_architecture(tmp_path: Path) -> None:
    """What a trained model's saved config must hold: rebuilt without the file, it is the same network."""
    alphaction = _layout_file("alphaction_slowfast_r50_4x16", tmp_path / "alphaction.pth")
    resolved = resolve_model_config(
        ModelConfig(name="slowfast_r50_4x16", num_frames=32, pretrained=str(alphaction))
    )
    assert (resolved.fusion_style, resolved.stem_pool_padding) == ("conv_bias", 0)
    rebuilt = build_backbone(dataclasses.replace(resolved, pretrained=None))
    assert rebuilt.fusion_style == "conv_bias" and rebuilt.stem_pool_padding == 0
    pyslowfast = _layout_file("pyslowfast_slowfast_8x8_r50", tmp_path / "pyslowfast.pyth")
    resolved = resolve_model_config(ModelConfig(name="slowfast_r50_8x8", pretrained=str(pyslowfast)))
    assert (resolved.fusion_style, resolved.stem_pool_padding) == ("conv_bn_relu", 1)
    with pytest.raises(
        ConfigError, match=r"SlowFast R50 with alpha 4 \(layout pyslowfast_slowfast_8x8_r50\)"
    ):
        resolve_model_config(ModelConfig(name="slowfast_r50_4x16", pretrained=str(pyslowfast)))
    unresolved = ModelConfig(name="slowfast_r50_4x16")
    assert resolve_model_config(unresolved) == dataclasses.replace(
        unresolved, fusion_style="conv_bn_relu", stem_pool_padding=1
    )
    assert resolve_model_config(ModelConfig(name="thermal_net_s")).stem_pool_padding == "auto"
