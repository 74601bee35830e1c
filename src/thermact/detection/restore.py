"""Rebuild a trained person detector from its checkpoint, and run it on raw °C frames.

A detector checkpoint is a thermact checkpoint (:mod:`thermact.engine.checkpoint`) whose config has
``task: detector`` (:class:`~thermact.detection.config.DetectorRunConfig`).

Example::

    det = PersonDetector.from_checkpoint("runs/person_detector/best.pt")
    dets = det.detect(frames)          # frames [B, T, 40, 60] °C, oldest first, current frame last
    persons = person_boxes(dets[0])    # boxes [N, 4] pixel XYXY, scores [N]
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from thermact.config import config_from_dict
from thermact.data.clips import ClipConfig
from thermact.data.transforms import NormStats, normalize
from thermact.detection.config import DetectorRunConfig, build_detector
from thermact.detection.dataset import detection_clip
from thermact.detection.decode import Detections, decode
from thermact.detection.model import PersonDetectorNet
from thermact.engine.checkpoint import load_checkpoint
from thermact.errors import CheckpointError, ConfigError
from thermact.runtime import configure_cpu_math

__all__ = ["PersonDetector", "TrainedDetector", "checkpoint_task", "restore_detector"]


def checkpoint_task(ckpt: dict[str, Any]) -> str:
    """``"detector"`` or ``"action"``: what a loaded checkpoint holds."""
    config = ckpt.get("config")
    return "detector" if isinstance(config, dict) and config.get("task") == "detector" else "action"


@dataclasses.dataclass
class TrainedDetector:
    """A detector with everything needed to feed it and read its output."""

    model: PersonDetectorNet
    config: DetectorRunConfig
    classes: list[str]
    norm: NormStats
    metrics: dict[str, Any]
    path: Path
    epoch: int

    @property
    def clip(self) -> ClipConfig:
        """The causal clip the detector was trained on."""
        return detection_clip(self.config.model.num_frames, self.config.data.window_s)


def restore_detector(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> TrainedDetector:
    """Load a detector checkpoint and rebuild its model (eval mode) on ``device``.

    Raises:
        CheckpointError: not a thermact checkpoint, not a detector one, an invalid stored config,
            weights that do not fit its model, or missing normalisation statistics.
    """
    configure_cpu_math()
    p = Path(path)
    ckpt = load_checkpoint(p, map_location=device)
    if checkpoint_task(ckpt) != "detector":
        raise CheckpointError(f"{p}: not a person-detector checkpoint (its config has no 'task: detector')")
    try:
        cfg = config_from_dict(DetectorRunConfig, ckpt["config"])
    except ConfigError as err:
        raise CheckpointError(f"{p}: the config stored in the checkpoint is invalid: {err}") from err
    model = build_detector(cfg.model)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        detail = " ".join(line.strip() for line in str(err).strip().splitlines()[:3])
        raise CheckpointError(
            f"{p}: weights do not fit the {cfg.model.name} model of its config: {detail}"
        ) from err
    model.to(device).eval()
    if "norm" not in ckpt:
        raise CheckpointError(f"{p}: checkpoint lacks the normalisation statistics ('norm')")
    norm = NormStats.from_dict(ckpt["norm"], where=f"{p}: norm")
    metrics = dict(ckpt.get("metrics") or {})
    return TrainedDetector(model, cfg, list(ckpt["classes"]), norm, metrics, p, int(ckpt.get("epoch", 0)))


class PersonDetector:
    """Inference wrapper: raw °C clips in, :class:`Detections` out.

    Args:
        trained: a restored detector.
        top_k, nms_iou: decoding parameters (default: the checkpoint's ``eval`` section).
    """

    def __init__(
        self, trained: TrainedDetector, top_k: int | None = None, nms_iou: float | None = None
    ) -> None:
        self.trained = trained
        self.model = trained.model
        self.norm = trained.norm
        self.top_k = trained.config.eval.top_k if top_k is None else top_k
        self.nms_iou = trained.config.eval.nms_iou if nms_iou is None else nms_iou

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike[str], device: str | torch.device = "cpu"
    ) -> PersonDetector:
        return cls(restore_detector(path, device))

    @property
    def num_frames(self) -> int:
        return self.trained.config.model.num_frames

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def detect(self, frames: Tensor, score_threshold: float = 0.3) -> list[Detections]:
        """Detections of the last frame of each clip.

        Args:
            frames: ``[B, T, H, W]`` raw temperatures in °C (dead pixels already repaired), oldest
                frame first and the frame to detect in last, ``T`` = :attr:`num_frames`, sampled
                like :attr:`TrainedDetector.clip` (``window_s / T`` apart).
            score_threshold: lowest score returned.

        Returns:
            per clip, boxes ``[N, 4]`` pixel XYXY over ``H x W``, scores ``[N]``, labels ``[N]``
            (0 person, 1 warm non-person), on the CPU, by decreasing score.
        """
        if frames.dim() != 4 or frames.shape[1] != self.num_frames:
            raise ValueError(f"frames must be [B, {self.num_frames}, H, W] in °C, got {list(frames.shape)}")
        x = normalize(frames.to(self.device, torch.float32), self.norm).unsqueeze(1)
        out = self.model(x)
        size = (int(frames.shape[-2]), int(frames.shape[-1]))
        dets = decode(out, self.model.stride, size, self.top_k, score_threshold, self.nms_iou)
        return [Detections(d.boxes.cpu(), d.scores.cpu(), d.labels.cpu()) for d in dets]
