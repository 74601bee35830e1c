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
      normalize: dataset         # dataset (training mean/std) | clip_median (subtract each clip's background)
      num_workers: 0
      lenient: false
    augment: {p_hflip: 0.5, p_vflip: 0.5, p_rot180: 0.0, offset_c: [-1, 1], gain: [0.9, 1.1], box_jitter: 0.05}
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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from thermact.config import build_config, parse_overrides, read_yaml
from thermact.errors import ConfigError

T = TypeVar("T")


@dataclasses.dataclass
class RunSection:
    """Where a run writes, how it starts and on what it runs: the top-level keys of every training
    config (embedded with :func:`thermact.config.embedded`, so written ``run_dir=...``)."""

    run_dir: str = "runs/train"
    exist_ok: bool = False
    resume: str | None = None
    seed: int = 0
    deterministic: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["none", "bf16", "fp16"] = "none"
    log_every: int = 10


@dataclasses.dataclass
class DataSection:
    root: str | None = None
    split: str = "session"
    fold: int = 0
    window_s: float = 2.7
    keyframe_position: Literal["center", "causal"] = "center"
    normalize: Literal["dataset", "clip_median"] = "dataset"
    num_workers: int = 0
    lenient: bool = False


@dataclasses.dataclass
class AugmentSection:
    enabled: bool = True
    p_hflip: float = 0.5
    p_vflip: float = 0.5
    p_rot180: float = 0.0
    offset_c: tuple[float, float] = (-1.0, 1.0)
    gain: tuple[float, float] = (0.9, 1.1)
    box_jitter: float = 0.05


@dataclasses.dataclass
class OptimSection:
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 0.002
    weight_decay: float = 0.05
    momentum: float = 0.9
    epochs: int = 30
    batch_size: int = 8
    accumulate: int = 1
    warmup_epochs: float = 1.0
    min_lr: float = 0.0
    clip_grad_norm: float | None = 5.0
    freeze_stages: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.accumulate < 1:
            raise ValueError("epochs, batch_size and accumulate must be >= 1")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


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
