"""``thermact train [config=FILE] [key=value ...]``: train an action model or, with ``task: detector``,
the person detector; ``resume=PATH`` continues a run exactly."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from thermact.detection.config import load_detector_config
from thermact.detection.train import train_detector
from thermact.engine.config import config_task, load_run_config
from thermact.engine.loop import TrainResult, fmt
from thermact.engine.train import train
from thermact.errors import ConfigError

__all__ = ["main"]


def _train_action(target: str | None, overrides: list[str], lenient: bool) -> TrainResult:
    cfg = load_run_config(target, overrides)
    if lenient:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, lenient=True))
    return train(cfg)


def _train_detector(target: str | None, overrides: list[str], lenient: bool) -> TrainResult:
    cfg = load_detector_config(target, overrides)
    if lenient:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, lenient=True))
    return train_detector(cfg)


TRAINERS: dict[str, Callable[[str | None, list[str], bool], TrainResult]] = {
    "action": _train_action,
    "detector": _train_detector,
}


def _summary(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in metrics.items()) or "no validation"


def main(target: str | None, overrides: list[str], lenient: bool) -> int:
    """``thermact train``: the config's ``task`` picks the trainer; prints where everything went."""
    task = config_task(target, overrides)
    if task not in TRAINERS:
        raise ConfigError(f"config key 'task': {task!r} is not one of {', '.join(TRAINERS)}")
    result = TRAINERS[task](target, overrides, lenient)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run directory: {result.run_dir}")
        print(f"  best checkpoint: {result.best_checkpoint}  ({_summary(result.best_metrics)})")
        print(f"  last checkpoint: {result.last_checkpoint}")
        print(f"  metrics log: {result.run_dir / 'metrics.jsonl'}, config: {result.run_dir / 'config.yaml'}")
    return 130 if result.interrupted else 0
