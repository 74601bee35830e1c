"""Forward + backward of every shipped model under anomaly detection, and the in-place regression test.

The original bug class: an ``inplace=True`` activation (or an in-place update) overwrote a tensor
autograd had saved for backward, which fails with "one of the variables needed for gradient
computation has been modified by an inplace operation". ``set_detect_anomaly(True)`` makes such
failures (and NaN-producing backward functions) raise at the offending op.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from thermact.models.factory import MODEL_NAMES, HeadConfig, ModelConfig, build_model


def _tiny_inputs(name: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    gen = torch.Generator().manual_seed(0)
    if name.startswith("slowfast"):
        T, H, W = 8, 32, 32
    else:
        T, H, W = 8, 24, 32
    clip = torch.randn(2, 1, T, H, W, generator=gen)
    rois = torch.tensor(
        [[0.0, 2.0, 3.0, 14.0, 20.0], [1.0, 10.0, 4.0, 30.0, 22.0], [1.0, 0.0, 0.0, 8.0, 9.0]]
    )
    return clip, rois, T


def _check_backward(model: nn.Module, clip: torch.Tensor, rois: torch.Tensor) -> None:
    model.train()
    torch.manual_seed(1)
    with torch.autograd.set_detect_anomaly(True):
        logits = model(clip, rois)
        target = torch.tensor([0, 3, 1])
        loss = nn.functional.cross_entropy(logits, target) + logits.pow(2).mean()
        loss.backward()
    assert torch.isfinite(logits).all()
    missing = []
    for pname, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.grad is None or not bool(torch.isfinite(p.grad).all()):
            missing.append(pname)
    assert not missing, f"parameters without a finite gradient: {missing[:10]}"


def _no_inplace(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if getattr(m, "inplace", False)]


# SlowFast: one layout per fusion style, so that both lateral-connection variants are exercised.
_LAYOUTS = {
    "slowfast_r50_4x16": "pyslowfast_slowfast_4x16_r50",
    "slowfast_r101_8x8": "alphaction_slowfast_r101_8x8",
}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_backward_every_model(name: Any, tmp_path: Path) -> None:
    """Train-mode forward + backward under anomaly detection; SlowFast with pretrained-format weights.

    (One SlowFast backward per model keeps this file fast; random-init SlowFast runs the same graph.)
    """
    clip, rois, T = _tiny_inputs(name)
    if name in _LAYOUTS:
        model = _model_with_layout_weights(name, _LAYOUTS[name], T, tmp_path)
    else:
        model = build_model(ModelConfig(name=name, num_frames=T, head=_small_head()))
    _check_backward(model, clip, rois)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_no_module_is_inplace(name: Any) -> None:
    model = build_model(ModelConfig(name=name, num_frames=32 if name.startswith("slowfast") else 16))
    assert _no_inplace(model) == []


def test_inplace_detector_sees_an_inplace_module() -> None:
    # the regression check itself must be able to fail
    assert _no_inplace(nn.Sequential(nn.Linear(2, 2), nn.ReLU(inplace=True))) == ["1"]


def _small_head() -> Any:
    return HeadConfig(mlp_dim=64, dropout=0.5)


def _model_with_layout_weights(name: Any, layout: str, num_frames: int, tmp_path: Path) -> nn.Module:
    """Build ``name`` from a checkpoint with random tensors in the published ``layout``."""
    from thermact.models.pretrained import read_layout

    spec = read_layout(layout)
    gen = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}
    for key, shape in {**spec["backbone"], **spec["head"]}.items():
        if key.endswith(("running_var", "_riv")):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.05
    ckpt = tmp_path / ("weights.pth" if spec["source"] == "alphaction" else "weights.pyth")
    torch.save({spec["container"]: state}, ckpt)
    # fusion_style "auto" must pick conv_bias for AlphAction files (else the strict load fails)
    model = build_model(
        ModelConfig(name=name, num_frames=num_frames, pretrained=str(ckpt), head=_small_head()), verbose=False
    )
    # the weights really are the checkpoint's (the RGB stem kernel is summed over colours)
    stem_key = next(
        k for k in spec["backbone"] if k.endswith(("slow.conv1.weight", "pathway0_stem.conv.weight"))
    )
    stem = dict(model.named_parameters())["backbone.s1.pathway0_stem.conv.weight"]
    torch.testing.assert_close(stem.detach(), state[stem_key].sum(dim=1, keepdim=True))
    return model


SHIPPED_CONFIGS = sorted(
    p
    for p in (Path(__file__).resolve().parents[2] / "configs").glob("*.yaml")
    if "task: detector" not in p.read_text()  # the person detector's backward: tests/detection
)


@pytest.mark.parametrize("config", SHIPPED_CONFIGS, ids=lambda p: p.stem)
def test_forward_backward_every_shipped_config(config: Path) -> None:
    """Each file in configs/ builds a model whose backward is clean (at a tiny input size)."""
    from thermact.config import build_config
    from thermact.tasks.action import ActionRunConfig

    cfg = build_config(ActionRunConfig, config, ["model.input_size=null"])
    assert cfg.model.name in MODEL_NAMES
    model = build_model(cfg.model, cfg.clip, verbose=False)
    clip, rois, _ = _tiny_inputs(cfg.model.name)
    _check_backward(model, clip, rois)
    assert not _no_inplace(model)


def test_shipped_configs_exist() -> None:
    assert {p.stem for p in SHIPPED_CONFIGS} >= {"thermal_net_s", "slowfast_r50_4x16", "slowfast_r101_8x8"}


def test_bf16_autocast_training_step_of_slowfast_r50_matches_fp32() -> None:
    """The CPU bf16 autocast graph of SlowFast R50 training: forward and backward run, and give the
    fp32 loss and gradient direction within bf16's precision.

    Frozen BN as in the shipped SlowFast configs: with batch statistics of a random network on this
    tiny clip, rounding the input to bf16 alone moves fp32 logits by a third, so no bf16 comparison
    could hold there.
    """
    clip, rois, T = _tiny_inputs("slowfast_r50_4x16")
    torch.manual_seed(0)
    cfg = ModelConfig(name="slowfast_r50_4x16", num_frames=T, frozen_bn=True, head=HeadConfig(dropout=0.0))
    model = build_model(cfg)
    model.train()
    target = torch.tensor([0, 3, 1])
    losses, grads = [], []
    for amp in (False, True):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            logits = model(clip, rois)
        loss = nn.functional.cross_entropy(logits.float(), target)
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert all(torch.isfinite(g).all() for g in grads) and grads[0].abs().sum() > 0
    assert abs(losses[1] - losses[0]) <= 0.05 * abs(losses[0])
    assert float(nn.functional.cosine_similarity(grads[0], grads[1], dim=0)) > 0.9
