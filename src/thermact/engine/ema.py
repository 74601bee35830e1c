"""An exponential moving average of a model's weights (``optim.ema_decay``).

After every optimiser step the average moves towards the trained weights:
``average = d * average + (1 - d) * weights`` with ``d = min(decay, (1 + step) / (10 + step))``,
so the first steps (whose weights are far from the end) fade out quickly. Floating-point buffers
(BatchNorm statistics) are averaged the same way, integer ones (``num_batches_tracked``) copied.
The average is what a run evaluates and what its checkpoints hold under ``model`` (so every
command that loads a checkpoint uses it); the optimiser's own weights are kept beside it under
``raw_model`` for resuming (see :mod:`thermact.engine.checkpoint`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["WeightAverage", "ema_decay_at"]


def ema_decay_at(decay: float, step: int) -> float:
    """The decay used for the update after optimiser step ``step`` (1-based): ``decay``, lowered
    for the first steps (``(1 + step) / (10 + step)``)."""
    return min(decay, (1.0 + step) / (10.0 + step))


class WeightAverage:
    """An averaged copy of ``model`` (kept in eval mode, without gradients).

    Args:
        model: the model being trained (its current weights start the average).
        decay: the per-step decay, in [0, 1).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Move the average towards ``model``'s weights after optimiser step ``step``."""
        d = ema_decay_at(self.decay, step)
        trained = model.state_dict()
        for name, avg in self.module.state_dict().items():
            value = trained[name].detach()
            if avg.is_floating_point():
                avg.lerp_(value.to(avg.dtype), 1.0 - d)
            else:
                avg.copy_(value)
