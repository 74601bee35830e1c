"""Tests for thermact.models.slowfast."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from thermact.models.slowfast import (
    FrozenBatchNorm3d,
    SlowFast,
    slowfast_r50_4x16,
    slowfast_r50_8x8,
    slowfast_r101_8x8,
)


def _inputs(model: SlowFast, b: int = 2, t: int = 8, hw: int = 32, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    fast = torch.randn(b, model.in_chans, t, hw, hw, generator=g)
    slow = fast[:, :, :: model.alpha]
    return [slow, fast]


@pytest.fixture(scope="module")
def r50() -> SlowFast:
    torch.manual_seed(0)
    return slowfast_r50_4x16().eval()


def test_r50_attributes_and_output_shapes(r50: SlowFast) -> None:
    assert r50.out_channels == (2048, 256)
    assert r50.spatial_stride == 16
    assert r50.alpha == 8 and r50.pathway_strides == (8, 1) and r50.stem_pool_padding == 1
    assert (r50.res5_stride, r50.res5_dilation) == (1, 2)
    with torch.no_grad():
        slow, fast = r50(_inputs(r50, b=1, t=16, hw=48))
    assert slow.shape == (1, 2048, 2, 3, 3)
    assert fast.shape == (1, 256, 16, 3, 3)


def test_r101_attributes() -> None:
    model = slowfast_r101_8x8(frozen_bn=True)
    assert model.out_channels == (2048, 256)
    assert model.alpha == 4 and model.pathway_strides == (4, 1)
    blocks = [name for name, _ in model.s4.named_children()]
    assert len(blocks) == 2 * 23


@pytest.mark.parametrize("factory", [slowfast_r50_4x16, slowfast_r101_8x8])
def test_forward_backward_tiny(factory: Callable[[], SlowFast]) -> None:
    torch.manual_seed(1)
    model = factory()
    model.train()
    slow, fast = model(_inputs(model, b=1, t=8, hw=32))
    assert slow.shape == (1, 2048, 8 // model.alpha, 2, 2)
    assert fast.shape == (1, 256, 8, 2, 2)
    (slow.square().mean() + fast.square().mean()).backward()
    for name in ("s1.pathway0_stem.conv.weight", "s1.pathway1_stem.conv.weight", "s1_fuse.conv_f2s.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_parameter_count_matches_published_size() -> None:
    # SlowFast 4x16 R50 (5-tap lateral convs, RGB stems, 400-class head) is reported with about
    # 34.4 M parameters (X3D paper, Feichtenhofer 2020). R101 adds 17 res4 blocks per pathway.
    rgb_stems = 2 * (64 * 1 * 7 * 7 + 8 * 5 * 7 * 7)
    head = 2304 * 400 + 400
    r50 = SlowFast(depth=50, alpha=8, fusion_kernel=5)
    n50 = sum(p.numel() for p in r50.parameters()) + rgb_stems + head
    assert abs(n50 - 34.4e6) < 0.2e6
    r101 = SlowFast(depth=101, alpha=4, fusion_kernel=5)
    n101 = sum(p.numel() for p in r101.parameters()) + rgb_stems + head
    slow_block = 1024 * 256 * 3 + 256 * 256 * 9 + 256 * 1024 + 2 * (256 + 256 + 1024)
    fast_block = 128 * 32 * 3 + 32 * 32 * 9 + 32 * 128 + 2 * (32 + 32 + 128)
    assert n101 - n50 == 17 * (slow_block + fast_block)


def test_fast_pathway_ignores_slow_input_but_slow_sees_fast(r50: SlowFast) -> None:
    slow, fast = _inputs(r50, b=1, t=8, hw=32)
    with torch.no_grad():
        ref_slow, ref_fast = r50([slow, fast])
        new_slow, new_fast = r50([slow + 1.0, fast])
        lat_slow, _ = r50([slow, fast + 1.0])
    assert torch.equal(new_fast, ref_fast)
    assert not torch.allclose(new_slow, ref_slow)
    assert not torch.allclose(lat_slow, ref_slow)


def test_eval_outputs_are_per_sample(r50: SlowFast) -> None:
    xs = _inputs(r50, b=2, t=8, hw=32)
    with torch.no_grad():
        both = r50(xs)
        first = r50([x[:1] for x in xs])
    for a, b in zip(both, first, strict=True):
        # float32 through ~50 layers, with kernels that may differ by batch size and CPU: 1e-4 of
        # the output range (one element was 1.6e-5 off on an AMD EPYC where 1e-5 was asked)
        scale = max(1.0, float(a.abs().max()))
        assert float((a[:1] - b).abs().max()) <= 1e-4 * scale


def test_inputs_are_not_modified(r50: SlowFast) -> None:
    xs = _inputs(r50, b=1, t=8, hw=32)
    copies = [x.clone() for x in xs]
    with torch.no_grad():
        r50(xs)
    for x, c in zip(xs, copies, strict=True):
        assert torch.equal(x, c)


def test_no_inplace_activations(r50: SlowFast) -> None:
    for m in r50.modules():
        assert not getattr(m, "inplace", False), m


def test_frozen_bn_matches_batchnorm_eval_and_has_no_parameters() -> None:
    torch.manual_seed(2)
    bn = nn.BatchNorm3d(5).eval()
    bn.weight.data = torch.randn(5)
    bn.bias.data = torch.randn(5)
    bn.running_mean = torch.randn(5)
    bn.running_var = torch.rand(5) + 0.5
    frozen = FrozenBatchNorm3d(5)
    frozen.load_state_dict({k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"})
    x = torch.randn(2, 5, 3, 4, 4)
    torch.testing.assert_close(frozen(x), bn(x))
    assert list(frozen.parameters()) == []
    expected = x[:, 1] * (bn.weight[1] / torch.sqrt(bn.running_var[1] + 1e-5)) + (
        bn.bias[1] - bn.running_mean[1] * bn.weight[1] / torch.sqrt(bn.running_var[1] + 1e-5)
    )
    torch.testing.assert_close(frozen(x)[:, 1], expected.detach())


def test_frozen_bn_model_trains_only_convs() -> None:
    model = slowfast_r50_4x16(frozen_bn=True)
    assert not any(isinstance(m, nn.BatchNorm3d) for m in model.modules())
    assert all(
        name.endswith(
            ("conv.weight", ".a.weight", ".b.weight", ".c.weight", "branch1.weight", "conv_f2s.weight")
        )
        for name, _ in model.named_parameters()
    )
    regular = slowfast_r50_4x16(frozen_bn=False)
    assert set(model.state_dict()) == {
        k for k in regular.state_dict() if not k.endswith("num_batches_tracked")
    }


def test_conv_bias_fusion_style_keys() -> None:
    model = SlowFast(depth=50, fusion_style="conv_bias", fusion_kernel=5)
    keys = set(model.state_dict())
    assert "s1_fuse.conv_f2s.bias" in keys and "s1_fuse.bn.weight" not in keys
    assert model.s1_fuse.conv_f2s.weight.shape == (16, 8, 5, 1, 1)
    assert model.s4_fuse.conv_f2s.weight.shape == (256, 128, 5, 1, 1)


def test_classification_setting_stride_32() -> None:
    model = SlowFast(depth=50, res5_stride=2, res5_dilation=1).eval()
    assert model.spatial_stride == 32
    with torch.no_grad():
        slow, fast = model(_inputs(model, b=1, t=8, hw=64))
    assert slow.shape[-2:] == (2, 2) and fast.shape[-2:] == (2, 2)


def test_r50_8x8_is_the_r50_with_alpha_4() -> None:
    with torch.device("meta"):
        r50_8x8, r50_4x16 = slowfast_r50_8x8(), slowfast_r50_4x16()
    assert (
        r50_8x8.alpha == 4 and r50_8x8.pathway_strides == (4, 1) and r50_8x8.s1_fuse.conv_f2s.stride[0] == 4
    )
    assert {k: v.shape for k, v in r50_8x8.state_dict().items()} == {
        k: v.shape for k, v in r50_4x16.state_dict().items()
    }


def test_stem_pool_padding_changes_the_function_not_the_tensors(r50: SlowFast) -> None:
    """AlphAction's stem max pool has no padding: 64 x 96 -> stem 15 x 23 instead of 16 x 24."""
    unpadded = slowfast_r50_4x16(stem_pool_padding=0).eval()
    unpadded.load_state_dict(r50.state_dict())  # same tensors
    x = _inputs(r50, b=1, t=8, hw=64)
    x = [v[..., :48] for v in x]  # 64 x 48
    with torch.no_grad():
        stem_padded = r50.s1(x)[0]
        stem_unpadded = unpadded.s1(x)[0]
        expected = nn.functional.max_pool3d(
            r50.s1.pathway0_stem.relu(r50.s1.pathway0_stem.bn(r50.s1.pathway0_stem.conv(x[0]))),
            (1, 3, 3),
            (1, 2, 2),
        )
    assert stem_padded.shape[-2:] == (16, 12) and stem_unpadded.shape[-2:] == (15, 11)
    torch.testing.assert_close(stem_unpadded, expected, rtol=0, atol=0)
    with torch.no_grad():
        a, b = r50(x)[0], unpadded(x)[0]
    assert a.shape == b.shape  # the outputs keep their size (4 x 3) ...
    assert (a - b).abs().max() > 0.05 * a.abs().max()  # ... but not their values
    with pytest.raises(ValueError, match="stem_pool_padding"):
        SlowFast(stem_pool_padding=2)


def test_bad_inputs_raise(r50: SlowFast) -> None:
    slow, fast = _inputs(r50, b=1, t=8, hw=32)
    with pytest.raises(ValueError, match="alpha times"):
        r50([torch.cat([slow, slow], dim=2), fast])
    with pytest.raises(ValueError, match=r"\[B, 1, T, H, W\]"):
        r50([slow.repeat(1, 3, 1, 1, 1), fast])
    with pytest.raises(ValueError, match="slow, fast"):
        r50([fast])
    with pytest.raises(ValueError, match="depth"):
        SlowFast(depth=34)
