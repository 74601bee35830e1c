"""Tests for thermact.models.pretrained.

Nothing can be downloaded, so the checkpoints are built here in each source's exact key layout
and tensor shapes, as written down in ``thermact/models/layouts/*.json`` (RGB stems included).
"""

from __future__ import annotations

import argparse
import functools
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thermact.errors import CheckpointError
from thermact.models.pretrained import (
    SOURCE_FACTS,
    Remapped,
    adapt_input_channels,
    architecture_mismatches,
    available_layouts,
    detect_source,
    identify_architecture,
    load_pretrained,
    match_state_dict,
    pad_temporal_kernels,
    read_layout,
    remap_key,
    remap_state_dict,
)
from thermact.models.slowfast import FusionStyle, SlowFast

ALL_LAYOUTS = [
    "alphaction_ia_dense_serial_r101_8x8",
    "alphaction_slowfast_r101_8x8",
    "alphaction_slowfast_r50_4x16",
    "pyslowfast_caffe2_slowfast_16x8_r101_50_50",
    "pyslowfast_caffe2_slowfast_4x16_r50",
    "pyslowfast_slowfast_4x16_r50",
    "pyslowfast_slowfast_8x8_r50",
    "pytorchvideo_slowfast_r101",
    "pytorchvideo_slowfast_r50",
    "pytorchvideo_slowfast_r50_detection",
]


@functools.cache
def _initial_state(depth: int, alpha: int, fusion_style: FusionStyle, in_chans: int) -> dict[str, Tensor]:
    torch.manual_seed(0)
    return SlowFast(depth=depth, alpha=alpha, fusion_style=fusion_style, in_chans=in_chans).state_dict()


def _new_model(
    depth: int = 50,
    alpha: int = 8,
    fusion_style: FusionStyle = "conv_bn_relu",
    in_chans: int = 1,
    stem_pool_padding: int = 1,
) -> SlowFast:
    """A freshly initialised model (initial weights computed once per configuration, then copied)."""
    kwargs: dict[str, Any] = dict(depth=depth, alpha=alpha, fusion_style=fusion_style, in_chans=in_chans)
    with torch.device("meta"):
        model = SlowFast(**kwargs, stem_pool_padding=stem_pool_padding)
    model.to_empty(device="cpu")
    model.load_state_dict(_initial_state(depth, alpha, fusion_style, in_chans))  # the padding has no tensor
    return model


def _model_for(layout: dict[str, Any], in_chans: int = 1) -> SlowFast:
    """The model that computes the function of ``layout``'s source (its architecture facts)."""
    padding = SOURCE_FACTS[layout["source"]].stem_pool_padding
    return _new_model(layout["depth"], layout["alpha"], layout["fusion_style"], in_chans, padding)


def _tensors(layout: dict[str, Any], seed: int = 0) -> dict[str, Tensor]:
    """Random tensors for every layout key, as views into one shared storage (small files).

    Each key gets its own offset into the shared pool, so no two tensors hold the same values.
    """
    g = torch.Generator().manual_seed(seed)
    pool = torch.randn(4_000_000, generator=g) * 0.05
    positive = torch.rand(4_000_000, generator=g) + 0.5
    out = {}
    for i, (key, shape) in enumerate({**layout["backbone"], **layout["head"]}.items()):
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
            continue
        numel = int(np.prod(shape))
        src = positive if key.endswith(("running_var", "_riv")) else pool
        offset = (i * 7919) % (src.numel() - numel)
        out[key] = src[offset : offset + numel].view(shape)
    return out


def _write(layout: dict[str, Any], tensors: dict[str, Tensor], path: Path) -> Path:
    if layout["source"] == "pyslowfast_caffe2":
        # float16 keeps the (unshareable) pickled arrays small; the loader casts to float32.
        blobs: dict[str, Any] = {k: v.half().numpy() for k, v in tensors.items()}
        blobs["conv1_w_momentum"] = np.zeros((64, 3, 1, 7, 7), dtype=np.float32)
        blobs["lr"] = np.array([0.1], dtype=np.float32)
        blobs["model_iter"] = np.array([1000], dtype=np.int64)
        with path.open("wb") as handle:
            pickle.dump({"blobs": blobs}, handle, protocol=2)
    else:
        obj: dict[str, Any] = {layout["container"]: tensors}
        if layout["source"] == "pyslowfast":
            obj.update(epoch=196, cfg="MODEL:\n  ARCH: slowfast\n", optimizer_state={"state": {}})
        elif layout["source"] == "alphaction":
            obj.update(iteration=90000)
            obj[layout["container"]] = {"module." + k: v for k, v in tensors.items()}
        torch.save(obj, path)
    return path


