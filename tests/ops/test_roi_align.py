"""Tests for thermact.ops.roi_align against a slow float64 reference of torchvision's algorithm."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from thermact.ops.roi_align import RoIAlign, roi_align, roi_align_static


def _bilinear(feat: np.ndarray, y: float, x: float) -> np.ndarray:
    """torchvision's bilinear_interpolate for one sample point, all channels. feat: [C, H, W]."""
    _, H, W = feat.shape
    if y < -1.0 or y > H or x < -1.0 or x > W:
        return np.zeros(feat.shape[0])
    y = max(y, 0.0)
    x = max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= H - 1:
        y_high = y_low = H - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= W - 1:
        x_high = x_low = W - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (
        hy * hx * feat[:, y_low, x_low]
        + hy * lx * feat[:, y_low, x_high]
        + ly * hx * feat[:, y_high, x_low]
        + ly * lx * feat[:, y_high, x_high]
    )


def _reference(
    feat: np.ndarray, rois: np.ndarray, oh: int, ow: int, scale: float, sampling_ratio: int, aligned: bool
) -> np.ndarray:
    """Direct per-roi / per-bin / per-sample loop of torchvision's RoIAlign forward. feat: [N, C, H, W]."""
    out = np.zeros((rois.shape[0], feat.shape[1], oh, ow))
    offset = 0.5 if aligned else 0.0
    for k, (b, bx1, by1, bx2, by2) in enumerate(rois.tolist()):
        f = feat[int(b)]
        start_w, start_h = bx1 * scale - offset, by1 * scale - offset
        roi_w, roi_h = bx2 * scale - offset - start_w, by2 * scale - offset - start_h
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / oh, roi_w / ow
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / oh)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / ow)
        count = max(gh * gw, 1)
        for ph in range(oh):
            for pw in range(ow):
                acc = np.zeros(f.shape[0])
                for iy in range(gh):
                    y = start_h + ph * bin_h + (iy + 0.5) * bin_h / gh
                    for ix in range(gw):
                        x = start_w + pw * bin_w + (ix + 0.5) * bin_w / gw
                        acc += _bilinear(f, y, x)
                out[k, :, ph, pw] = acc / count
    return out


def _random_rois(gen: torch.Generator, n_img: int, k: int, img_h: float, img_w: float) -> torch.Tensor:
    """Boxes inside, touching, crossing the border, fully outside, degenerate, in image coordinates."""
    cx = torch.rand(k, generator=gen, dtype=torch.float64) * (img_w * 1.6) - 0.3 * img_w
    cy = torch.rand(k, generator=gen, dtype=torch.float64) * (img_h * 1.6) - 0.3 * img_h
    bw = torch.rand(k, generator=gen, dtype=torch.float64) * img_w * 0.8
    bh = torch.rand(k, generator=gen, dtype=torch.float64) * img_h * 0.8
    boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=1)
    special = torch.tensor(
        [
            [0.0, 0.0, img_w, img_h],  # whole image
            [-5.0, -3.0, 2.0, 1.0],  # crossing the top-left corner
            [img_w - 1.0, img_h - 2.0, img_w + 4.0, img_h + 3.0],  # crossing bottom-right
            [img_w + 10.0, 0.0, img_w + 20.0, 5.0],  # fully outside
            [-20.0, -20.0, -10.0, -12.0],  # fully outside (negative)
            [3.0, 2.0, 3.0, 2.0],  # zero size
            [1.25, 0.5, 2.0, 1.0],  # smaller than a pixel
        ],
        dtype=torch.float64,
    )
    boxes = torch.cat([boxes, special], dim=0)
    batch = torch.randint(0, n_img, (boxes.shape[0], 1), generator=gen).to(torch.float64)
    return torch.cat([batch, boxes], dim=1)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
