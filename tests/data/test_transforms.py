"""Tests for thermact.data.transforms (normalisation, jitters, Augment) and the geometric ops of
thermact.data.geometry it draws from (mirrors, shift, diagonal mirror, zoom, resize)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from thermact.data.annotations import boxes_array
from thermact.data.clips import ClipConfig
from thermact.data.geometry import hflip, resize, rotate180, shift, transpose, vflip, zoom
from thermact.data.source import ThermalData, load_dataset
from thermact.data.transforms import (
    Augment,
    NormStats,
    clip_frame_union,
    compute_norm_stats,
    denormalize,
    jitter_boxes,
    norm_stats_from_arrays,
    normalize,
    temperature_jitter,
)
from thermact.errors import CheckpointError, DataError

H, W = 40, 60
Op = Callable[[Any, Any, Any], tuple[Any, Any, Any]]


@pytest.fixture(scope="module")
def data() -> ThermalData:
    return load_dataset(with_raw=False)


def coverage(box: np.ndarray | torch.Tensor, height: int = H, width: int = W) -> np.ndarray:
    """Fraction of each pixel [H, W] covered by a pixel-XYXY box (pixel i covers [i, i+1))."""
    x1, y1, x2, y2 = (float(v) for v in box)
    cols = np.arange(width, dtype=np.float64)
    rows = np.arange(height, dtype=np.float64)
    fx = np.clip(np.minimum(cols + 1, x2) - np.maximum(cols, x1), 0, None)
    fy = np.clip(np.minimum(rows + 1, y2) - np.maximum(rows, y1), 0, None)
    out: np.ndarray = fy[:, None] * fx[None, :]
    return out


def random_dyadic_boxes(n: int, seed: int) -> torch.Tensor:
    """Boxes with coordinates on a 1/16 px grid (exact in float32), inside the 60x40 frame."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.integers(0, W * 16 + 1, size=(n, 2)), axis=1) / 16.0
    y = np.sort(rng.integers(0, H * 16 + 1, size=(n, 2)), axis=1) / 16.0
    x[:, 1] = np.maximum(x[:, 1], x[:, 0] + 1 / 16)
    y[:, 1] = np.maximum(y[:, 1], y[:, 0] + 1 / 16)
    return torch.tensor(np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1), dtype=torch.float32)


