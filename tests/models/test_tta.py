"""Tests for thermact.models.tta: the flips of a view, flip averaging of the shipped model on real
clips (exact invariance, the mean of the four views), and where it is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thermact.data.dataset import ClipBatch
from thermact.data.geometry import hflip, rotate180, vflip
from thermact.errors import ConfigError
from thermact.models.factory import HeadConfig, InteractionConfig, ModelConfig, build_model
from thermact.models.tta import FLIP_VIEWS, FlipAverage, check_tta, flip_view, with_tta
from thermact.tasks.action import TrainedActionModel


def test_flip_view_is_the_flip_of_the_training_augmentations(batch: ClipBatch) -> None:
    clip, rois = batch.frames, batch.rois
    valid = torch.ones_like(clip, dtype=torch.bool)
    for (lr, ud), flip in zip(FLIP_VIEWS[1:], (hflip, vflip, rotate180), strict=True):
        frames, boxes = flip_view(clip, rois, lr, ud)
        want_frames, _, want_boxes = flip(clip, valid, rois[:, 1:])
        torch.testing.assert_close(frames, want_frames, rtol=0, atol=0)
        torch.testing.assert_close(boxes[:, 1:], want_boxes, rtol=0, atol=0)
        torch.testing.assert_close(boxes[:, 0], rois[:, 0], rtol=0, atol=0)
    frames, boxes = flip_view(clip, rois, False, False)
    assert torch.equal(frames, clip) and torch.equal(boxes, rois)


@pytest.mark.usefixtures("one_thread")
def test_flip_averaged_scores_do_not_change_when_the_input_is_flipped(
    shipped: TrainedActionModel, batch: ClipBatch
) -> None:
    model = shipped.model.eval()
    averaged = FlipAverage(model)
    with torch.no_grad():
        ref = torch.softmax(averaged(batch.frames, batch.rois), dim=1)
        plain = torch.softmax(model(batch.frames, batch.rois), dim=1)
        for lr, ud in FLIP_VIEWS[1:]:
            clip, rois = flip_view(batch.frames, batch.rois, lr, ud)
            torch.testing.assert_close(torch.softmax(averaged(clip, rois), dim=1), ref, rtol=0, atol=1e-5)
            # the model alone is not invariant: the test would see a wrong view or box flip
            assert (torch.softmax(model(clip, rois), dim=1) - plain).abs().max() > 1e-3
    assert ref.shape == (5, 14) and torch.allclose(ref.sum(1), torch.ones(5))
    assert not torch.allclose(ref, plain, atol=1e-3)


@pytest.mark.usefixtures("one_thread")
def test_flip_averaged_scores_are_the_mean_of_the_four_views(
    shipped: TrainedActionModel, batch: ClipBatch
) -> None:
    model = shipped.model.eval()
    with torch.no_grad():
        views = [
            torch.softmax(model(*flip_view(batch.frames, batch.rois, lr, ud)), 1) for lr, ud in FLIP_VIEWS
        ]
        got = torch.softmax(FlipAverage(model)(batch.frames, batch.rois), dim=1)
        torch.testing.assert_close(got, torch.stack(views).mean(0), rtol=0, atol=1e-5)
        # sigmoid models: the mean of the four views' sigmoid scores
        sig = [torch.sigmoid(model(*flip_view(batch.frames, batch.rois, lr, ud))) for lr, ud in FLIP_VIEWS]
        got = torch.sigmoid(FlipAverage(model, "sigmoid")(batch.frames, batch.rois))
        torch.testing.assert_close(got, torch.stack(sig).mean(0), rtol=0, atol=1e-5)


def test_with_tta_and_what_is_refused(shipped: TrainedActionModel) -> None:
    model = shipped.model.eval()
    assert with_tta(model, "none") is model
    wrapped = with_tta(model, "flips")
    assert isinstance(wrapped, FlipAverage) and wrapped.module is model and not wrapped.training
    with pytest.raises(ValueError, match="tta must be 'none' or 'flips'"):
        with_tta(model, "rot90")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        FlipAverage(model, "logits")  # type: ignore[arg-type]
    ia = build_model(
        ModelConfig(
            num_frames=8, head=HeadConfig(mlp_dim=32, interaction=InteractionConfig(structure="parallel"))
        ),
        verbose=False,
    )
    with pytest.raises(ValueError, match="interaction head"):
        FlipAverage(ia)
    with pytest.raises(
        ConfigError, match=r"^ia\.pt: tta=flips is not available for a model with an interaction head"
    ):
        check_tta(ia, "flips", "ia.pt")
    check_tta(ia, "none", "ia.pt")
    check_tta(model, "flips", "thermal_net_live")


def test_a_box_at_the_frame_edge_stays_inside_the_flipped_frame() -> None:
    clip = torch.zeros(1, 1, 2, 40, 60)
    rois = torch.tensor([[0.0, 0.0, 0.0, 10.0, 40.0], [0.0, 50.5, 3.0, 60.0, 7.5]])
    for lr, ud in FLIP_VIEWS:
        _, boxes = flip_view(clip, rois, lr, ud)
        b = boxes[:, 1:].numpy()
        assert (b[:, [0, 2]] >= 0).all() and (b[:, [0, 2]] <= 60).all()
        assert (b[:, [1, 3]] >= 0).all() and (b[:, [1, 3]] <= 40).all()
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
        np.testing.assert_allclose(b[:, 2] - b[:, 0], [10.0, 9.5])
