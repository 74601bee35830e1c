"""Loaded checkpoints compute what the source's own code computes (not just: every key loads).

``reference/*_reference.pt`` hold outputs of the sources' own networks (AlphAction's SlowFast
backbone code, PyTorchVideo's ``slowfast_r50`` / ``slowfast_r50_detection``) for weights made by a
rule written in each file and a fixed input; ``benchmarks/reference/make_references.py`` made
them (every 8th output channel at every position, the mean of every channel, ``max |output|``).
Each test regenerates the weights by the rule, writes them in the source's checkpoint layout,
loads the file the way a user does (``model.pretrained=FILE``) and compares. The tolerance is
relative to ``max |output|``: float32 kernels differ in their last bits between machines, the
architecture errors this guards against give 1e-2 and more.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from thermact.config import build_config
from thermact.errors import CheckpointError, ConfigError
from thermact.models.factory import ModelConfig, build_model
from thermact.models.pretrained import load_pretrained, open_checkpoint, read_layout
from thermact.models.slowfast import SlowFast
from thermact.tasks.action import ActionRunConfig

REFERENCE = Path(__file__).parent / "reference"
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TOLERANCE = 1e-4  # relative to max |output|
WeightRule = Callable[[dict[str, list[int]], list[str]], dict[str, Tensor]]  # the weights_by_rule fixture


@functools.cache
def _reference(name: str) -> dict[str, Any]:
    ref: dict[str, Any] = torch.load(REFERENCE / f"{name}_reference.pt", weights_only=True)
    return ref


def _pathways(alpha: int) -> list[Tensor]:
    """The rule's input: grey clip [1, 1, 32, 64, 96]; slow = fast[:, :, ::alpha] as the sources got it."""
    fast = torch.randn(1, 1, 32, 64, 96, generator=torch.Generator().manual_seed(1))
    return [fast[:, :, ::alpha], fast]


@pytest.fixture()
def flush_denormals() -> Iterator[None]:
    flushed = torch.set_flush_denormal(True)  # rule weights make denormals, slow on CPU
    yield
    if flushed:
        torch.set_flush_denormal(False)


def _errors(outputs: list[Tensor], ref: dict[str, Any]) -> dict[str, float]:
    """Largest deviation from the reference over the kept values, relative to ``max |output|``."""
    step = ref["channel_step"]
    errors = {}
    for name, out in zip(("slow_out", "fast_out"), outputs, strict=True):
        assert list(out.shape) == ref[f"{name}_shape"]
        scale = ref[f"{name}_max_abs"]
        every = (out[:, ::step] - ref[f"{name}_every{step}"]).abs().max() / scale
        means = (out.double().mean(dim=(2, 3, 4)).float() - ref[f"{name}_channel_mean"]).abs().max() / scale
        errors[name] = max(float(every), float(means))
    return errors


def _alphaction_checkpoint(depth: int, path: Path, weights_by_rule: WeightRule) -> Path:
    """AlphAction's checkpoint layout: ``{"model": {"module.backbone.<key>": tensor}, "iteration": ..}``."""
    ref = _reference(f"alphaction_slowfast_r{depth}")
    weights = weights_by_rule(ref["keys"], ref["bn_keys"])
    torch.save({"model": {f"module.backbone.{k}": v for k, v in weights.items()}, "iteration": 90000}, path)
    return path


def _run(backbone: torch.nn.Module, alpha: int) -> list[Tensor]:
    with torch.no_grad():
        out: list[Tensor] = backbone.eval()(_pathways(alpha))
    return out


# --------------------------------------------------------------------------- AlphAction


def test_alphaction_reference_keys_are_the_published_layout() -> None:
    for depth, layout in ((50, "alphaction_slowfast_r50_4x16"), (101, "alphaction_slowfast_r101_8x8")):
        ref = _reference(f"alphaction_slowfast_r{depth}")
        published = read_layout(layout)["backbone"]
        assert {f"backbone.{k}": v for k, v in ref["keys"].items()} == published
        assert ref["alpha"] == read_layout(layout)["alpha"]


def _alphaction_as_a_user_loads_it(
    depth: int, tmp_path: Path, weights_by_rule: WeightRule
) -> tuple[Path, SlowFast]:
    """The shipped config of that depth with ``model.pretrained=FILE``, nothing else set."""
    path = _alphaction_checkpoint(depth, tmp_path / f"alphaction_r{depth}.pth", weights_by_rule)
    config = CONFIGS / ("slowfast_r50_4x16.yaml" if depth == 50 else "slowfast_r101_8x8.yaml")
    cfg = build_config(ActionRunConfig, config, [f"model.pretrained={path}"])
    backbone = build_model(cfg.model, cfg.clip, verbose=False).backbone
    assert isinstance(backbone, SlowFast) and backbone.stem_pool_padding == 0
    return path, backbone


@pytest.mark.usefixtures("flush_denormals")
def test_alphaction_r50_4x16_computes_alphactions_function(
    tmp_path: Path, weights_by_rule: WeightRule
) -> None:
    path, backbone = _alphaction_as_a_user_loads_it(50, tmp_path, weights_by_rule)
    ref = _reference("alphaction_slowfast_r50")
    errors = _errors(_run(backbone, ref["alpha"]), ref)
    assert max(errors.values()) <= TOLERANCE, errors

    # The same weights with the PySlowFast stem (max pool padded by 1): the loader refuses the
    # model, and forced in, they compute something else - the error this test exists for.
    with torch.device("meta"):  # no initialisation: the weights are copied in below
        padded = SlowFast(depth=50, alpha=8, fusion_style="conv_bias", frozen_bn=True, stem_pool_padding=1)
    padded.to_empty(device="cpu")
    with pytest.raises(CheckpointError, match=r"stem_pool_padding: model 1, checkpoint 0"):
        load_pretrained(padded, path)
    padded.load_state_dict(backbone.state_dict())
    wrong = _errors(_run(padded, ref["alpha"]), ref)
    assert min(wrong.values()) > 1e-2, wrong