def random_clip(seed: int, t: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    frames = 15.0 + 10.0 * torch.rand(t, H, W, generator=g)
    valid = torch.rand(t, H, W, generator=g) > 0.2
    return frames, valid


def keyframe_frame(data: ThermalData, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The frame of keyframe ``index`` (``[1, H, W]`` °C and its mask) and its person boxes."""
    kf = data.keyframes[index]
    rec = data.recordings[kf.recording_id]
    idx = rec.exact_index(kf.timestamp_ms)
    assert idx is not None
    frames = torch.from_numpy(rec.frames[idx : idx + 1].copy())
    valid = torch.from_numpy(rec.valid[idx : idx + 1].copy())
    return frames, valid, torch.from_numpy(boxes_array(kf.persons))


# ---------------------------------------------------------------------------------------------
# geometric ops


@pytest.mark.parametrize("op", [hflip, vflip, rotate180])
def test_transformed_boxes_cover_the_same_pixels(op: Op) -> None:
    boxes = random_dyadic_boxes(50, seed=1)
    masks = torch.tensor(np.stack([coverage(b) for b in boxes]), dtype=torch.float64)
    valid = torch.ones(len(boxes), H, W, dtype=torch.bool)
    moved_masks, _, moved_boxes = op(masks, valid, boxes)
    for mask, box in zip(moved_masks, moved_boxes, strict=True):
        np.testing.assert_array_equal(mask.numpy(), coverage(box))


@pytest.mark.parametrize("op", [hflip, vflip, rotate180])
def test_real_boxes_see_the_same_temperatures_after_transform(data: ThermalData, op: Op) -> None:
    frames, valid, boxes = keyframe_frame(data, 10)
    new_frames, _, new_boxes = op(frames, valid, boxes)
    for box, new_box in zip(boxes, new_boxes, strict=True):
        before = float((coverage(box) * frames[0].numpy()).sum())
        after = float((coverage(new_box) * new_frames[0].numpy()).sum())
        assert after == pytest.approx(before, rel=1e-5)
        assert float((new_box[2:] - new_box[:2]).prod()) == pytest.approx(float((box[2:] - box[:2]).prod()))


def test_hflip_box_formula_and_involution() -> None:
    frames, valid = random_clip(0)
    boxes = torch.tensor([[0.0, 1.0, 10.0, 5.0], [50.5, 0.0, 60.0, 40.0]])
    f1, v1, b1 = hflip(frames, valid, boxes)
    torch.testing.assert_close(b1, torch.tensor([[50.0, 1.0, 60.0, 5.0], [0.0, 0.0, 9.5, 40.0]]))
    assert torch.equal(f1[:, :, 0], frames[:, :, W - 1])
    f2, v2, b2 = hflip(f1, v1, b1)
    assert torch.equal(f2, frames) and torch.equal(v2, valid) and torch.equal(b2, boxes)
    f3, v3, b3 = vflip(*vflip(frames, valid, boxes))
    assert torch.equal(f3, frames) and torch.equal(v3, valid) and torch.equal(b3, boxes)


def test_rotate180_is_hflip_then_vflip() -> None:
    frames, valid = random_clip(1)
    boxes = random_dyadic_boxes(10, seed=2)
    r = rotate180(frames, valid, boxes)
    hv = vflip(*hflip(frames, valid, boxes))
    vh = hflip(*vflip(frames, valid, boxes))
    for a, b, c in zip(r, hv, vh, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert torch.equal(r[0][0, 0, 0], frames[0, H - 1, W - 1])
    back = rotate180(*r)
    assert torch.equal(back[0], frames) and torch.equal(back[2], boxes)


def test_geometric_ops_reject_bad_boxes() -> None:
    frames, valid = random_clip(0)
    with pytest.raises(ValueError, match="N, 4"):
        hflip(frames, valid, torch.zeros(3, 5))


def test_temperature_jitter_values() -> None:
    frames = torch.tensor([[[10.0, 20.0], [30.0, 40.0]]])
    out = temperature_jitter(frames, offset_c=1.5, gain=2.0)
    torch.testing.assert_close(out, torch.tensor([[[-3.5, 16.5], [36.5, 56.5]]]))
    assert float(out.mean()) == pytest.approx(float(frames.mean()) + 1.5)
    out2 = temperature_jitter(frames, offset_c=0.0, gain=0.5, center_c=0.0)
    torch.testing.assert_close(out2, frames * 0.5)


def test_jitter_boxes_stays_inside_frame_with_positive_area() -> None:
    g = torch.Generator().manual_seed(0)
    edge_boxes = torch.tensor(
        [[0.0, 0.0, 60.0, 40.0], [0.0, 0.0, 0.25, 0.25], [59.5, 39.0, 60.0, 40.0], [10.0, 10.0, 20.0, 30.0]]
    )
    boxes = torch.cat([edge_boxes, random_dyadic_boxes(200, seed=3)])
    for _ in range(20):
        out = jitter_boxes(boxes, 0.49, (H, W), g)
        assert out.dtype == boxes.dtype and out.shape == boxes.shape
        assert bool((out[:, 0] >= 0).all() and (out[:, 1] >= 0).all())
        assert bool((out[:, 2] <= W).all() and (out[:, 3] <= H).all())
        assert bool((out[:, 2] > out[:, 0]).all() and (out[:, 3] > out[:, 1]).all())
        size = torch.cat([boxes[:, 2:] - boxes[:, :2]] * 2, dim=1)
        assert bool(((out - boxes).abs() <= 0.49 * size + 1e-5).all())
    moved = jitter_boxes(boxes, 0.2, (H, W), torch.Generator().manual_seed(5))
    again = jitter_boxes(boxes, 0.2, (H, W), torch.Generator().manual_seed(5))
    assert torch.equal(moved, again) and not torch.equal(moved, boxes)
    assert torch.equal(jitter_boxes(boxes, 0.0, (H, W), g), boxes)
    with pytest.raises(ValueError, match="0.5"):
        jitter_boxes(boxes, 0.5, (H, W), g)


# ---------------------------------------------------------------------------------------------
# resize


def test_resize_constant_frame_is_constant_and_boxes_scale_exactly() -> None:
    frames = torch.full((4, H, W), 21.375)
    valid = torch.ones(4, H, W, dtype=torch.bool)
    boxes = torch.tensor([[0.0, 0.0, 60.0, 40.0], [15.0, 10.0, 30.0, 20.0]])
    for size in [(80, 120), (20, 30), (64, 64), (33, 97)]:
        f, v, b = resize(frames, valid, boxes, size)
        assert f.shape == (4, *size) and v.shape == (4, *size) and v.dtype == torch.bool
        assert float((f - 21.375).abs().max()) < 1e-5
        assert bool(v.all())
        sx, sy = size[1] / W, size[0] / H
        torch.testing.assert_close(b, boxes * torch.tensor([sx, sy, sx, sy]), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        resize(frames, valid, boxes, (80, 120))[2][1], torch.tensor([30.0, 20, 60, 40])
    )


def test_resize_mask_is_nearest_and_frames_bilinear() -> None:
    frames, valid = random_clip(4, t=2)
    f, v, _ = resize(frames, valid, torch.zeros(0, 4), (2 * H, 2 * W))
    # nearest: an integer upscale repeats each mask pixel 2x2
    assert torch.equal(v, valid.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2))
    # bilinear, align_corners=False: the first output pixel sits at 0.25 px from the first centre ->
    # clamped to the edge; output (1, 1) lies at input (0.25, 0.25).
    assert float(f[0, 0, 0]) == pytest.approx(float(frames[0, 0, 0]))
    expected = (
        0.5625 * frames[0, 0, 0]
        + 0.1875 * frames[0, 0, 1]
        + 0.1875 * frames[0, 1, 0]
        + 0.0625 * frames[0, 1, 1]
    )
    assert float(f[0, 1, 1]) == pytest.approx(float(expected), rel=1e-6)
    same = resize(frames, valid, torch.zeros(0, 4), (H, W))
    assert same[0] is frames


def test_resize_keeps_box_content() -> None:
    frames, valid = random_clip(6, t=1)
    boxes = torch.tensor([[10.0, 8.0, 22.0, 20.0]])
    f, _, b = resize(frames, valid, boxes, (2 * H, 2 * W))
    # the mean over the box equals the mean over the scaled box up to interpolation smoothing
    before = float((coverage(boxes[0]) * frames[0].numpy()).sum() / coverage(boxes[0]).sum())
    after_cov = coverage(b[0], 2 * H, 2 * W)
    after = float((after_cov * f[0].numpy()).sum() / after_cov.sum())
    assert after == pytest.approx(before, abs=0.3)
    assert after_cov.sum() == pytest.approx(4 * coverage(boxes[0]).sum())


# ---------------------------------------------------------------------------------------------
# normalisation


def test_norm_stats_round_trip_and_validation() -> None:
    stats = NormStats(17.5, 1.75, 1234)
    assert NormStats.from_dict(stats.to_dict()) == stats
    assert all(type(v) in (int, float, str) for v in stats.to_dict().values())
    with pytest.raises(CheckpointError, match="std_c"):
        NormStats.from_dict({"mean_c": 1.0}, where="model.pt")
    with pytest.raises(CheckpointError, match="model.pt"):
        NormStats.from_dict({"mean_c": 1.0, "std_c": 0.0}, where="model.pt")
    with pytest.raises(ValueError):
        NormStats(float("nan"), 1.0)


def test_normalize_and_denormalize_numpy_and_torch() -> None:
    stats = NormStats(20.0, 2.0)
    arr = np.array([18.0, 20.0, 25.0], dtype=np.float32)
    np.testing.assert_allclose(normalize(arr, stats), [-1.0, 0.0, 2.5])
    np.testing.assert_allclose(denormalize(normalize(arr, stats), stats), arr)
    t = torch.tensor([18.0, 20.0, 25.0])
    torch.testing.assert_close(normalize(t, stats), torch.tensor([-1.0, 0.0, 2.5]))
    assert normalize(t, stats).dtype == torch.float32


def test_norm_stats_from_arrays_ignore_invalid_pixels() -> None:
    frames = np.array([[[10.0, -273.2], [20.0, 30.0]]], dtype=np.float32)
    valid = frames > -100
    stats = norm_stats_from_arrays([frames], [valid])
    assert stats.mean_c == pytest.approx(20.0)
    assert stats.std_c == pytest.approx(np.sqrt(200.0 / 3.0))
    assert stats.num_pixels == 3
    with pytest.raises(DataError, match="no valid pixel"):
        norm_stats_from_arrays([frames], [np.zeros_like(valid)])
    with pytest.raises(DataError, match="constant"):
        norm_stats_from_arrays([np.full((2, 2), 5.0)], [np.ones((2, 2), dtype=bool)])


def test_norm_stats_of_real_training_data(data: ThermalData) -> None:
    train = [k for k in data.keyframes if k.given_split == "train"]
    cfg = ClipConfig(window_s=2.7, num_frames=16)
    stats = compute_norm_stats(data.recordings, train, cfg)
    # computed once on the bundled dataset (given train split, default clip)
    assert stats.mean_c == pytest.approx(17.55747, abs=1e-3)
    assert stats.std_c == pytest.approx(1.73609, abs=1e-3)
    assert stats.num_pixels == 5_028_672

    # Same numbers from the raw files when the -273.2 dead pixels are dropped; the naive mean that
    # keeps them is far off. SL14 recordings do contain dead pixels in the frames used.
    union = clip_frame_union(data.recordings, train, cfg)
    raw_values = []
    for rid, idx in union.items():
        with h5py.File(data.recordings[rid].path, "r") as handle:
            raw = np.asarray(handle["frames"][()], dtype=np.float64)
        assert np.array_equal(data.recordings[rid].data.source_index, np.arange(raw.shape[0]))
        raw_values.append(raw[idx].ravel())
    values = np.concatenate(raw_values)
    dead = values == np.float32(-273.2)
    assert dead.sum() > 10_000
    assert values[~dead].mean() == pytest.approx(stats.mean_c, abs=1e-9)
    assert values[~dead].std() == pytest.approx(stats.std_c, abs=1e-9)
    assert values.mean() < stats.mean_c - 3.0

    # training data only: validation keyframes give other statistics
    val = [k for k in data.keyframes if k.given_split == "val"]
    val_stats = compute_norm_stats(data.recordings, val, cfg)
    assert abs(val_stats.mean_c - stats.mean_c) > 1e-3
    assert val_stats.num_pixels < stats.num_pixels


def test_compute_norm_stats_errors(data: ThermalData) -> None:
    cfg = ClipConfig()
    with pytest.raises(DataError, match="no training keyframes"):
        compute_norm_stats(data.recordings, [], cfg)
    with pytest.raises(DataError, match="unknown recording"):
        compute_norm_stats({}, data.keyframes[:1], cfg)


# ---------------------------------------------------------------------------------------------
# Augment


def test_augment_is_deterministic_given_generator() -> None:
    frames, valid = random_clip(7, t=4)
    boxes = random_dyadic_boxes(5, seed=8)
    aug = Augment(p_hflip=0.5, p_vflip=0.5, p_rot180=0.5, offset_c=(-2, 2), gain=(0.8, 1.2), box_jitter=0.1)
    a = aug.apply(frames, valid, boxes, torch.Generator().manual_seed(3))
    b = aug.apply(frames, valid, boxes, torch.Generator().manual_seed(3))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    outs = {
        tuple(aug.apply(frames, valid, boxes, torch.Generator().manual_seed(s))[0][0, 0, :2].tolist())
        for s in range(8)
    }
    assert len(outs) > 1


def test_augment_always_flip_equals_functional_op() -> None:
    frames, valid = random_clip(9)
    boxes = random_dyadic_boxes(4, seed=10)
    plain: dict[str, Any] = {"offset_c": (0.0, 0.0), "gain": (1.0, 1.0), "box_jitter": 0.0}
    g = torch.Generator().manual_seed(0)
    out = Augment(p_hflip=1.0, p_vflip=0.0, p_rot180=0.0, **plain).apply(frames, valid, boxes, g)
    for x, y in zip(out, hflip(frames, valid, boxes), strict=True):
        assert torch.equal(x, y)
    out = Augment(p_hflip=1.0, p_vflip=1.0, p_rot180=1.0, **plain).apply(frames, valid, boxes, g)
    for x, y in zip(out, (frames, valid, boxes), strict=True):
        assert torch.equal(x, y)  # two half-turns
    ident = Augment(p_hflip=0.0, p_vflip=0.0, p_rot180=0.0, **plain).apply(frames, valid, boxes, g)
    assert torch.equal(ident[0], frames) and torch.equal(ident[2], boxes)


def test_augment_temperature_range_and_box_cover() -> None:
    frames, valid = random_clip(11, t=2)
    boxes = random_dyadic_boxes(6, seed=12)
    aug = Augment(
        p_hflip=0.5, p_vflip=0.5, p_rot180=0.0, offset_c=(1.0, 2.0), gain=(1.0, 1.0), box_jitter=0.0
    )
    for seed in range(10):
        f, v, b = aug.apply(frames, valid, boxes, torch.Generator().manual_seed(seed))
        shift = float(f.mean() - frames.mean())
        assert 1.0 - 1e-4 <= shift <= 2.0 + 1e-4
        # whatever flips were drawn, each box still sees the same (shifted) temperatures
        for box, new_box in zip(boxes, b, strict=True):
            before = float((coverage(box) * frames[0].numpy()).sum())
            after = float((coverage(new_box) * (f[0].numpy() - shift)).sum())
            assert after == pytest.approx(before, rel=1e-4, abs=1e-3)
        assert int(v.sum()) == int(valid.sum())


def test_augment_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="p_hflip"):
        Augment(p_hflip=1.5)
    with pytest.raises(ValueError, match="gain"):
        Augment(gain=(1.2, 0.8))
    with pytest.raises(ValueError, match="gain"):
        Augment(gain=(0.0, 1.0))
    with pytest.raises(ValueError, match="box_jitter"):
        Augment(box_jitter=0.5)
    assert "p_vflip=0.5" in repr(Augment())


@pytest.mark.parametrize("op", [hflip, vflip, rotate180])
def test_numpy_and_torch_ops_agree(op: Op) -> None:
    frames, valid = random_clip(13)
    boxes = random_dyadic_boxes(7, seed=14)
    t_out = op(frames, valid, boxes)
    n_out = op(frames.numpy(), valid.numpy(), boxes.numpy())
    for t, n in zip(t_out, n_out, strict=True):
        assert isinstance(n, np.ndarray) and n.dtype == t.numpy().dtype
        np.testing.assert_array_equal(n, t.numpy())
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    np.testing.assert_array_equal(
        jitter_boxes(boxes.numpy(), 0.3, (H, W), g1), jitter_boxes(boxes, 0.3, (H, W), g2).numpy()
    )
    np.testing.assert_array_equal(
        temperature_jitter(frames.numpy(), 0.5, 1.1), temperature_jitter(frames, 0.5, 1.1).numpy()
    )
    aug = Augment(p_hflip=0.5, p_vflip=0.5, p_rot180=0.5, box_jitter=0.2)
    for seed in range(4):
        a = aug.apply(frames, valid, boxes, torch.Generator().manual_seed(seed))
        b = aug.apply(frames.numpy(), valid.numpy(), boxes.numpy(), torch.Generator().manual_seed(seed))
        for t, n in zip(a, b, strict=True):
            np.testing.assert_array_equal(n, t.numpy())


def test_resize_mask_equals_interpolate_nearest_exact() -> None:
    _, valid = random_clip(15, t=2)
    sizes = [(h, w) for h in range(1, 161, 3) for w in (1, 7, 30, 45, 59, 61, 97, 120, 240)]
    for size in sizes:
        _, v, _ = resize(torch.zeros(2, H, W), valid, torch.zeros(0, 4), size)
        ref = torch.nn.functional.interpolate(
            valid.unsqueeze(1).to(torch.uint8), size=size, mode="nearest-exact"
        )
        assert v.dtype == torch.bool
        assert torch.equal(v, ref.squeeze(1).to(torch.bool)), size


def test_clip_median_reference_removes_the_ambient_offset() -> None:
    from thermact.data.transforms import NormStats, normalize

    stats = NormStats(20.0, 2.0, reference="clip_median")
    clip = np.full((4, 5, 6), 18.0, dtype=np.float32)
    clip[:, 1:3, 2:4] = 30.0  # a warm person on an 18 °C floor
    warmer_room = clip + 7.0
    np.testing.assert_allclose(normalize(clip, stats), normalize(warmer_room, stats))
    assert float(normalize(clip, stats)[0, 1, 2]) == pytest.approx(6.0)  # (30 - 18) / 2
    as_tensor = normalize(torch.from_numpy(clip), stats)
    np.testing.assert_allclose(as_tensor.numpy(), normalize(clip, stats))
    assert NormStats.from_dict(stats.to_dict()) == stats


def test_shift_moves_content_and_boxes_together_and_repeats_the_edge() -> None:
    frames = np.full((2, 40, 60), 20.0, dtype=np.float32)
    frames[:, 10:14, 30:36] = 30.0  # a warm body in box [30, 10, 36, 14]
    frames[:, :, 0] = 25.0  # a warm left edge column
    valid = np.ones_like(frames, dtype=bool)
    valid[:, 20, 30] = False  # a dead pixel moves with the content
    boxes = np.array([[30.0, 10.0, 36.0, 14.0]], dtype=np.float32)
    f, v, b = shift(frames, valid, boxes, 4, -3)
    assert b.tolist() == [[34.0, 7.0, 40.0, 11.0]]
    assert (f[:, 7:11, 34:40] == 30.0).all() and f[:, 7:11, 34:40].size == 2 * 24
    assert (f[:, :, :5] == 25.0).all()  # the edge column repeated into the uncovered border
    assert np.argwhere(~v).tolist() == [[0, 17, 34], [1, 17, 34]]
    ft, vt, bt = shift(torch.from_numpy(frames), torch.from_numpy(valid), torch.from_numpy(boxes), 4, -3)
    assert (
        torch.equal(ft, torch.from_numpy(f))
        and torch.equal(vt, torch.from_numpy(v))
        and bt.tolist() == b.tolist()
    )
    # clipped at the frame
    assert shift(frames, valid, boxes, 30, 30)[2].tolist() == [[60.0, 40.0, 60.0, 40.0]]


def test_augment_shift_keeps_every_box_centre_in_the_frame_and_is_off_by_default() -> None:
    frames, valid = random_clip(7, t=4)
    boxes = torch.tensor([[0.0, 5.0, 4.0, 9.0], [50.0, 30.0, 60.0, 40.0]])
    aug = Augment(p_hflip=0.0, p_vflip=0.0, offset_c=(0, 0), gain=(1, 1), box_jitter=0.0, shift_px=8)
    seen = set()
    for s in range(40):
        _, _, b = aug.apply(frames, valid, boxes, torch.Generator().manual_seed(s))
        d = (b - boxes)[0, :2]
        seen.add(tuple(d.tolist()))
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        assert ((cx > 0) & (cx < 60) & (cy > 0) & (cy < 40)).all()
    assert len(seen) > 10
    assert Augment().shift_px == 0 and Augment().to_dict()["shift_px"] == 0
    plain = Augment(box_jitter=0.1)
    a = plain.apply(frames, valid, boxes, torch.Generator().manual_seed(3))
    b = Augment(box_jitter=0.1, shift_px=0).apply(frames, valid, boxes, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    with pytest.raises(ValueError, match="shift_px"):
        Augment(shift_px=-1)


def test_transpose_swaps_x_and_y_and_its_boxes_cover_the_same_pixels() -> None:
    from thermact.models.box_cues import box_pixel_masks

    frames, valid = random_clip(11, t=2)
    boxes = torch.tensor([[3.0, 4.0, 15.0, 12.0], [20.5, 10.0, 31.0, 37.5]])
    for dx, dy in [(0, 0), (7, 12), (20, 20)]:
        f, v, b = transpose(frames, valid, boxes, dx, dy)
        assert f.shape == frames.shape and v.shape == valid.shape
        for i, j in [(0, 25), (5, 30), (39, 59), (17, 3)]:  # output (i, j) = input (j - dx, i + dy), clipped
            src = (min(max(j - dx, 0), H - 1), min(max(i + dy, 0), W - 1))
            assert f[1, i, j] == frames[1, src[0], src[1]] and v[0, i, j] == valid[0, src[0], src[1]]
        x1, y1, x2, y2 = boxes.unbind(1)
        expected = torch.stack([y1 + dx, x1 - dy, y2 + dx, x2 - dy], 1).clamp_min(0)
        assert torch.equal(b, torch.minimum(expected, torch.tensor([W, H, W, H])))
        # a box inside the frame after the move covers the moved pixels of the original box
        marks = box_pixel_masks(boxes[:1], (H, W)).float()
        moved_marks = transpose(marks, marks > 0, boxes[:1], dx, dy)[0]
        if dx >= 0 and 12.0 - dy <= H and 3.0 - dy >= 0:
            assert torch.equal(box_pixel_masks(b[:1], (H, W))[0], moved_marks[0] > 0)
    # square frames: a plain transpose, twice = identity; NumPy gives the same as torch
    sq = frames[:, :, :H]
    f, v, b = transpose(sq, valid[:, :, :H], boxes[:1])
    assert torch.equal(f, sq.transpose(-1, -2)) and b.tolist() == [[4.0, 3.0, 12.0, 15.0]]
    assert torch.equal(transpose(*transpose(sq, valid[:, :, :H], boxes[:1]))[0], sq)
    fn, vn, bn = transpose(frames.numpy(), valid.numpy(), boxes.numpy(), 7, 12)
    ft, vt, bt = transpose(frames, valid, boxes, 7, 12)
    assert (
        np.array_equal(fn, ft.numpy()) and np.array_equal(vn, vt.numpy()) and np.array_equal(bn, bt.numpy())
    )


def test_augment_transpose_keeps_box_centres_turns_people_and_is_off_by_default() -> None:
    frames, valid = random_clip(5, t=2)
    lying = torch.tensor([[10.0, 18.0, 30.0, 24.0], [40.0, 5.0, 44.0, 9.0]])  # a long box along x
    aug = Augment(p_hflip=0.0, p_vflip=0.0, offset_c=(0, 0), gain=(1, 1), box_jitter=0.0, p_transpose=1.0)
    offsets = set()
    for s in range(30):
        _, _, b = aug.apply(frames, valid, lying, torch.Generator().manual_seed(s))
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        assert (
            w.tolist() == [6.0, 4.0] and 10.0 <= h[0] <= 20.0 and 2.0 <= h[1] <= 4.0
        )  # along y now (edges clipped)
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        assert ((cx > 0) & (cx < W) & (cy > 0) & (cy < H)).all()
        offsets.add((b[0, 0] - lying[0, 1]).item())
    assert len(offsets) > 10  # placed anywhere along x
    # boxes spread wider than the frame's height along x cannot all stay: the clip is left as it is
    wide = torch.tensor([[1.0, 5.0, 5.0, 9.0], [54.0, 5.0, 58.0, 9.0]])
    f, _, b = aug.apply(frames, valid, wide, torch.Generator().manual_seed(0))
    assert torch.equal(f, frames) and torch.equal(b, wide)
    # off by default, and the default draws nothing more (recipes without it keep their random stream)
    assert Augment().p_transpose == 0.0 and Augment().to_dict()["p_transpose"] == 0.0
    a = Augment(box_jitter=0.1).apply(frames, valid, lying, torch.Generator().manual_seed(3))
    c = Augment(box_jitter=0.1, p_transpose=0.0).apply(frames, valid, lying, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, c, strict=True))
    with pytest.raises(ValueError, match="p_transpose"):
        Augment(p_transpose=1.5)


def test_zoom_samples_between_pixel_centres_and_moves_boxes_with_the_scene() -> None:
    frames, valid = random_clip(21, t=2)
    boxes = torch.tensor([[20.0, 10.0, 32.0, 16.0], [0.0, 0.0, 60.0, 40.0]])
    same = zoom(frames, valid, boxes, 1.0, 17.0, 9.0)
    assert all(torch.equal(a, b) for a, b in zip(same, (frames, valid, boxes), strict=True))
    s, cx, cy = 1.5, 26.0, 13.0
    f, v, b = zoom(frames, valid, boxes, s, cx, cy)
    assert f.shape == frames.shape and v.dtype == torch.bool
    assert torch.allclose(b[0], torch.tensor([17.0, 8.5, 35.0, 17.5]))  # cx + s (x - cx), ...
    assert b[1].tolist() == [0.0, 0.0, 60.0, 40.0]  # clipped to the frame
    for i, j in [(0, 0), (13, 26), (20, 41), (39, 59)]:  # output (i, j) shows input point (y, x)
        x = min(max(cx + (j + 0.5 - cx) / s - 0.5, 0.0), W - 1.0)
        y = min(max(cy + (i + 0.5 - cy) / s - 0.5, 0.0), H - 1.0)
        x0, y0 = int(x), int(y)
        x1, y1 = min(x0 + 1, W - 1), min(y0 + 1, H - 1)
        ax, ay = x - x0, y - y0
        f0 = frames[1].double()
        want = (1 - ay) * ((1 - ax) * f0[y0, x0] + ax * f0[y0, x1]) + ay * (
            (1 - ax) * f0[y1, x0] + ax * f0[y1, x1]
        )
        assert float(f[1, i, j]) == pytest.approx(float(want), abs=1e-4)
        assert v[0, i, j] == valid[0, min(int(y + 0.5), H - 1), min(int(x + 0.5), W - 1)]
    # zooming out repeats the edge pixels; NumPy gives what torch gives, bit for bit
    out = zoom(frames, valid, boxes, 0.5, 30.0, 20.0)[0]
    assert torch.equal(out[:, 0, 0], frames[:, 0, 0]) and torch.equal(out[:, -1, -1], frames[:, -1, -1])
    fn, vn, bn = zoom(frames.numpy(), valid.numpy(), boxes.numpy(), s, cx, cy)
    assert np.array_equal(fn, f.numpy()) and np.array_equal(vn, v.numpy()) and np.array_equal(bn, b.numpy())
    with pytest.raises(ValueError, match="scale"):
        zoom(frames, valid, boxes, 0.0, cx, cy)


def test_zoomed_real_person_keeps_its_heat_and_scales_its_box(data: ThermalData) -> None:
    frames, valid, boxes = keyframe_frame(data, 10)
    box = boxes[:1]
    cx, cy = float(box[0, 0] + box[0, 2]) / 2, float(box[0, 1] + box[0, 3]) / 2
    for s in (0.8, 1.25):
        f, _, b = zoom(frames, valid, box, s, cx, cy)
        assert torch.allclose(b[0, 2:] - b[0, :2], s * (box[0, 2:] - box[0, :2]))
        before = (coverage(box[0]) * frames[0].numpy()).sum() / coverage(box[0]).sum()
        after = (coverage(b[0]) * f[0].numpy()).sum() / coverage(b[0]).sum()
        assert after == pytest.approx(before, abs=0.5)  # the mean temperature over the person, °C
        assert float(f[0].max()) <= float(frames[0].max()) + 1e-4  # bilinear: no new extremes


def test_augment_zoom_keeps_box_centres_scales_people_and_is_off_by_default() -> None:
    frames, valid = random_clip(4, t=2)
    boxes = torch.tensor([[25.0, 17.0, 35.0, 23.0], [40.0, 20.0, 56.0, 38.0]])
    aug = Augment(p_hflip=0.0, p_vflip=0.0, offset_c=(0, 0), gain=(1, 1), box_jitter=0.0, zoom=(0.8, 1.25))
    scales = []
    for s in range(40):
        _, _, b = aug.apply(frames, valid, boxes, torch.Generator().manual_seed(s))
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        assert ((cx >= 0) & (cx <= W) & (cy >= 0) & (cy <= H)).all()
        scales.append(float((b[0, 3] - b[0, 1]) / 6.0))  # the first box stays clear of the frame's edges
    assert 0.8 - 1e-5 <= min(scales) < 0.9 and 1.15 < max(scales) <= 1.25 + 1e-5
    assert sum(x < 1 for x in scales) >= 10 and sum(x > 1 for x in scales) >= 10  # log-uniform
    # boxes at opposite edges cannot all stay in a zoomed-in frame: the clip is left as it is
    edges = torch.tensor([[0.0, 0.0, 2.0, 2.0], [58.0, 38.0, 60.0, 40.0]])
    f, _, b = Augment(
        zoom=(1.2, 1.25), box_jitter=0.0, p_hflip=0, p_vflip=0, offset_c=(0, 0), gain=(1, 1)
    ).apply(frames, valid, edges, torch.Generator().manual_seed(0))
    assert torch.equal(f, frames) and torch.equal(b, edges)
    assert Augment().zoom == (1.0, 1.0) and Augment().to_dict()["zoom"] == [1.0, 1.0]
    a = Augment(box_jitter=0.1).apply(frames, valid, boxes, torch.Generator().manual_seed(3))
    c = Augment(box_jitter=0.1, zoom=(1.0, 1.0)).apply(frames, valid, boxes, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, c, strict=True))
    with pytest.raises(ValueError, match="zoom"):
        Augment(zoom=(0.0, 1.2))