@pytest.mark.parametrize("scale", [0.25, 1.0])
def test_matches_reference_float64(aligned: bool, sampling_ratio: int, scale: float) -> None:
    gen = torch.Generator().manual_seed(1234 + int(aligned) + 10 * sampling_ratio + int(100 * scale))
    N, C, H, W = 2, 3, 7, 9
    feat = torch.randn(N, C, H, W, generator=gen, dtype=torch.float64)
    rois = _random_rois(gen, N, 12, H / scale, W / scale)
    oh, ow = 3, 4
    got = roi_align(feat, rois, (oh, ow), spatial_scale=scale, sampling_ratio=sampling_ratio, aligned=aligned)
    ref = _reference(feat.numpy(), rois.numpy(), oh, ow, scale, sampling_ratio, aligned)
    assert got.dtype == torch.float64
    assert got.shape == (rois.shape[0], C, oh, ow)
    assert np.abs(got.numpy() - ref).max() < 1e-10
    # Not trivially zero: the in-image boxes give non-zero values.
    assert np.abs(ref).max() > 0.1


def test_single_row_and_column_feature_map() -> None:
    gen = torch.Generator().manual_seed(7)
    feat = torch.randn(1, 2, 1, 5, generator=gen, dtype=torch.float64)
    rois = torch.tensor([[0, 0.0, 0.0, 5.0, 1.0], [0, 1.2, -0.7, 3.3, 1.9]], dtype=torch.float64)
    for aligned in (True, False):
        got = roi_align(feat, rois, 2, sampling_ratio=-1, aligned=aligned)
        ref = _reference(feat.numpy(), rois.numpy(), 2, 2, 1.0, -1, aligned)
        assert np.abs(got.numpy() - ref).max() < 1e-10
    feat_t = feat.transpose(2, 3).contiguous()  # [1, 2, 5, 1]
    got = roi_align(feat_t, rois[:, [0, 2, 1, 4, 3]], 2)
    ref = _reference(feat_t.numpy(), rois[:, [0, 2, 1, 4, 3]].numpy(), 2, 2, 1.0, -1, True)
    assert np.abs(got.numpy() - ref).max() < 1e-10


def test_list_boxes_equal_tensor_boxes_and_order_preserved() -> None:
    gen = torch.Generator().manual_seed(3)
    feat = torch.randn(3, 4, 10, 12, generator=gen, dtype=torch.float64)
    per_image = [
        torch.tensor([[1.0, 1.0, 6.0, 8.0], [0.0, 2.0, 11.0, 9.5]], dtype=torch.float64),
        torch.zeros(0, 4, dtype=torch.float64),
        torch.tensor([[2.5, 3.0, 4.0, 9.0]], dtype=torch.float64),
    ]
    from_list = roi_align(feat, per_image, 5)
    rois = torch.tensor(
        [[0, 1.0, 1.0, 6.0, 8.0], [0, 0.0, 2.0, 11.0, 9.5], [2, 2.5, 3.0, 4.0, 9.0]], dtype=torch.float64
    )
    assert torch.equal(from_list, roi_align(feat, rois, 5))
    # Interleaved batch indices: output rows follow the input row order.
    perm = torch.tensor([2, 0, 1])
    assert torch.allclose(roi_align(feat, rois[perm], 5), from_list[perm], atol=1e-12, rtol=0)
    ref = _reference(feat.numpy(), rois[perm].numpy(), 5, 5, 1.0, -1, True)
    assert np.abs(roi_align(feat, rois[perm], 5).numpy() - ref).max() < 1e-10


def test_constant_feature_gives_constant_output() -> None:
    feat = torch.full((1, 2, 8, 10), 3.5, dtype=torch.float64)
    rois = torch.tensor([[0, 1.0, 1.0, 7.0, 6.0], [0, 0.5, 0.5, 9.5, 7.5], [0, 2.0, 3.0, 2.6, 3.3]])
    for aligned in (True, False):
        for sr in (-1, 1, 3):
            out = roi_align(feat, rois, (3, 2), sampling_ratio=sr, aligned=aligned)
            assert torch.allclose(out, torch.full_like(out, 3.5), atol=1e-12, rtol=0)


