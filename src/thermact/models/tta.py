"""Test-time augmentation of an action model by the symmetries of a top-down sensor.

Seen from the ceiling, a person standing, sitting or lying looks the same mirrored left-right,
mirrored up-down or turned half a turn: those flips are training augmentations
(``augment.p_hflip``, ``p_vflip``, ``p_rot180``) and, at test time, four views of the same clip.
:class:`FlipAverage` classifies every person in the four views (identity, left-right,
up-down, half-turn) in one batched forward pass and averages the class probabilities, which
makes the prediction exactly invariant to those flips and averages out part of the model's
view-dependent error. It costs four times the action model's compute.

Shapes and box format (those of :class:`~thermact.models.action.ActionModel`):
    clip: ``[B, 1, T, H, W]`` float.
    rois: ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` in pixel coordinates of the clip, pixel
        ``i`` covering ``[i, i + 1)``; a left-right flip maps ``x`` to ``W - x`` (the convention of
        :func:`thermact.data.geometry.hflip`).
    output: logits ``[K, C]`` whose scores (softmax or sigmoid, ``mode``) are the mean of the
        four views' scores, so that :func:`~thermact.models.postprocess.scores_from_logits` turns
        them into the averaged probabilities.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from thermact.errors import ConfigError
from thermact.models.action import ActionModel
from thermact.models.ensemble import ScoreMode, mean_score_logits

__all__ = ["FLIP_VIEWS", "TTA", "FlipAverage", "check_tta", "flip_view", "with_tta"]

TTA = Literal["none", "flips"]
"""``none``: the model as trained; ``flips``: :class:`FlipAverage`."""

FLIP_VIEWS: tuple[tuple[bool, bool], ...] = ((False, False), (True, False), (False, True), (True, True))
"""``(left-right, up-down)`` mirror of each view: identity, hflip, vflip, half-turn."""


def flip_view(clip: Tensor, rois: Tensor, lr: bool, ud: bool) -> tuple[Tensor, Tensor]:
    """``clip [B, 1, T, H, W]`` and ``rois [K, 5]`` mirrored left-right and/or up-down (new tensors)."""
    h, w = float(clip.shape[-2]), float(clip.shape[-1])
    dims = [d for d, on in ((-1, lr), (-2, ud)) if on]
    out = clip.flip(dims) if dims else clip
    x1, y1, x2, y2 = rois[:, 1], rois[:, 2], rois[:, 3], rois[:, 4]
    xs = (w - x2, w - x1) if lr else (x1, x2)
    ys = (h - y2, h - y1) if ud else (y1, y2)
    return out, torch.stack([rois[:, 0], xs[0], ys[0], xs[1], ys[1]], dim=1)


class FlipAverage(nn.Module):
    """An action model whose scores are averaged over the four flips of its input (see the module
    docstring). ``module``: the model (an :class:`ActionModel` without an interaction head, whose
    memory of other keyframes has no flipped counterpart); ``mode``: its score function."""

    def __init__(self, module: nn.Module, mode: ScoreMode = "softmax") -> None:
        super().__init__()
        if isinstance(module, ActionModel) and module.interaction is not None:
            raise ValueError("flip averaging is not available for a model with an interaction head")
        if mode not in ("softmax", "sigmoid"):
            raise ValueError(f"mode must be 'softmax' or 'sigmoid', got {mode!r}")
        self.module = module
        self.mode: ScoreMode = mode
        self.train(module.training)

    def forward(self, clip: Tensor, rois: Tensor) -> Tensor:
        """Logits ``[K, C]`` of the view-averaged scores (shapes in the module docstring)."""
        b, k, n = clip.shape[0], rois.shape[0], len(FLIP_VIEWS)
        views = [flip_view(clip, rois, lr, ud) for lr, ud in FLIP_VIEWS]
        clips = torch.cat([c for c, _ in views])
        shift = torch.arange(n, dtype=rois.dtype, device=rois.device).repeat_interleave(k) * b
        boxes = torch.cat([r for _, r in views])
        boxes = torch.cat([boxes[:, :1] + shift[:, None], boxes[:, 1:]], dim=1)
        return mean_score_logits(self.module(clips, boxes).float().reshape(n, k, -1), self.mode)


def check_tta(model: nn.Module, tta: TTA, where: str) -> None:
    """Raise :class:`~thermact.errors.ConfigError` (naming ``where``, e.g. the checkpoint) when
    ``tta`` cannot apply to ``model``: flip averaging of a model with an interaction head."""
    if tta != "none" and isinstance(model, ActionModel) and model.interaction is not None:
        raise ConfigError(f"{where}: tta={tta} is not available for a model with an interaction head")


def with_tta(model: nn.Module, tta: TTA, mode: ScoreMode = "softmax") -> nn.Module:
    """``model`` itself (``tta="none"``) or wrapped in :class:`FlipAverage` (``"flips"``)."""
    if tta == "none":
        return model
    if tta == "flips":
        return FlipAverage(model, mode)
    raise ValueError(f"tta must be 'none' or 'flips', got {tta!r}")
