"""Rebuild a trained model from a thermact checkpoint: the steps both tasks share.

A checkpoint (:mod:`thermact.engine.checkpoint`) holds the run config, the classes, the
normalisation, the clip and the weights. :func:`restore` reads it once, checks it is of the task
asked for, validates its config, builds the model of that config (the task's ``build`` function),
loads the weights strictly and returns a :class:`TrainedModel` in eval mode: everything needed to
feed the model and read its output.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import nn

from thermact.config import config_from_dict
from thermact.data.clips import ClipConfig
from thermact.data.transforms import NormStats
from thermact.engine.checkpoint import load_checkpoint
from thermact.errors import CheckpointError, ConfigError
from thermact.runtime import configure_cpu_math

__all__ = ["TrainedModel", "checkpoint_task", "restore"]

ModelT = TypeVar("ModelT", bound=nn.Module)
ConfigT = TypeVar("ConfigT")


def checkpoint_task(ckpt: dict[str, Any]) -> str:
    """The task a loaded checkpoint belongs to: its config's ``task`` (``action`` when absent)."""
    config = ckpt.get("config")
    task = config.get("task", "action") if isinstance(config, dict) else "action"
    return str(task)


@dataclasses.dataclass
class TrainedModel(Generic[ModelT, ConfigT]):
    """A restored model with everything needed to feed it and read its output."""

    model: ModelT
    """In eval mode, on the device it was restored to."""
    config: ConfigT
    """The run config it was trained with."""
    classes: list[str]
    norm: NormStats
    clip: ClipConfig
    """The clip it is fed (window, frames, keyframe position)."""
    metrics: dict[str, Any]
    path: Path
    epoch: int
    """Epochs completed when the checkpoint was written."""
    checkpoint: dict[str, Any] = dataclasses.field(repr=False, default_factory=dict)
    """The other entries of the checkpoint (e.g. an interaction model's ``memory``)."""


def restore(
    path: str | os.PathLike[str],
    device: str | torch.device,
    task: str,
    config_type: type[ConfigT],
    build: Callable[[ConfigT], tuple[ModelT, ClipConfig]],
    wrong_task: str,
) -> TrainedModel[ModelT, ConfigT]:
    """Load ``path`` as a checkpoint of ``task`` and rebuild its model (eval mode) on ``device``.

    Args:
        config_type: the task's run config dataclass.
        build: the model and the clip of a config (random weights).
        wrong_task: the error message (after the path) for a checkpoint of another task.

    Raises:
        CheckpointError: not a thermact checkpoint, another task's, an invalid stored config,
            weights that do not fit the model of that config, or missing normalisation statistics.
    """
    configure_cpu_math()
    p = Path(path)
    ckpt = load_checkpoint(p, map_location=device)
    if checkpoint_task(ckpt) != task:
        raise CheckpointError(f"{p}: {wrong_task}")
    try:
        cfg = config_from_dict(config_type, ckpt["config"])
    except ConfigError as err:
        raise CheckpointError(f"{p}: the config stored in the checkpoint is invalid: {err}") from err
    model, clip = build(cfg)
    name = getattr(getattr(cfg, "model", None), "name", type(model).__name__)
    try:
        result = model.load_state_dict(ckpt["model"], strict=False)
    except RuntimeError as err:  # tensors of the wrong shape for the config's model
        detail = " ".join(line.strip() for line in str(err).strip().splitlines()[:3])
        raise CheckpointError(
            f"{p}: weights do not fit the {name} model of its own config: {detail}"
        ) from err
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{p}: weights do not fit a {name} model: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    model.to(device).eval()
    if "norm" not in ckpt:
        raise CheckpointError(f"{p}: checkpoint lacks the normalisation statistics ('norm')")
    norm = NormStats.from_dict(ckpt["norm"], where=f"{p}: norm")
    metrics = dict(ckpt.get("metrics") or {})
    rest = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "config", "norm", "metrics")}
    return TrainedModel(
        model, cfg, list(ckpt["classes"]), norm, clip, metrics, p, int(ckpt.get("epoch", 0)), rest
    )