def test_linear_ramp_gives_bin_centre_value() -> None:
    # f(y, x) = a*x + b*y + c on pixel indices; bilinear interpolation is exact for it and the
    # sampling points of a bin are symmetric about the bin centre, so each bin equals f(centre).
    H, W = 12, 16
    a, b, c = 0.7, -1.3, 2.0
    ys, xs = torch.meshgrid(
        torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij"
    )
    feat = (a * xs + b * ys + c)[None, None]
    x1, y1, x2, y2 = 4.0, 6.0, 44.0, 36.0  # image coordinates, scale 0.25 -> [1, 1.5, 11, 9] on the map
    oh, ow = 3, 5
    out = roi_align(feat, torch.tensor([[0, x1, y1, x2, y2]]), (oh, ow), spatial_scale=0.25, aligned=True)
    sx1, sy1, sx2, sy2 = x1 * 0.25 - 0.5, y1 * 0.25 - 0.5, x2 * 0.25 - 0.5, y2 * 0.25 - 0.5
    for i in range(oh):
        for j in range(ow):
            cy = sy1 + (i + 0.5) * (sy2 - sy1) / oh
            cx = sx1 + (j + 0.5) * (sx2 - sx1) / ow
            assert out[0, 0, i, j].item() == pytest.approx(a * cx + b * cy + c, abs=1e-12)
    # First bin by hand: map box [0.5, 1.0, 10.5, 8.5], bins 2 x 2.5 -> centre x = 1.5, y = 2.25.
    assert out[0, 0, 0, 0].item() == pytest.approx(0.7 * 1.5 - 1.3 * 2.25 + 2.0, abs=1e-12)
    assert out[0, 0, 0, 0].item() == pytest.approx(0.125, abs=1e-12)


def test_outside_and_empty_boxes_give_zero() -> None:
    feat = torch.randn(1, 3, 6, 6, dtype=torch.float64) + 5.0
    rois = torch.tensor([[0, 20.0, 20.0, 30.0, 30.0], [0, -9.0, 0.0, -4.0, 5.0], [0, 2.0, 2.0, 2.0, 2.0]])
    out = roi_align(feat, rois, 2, aligned=True)
    assert torch.equal(out, torch.zeros_like(out))
    # With aligned=False a zero-size box is forced to size 1 and samples the map.
    legacy = roi_align(feat, rois[2:], 2, aligned=False)
    assert legacy.abs().min() > 0


def test_samples_exactly_on_the_valid_band_edges() -> None:
    # aligned=False, 1x1 output, one sample per bin: the sample sits at the box centre.
    H, W = 4, 5
    feat = torch.arange(H * W, dtype=torch.float64).reshape(1, 1, H, W) + 1.0
    rois = torch.tensor(
        [
            [0, 1.5, H - 0.5, 2.5, H + 0.5],  # sample (y=H, x=2): valid, clamps to the last row
            [0, -1.5, 0.5, -0.5, 1.5],  # sample (y=1, x=-1): valid, clamps to column 0
            [0, 1.5, H - 0.49, 2.5, H + 0.51],  # y just above H: contributes 0
            [0, -1.51, 0.5, -0.51, 1.5],  # x just below -1: contributes 0
            [0, 1.0, 0.5, 2.0, 1.5],  # (y=1, x=1.5): halfway between columns 1 and 2
        ],
        dtype=torch.float64,
    )
    out = roi_align(feat, rois, 1, sampling_ratio=1, aligned=False)[:, 0, 0, 0]
    expected = torch.tensor([feat[0, 0, H - 1, 2], feat[0, 0, 1, 0], 0.0, 0.0, (7.0 + 8.0) / 2])
    assert torch.equal(out, expected.to(torch.float64))


def test_no_boxes() -> None:
    feat = torch.randn(2, 3, 5, 5)
    assert roi_align(feat, torch.zeros(0, 5), 7).shape == (0, 3, 7, 7)
    assert roi_align(feat, [torch.zeros(0, 4), torch.zeros(0, 4)], (2, 3)).shape == (0, 3, 2, 3)
    feat.requires_grad_(True)
    torch.autograd.backward(roi_align(feat, torch.zeros(0, 5), 7).sum())
    assert feat.grad is not None and torch.equal(feat.grad, torch.zeros_like(feat))


def test_gradcheck() -> None:
    gen = torch.Generator().manual_seed(11)
    feat = torch.randn(2, 2, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.3, -0.4, 3.7, 2.9], [1, 1.0, 1.0, 5.5, 4.2], [1, -1.0, 2.0, 2.0, 6.0]])
    for aligned in (True, False):
        assert torch.autograd.gradcheck(
            lambda f, a=aligned: roi_align(f, rois, 2, sampling_ratio=-1, aligned=a), (feat,)
        )