def _meta_state(layout: dict[str, Any]) -> dict[str, Tensor]:
    items = {**layout["backbone"], **layout["head"]}
    return {k: torch.empty(shape, device="meta") for k, shape in items.items()}


# --------------------------------------------------------------------------- layout data


def test_available_layouts() -> None:
    assert available_layouts() == ALL_LAYOUTS


@pytest.mark.parametrize("name", [n for n in ALL_LAYOUTS if "_ia_" not in n])
def test_layout_maps_one_to_one_onto_our_state_dict(name: str) -> None:
    layout = read_layout(name)
    assert layout["name"] == name
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        model = SlowFast(depth=layout["depth"], alpha=layout["alpha"], fusion_style=layout["fusion_style"])
    ours = {k: v.shape for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    theirs = {k for k in layout["backbone"] if not k.endswith("num_batches_tracked")}
    assert len(theirs) == len(ours)
    mapped = {}
    for key in theirs:
        kind, our_key = remap_key(layout["source"], key)
        assert kind == "backbone", key
        assert our_key in ours, (key, our_key)
        mapped[our_key] = key
    assert set(mapped) == set(ours)  # one-to-one
    for key in layout["head"]:
        assert remap_key(layout["source"], key)[0] == "head", key
    # Every shape fits after the documented adaptations (RGB sum, temporal zero-padding).
    state = _meta_state(layout)
    assert detect_source(f"x.{'pkl' if layout['container'] == 'blobs' else 'pth'}", state) == layout["source"]
    remapped = remap_state_dict(state, layout["source"])
    tensors, summed = adapt_input_channels(remapped.tensors, ours)
    tensors, padded = pad_temporal_kernels(tensors, ours)
    report = match_state_dict(
        Remapped(tensors, remapped.origin, remapped.head, remapped.unknown), model.state_dict(), name, "x"
    )
    assert report.complete, str(report)
    assert len(report.loaded) == len(ours)
    assert sorted(report.dropped) == sorted(layout["head"])
    assert len(summed) == 2
    n_short_fusion = 4 if layout["fusion_kernel"] < 7 else 0
    n_short_res4 = 2 * 17 if name.endswith("50_50") else 0
    assert len(padded) == n_short_fusion + n_short_res4


@pytest.mark.parametrize("name", [n for n in ALL_LAYOUTS if "_ia_" not in n])
def test_every_published_layout_is_identified_with_its_facts(name: str) -> None:
    layout = read_layout(name)
    arch = identify_architecture(_meta_state(layout), layout["source"])
    assert arch.layouts == (name,)
    facts = (arch.depth, arch.alpha, arch.res5_stride, arch.res5_dilation)
    assert facts == (layout["depth"], layout["alpha"], layout["res5_stride"], layout["res5_dilation"])
    assert arch.fusion_style == layout["fusion_style"]
    assert arch.stem_pool_padding == (0 if layout["source"] == "alphaction" else 1)
    assert name in arch.describe() and f"alpha {layout['alpha']}" in arch.describe()


def test_architecture_facts_known_only_where_the_layouts_agree() -> None:
    # PyTorchVideo's classifier and detector share every backbone shape: without head keys alpha
    # (4 in both) is known, res5 (stride 2 vs dilated) is not.
    layout = read_layout("pytorchvideo_slowfast_r50")
    backbone_only = {k: v for k, v in _meta_state(layout).items() if k not in layout["head"]}
    arch = identify_architecture(backbone_only, "pytorchvideo")
    assert set(arch.layouts) == {"pytorchvideo_slowfast_r50", "pytorchvideo_slowfast_r50_detection"}
    assert (arch.depth, arch.alpha, arch.res5_stride, arch.res5_dilation) == (50, 4, None, None)
    # a file of no published layout: only the source's facts
    partial = dict(list(backbone_only.items())[:-10])
    arch = identify_architecture(partial, "pytorchvideo")
    assert arch.layouts == () and arch.alpha is None and arch.stem_pool_padding == 1
    assert architecture_mismatches(_new_model(alpha=8), arch) == []
    assert "no published layout" in arch.describe()


def test_layout_parameter_count_matches_model() -> None:
    layout = read_layout("pyslowfast_slowfast_4x16_r50")
    model = SlowFast(depth=50, fusion_kernel=5, in_chans=3)
    n_layout = sum(
        int(np.prod(shape))
        for k, shape in layout["backbone"].items()
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    assert n_layout == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("source", "theirs", "ours"),
    [
        # Caffe2 names -> PySlowFast names, as converted by slowfast/utils/c2_model_loading.py.
        ("pyslowfast_caffe2", "conv1_w", "s1.pathway0_stem.conv.weight"),
        ("pyslowfast_caffe2", "t_res_conv1_bn_riv", "s1.pathway1_stem.bn.running_var"),
        ("pyslowfast_caffe2", "res_conv1_bn_s", "s1.pathway0_stem.bn.weight"),
        ("pyslowfast_caffe2", "res4_3_branch2b_bn_rm", "s4.pathway0_res3.branch2.b_bn.running_mean"),
        ("pyslowfast_caffe2", "t_res5_0_branch1_w", "s5.pathway1_res0.branch1.weight"),
        ("pyslowfast_caffe2", "t_pool1_subsample_bn_b", "s1_fuse.bn.bias"),
        ("pyslowfast_caffe2", "t_res4_5_branch2c_bn_subsample_w", "s4_fuse.conv_f2s.weight"),
        ("pyslowfast_caffe2", "t_res2_2_branch2c_bn_subsample_bn_s", "s2_fuse.bn.weight"),
        # AlphAction: Tconv{k} feeds the slow path before res_nl{k}; conv1/2/3 of btnk = a/b/c.
        ("alphaction", "module.backbone.fast.Tconv1.conv.bias", "s1_fuse.conv_f2s.bias"),
        ("alphaction", "backbone.fast.Tconv4.conv.weight", "s4_fuse.conv_f2s.weight"),
        ("alphaction", "backbone.slow.bn1.running_mean", "s1.pathway0_stem.bn.running_mean"),
        (
            "alphaction",
            "backbone.slow.res_nl3.res_5.btnk.conv2.bn.weight",
            "s4.pathway0_res5.branch2.b_bn.weight",
        ),
        ("alphaction", "slow.res_nl4.res_0.shortcut.conv.weight", "s5.pathway0_res0.branch1.weight"),
        (
            "alphaction",
            "backbone.fast.res_nl1.res_2.btnk.conv3.conv.weight",
            "s2.pathway1_res2.branch2.c.weight",
        ),
        # PyTorchVideo: blocks.0 is the stem, blocks.k stage res(k+1); fusion of block k -> s(k+1)_fuse.
        ("pytorchvideo", "blocks.0.multipathway_blocks.1.conv.weight", "s1.pathway1_stem.conv.weight"),
        ("pytorchvideo", "blocks.0.multipathway_fusion.norm.running_var", "s1_fuse.bn.running_var"),
        ("pytorchvideo", "blocks.3.multipathway_fusion.conv_fast_to_slow.weight", "s4_fuse.conv_f2s.weight"),
        (
            "pytorchvideo",
            "model.blocks.2.multipathway_blocks.1.res_blocks.0.branch2.norm_b.running_mean",
            "s3.pathway1_res0.branch2.b_bn.running_mean",
        ),
        (
            "pytorchvideo",
            "blocks.4.multipathway_blocks.0.res_blocks.0.branch1_norm.bias",
            "s5.pathway0_res0.branch1_bn.bias",
        ),
        ("pyslowfast", "module.s3.pathway0_res1.branch2.a_bn.weight", "s3.pathway0_res1.branch2.a_bn.weight"),
    ],
)
def test_known_key_correspondences(source: Any, theirs: str, ours: str) -> None:
    assert remap_key(source, theirs) == ("backbone", ours)


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ("alphaction", "module.roi_heads.action.predictor.cls_score.weight"),
        ("pyslowfast", "head.projection.weight"),
        ("pyslowfast_caffe2", "pred_b"),
        ("pytorchvideo", "blocks.6.proj.weight"),
        ("pytorchvideo", "detection_head.proj.bias"),
    ],
)
def test_head_keys(source: Any, key: str) -> None:
    assert remap_key(source, key) == ("head", key)


