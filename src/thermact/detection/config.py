"""Run configuration of the person detector (``thermact train`` with ``task: detector``).

The sections ``data``, ``augment`` and ``optim`` are those of the action runs
(:mod:`thermact.engine.config`); ``loss``, ``eval`` and ``model`` are the detector's own. YAML::

    task: detector               # selects this config (and the detector training loop)
    run_dir: runs/person_detector
    data: {split: session, fold: 0, window_s: 0.5, keyframe_position: causal}   # causal only
    augment: {p_hflip: 0.5, p_vflip: 0.5, p_rot180: 0.5, offset_c: [-1, 1], gain: [0.9, 1.1], box_jitter: 0.0}
    optim: {lr: 0.004, epochs: 30, batch_size: 16, ...}
    loss: {size_weight: 1.0, offset_weight: 1.0, with_others: true}
    eval: {every_epochs: 1, score_threshold: 0.3, top_k: 20, nms_iou: 0.5}
    model: {name: person_detector_s, num_frames: 3}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

from thermact.config import build_config
from thermact.detection.model import PersonDetectorNet, person_detector_s, person_detector_t
from thermact.engine.config import AugmentSection, DataSection, OptimSection, split_config_arg
from thermact.errors import ConfigError

__all__ = [
    "DetectorEvalSection",
    "DetectorLossSection",
    "DetectorModelConfig",
    "DetectorRunConfig",
    "build_detector",
    "load_detector_config",
]

DETECTOR_CLASSES = ("person", "non-person warm object")


@dataclasses.dataclass
class DetectorModelConfig:
    """Which detector to build (see :func:`build_detector`)."""

    name: Literal["person_detector_s", "person_detector_t"] = "person_detector_s"
    num_frames: int = 3
    num_classes: int = 2

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.num_classes != 2:
            raise ValueError(f"num_classes must be 2 (person, non-person), got {self.num_classes}")


@dataclasses.dataclass
class DetectorLossSection:
    size_weight: float = 1.0
    offset_weight: float = 1.0
    with_others: bool = True
    """Train the non-person heatmap class on the hot objects and furniture of the raw annotations."""


@dataclasses.dataclass
class DetectorEvalSection:
    every_epochs: int = 1
    score_threshold: float = 0.3
    """Operating point of the recall / precision / hot-object false-positive numbers (AP uses all)."""
    top_k: int = 20
    nms_iou: float = 0.5
    min_score: float = 0.01
    """Lowest detection score kept for the AP computation."""


def _detector_data() -> DataSection:
    return DataSection(window_s=0.5, keyframe_position="causal")


def _detector_augment() -> AugmentSection:
    return AugmentSection(p_rot180=0.5, box_jitter=0.0)


def _detector_optim() -> OptimSection:
    return OptimSection(lr=0.004, weight_decay=0.01, epochs=30, batch_size=16)


@dataclasses.dataclass
class DetectorRunConfig:
    task: Literal["detector"] = "detector"
    run_dir: str = "runs/person_detector"
    exist_ok: bool = False
    resume: str | None = None
    seed: int = 0
    deterministic: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["none", "bf16", "fp16"] = "none"
    log_every: int = 10
    data: DataSection = dataclasses.field(default_factory=_detector_data)
    augment: AugmentSection = dataclasses.field(default_factory=_detector_augment)
    optim: OptimSection = dataclasses.field(default_factory=_detector_optim)
    loss: DetectorLossSection = dataclasses.field(default_factory=DetectorLossSection)
    eval: DetectorEvalSection = dataclasses.field(default_factory=DetectorEvalSection)
    model: DetectorModelConfig = dataclasses.field(default_factory=DetectorModelConfig)

    def __post_init__(self) -> None:
        if self.data.keyframe_position != "causal":
            raise ValueError("data.keyframe_position must be 'causal' for the detector (it runs live)")


def build_detector(cfg: DetectorModelConfig) -> PersonDetectorNet:
    """The detector ``cfg.name`` names (one factory per variant)."""
    if cfg.name == "person_detector_s":
        return person_detector_s(cfg.num_frames, cfg.num_classes)
    if cfg.name == "person_detector_t":
        return person_detector_t(cfg.num_frames, cfg.num_classes)
    raise ConfigError(f"config key 'model.name': unknown detector {cfg.name!r}")  # pragma: no cover


def load_detector_config(target: str | None, overrides: Sequence[str]) -> DetectorRunConfig:
    """The detector run config of a command line: ``config=FILE`` (or positional path) + overrides."""
    path, rest = split_config_arg(target, overrides)
    return build_config(DetectorRunConfig, path, rest)
