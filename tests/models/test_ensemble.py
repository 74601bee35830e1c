"""Tests for thermact.models.ensemble: the mean-score logits, an ensemble of the shipped model and
a second member on real clips (its scores are the members' mean), and what it refuses."""

from __future__ import annotations

import copy

import pytest
import torch

from thermact.data.dataset import ClipBatch
from thermact.models.action import ActionModel
from thermact.models.ensemble import ActionEnsemble, mean_score_logits, member_state
from thermact.models.factory import HeadConfig, InteractionConfig, ModelConfig, build_model
from thermact.models.tta import FlipAverage
from thermact.tasks.action import TrainedActionModel


@pytest.fixture(scope="module")
def second(shipped: TrainedActionModel) -> ActionModel:
    """Another member: the shipped model with its classifier's rows rolled by one class (so the two
    members disagree whatever the shipped weights are)."""
    assert isinstance(shipped.model, ActionModel)
    model = copy.deepcopy(shipped.model)
    classifier = model.head.classifier
    with torch.no_grad():
        classifier.weight.copy_(torch.roll(classifier.weight, 1, dims=0))
        classifier.bias.copy_(torch.roll(classifier.bias, 1, dims=0))
    return model.eval()


def test_mean_score_logits_give_the_mean_probabilities() -> None:
    logits = torch.randn(3, 5, 7, generator=torch.Generator().manual_seed(0)) * 4
    soft = mean_score_logits(logits, "softmax")
    torch.testing.assert_close(torch.softmax(soft, 1), torch.softmax(logits, 2).mean(0), rtol=0, atol=1e-6)
    sig = mean_score_logits(logits, "sigmoid")
    torch.testing.assert_close(torch.sigmoid(sig), torch.sigmoid(logits).mean(0), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        mean_score_logits(logits, "argmax")  # type: ignore[arg-type]


@pytest.mark.usefixtures("one_thread")
def test_ensemble_scores_are_the_mean_of_its_members_on_real_clips(
    shipped: TrainedActionModel, second: ActionModel, batch: ClipBatch
) -> None:
    first = shipped.model
    ensemble = ActionEnsemble([first, second]).eval()  # type: ignore[list-item]
    with torch.no_grad():
        p1 = torch.softmax(first(batch.frames, batch.rois), 1)
        p2 = torch.softmax(second(batch.frames, batch.rois), 1)
        got = torch.softmax(ensemble(batch.frames, batch.rois), 1)
    assert got.shape == (5, 14)
    torch.testing.assert_close(got, (p1 + p2) / 2, rtol=0, atol=1e-5)
    assert (p1 - p2).abs().max() > 0.05  # the members disagree: the mean is not either of them
    # flip averaging wraps an ensemble like a single model
    with torch.no_grad():
        flips = torch.softmax(FlipAverage(ensemble)(batch.frames, batch.rois), 1)
    torch.testing.assert_close(flips.sum(1), torch.ones(5), rtol=0, atol=1e-5)


def test_member_state_loads_into_an_ensemble(shipped: TrainedActionModel, second: ActionModel) -> None:
    state = member_state([shipped.model.state_dict(), second.state_dict()])
    assert len(state) == 2 * len(shipped.model.state_dict())
    model_cfg = shipped.config.model
    fresh = ActionEnsemble([build_model(model_cfg, shipped.clip, verbose=False) for _ in range(2)])
    assert fresh.load_state_dict(state, strict=True)
    torch.testing.assert_close(fresh.members[1].head.classifier.weight, second.head.classifier.weight)


def test_an_ensemble_refuses_one_member_an_interaction_head_and_a_bad_mode(
    shipped: TrainedActionModel,
) -> None:
    with pytest.raises(ValueError, match="at least two"):
        ActionEnsemble([shipped.model])  # type: ignore[list-item]
    ia = ModelConfig(
        name="thermal_net_t",
        num_frames=8,
        head=HeadConfig(interaction=InteractionConfig(structure="parallel")),
    )
    with pytest.raises(ValueError, match="interaction head"):
        ActionEnsemble([build_model(ia, verbose=False), build_model(ia, verbose=False)])
    with pytest.raises(ValueError, match="mode"):
        ActionEnsemble([shipped.model, shipped.model], "argmax")  # type: ignore[list-item,arg-type]