def test_gradient_mass_inside_image() -> None:
    # Every bin's weights sum to 1 for a box whose samples all lie inside the map.
    feat = torch.randn(1, 2, 10, 10, dtype=torch.float64, requires_grad=True)
    out = roi_align(feat, torch.tensor([[0, 2.0, 2.0, 8.0, 7.0]]), (3, 4))
    torch.autograd.backward(out.sum())
    assert feat.grad is not None
    assert torch.allclose(feat.grad.sum(dim=(2, 3)), torch.full((1, 2), 12.0, dtype=torch.float64))


def test_float32_and_bfloat16_close_to_float64() -> None:
    gen = torch.Generator().manual_seed(5)
    feat = torch.randn(2, 8, 20, 30, generator=gen, dtype=torch.float64)
    rois = _random_rois(gen, 2, 16, 20 / 0.25, 30 / 0.25)
    ref = roi_align(feat, rois, 7, spatial_scale=0.25)
    out32 = roi_align(feat.float(), rois.float(), 7, spatial_scale=0.25)
    assert out32.dtype == torch.float32
    assert (out32.double() - ref).abs().max() < 1e-5
    out16 = roi_align(feat.bfloat16(), rois, 7, spatial_scale=0.25)
    assert out16.dtype == torch.bfloat16
    assert (out16.double() - ref).abs().max() < 0.1


def test_module_matches_function() -> None:
    feat = torch.randn(1, 3, 8, 8)
    rois = torch.tensor([[0, 1.0, 2.0, 30.0, 20.0]])
    mod = RoIAlign((2, 3), spatial_scale=0.25, sampling_ratio=2, aligned=False)
    assert torch.equal(mod(feat, rois), roi_align(feat, rois, (2, 3), 0.25, 2, False))
    assert "output_size=(2, 3)" in repr(mod)


def test_invalid_arguments() -> None:
    feat = torch.randn(2, 3, 5, 5)
    with pytest.raises(ValueError, match="batch indices"):
        roi_align(feat, torch.tensor([[2, 0.0, 0.0, 1.0, 1.0]]), 2)
    with pytest.raises(ValueError, match="batch indices"):
        roi_align(feat, torch.tensor([[0.5, 0.0, 0.0, 1.0, 1.0]]), 2)
    with pytest.raises(ValueError, match=r"\[K, 5\]"):
        roi_align(feat, torch.zeros(3, 4), 2)
    with pytest.raises(ValueError, match="non-finite"):
        roi_align(feat, torch.tensor([[0, 0.0, float("nan"), 1.0, 1.0]]), 2)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        roi_align(feat[0], torch.zeros(0, 5), 2)
    with pytest.raises(ValueError, match="output_size"):
        roi_align(feat, torch.zeros(0, 5), (0, 2))


@pytest.mark.cuda
def test_cuda_matches_cpu() -> None:
    gen = torch.Generator().manual_seed(9)
    feat = torch.randn(2, 4, 9, 11, generator=gen, dtype=torch.float64)
    rois = _random_rois(gen, 2, 10, 9.0, 11.0)
    cpu = roi_align(feat, rois, 3)
    gpu = roi_align(feat.cuda(), rois.cuda(), 3)
    assert (gpu.cpu() - cpu).abs().max() < 1e-12


def test_roi_align_static_equals_eager_roi_align_for_any_boxes() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 10, 15, dtype=torch.float64, generator=gen)
    K = 20
    xy = (torch.rand(K, 2, generator=gen, dtype=torch.float64) * 1.6 - 0.3) * torch.tensor([60.0, 40.0])
    wh = (
        torch.rand(K, 2, generator=gen, dtype=torch.float64) * 250.0 - 10.0
    )  # up to 4x the frame, some negative
    b = torch.randint(0, 3, (K, 1), generator=gen).to(torch.float64)
    rois = torch.cat([b, xy, xy + wh], dim=1)
    for sampling_ratio in (-1, 1, 3):
        for aligned in (True, False):
            for out in (1, 7, (3, 5)):
                ref = roi_align(x, rois, out, 0.25, sampling_ratio, aligned)
                got = roi_align_static(x, rois, out, 0.25, sampling_ratio, aligned)
                torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    # float32 as in the models
    ref32 = roi_align(x.float(), rois.float(), 7, 0.25)
    torch.testing.assert_close(roi_align_static(x.float(), rois.float(), 7, 0.25), ref32, rtol=0, atol=1e-5)
