"""The sections every training config shares, validated.

Each task has its own run config (:class:`thermact.tasks.action.ActionRunConfig`,
:class:`thermact.tasks.person.DetectorRunConfig`); both embed :class:`RunSection` (whose keys sit at
the top level: ``run_dir``, ``seed``, ...) and use :class:`DataSection`, :class:`AugmentSection`
and :class:`OptimSection` with their own defaults. YAML (every key optional)::

    run_dir: runs/train          # where checkpoints, logs, config and reports go
    exist_ok: false              # refuse to write into an existing run directory
    resume: null                 # checkpoint to continue from, exactly
    seed: 0
    deterministic: false         # torch.use_deterministic_algorithms(True)
    device: auto                 # auto | cpu | cuda
    amp: none                    # none | bf16 | fp16 (fp16 on CUDA only)
    log_every: 10                # optimiser steps between two log records
    data:
      root: null                 # dataset directory (null: the bundled thermal_v1)
      split: session             # given | session | lorecording | path/to/split.json
      fold: 0                    # fold index
      window_s: 2.7
      keyframe_position: center  # center | causal
      normalize: dataset         # dataset (training mean/std) | clip_median (subtract each clip's median)
                                 # | background (subtract the recording's per-pixel room)
      num_workers: 0
      lenient: false
    augment: {p_hflip: 0.5, p_vflip: 0.5, p_rot180: 0.0, offset_c: [-1, 1], gain: [0.9, 1.1], box_jitter: 0.05, shift_px: 0,
              p_transpose: 0.0, zoom: [1, 1], time_stretch: [1, 1], frame_drop: 0.0, p_stale_rows: 0.0, dead_pixels: 0.0, time_shift_s: 0.0}  # sensor_augment
    optim:
      optimizer: adamw           # adamw | sgd
      lr: 0.002
      weight_decay: 0.05
      momentum: 0.9              # sgd only
      epochs: 30
      batch_size: 8
      accumulate: 1              # gradient accumulation steps
      warmup_epochs: 1.0
      min_lr: 0.0
      clip_grad_norm: 5.0        # null: no clipping
      freeze_stages: 0           # backbone stages kept frozen (SlowFast transfer)
      ema_decay: null            # e.g. 0.998: evaluate and save a moving average of the weights
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from thermact.config import build_config, check_number, parse_overrides, read_yaml
from thermact.data.sensor_augment import SensorAugment
from thermact.data.transforms import Augment
from thermact.errors import ConfigError

T = TypeVar("T")


@dataclasses.dataclass
class RunSection:
    """Where a run writes, how it starts and on what it runs: the top-level keys of every training
    config (embedded with :func:`thermact.config.embedded`, so written ``run_dir=...``)."""

    run_dir: str = "runs/train"
    """Where checkpoints, logs, config.yaml and reports go."""
    exist_ok: bool = False
    """Train into an existing non-empty run_dir (its old results are removed)."""
    resume: str | None = None
    """A checkpoint to continue exactly (its own directory, its own config)."""
    seed: int = 0
    """Seeds every generator (data order, augmentation, initialisation, dropout)."""
    deterministic: bool = False
    """Also ask PyTorch for deterministic kernels (slower)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto (CUDA when present), cpu or cuda."""
    amp: Literal["none", "bf16", "fp16"] = "none"
    """Autocast: bf16 (CPU or CUDA) or fp16 (CUDA, with a GradScaler)."""
    log_every: int = 10
    """Optimiser steps between two training-loss records in metrics.jsonl."""

    def __post_init__(self) -> None:
        if self.log_every < 1:
            raise ValueError(f"log_every: must be >= 1, got {self.log_every}")
        if not self.run_dir:
            raise ValueError("run_dir: must not be empty")


@dataclasses.dataclass
class DataSection:
    root: str | None = None
    """Dataset: a name (thermal_v1, thermal_v2) or a directory; null: the bundled default."""
    split: str = "session"
    """given (leaky), session, lorecording, all (no validation) or a split file."""
    fold: int = 0
    """Fold index of the split (see thermact data split)."""
    window_s: float = 2.7
    """Seconds of sensor time a clip covers."""
    keyframe_position: Literal["center", "causal"] = "center"
    """center (offline) or causal (the clip ends at the keyframe: live use)."""
    normalize: Literal["dataset", "clip_median", "background"] = "dataset"
    """dataset (training mean/std), clip_median (subtract each clip's median) or background
    (subtract the recording's per-pixel room temperature, thermact.data.background; offline only)."""
    num_workers: int = 0
    """DataLoader worker processes (0: load in the training process)."""
    lenient: bool = False
    """Skip bad records with a warning each (like --lenient)."""

    def __post_init__(self) -> None:
        check_number("window_s", self.window_s, low=0.0, low_open=True)
        if self.fold < 0:
            raise ValueError(f"fold: must be >= 0, got {self.fold}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers: must be >= 0, got {self.num_workers}")


@dataclasses.dataclass
class AugmentSection:
    enabled: bool = True
    """Augment the training clips."""
    p_hflip: float = 0.5
    """Probability of a left-right flip."""
    p_vflip: float = 0.5
    """Probability of an up-down flip."""
    p_rot180: float = 0.0
    """Probability of a 180-degree rotation."""
    offset_c: tuple[float, float] = (-1.0, 1.0)
    """Range of a temperature offset added to the clip (degrees C)."""
    gain: tuple[float, float] = (0.9, 1.1)
    """Range of a temperature gain around the clip's median."""
    box_jitter: float = 0.05
    """Box jitter, as a fraction of the box size."""
    shift_px: int = 0
    """Largest shift of the whole clip, in pixels along x and y (the sensor mounted elsewhere over the
    room; edge pixels repeat into the uncovered border; every box keeps its centre in the frame)."""
    p_transpose: float = 0.0
    """Probability of a mirror about the diagonal (x and y swapped; with the flips, every quarter
    turn of the room), the picture cropped and edge-padded back to the frame, every box centre kept."""
    zoom: tuple[float, float] = (1.0, 1.0)
    """Range of a magnification of the whole clip, drawn log-uniformly (the sensor mounted higher or
    lower: people look smaller or larger), about a point that keeps every box centre in the frame."""
    time_stretch: tuple[float, float] = (1.0, 1.0)
    """Range of a factor on the clip's time window (sensor behaviour, thermact.data.sensor_augment)."""
    frame_drop: float = 0.0
    """Largest fraction of frames dropped before a clip's frames are picked (frame-rate jitter), < 1."""
    p_stale_rows: float = 0.0
    """Probability per frame of packet loss (its bottom rows from the previous frame)."""
    dead_pixels: float = 0.0
    """Largest fraction of pixels dead for a whole clip (repaired as the reader repairs), <= 0.5."""
    time_shift_s: float = 0.0
    """Largest shift of a clip's keyframe time, seconds before or after (boxes and labels kept)."""

    def __post_init__(self) -> None:
        for name in ("p_hflip", "p_vflip", "p_rot180", "p_transpose"):
            check_number(name, getattr(self, name), low=0.0, high=1.0)
        for name, low in (("offset_c", None), ("gain", 0.0), ("zoom", 0.0)):
            a, b = getattr(self, name)
            check_number(name, a, low=low, low_open=low is not None)
            check_number(name, b, low=low, low_open=low is not None)
            if b < a:
                raise ValueError(f"{name}: must be a range [low, high] with low <= high, got [{a}, {b}]")
        check_number("box_jitter", self.box_jitter, low=0.0, high=1.0)
        check_number("shift_px", self.shift_px, low=0)
        lo, hi = self.time_stretch
        check_number("time_stretch", lo, low=0.0, low_open=True)
        check_number("time_stretch", hi, low=lo)
        check_number("frame_drop", self.frame_drop, low=0.0, high=1.0, high_open=True)
        check_number("p_stale_rows", self.p_stale_rows, low=0.0, high=1.0)
        check_number("dead_pixels", self.dead_pixels, low=0.0, high=0.5)
        check_number("time_shift_s", self.time_shift_s, low=0.0)

    def build(self) -> Augment | None:
        """The training augmentation of these keys (None when disabled)."""
        if not self.enabled:
            return None
        return Augment(
            p_hflip=self.p_hflip,
            p_vflip=self.p_vflip,
            p_rot180=self.p_rot180,
            offset_c=self.offset_c,
            gain=self.gain,
            box_jitter=self.box_jitter,
            shift_px=self.shift_px,
            p_transpose=self.p_transpose,
            zoom=self.zoom,
        )

    def build_sensor(self) -> SensorAugment | None:
        """The training sensor augmentation of these keys (None when disabled or neutral)."""
        sensor = SensorAugment(
            self.time_stretch, self.frame_drop, self.p_stale_rows, self.dead_pixels, self.time_shift_s
        )
        return sensor if self.enabled and sensor.enabled else None


@dataclasses.dataclass
class OptimSection:
    optimizer: Literal["adamw", "sgd"] = "adamw"
    """adamw or sgd (Nesterov)."""
    lr: float = 0.002
    """Peak learning rate (linear warm-up, then cosine to min_lr)."""
    weight_decay: float = 0.05
    """Weight decay (not on biases and normalisation parameters)."""
    momentum: float = 0.9
    """SGD momentum."""
    epochs: int = 30
    """Epochs to train."""
    batch_size: int = 8
    """Clips per batch."""
    accumulate: int = 1
    """Batches whose gradients are summed before an optimiser step."""
    warmup_epochs: float = 1.0
    """Epochs of linear LR warm-up."""
    min_lr: float = 0.0
    """Final learning rate of the cosine schedule."""
    clip_grad_norm: float | None = 5.0
    """Gradient norm clipping (null: none)."""
    freeze_stages: int = 0
    """Backbone stages kept frozen (transfer from pretrained weights)."""
    ema_decay: float | None = None
    """Per-step decay of an exponential moving average of the weights, which is then what the
    run evaluates and saves (thermact.engine.ema); null: the trained weights themselves."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "accumulate"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        check_number("lr", self.lr, low=0.0, low_open=True)
        check_number("weight_decay", self.weight_decay, low=0.0)
        check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_number("warmup_epochs", self.warmup_epochs, low=0.0)
        check_number("min_lr", self.min_lr, low=0.0, high=self.lr)
        if self.clip_grad_norm is not None:
            check_number("clip_grad_norm", self.clip_grad_norm, low=0.0, low_open=True)
        if self.ema_decay is not None:
            check_number("ema_decay", self.ema_decay, low=0.0, high=1.0, high_open=True)
        if self.freeze_stages < 0:
            raise ValueError(f"freeze_stages: must be >= 0, got {self.freeze_stages}")


def split_config_arg(target: str | None, overrides: Sequence[str]) -> tuple[str | None, list[str]]:
    """``(config file, other overrides)`` from the positional path and/or a ``config=FILE`` override."""
    rest = [o for o in overrides if not o.startswith("config=")]
    paths = [o.partition("=")[2] for o in overrides if o.startswith("config=")]
    if target is not None:
        paths.insert(0, target)
    if len(paths) > 1:
        raise ConfigError(f"more than one config file given: {paths}")
    return (paths[0] if paths else None), rest


def load_config(cls: type[T], target: str | None, overrides: Sequence[str]) -> T:
    """A run config of dataclass ``cls`` from a command line: ``config=FILE`` (or the positional
    path) + ``key=value`` overrides."""
    path, rest = split_config_arg(target, overrides)
    return build_config(cls, path, rest)


def config_task(target: str | None, overrides: Sequence[str]) -> str:
    """The ``task`` a command line selects: a ``task=`` override, else the YAML's ``task`` key,
    else ``"action"`` (for ``thermact train`` / ``cv`` to pick the task's config and trainer)."""
    path, rest = split_config_arg(target, overrides)
    task: Any = parse_overrides([o for o in rest if o.startswith("task=")]).get("task")
    if task is None and path is not None:
        task = read_yaml(Path(path)).get("task")
    return str(task) if task is not None else "action"
