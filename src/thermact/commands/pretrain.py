"""``thermact pretrain [config=PRESET|FILE] [key=value ...]``: masked-clip pretraining of a
ThermalNet backbone on the unlabelled frames of a split fold's training recordings
(:mod:`thermact.tasks.pretrain`); ``resume=PATH`` continues a run exactly.

The config is a pretrain config or an action config / preset (default ``thermal_net_s``): its
``run``, ``data``, ``augment``, ``optim`` and ``model`` keys are used, so the pretrained backbone
fits the action model that config trains; its ``loss`` and ``eval`` sections (the fine-tuning's)
are ignored. Without ``run_dir=`` the run goes to the config's run directory with ``_pretrain``
appended, never into the action run's own directory.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from thermact.commands._common import DEFAULT_PRESETS, resume_config
from thermact.config import config_from_dict, merge_trees, parse_overrides, read_yaml
from thermact.engine.config import split_config_arg
from thermact.engine.run import train
from thermact.errors import ConfigError
from thermact.tasks.pretrain import PRETRAIN, PretrainRunConfig

__all__ = ["PretrainRunConfig", "main", "pretrain_config"]

FINE_TUNING_SECTIONS = ("loss", "eval")
"""Sections of an action config that pretraining has no use for."""


def _from_file(path: str, rest: list[str]) -> PretrainRunConfig:
    tree = read_yaml(path)
    task = tree.get("task", "action")
    if task not in ("action", PRETRAIN.name):
        raise ConfigError(
            f"config key 'task': {path} is a {task} config; pretrain takes an action or pretrain config"
        )
    tree = {k: v for k, v in tree.items() if k not in ("task", *FINE_TUNING_SECTIONS)}
    cfg = config_from_dict(PretrainRunConfig, merge_trees(tree, parse_overrides(rest)))
    if any(o.startswith("run_dir=") for o in rest):
        return cfg
    run_dir = (
        str(Path(cfg.run.resume).parent) if cfg.run.resume else f"{cfg.run.run_dir.rstrip('/')}_pretrain"
    )
    return dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, run_dir=run_dir))


def pretrain_config(target: str | None, overrides: list[str], lenient: bool) -> PretrainRunConfig:
    """The validated pretrain config of a command line (see the module docstring)."""
    path, rest = split_config_arg(target, overrides)
    cfg: PretrainRunConfig
    resume = parse_overrides([o for o in rest if o.startswith("resume=")]).get("resume")
    if resume is not None and path is None:
        _, cfg = resume_config(str(resume), rest, {PRETRAIN.name: PRETRAIN})
    else:
        cfg = _from_file(path or DEFAULT_PRESETS["action"], rest)
    if lenient:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, lenient=True))
    return cfg


def main(target: str | None, overrides: list[str], lenient: bool) -> int:
    """``thermact pretrain``: prints where the pretrained backbone went and how to fine-tune from it."""
    cfg = pretrain_config(target, overrides, lenient)
    result = train(PRETRAIN, cfg)
    print(f"run directory: {result.run_dir}")
    print(f"  pretrained backbone: {result.last_checkpoint}")
    print(
        f"  fine-tune: thermact train model.name={cfg.model.name} model.pretrained={result.last_checkpoint} ..."
    )
    return 130 if result.interrupted else 0
