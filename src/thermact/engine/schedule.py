"""Learning-rate schedule as a pure function of the step.

``lr_at(step)`` is linear warm-up from ``warmup_factor * base_lr`` to ``base_lr`` over
``warmup_steps``, then half-cosine decay to ``min_lr`` at ``total_steps`` (and ``min_lr`` after).
Being a pure function of the step, resuming needs nothing but the step counter.
"""

from __future__ import annotations

import math


def lr_at(
    step: int,
    base_lr: float,
    total_steps: int,
    warmup_steps: int = 0,
    warmup_factor: float = 0.1,
    min_lr: float = 0.0,
) -> float:
    """Learning rate for optimiser step ``step`` (0-based)."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    if step < warmup_steps:
        alpha = step / warmup_steps
        return base_lr * (warmup_factor + (1.0 - warmup_factor) * alpha)
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))