# --------------------------------------------------------------------------- loading files

R50_FILES = {
    "alphaction_slowfast_r50_4x16": "model.pth",
    "pyslowfast_slowfast_4x16_r50": "model.pyth",
    "pyslowfast_caffe2_slowfast_4x16_r50": "model.pkl",
    "pytorchvideo_slowfast_r50_detection": "model.pyth",
}


@pytest.fixture(scope="module")
def r50_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Tensor]]]:
    out = {}
    for i, (name, filename) in enumerate(R50_FILES.items()):
        layout = read_layout(name)
        tensors = _tensors(layout, seed=i)
        path = _write(layout, tensors, tmp_path_factory.mktemp(name) / filename)
        if layout["source"] == "pyslowfast_caffe2":  # what the file holds
            tensors = {k: v.half().float() for k, v in tensors.items()}
        out[name] = (path, tensors)
    return out


@pytest.mark.parametrize("name", list(R50_FILES))
def test_load_r50_checkpoint_every_tensor(
    name: str, r50_checkpoints: dict[str, tuple[Path, dict[str, Tensor]]]
) -> None:
    layout = read_layout(name)
    path, tensors = r50_checkpoints[name]
    model = _model_for(layout)
    report = load_pretrained(model, path, trust_checkpoint=layout["source"] == "pyslowfast_caffe2")
    assert report.source == layout["source"]
    assert report.complete and not report.missing, str(report)
    assert sorted(report.dropped) == sorted(
        ("module." + k if layout["source"] == "alphaction" else k) for k in layout["head"]
    )
    state = model.state_dict()
    assert len(report.loaded) == sum(1 for k in state if not k.endswith("num_batches_tracked"))
    for key in layout["backbone"]:
        if key.endswith("num_batches_tracked"):
            continue
        ours = remap_key(layout["source"], key)[1]
        src, dst = tensors[key], state[ours]
        if ours.endswith("_stem.conv.weight"):
            assert src.shape[1] == 3 and dst.shape[1] == 1
            torch.testing.assert_close(dst, src.to(dst.dtype).sum(dim=1, keepdim=True))
        elif src.shape != dst.shape:  # shorter temporal kernel, centred with zero taps around it
            half = (dst.shape[2] - src.shape[2]) // 2
            torch.testing.assert_close(dst[:, :, half : half + src.shape[2]], src.to(dst.dtype))
            assert dst[:, :, :half].abs().sum() == 0 and dst[:, :, half + src.shape[2] :].abs().sum() == 0
        else:
            assert torch.equal(dst, src.to(dst.dtype)), key


