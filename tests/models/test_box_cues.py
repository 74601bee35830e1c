"""Tests for thermact.models.box_cues: pixel masks, the cues on real clips, the encoder in every path
of the action model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from thermact.baselines.classifier import feature_table
from thermact.data.clips import ClipConfig, clip_indices
from thermact.data.geometry import hflip, rotate180, vflip
from thermact.data.source import ThermalData
from thermact.errors import ConfigError
from thermact.models.box_cues import (
    CUE_NAMES,
    NETWORK_CUES,
    RADIAL_CUE_NAMES,
    BoxCueEncoder,
    box_cues,
    box_pixel_masks,
    midpoint_median,
    radial_cues,
)
from thermact.models.factory import HeadConfig, InteractionConfig, ModelConfig, build_model

CLIP = ClipConfig(2.7, 8, "causal")


def _cues_model(seed: int = 0, mlp_dim: int = 32, cue_dim: int = 8) -> nn.Module:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        name="thermal_net_t",
        num_frames=8,
        head=HeadConfig(mlp_dim=mlp_dim, box_cues=True, box_cue_dim=cue_dim),
    )
    return build_model(cfg, CLIP, verbose=False)


def _real_clips(data: ThermalData, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` real causal clips (°C, ``[B, T, H, W]``) of keyframes with two persons, and their boxes."""
    kfs = [k for k in data.keyframes if len(k.persons) == 2][:count]
    clips, rows = [], []
    for b, kf in enumerate(kfs):
        rec = data.recordings[kf.recording_id]
        clips.append(
            torch.from_numpy(np.asarray(rec.frames[clip_indices(rec.timestamps, kf.timestamp_ms, CLIP)]))
        )
        rows += [[float(b), *p.xyxy] for p in kf.persons]
    return torch.stack(clips).double(), torch.tensor(rows, dtype=torch.float64)


def test_box_pixel_masks_take_pixel_centres() -> None:
    boxes = torch.tensor([[1.0, 2.0, 3.0, 5.0], [10.2, 0.0, 10.4, 0.3], [0.0, 0.0, 60.0, 40.0]])
    masks = box_pixel_masks(boxes, (40, 60))
    rows, cols = np.nonzero(masks[0].numpy())
    assert sorted(set(cols.tolist())) == [1, 2] and sorted(set(rows.tolist())) == [2, 3, 4]
    assert masks[1].sum() == 1 and bool(masks[1, 0, 10])  # too thin: the pixel nearest its centre
    assert masks[2].all()


def test_background_is_the_median_outside_every_box_of_the_clip(real_data: ThermalData) -> None:
    frames, rois = _real_clips(real_data, 3)
    cues = box_cues(frames, rois, 7)
    masks = box_pixel_masks(rois[:, 1:], (40, 60)).numpy()
    col = CUE_NAMES.index("mean_above_bg")
    for k in range(len(rois)):
        b = int(rois[k, 0])
        key = frames[b, 7].numpy()
        free = ~masks[rois[:, 0].numpy() == b].any(axis=0)
        background = np.median(key[free])
        assert cues[k, col].item() == pytest.approx(key[masks[k]].mean() - background, abs=1e-9)
    assert cues[:, col].min() > 0.5  # every person is warmer than the room


def test_cues_of_real_boxes_separate_lying_from_standing(real_data: ThermalData) -> None:
    table = feature_table(real_data.recordings, real_data.keyframes, CLIP)
    col = {n: i for i, n in enumerate(CUE_NAMES)}
    names = real_data.classes.names
    lying = table.features[table.labels == names.index("lying down-lying with risk")]
    standing = table.features[table.labels == names.index("standing")]
    walking = table.features[table.labels == names.index("walking")]
    assert len(table) == 500 and len(lying) == 272 and len(standing) == 148
    # from above a lying person covers more than twice the area of a standing one, and is longer
    assert np.median(lying[:, col["area_px"]]) > 2 * np.median(standing[:, col["area_px"]])
    assert np.median(lying[:, col["elongation"]]) > np.median(standing[:, col["elongation"]]) + 0.2
    # walking moves: more motion energy than lying still
    assert np.median(walking[:, col["motion_energy"]]) > 2 * np.median(lying[:, col["motion_energy"]])
    assert table.features[:, col["mean_above_bg"]].min() > 0.5
    assert (table.features[:, col["hot_fraction"]] <= 1.0).all()
    assert (table.features[:, col["hot_area_px"]] > 0).all()


def test_cues_do_not_depend_on_the_view_orientation(real_data: ThermalData) -> None:
    frames, rois = _real_clips(real_data, 1)
    base = box_cues(frames, rois, 7)
    keep = [CUE_NAMES.index(n) for n in NETWORK_CUES if n not in ("width_px", "height_px")]
    for op in (hflip, rotate180):
        f, _, b = op(frames[0], torch.ones_like(frames[0], dtype=torch.bool), rois[:, 1:])
        turned = box_cues(f[None], torch.cat([rois[:, :1], b], 1), 7)
        torch.testing.assert_close(turned[:, keep], base[:, keep], rtol=1e-9, atol=1e-9)


