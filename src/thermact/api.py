"""The Python API: the commands of the command line as functions, with the same validation.

Options are keyword arguments named as on the command line; nested keys take their dotted name
through a mapping (``train("thermal_net_live", {"optim.epochs": 3}, seed=1)``). Values are
checked exactly as ``key=value`` arguments are (a bad key or value raises
:class:`~thermact.errors.ConfigError` naming it, with a did-you-mean)::

    import thermact

    result = thermact.train("thermal_net_live", {"data.root": "thermal_v2", "optim.epochs": 30})
    report = thermact.evaluate(result.last_checkpoint, split="session", fold=1)
    outcomes, events = thermact.detect("recording.h5", out="runs/detect")
    predictor = thermact.StreamingPredictor()  # the shipped live models

Every function writes what its command writes, where its command writes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from thermact.commands._common import load_task_config
from thermact.commands.detect import RecordingOutcome, load_detect_options, run_detect
from thermact.commands.eval import EvalOutcome, load_options, run_evaluation
from thermact.engine.loop import TrainResult
from thermact.engine.run import train as train_task
from thermact.inference.events import Event

__all__ = ["detect", "evaluate", "train"]


def as_overrides(options: Mapping[str, Any] | None = None, **kwargs: Any) -> list[str]:
    """``key=value`` strings of ``options`` and ``kwargs`` (values written as YAML flow scalars,
    so that they are parsed back to the same values)."""
    merged = {**(options or {}), **kwargs}
    out = []
    for key, value in merged.items():
        text = str(value) if isinstance(value, Path) else yaml.safe_dump(value, default_flow_style=True)
        out.append(f"{key}={text.strip().removesuffix('...').strip()}")
    return out


def train(
    config: str | Path | None = None, options: Mapping[str, Any] | None = None, **kwargs: Any
) -> TrainResult:
    """``thermact train config=CONFIG key=value ...``: a preset name or YAML file (None: the
    default preset), options as on the command line; returns where the run went."""
    task, cfg = load_task_config(
        None if config is None else str(config), as_overrides(options, **kwargs), False
    )
    return train_task(task, cfg)


def evaluate(checkpoint: str | Path, options: Mapping[str, Any] | None = None, **kwargs: Any) -> EvalOutcome:
    """``thermact eval checkpoint=CHECKPOINT key=value ...`` of an action model; returns the
    metrics, predictions and written files."""
    return run_evaluation(load_options(str(checkpoint), as_overrides(options, **kwargs)))


def detect(
    source: str | Path, options: Mapping[str, Any] | None = None, progress: bool = False, **kwargs: Any
) -> tuple[list[RecordingOutcome], list[Event]]:
    """``thermact detect SOURCE key=value ...`` (a recording ``.h5`` or a directory of them; the
    shipped live models unless ``checkpoint=`` / ``detector=`` say otherwise)."""
    opts = load_detect_options(as_overrides(options, **kwargs))
    return run_detect(str(source), opts, progress=progress)
