"""Shared by the commands: the tasks by name, dataset loading with a progress bar, output-directory checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from thermact.config import (
    KeyHelp,
    config_from_dict,
    describe_config,
    format_keys,
    merge_trees,
    parse_overrides,
    preset_names,
)
from thermact.data.source import DatasetPaths, ThermalData, load_dataset, resolve_dataset
from thermact.engine.checkpoint import load_checkpoint
from thermact.engine.config import config_task, load_config, split_config_arg
from thermact.engine.restore import checkpoint_task
from thermact.engine.task import Task
from thermact.errors import CheckpointError, ConfigError
from thermact.io import check_writable
from thermact.logs import progress_disabled
from thermact.tasks.action import ACTION
from thermact.tasks.person import PERSON

TASKS: dict[str, Task[Any, Any]] = {ACTION.name: ACTION, PERSON.name: PERSON}
"""The tasks by the ``task`` value of their configs and checkpoints."""


def load_with_progress(
    dataset: str | Path | None, lenient: bool, warn: Callable[[str], None] | None = None
) -> ThermalData:
    """:func:`~thermact.data.source.load_dataset` with a tqdm bar (shown after one second, on a TTY)."""
    root = resolve_dataset(dataset)
    paths = DatasetPaths(root)
    total = (
        len(paths.recording_files()) + len(paths.annotation_files()) + len(paths.raw_files())
        if root.is_dir()
        else None
    )
    with tqdm(
        total=total, desc="loading", unit="file", delay=1.0, disable=progress_disabled(), leave=False
    ) as bar:

        def progress(name: str) -> None:
            bar.set_postfix_str(name, refresh=False)
            bar.update(1)

        return load_dataset(root, lenient=lenient, warn=warn, progress=progress)


def check_out_dir(out: Path, exist_ok: bool, key: str = "out") -> None:
    """Refuse an output directory that is a file, cannot be written, or is non-empty unless
    ``exist_ok`` (checked before any work, so nothing is computed for an output that cannot be
    written and no existing result is overwritten without asking)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"config key {key!r}: {str(out)!r} exists and is not a directory")
    check_writable(out, key)
    if out.is_dir() and any(out.iterdir()) and not exist_ok:
        raise ConfigError(
            f"output directory {str(out)!r} exists and is not empty; pass exist_ok=true or another {key}=DIR"
        )


def task_of(name: str, tasks: Mapping[str, Task[Any, Any]] = TASKS) -> Task[Any, Any]:
    """The task named by a config's ``task`` key among ``tasks`` (a :class:`ConfigError` for another)."""
    if name not in tasks:
        raise ConfigError(f"config key 'task': {name!r} is not one of {', '.join(tasks)}")
    return tasks[name]


DEFAULT_PRESETS = {"action": "thermal_net_s", "detector": "person_detector"}
"""The preset a command uses when no ``config=`` is given (the documented defaults)."""


def help_text(usage: str, summary: str, keys: Sequence[KeyHelp], notes: Sequence[str] = ()) -> str:
    """What ``thermact CMD --help`` prints: usage, what the command does, every key (type, default,
    meaning), notes and the global flags."""
    lines = [
        f"usage: {usage}",
        "",
        summary,
        "",
        "keys (key=value; dotted for nested sections):",
        format_keys(keys),
    ]
    if notes:
        lines += ["", *notes]
    lines += [
        "",
        "flags: --lenient (skip bad records with a warning each), -q/--quiet (warnings and errors only),",
        "       -v/--verbose (debug messages too), -h/--help",
    ]
    return "\n".join(lines)


def training_help(
    target: str | None, overrides: Sequence[str], usage: str, summary: str, extra: Sequence[KeyHelp] = ()
) -> str:
    """``--help`` of the commands that take a run config (train, cv, cfg): the keys of the task the
    command line selects, with the defaults of its config (the default preset without one), then
    the command's own keys ``extra``."""
    path, rest = split_config_arg(target, overrides)
    task = task_of(config_task(target, overrides))
    preset = path or DEFAULT_PRESETS[task.name]
    cfg = load_config(task.config_type, preset, [o for o in rest if o.startswith("task=")])
    notes = [
        f"defaults shown: config={preset}; presets: {', '.join(preset_names())}",
        "task=detector (or a detector preset) lists the person detector's keys.",
    ]
    return help_text(usage, summary, [*describe_config(task.config_type, cfg), *extra], notes)


RESUME_KEYS = frozenset(
    {
        "resume",
        "device",
        "amp",
        "deterministic",
        "log_every",
        "optim.epochs",
        "data.num_workers",
        "data.lenient",
    }
)
"""The keys a resumed run may set: how and how long it runs, never what it trains on or with."""


def _flat_keys(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out += _flat_keys(value, f"{prefix}{key}.")
        else:
            out.append(prefix + key)
    return out


def resume_config(
    resume: str, overrides: Sequence[str], tasks: Mapping[str, Task[Any, Any]] = TASKS
) -> tuple[Task[Any, Any], Any]:
    """The task (one of ``tasks``) and run config of ``resume=CHECKPOINT`` alone: the checkpoint's
    own config, its directory as ``run_dir``, and only :data:`RESUME_KEYS` changed by ``overrides``."""
    ckpt = load_checkpoint(resume)
    task = task_of(checkpoint_task(ckpt), tasks)
    tree = parse_overrides(overrides)
    for key in _flat_keys(tree):
        if key not in RESUME_KEYS:
            raise ConfigError(
                f"config key {key!r} cannot change when resuming {resume} (it would change what the run "
                f"trains, on what or how); resume as it is, or start a new run. Keys a resume may set: "
                f"{', '.join(sorted(RESUME_KEYS))}"
            )
    saved = dict(ckpt["config"])
    data = merge_trees(saved, tree)
    data.update(run_dir=str(Path(resume).parent), resume=resume, exist_ok=False)
    try:
        return task, config_from_dict(task.config_type, data)
    except ConfigError as err:
        raise CheckpointError(f"{resume}: the config stored in the checkpoint is invalid: {err}") from err


def load_task_config(
    target: str | None, overrides: Sequence[str], lenient: bool
) -> tuple[Task[Any, Any], Any]:
    """The task and its validated run config of a command line: ``config=FILE`` (or the positional
    path) + ``key=value`` overrides, or ``resume=CHECKPOINT`` alone (:func:`resume_config`);
    ``--lenient`` sets ``data.lenient``. A resumed run continues in its checkpoint's directory."""
    path, rest = split_config_arg(target, overrides)
    resume = parse_overrides([o for o in rest if o.startswith("resume=")]).get("resume")
    if resume is not None and path is None:
        task, cfg = resume_config(str(resume), rest)
    else:
        task = task_of(config_task(target, overrides))
        cfg = load_config(task.config_type, path or DEFAULT_PRESETS[task.name], rest)
        explicit_dir = any(o.startswith("run_dir=") for o in rest)
        if cfg.run.resume and not explicit_dir:  # the config file's run_dir is another run's
            cfg = dataclasses.replace(
                cfg, run=dataclasses.replace(cfg.run, run_dir=str(Path(cfg.run.resume).parent))
            )
    if lenient:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, lenient=True))
    return task, cfg