def test_model_with_box_cues_sees_the_box_size() -> None:
    model = _cues_model().eval()
    assert isinstance(model.cues, BoxCueEncoder) and model.head.extra_dim == 8
    assert model.head.mlp[0].in_features == model.head.dim_in + 8
    clip = torch.zeros(1, 1, 8, 40, 60)
    clip[..., 10:20, 10:30] = 3.0  # a warm blob
    small = torch.tensor([[0.0, 12.0, 12.0, 16.0, 16.0]])
    large = torch.tensor([[0.0, 10.0, 10.0, 30.0, 20.0]])
    with torch.no_grad():
        cues = model.box_cues(clip, torch.cat([small, large]))
    assert cues is not None and not torch.allclose(cues[0], cues[1])
    assert not torch.allclose(model(clip, small), model(clip, large))
    model.train()
    rois = torch.tensor([[0.0, 12, 12, 16, 16], [1.0, 10, 10, 30, 20]])
    model(clip.repeat(2, 1, 1, 1, 1), rois).sum().backward()
    assert model.cues.proj.weight.grad is not None and model.cues.proj.weight.grad.abs().sum() > 0


def test_every_path_of_the_model_appends_the_cues(real_data: ThermalData) -> None:
    model = _cues_model(1).eval()
    frames, rois = _real_clips(real_data, 2)
    clip, rois = ((frames - 20.0) / 3.0).float()[:, None], rois.float()
    with torch.no_grad():
        logits = model(clip, rois)
        cues = model.box_cues(clip, rois)
        pooled = model.person_features(clip, rois)
        via_classify = model.classify(pooled, rois[:, 0].long(), cues=cues)
        via_features = model.head.classifier(model.features(clip, rois))
        with_pooled, pooled_again = model(clip, rois, return_pooled=True)
    assert cues is not None and cues.shape == (len(rois), 8) and cues.abs().sum() > 0
    torch.testing.assert_close(via_classify, logits, rtol=0, atol=0)
    torch.testing.assert_close(via_features, logits, rtol=0, atol=0)
    torch.testing.assert_close(with_pooled, logits, rtol=0, atol=0)
    torch.testing.assert_close(pooled_again, pooled, rtol=0, atol=0)
    with pytest.raises(ValueError, match="takes 8 extra features per person, got none"):
        model.classify(pooled, rois[:, 0].long())


def test_without_box_cues_the_model_is_unchanged() -> None:
    torch.manual_seed(0)
    plain = build_model(ModelConfig(name="thermal_net_t", num_frames=8, head=HeadConfig(mlp_dim=32)), CLIP)
    with_cues = _cues_model(0)
    assert plain.cues is None and plain.box_cues(torch.zeros(1, 1, 8, 40, 60), torch.zeros(0, 5)) is None
    assert plain.head.mlp[0].in_features == plain.head.dim_in
    extra = {k for k in with_cues.state_dict() if k not in plain.state_dict()}
    assert extra == {f"cues.{k}" for k in with_cues.cues.state_dict()}  # type: ignore[union-attr]
    # the backbone is built first and draws the same random numbers with or without cues
    for key, value in plain.backbone.state_dict().items():
        assert value.equal(with_cues.backbone.state_dict()[key]), key


def test_box_cues_are_not_combined_with_an_interaction_head() -> None:
    with pytest.raises(ConfigError, match="box_cues is not combined with an interaction"):
        from thermact.config import config_from_dict

        config_from_dict(ModelConfig, {"head": {"box_cues": True, "interaction": {"structure": "parallel"}}})
    with pytest.raises(ValueError, match="box_cue_dim must be >= 1"):
        HeadConfig(box_cues=True, box_cue_dim=0, interaction=InteractionConfig())


def test_box_position_adds_the_centre_to_the_cues(real_data: ThermalData) -> None:
    frames, rois = _real_clips(real_data, 2)
    plain, placed = BoxCueEncoder(4), BoxCueEncoder(4, position=True)
    assert placed.norm.num_features == len(CUE_NAMES) == len(NETWORK_CUES) + 2
    assert [CUE_NAMES[c] for c in placed.columns][6:8] == ["center_x", "center_y"]
    # the same warm blob at two places: equal cues without the position, different with it
    clip = torch.full((2, 1, 8, 40, 60), 18.0)
    clip[0, ..., 10:20, 10:16] = 30.0
    clip[1, ..., 20:30, 40:46] = 30.0
    boxes = torch.tensor([[0.0, 9, 9, 17, 21], [1.0, 39, 19, 47, 31]])
    seen = {}
    for name, enc in (("plain", plain), ("placed", placed)):
        enc.eval()
        torch.manual_seed(0)
        enc.proj.reset_parameters()
        with torch.no_grad():
            seen[name] = enc(clip, boxes)
    torch.testing.assert_close(seen["plain"][0], seen["plain"][1], rtol=0, atol=1e-6)
    assert (seen["placed"][0] - seen["placed"][1]).abs().max() > 1e-3
    centres = box_cues(frames, rois, 7)[:, [6, 7]]  # fractions of the frame on real boxes
    assert ((centres > 0) & (centres < 1)).all()
    model = build_model(
        ModelConfig(name="thermal_net_t", num_frames=8, head=HeadConfig(box_cues=True, box_position=True)),
        CLIP,
    )
    assert isinstance(model.cues, BoxCueEncoder) and len(model.cues.columns) == len(CUE_NAMES)
    with pytest.raises(ValueError, match="box_position needs head.box_cues"):
        HeadConfig(box_position=True)


