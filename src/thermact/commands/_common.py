"""Shared by the commands: the tasks by name, dataset loading with a progress bar, output-directory checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from thermact.data.source import DatasetPaths, ThermalData, default_dataset_root, load_dataset
from thermact.engine.config import config_task, load_config
from thermact.engine.task import Task
from thermact.errors import ConfigError
from thermact.tasks.action import ACTION
from thermact.tasks.person import PERSON

TASKS: dict[str, Task[Any, Any]] = {ACTION.name: ACTION, PERSON.name: PERSON}
"""The tasks by the ``task`` value of their configs and checkpoints."""


def load_with_progress(
    dataset: str | Path | None, lenient: bool, warn: Callable[[str], None] | None = None
) -> ThermalData:
    """:func:`~thermact.data.source.load_dataset` with a tqdm bar (shown after one second, on a TTY)."""
    root = Path(dataset) if dataset is not None else default_dataset_root()
    paths = DatasetPaths(root)
    total = len(paths.recording_files()) + 2 + len(paths.raw_files()) if root.is_dir() else None
    with tqdm(total=total, desc="loading", unit="file", delay=1.0, disable=None, leave=False) as bar:

        def progress(name: str) -> None:
            bar.set_postfix_str(name, refresh=False)
            bar.update(1)

        return load_dataset(root, lenient=lenient, warn=warn, progress=progress)


def check_out_dir(out: Path, exist_ok: bool, key: str = "out") -> None:
    """Refuse an output directory that is a file, or non-empty unless ``exist_ok``."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"config key {key!r}: {str(out)!r} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not exist_ok:
        raise ConfigError(
            f"output directory {str(out)!r} exists and is not empty; pass exist_ok=true or another {key}=DIR"
        )


def task_of(name: str) -> Task[Any, Any]:
    """The task named by a config's ``task`` key (a :class:`ConfigError` for an unknown one)."""
    if name not in TASKS:
        raise ConfigError(f"config key 'task': {name!r} is not one of {', '.join(TASKS)}")
    return TASKS[name]


def load_task_config(
    target: str | None, overrides: Sequence[str], lenient: bool
) -> tuple[Task[Any, Any], Any]:
    """The task and its validated run config of a command line: ``config=FILE`` (or the positional
    path) + ``key=value`` overrides; ``--lenient`` sets ``data.lenient``."""
    task = task_of(config_task(target, overrides))
    cfg = load_config(task.config_type, target, overrides)
    if lenient:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, lenient=True))
    return task, cfg