def test_grey_model_equals_rgb_model_on_repeated_input(
    r50_checkpoints: dict[str, tuple[Path, dict[str, Tensor]]],
) -> None:
    layout = read_layout("alphaction_slowfast_r50_4x16")
    path, tensors = r50_checkpoints["alphaction_slowfast_r50_4x16"]
    grey, rgb = _model_for(layout, in_chans=1), _model_for(layout, in_chans=3)
    load_pretrained(grey, path)
    report = load_pretrained(rgb, path)
    assert not any("summed" in note for note in report.adapted)
    grey, rgb = grey.eval(), rgb.eval()
    g = torch.Generator().manual_seed(3)
    fast = torch.randn(1, 1, 8, 32, 32, generator=g)
    x = [fast[:, :, :: grey.alpha], fast]
    flush = torch.set_flush_denormal(True)  # random weights make denormals, slow on CPU
    try:
        with torch.no_grad():
            out_grey = grey(x)
            out_rgb = rgb([v.repeat(1, 3, 1, 1, 1) for v in x])
    finally:
        if flush:
            torch.set_flush_denormal(False)
    with torch.no_grad():
        # The stem alone, checked with F.conv3d on the checkpoint's own RGB kernel.
        w_rgb = tensors["backbone.fast.conv1.weight"]
        direct = F.conv3d(fast.repeat(1, 3, 1, 1, 1), w_rgb, stride=(1, 2, 2), padding=(2, 3, 3))
        stem = grey.s1.pathway1_stem.conv(fast)
    for a, b in zip(out_grey, out_rgb, strict=True):
        assert a.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))
    torch.testing.assert_close(stem, direct, rtol=1e-4, atol=1e-5)