def test_midpoint_median_is_numpys_median_of_the_kept_values() -> None:
    gen = torch.Generator().manual_seed(0)
    for values in (torch.randn(9, 50, generator=gen), torch.randint(0, 4, (9, 50), generator=gen).float()):
        keep = torch.rand(9, 50, generator=gen) < torch.linspace(0.02, 1.0, 9)[:, None]
        keep[:, 7] |= ~keep.any(dim=1)  # every row keeps one at least
        got = midpoint_median(values, keep)
        want = [np.median(v[k]) for v, k in zip(values.numpy(), keep.numpy(), strict=True)]
        assert got.tolist() == pytest.approx(want, abs=0) and got.dtype == values.dtype


def test_radial_cues_on_hand_boxes() -> None:
    boxes = torch.tensor(
        [
            [28.0, 18, 32, 22],  # on the optical axis of a 40 x 60 frame
            [50.0, 18, 58, 22],  # 24 px right of it, twice as wide as high: stretched away from it
            [28.0, 0, 32, 10],  # 15 px above it, taller than wide
            [0.0, 0, 4, 4],  # a corner
        ],
        dtype=torch.float64,
    )
    half_diagonal = 0.5 * (60.0**2 + 40.0**2) ** 0.5
    expected = torch.tensor(
        [
            [0.0, 1.0],
            [24.0 / half_diagonal, 2.0],
            [15.0 / half_diagonal, 2.5],
            [(28.0**2 + 18.0**2) ** 0.5 / half_diagonal, 1.0],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(radial_cues(boxes, (40, 60)), expected, rtol=1e-12, atol=1e-12)


def test_radial_cues_do_not_change_under_the_mirrors_and_the_half_turn(real_data: ThermalData) -> None:
    frames, rois = _real_clips(real_data, 2)
    base = radial_cues(rois[:, 1:], (40, 60))
    assert base[:, 0].min() > 0 and base[:, 0].max() < 1
    for op in (hflip, vflip, rotate180):
        _, _, boxes = op(frames[0], torch.ones_like(frames[0], dtype=torch.bool), rois[:, 1:])
        torch.testing.assert_close(radial_cues(boxes, (40, 60)), base, rtol=1e-9, atol=1e-9)


def test_radial_cues_of_real_boxes(real_data_v2: ThermalData) -> None:
    """In the three sessions people lie on the floor near the optical axis and stand near the walls;
    a bed, seen obliquely away from the axis, is stretched along the direction from it."""
    names = real_data_v2.classes.names
    rows = [(p.label, *p.xyxy) for k in real_data_v2.keyframes for p in k.persons if p.label is not None]
    labels = np.asarray([r[0] for r in rows])
    cues = radial_cues(torch.tensor([r[1:] for r in rows], dtype=torch.float64), (40, 60)).numpy()
    lying = cues[labels == names.index("lying down-lying with risk")]
    standing = cues[labels == names.index("standing")]
    on_bed = cues[labels == names.index("lying down-lying on the bed/couch")]
    assert (len(lying), len(standing), len(on_bed)) == (715, 291, 44)
    assert np.median(lying[:, 0]) < 0.3 < 0.6 < np.median(standing[:, 0])
    assert np.median(on_bed[:, 1]) > 1.5 > 1.0 > np.median(lying[:, 1])


def test_box_radial_appends_the_radial_cues() -> None:
    torch.manual_seed(0)  # the embedding's weights: fixed, so that the check below is deterministic
    enc = BoxCueEncoder(4, radial=True).eval()
    assert enc.norm.num_features == len(NETWORK_CUES) + len(RADIAL_CUE_NAMES)
    # the same warm blob on the axis and towards a corner: different embeddings with the cues
    clip = torch.full((2, 1, 8, 40, 60), 18.0)
    clip[0, ..., 16:24, 27:33] = 30.0
    clip[1, ..., 2:10, 2:8] = 30.0
    boxes = torch.tensor([[0.0, 27, 16, 33, 24], [1.0, 2, 2, 8, 10]])
    with torch.no_grad():
        seen = enc(clip, boxes)
        plain = BoxCueEncoder(4).eval()(clip, boxes)
    assert (seen[0] - seen[1]).abs().max() > 1e-3
    torch.testing.assert_close(plain[0], plain[1], rtol=0, atol=1e-6)
    model = build_model(
        ModelConfig(name="thermal_net_t", num_frames=8, head=HeadConfig(box_cues=True, box_radial=True)), CLIP
    )
    assert isinstance(model.cues, BoxCueEncoder) and model.cues.radial
    with pytest.raises(ValueError, match="box_radial needs head.box_cues"):
        HeadConfig(box_radial=True)