@pytest.mark.slow
@pytest.mark.usefixtures("flush_denormals")
def test_alphaction_r101_8x8_computes_alphactions_function(
    tmp_path: Path, weights_by_rule: WeightRule
) -> None:
    _, backbone = _alphaction_as_a_user_loads_it(101, tmp_path, weights_by_rule)
    ref = _reference("alphaction_slowfast_r101")
    errors = _errors(_run(backbone, ref["alpha"]), ref)
    assert max(errors.values()) <= TOLERANCE, errors


def test_alphaction_architecture_set_against_the_checkpoint_is_refused(
    tmp_path: Path, weights_by_rule: WeightRule
) -> None:
    path = _alphaction_checkpoint(50, tmp_path / "alphaction_r50.pth", weights_by_rule)
    cfg = ModelConfig(name="slowfast_r50_4x16", num_frames=32, pretrained=str(path), stem_pool_padding=1)
    with pytest.raises(
        ConfigError, match=r"'model\.stem_pool_padding': 1.*set model\.stem_pool_padding=auto \(or 0\)"
    ):
        build_model(cfg, verbose=False)
    cfg = ModelConfig(
        name="slowfast_r50_4x16", num_frames=32, pretrained=str(path), fusion_style="conv_bn_relu"
    )
    with pytest.raises(ConfigError, match=r"'model\.fusion_style'.*AlphAction.*=auto \(or 'conv_bias'\)"):
        build_model(cfg, verbose=False)


# --------------------------------------------------------------------------- PyTorchVideo


def _pytorchvideo_checkpoint(name: str, path: Path, weights_by_rule: WeightRule) -> Path:
    """PyTorchVideo's hub checkpoint layout: ``{"model_state": state_dict}``."""
    ref = _reference(f"pytorchvideo_{name}")
    torch.save({"model_state": weights_by_rule(ref["keys"], ref["bn_keys"])}, path)
    return path


def test_pytorchvideo_reference_keys_are_the_published_layouts() -> None:
    for name in ("slowfast_r50", "slowfast_r50_detection"):
        layout = read_layout(f"pytorchvideo_{name}")
        assert _reference(f"pytorchvideo_{name}")["keys"] == {**layout["backbone"], **layout["head"]}


@pytest.mark.usefixtures("flush_denormals")
def test_pytorchvideo_slowfast_r50_detection_computes_pytorchvideos_function(
    tmp_path: Path, weights_by_rule: WeightRule
) -> None:
    path = _pytorchvideo_checkpoint(
        "slowfast_r50_detection", tmp_path / "SLOWFAST_8x8_R50_DETECTION.pyth", weights_by_rule
    )
    model = build_model(
        ModelConfig(name="slowfast_r50_8x8", num_frames=32, pretrained=str(path)), verbose=False
    )
    ref = _reference("pytorchvideo_slowfast_r50_detection")
    errors = _errors(_run(model.backbone, ref["alpha"]), ref)
    assert max(errors.values()) <= TOLERANCE, errors
    # PyTorchVideo SlowFasts are 8x8 (alpha 4): the 4x16 model is refused, naming the key to set.
    with pytest.raises(ConfigError, match=r"model\.name.*alpha 4.*set model\.name=slowfast_r50_8x8"):
        build_model(ModelConfig(name="slowfast_r50_4x16", num_frames=32, pretrained=str(path)), verbose=False)


@pytest.mark.usefixtures("flush_denormals")
def test_pytorchvideo_slowfast_r50_computes_pytorchvideos_function(
    tmp_path: Path, weights_by_rule: WeightRule
) -> None:
    """The Kinetics classifier keeps res5 at stride 2: equal to a model built that way."""
    path = _pytorchvideo_checkpoint("slowfast_r50", tmp_path / "SLOWFAST_8x8_R50.pyth", weights_by_rule)
    classifier = SlowFast(depth=50, alpha=4, res5_stride=2, res5_dilation=1)
    report = load_pretrained(classifier, path)
    assert report.complete and not report.notes
    ref = _reference("pytorchvideo_slowfast_r50")
    errors = _errors(_run(classifier, ref["alpha"]), ref)
    assert max(errors.values()) <= TOLERANCE, errors

    # As a detection backbone (model.pretrained=FILE): the same tensors, res5 dilated instead of
    # strided (the Kinetics -> AVA transfer), said in the report.
    with torch.device("meta"):  # no initialisation: every tensor is loaded
        detector = SlowFast(depth=50, alpha=4)
    detector.to_empty(device="cpu")
    report = load_pretrained(detector, open_checkpoint(path))
    assert report.notes and "res5" in report.notes[0] and "stride 2" in report.notes[0]
    ours = detector.state_dict()
    assert sorted(report.loaded) == sorted(k for k in ours if not k.endswith("num_batches_tracked"))
    assert all(torch.equal(ours[k], classifier.state_dict()[k]) for k in report.loaded)