def test_load_into_module_containing_backbone(
    r50_checkpoints: dict[str, tuple[Path, dict[str, Tensor]]],
) -> None:
    class Detector(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = _new_model(alpha=4)
            self.head = nn.Linear(2304, 5)

    det = Detector()
    head_before = det.head.weight.clone()
    path, tensors = r50_checkpoints["pytorchvideo_slowfast_r50_detection"]
    report = load_pretrained(det, path, source="pytorchvideo")
    assert all(k.startswith("backbone.") for k in report.loaded)
    assert torch.equal(det.head.weight, head_before)
    torch.testing.assert_close(
        det.backbone.state_dict()["s5.pathway1_res2.branch2.c.weight"],
        tensors["model.blocks.4.multipathway_blocks.1.res_blocks.2.branch2.conv_c.weight"],
    )


# --------------------------------------------------------------------------- refusals and errors


def test_pickled_objects_refused_unless_trusted(
    r50_checkpoints: dict[str, tuple[Path, dict[str, Tensor]]], tmp_path: Path
) -> None:
    _, tensors = r50_checkpoints["pyslowfast_slowfast_4x16_r50"]
    path = tmp_path / "with_object.pyth"
    torch.save({"model_state": tensors, "args": argparse.Namespace(lr=0.1)}, path)
    model = _new_model()
    with pytest.raises(CheckpointError, match="trust_checkpoint") as info:
        load_pretrained(model, path)
    assert "arbitrary code" in str(info.value) and str(path) in str(info.value)
    report = load_pretrained(model, path, trust_checkpoint=True)
    assert report.complete
    torch.testing.assert_close(
        model.state_dict()["s2.pathway0_res0.branch2.b.weight"], tensors["s2.pathway0_res0.branch2.b.weight"]
    )


def test_caffe2_pickle_refused_unless_trusted(
    r50_checkpoints: dict[str, tuple[Path, dict[str, Tensor]]],
) -> None:
    path, _ = r50_checkpoints["pyslowfast_caffe2_slowfast_4x16_r50"]
    model = _new_model()
    before = model.s1.pathway0_stem.conv.weight.clone()
    with pytest.raises(CheckpointError, match=r"plain pickle .*trust_checkpoint"):
        load_pretrained(model, path)
    with pytest.raises(CheckpointError, match="plain pickle"):
        load_pretrained(model, path, source="pyslowfast_caffe2")
    assert torch.equal(model.s1.pathway0_stem.conv.weight, before)


def test_missing_keys_named_in_error_and_model_unchanged(
    r50_checkpoints: dict[str, tuple[Path, dict[str, Tensor]]], tmp_path: Path
) -> None:
    _, tensors = r50_checkpoints["pyslowfast_slowfast_4x16_r50"]
    partial = {k: v for k, v in tensors.items() if not k.startswith("s3.pathway0_res1.branch2.b.")}
    path = tmp_path / "partial.pyth"
    torch.save({"model_state": partial}, path)
    model = _new_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"1 missing") as info:
        load_pretrained(model, path)
    assert "s3.pathway0_res1.branch2.b.weight" in str(info.value)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    report = load_pretrained(model, path, strict=False)
    assert report.missing == ["s3.pathway0_res1.branch2.b.weight"]
    assert "1 missing" in str(report)
    torch.testing.assert_close(
        model.state_dict()["s3.pathway0_res0.branch2.b.weight"], tensors["s3.pathway0_res0.branch2.b.weight"]
    )


def test_architecture_mismatch_is_refused_naming_what_to_set(
    r50_checkpoints: dict[str, tuple[Path, dict[str, Tensor]]],
) -> None:
    path, _ = r50_checkpoints["alphaction_slowfast_r50_4x16"]
    model = _new_model(fusion_style="conv_bn_relu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="would compute a different function") as info:
        load_pretrained(model, path)
    message = str(info.value)
    assert "SlowFast(fusion_style='conv_bias')" in message and "model.fusion_style" in message
    assert "SlowFast(stem_pool_padding=0)" in message and "model.stem_pool_padding" in message
    assert "alpha" not in message.split("would compute")[1].split("\n", 1)[1]  # alpha 8 matches
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # PyTorchVideo's R50 is 8x8: alpha 4 (from its published layout), not the model's 8
    det, _ = r50_checkpoints["pytorchvideo_slowfast_r50_detection"]
    with pytest.raises(CheckpointError, match=r"alpha: model 8, checkpoint 4; build SlowFast\(alpha=4\)"):
        load_pretrained(_new_model(alpha=8), det)


def test_head_kept_counts_as_unexpected(r50_checkpoints: dict[str, tuple[Path, dict[str, Tensor]]]) -> None:
    path, _ = r50_checkpoints["pyslowfast_slowfast_4x16_r50"]
    with pytest.raises(CheckpointError, match=r"head\.projection\.weight"):
        load_pretrained(_new_model(), path, no_head=False)
    report = load_pretrained(_new_model(), path, no_head=False, strict=False)
    assert sorted(report.unexpected) == ["head.projection.bias", "head.projection.weight"]


def test_unrelated_and_tiny_checkpoints_raise(tmp_path: Path) -> None:
    model = _new_model()
    unrelated = tmp_path / "unrelated.pth"
    torch.save({"model": {"encoder.layer1.weight": torch.zeros(3)}}, unrelated)
    with pytest.raises(CheckpointError, match="cannot tell the format"):
        load_pretrained(model, unrelated)
    tiny = tmp_path / "tiny.pyth"
    torch.save({"model_state": {"s1.pathway0_stem.bn.weight": torch.ones(64)}}, tiny)
    with pytest.raises(CheckpointError, match=r"1 of 550 backbone tensors"):
        load_pretrained(model, tiny, strict=False)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_pretrained(model, tmp_path / "absent.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_pretrained(model, garbage)
