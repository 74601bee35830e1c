"""An ensemble of trained action models: the mean of their class probabilities.

With a few hundred labelled boxes, two runs of one recipe that differ only in their seed disagree on
many boxes of a session they never saw (leave-one-session-out frame-mAP 0.34 ± 0.08 per fold
between seeds); averaging their probabilities removes part of that seed-to-seed variance, which a
single network cannot. :class:`ActionEnsemble` holds ``M`` action models of one architecture,
trained on the same classes, clip and normalisation (``thermact model ensemble`` checks this and
writes them as one checkpoint, see :mod:`thermact.commands.model`), and behaves as one action model:
the same inputs, logits whose scores are the members' mean scores. It costs ``M`` times the
action model's compute.

Shapes and box format (those of :class:`~thermact.models.action.ActionModel`):
    clip: ``[B, 1, T, H, W]`` float, normalised as the members were trained.
    rois: ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` in pixel coordinates of the clip.
    output: logits ``[K, C]`` whose scores (softmax or sigmoid, ``mode``) are the mean of the
        members' scores, so that :func:`~thermact.models.postprocess.scores_from_logits` turns
        them into the averaged probabilities.

The checkpoint of an ensemble is an ordinary action checkpoint whose config says
``model.members: M`` and whose weights are the members' under ``members.<i>.`` (:func:`member_state`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from thermact.models.action import ActionModel

__all__ = ["ActionEnsemble", "ScoreMode", "mean_score_logits", "member_state"]

ScoreMode = Literal["softmax", "sigmoid"]


def mean_score_logits(logits: Tensor, mode: ScoreMode) -> Tensor:
    """Logits ``[K, C]`` whose scores are the mean over the first axis of the scores of ``logits``
    ``[N, K, C]`` (softmax: log of the mean probability; sigmoid: logit of the mean probability)."""
    if mode == "softmax":
        return torch.log(torch.softmax(logits.float(), dim=-1).mean(0).clamp_min(1e-12))
    if mode == "sigmoid":
        p = torch.sigmoid(logits.float()).mean(0).clamp(1e-7, 1 - 1e-7)
        return torch.log(p) - torch.log1p(-p)
    raise ValueError(f"mode must be 'softmax' or 'sigmoid', got {mode!r}")


class ActionEnsemble(nn.Module):
    """``M`` action models as one (see the module docstring).

    Args:
        members: at least two :class:`ActionModel` of one architecture, without an interaction
            head (its memory of other keyframes is its own model's).
        mode: the members' score function (their config's ``model.head.mode``).
    """

    interaction: None = None
    """No interaction head (code that handles an :class:`ActionModel` reads this)."""

    def __init__(self, members: Sequence[ActionModel], mode: ScoreMode = "softmax") -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
        if any(m.interaction is not None for m in members):
            raise ValueError("an ensemble cannot hold a model with an interaction head")
        if mode not in ("softmax", "sigmoid"):
            raise ValueError(f"mode must be 'softmax' or 'sigmoid', got {mode!r}")
        self.members = nn.ModuleList(members)
        self.mode: ScoreMode = mode

    def forward(self, clip: Tensor, rois: Tensor) -> Tensor:
        """Logits ``[K, C]`` of the members' mean scores (shapes in the module docstring)."""
        return mean_score_logits(torch.stack([m(clip, rois).float() for m in self.members]), self.mode)


def member_state(states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The state dict of an :class:`ActionEnsemble` of members with state dicts ``states``."""
    return {f"members.{i}.{key}": value for i, state in enumerate(states) for key, value in state.items()}
