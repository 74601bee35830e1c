"""Rebuild a trained model from a thermact checkpoint (for evaluation, detection and export)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from thermact.config import config_from_dict
from thermact.data.transforms import NormStats
from thermact.engine.checkpoint import load_checkpoint
from thermact.engine.config import RunConfig
from thermact.errors import CheckpointError, ConfigError
from thermact.models.detector import ActionDetector
from thermact.models.factory import build_model
from thermact.models.memory import FeatureBank
from thermact.runtime import configure_cpu_math


@dataclasses.dataclass
class TrainedModel:
    """A model with everything needed to feed it and read its output."""

    model: ActionDetector
    config: RunConfig
    classes: list[str]
    norm: NormStats
    metrics: dict[str, Any]
    path: Path
    epoch: int
    """Epochs completed when the checkpoint was written."""
    memory: FeatureBank | None = None
    """Interaction models: the training run's memory bank as saved (for resuming or inspection;
    evaluation and streaming build their own bank from the data they run on)."""


def restore_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> TrainedModel:
    """Load ``path``, rebuild the model of its config and load its weights (eval mode).

    The pretrained-weights path of the config is ignored (the checkpoint holds the trained
    weights); a checkpoint whose tensors do not fit the model of its own config is an error.
    """
    configure_cpu_math()
    p = Path(path)
    ckpt = load_checkpoint(p, map_location=device)
    if ckpt["config"].get("task", "action") != "action":
        raise CheckpointError(
            f"{p}: is a person-detector checkpoint, not an action model (person detectors load with "
            "thermact.detection.restore.restore_detector; commands take them as detector=DETECTOR.pt)"
        )
    try:
        cfg = config_from_dict(RunConfig, ckpt["config"])
    except ConfigError as err:
        raise CheckpointError(f"{p}: the config stored in the checkpoint is invalid: {err}") from err
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained=None))
    model = build_model(cfg.model, verbose=False, keyframe_position=cfg.data.keyframe_position)
    try:
        result = model.load_state_dict(ckpt["model"], strict=False)
    except RuntimeError as err:  # tensors of the wrong shape for the config's model
        detail = " ".join(line.strip() for line in str(err).strip().splitlines()[:3])
        raise CheckpointError(
            f"{p}: weights do not fit the {cfg.model.name} model of its own config: {detail}"
        ) from err
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{p}: weights do not fit a {cfg.model.name} model: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    model.to(device).eval()
    if "norm" not in ckpt:
        raise CheckpointError(f"{p}: checkpoint lacks the normalisation statistics ('norm')")
    norm = NormStats.from_dict(ckpt["norm"], where=f"{p}: norm")
    metrics = dict(ckpt.get("metrics") or {})
    memory = None
    if model.interaction is not None and ckpt.get("memory") is not None:
        memory = model.new_memory_bank()
        memory.load_state_dict(ckpt["memory"], where=f"{p}: memory")
    return TrainedModel(
        model, cfg, list(ckpt["classes"]), norm, metrics, p, int(ckpt.get("epoch", 0)), memory
    )
