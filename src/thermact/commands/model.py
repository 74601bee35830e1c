"""``thermact model info [CONFIG] [key=value ...]``: parameters, MACs, stage shapes and the
temporal receptive field of a configured model (:mod:`thermact.models.info`), an action model or
a person detector (``task: detector`` configs such as ``person_detector_live``).

``thermact model ensemble members=[A.pt,B.pt,..] out=FILE.pt``: one checkpoint of an
:class:`~thermact.models.ensemble.ActionEnsemble` of trained action models (runs of one recipe
with different seeds), usable wherever an action checkpoint is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thermact.config import build_options, config_from_dict, merge_trees, parse_overrides, read_yaml
from thermact.engine.checkpoint import inference_state, load_checkpoint, save_checkpoint
from thermact.engine.config import DataSection, config_task, split_config_arg
from thermact.errors import CheckpointError, ConfigError
from thermact.export.onnx import check_out_path
from thermact.models.ensemble import member_state
from thermact.models.factory import ModelConfig
from thermact.models.info import detector_info, format_model_info, model_info
from thermact.models.person_detector import DetectorModelConfig
from thermact.shipped import resolve_checkpoint
from thermact.tasks.action import TrainedActionModel, restore_model

__all__ = [
    "DetectorModelSection",
    "EnsembleOptions",
    "ModelSection",
    "ensemble_checkpoint",
    "main_ensemble",
    "main_info",
    "run_ensemble",
]


@dataclass
class ModelSection:
    """The keys of ``model info``: the ``model:`` section (errors name keys ``model.<key>``)."""

    model: ModelConfig = field(default_factory=ModelConfig)


@dataclass
class DetectorModelSection:
    """The ``model:`` section of a person detector's config."""

    model: DetectorModelConfig = field(default_factory=DetectorModelConfig)


def _window_s(raw: dict[str, Any], tree: dict[str, Any]) -> float:
    """``data.window_s`` of the overrides, else of the file, else the default clip's."""
    value: Any = DataSection().window_s
    for source in (raw.get("data"), tree.pop("data", None)):
        if isinstance(source, dict) and "window_s" in source:
            value = source["window_s"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"config key 'data.window_s': expected a positive number, got {value!r}")
    return float(value)


def main_info(config_path: str | None, overrides: list[str], lenient: bool = False) -> int:
    """``thermact model info [CONFIG] [key=value ...]``: print :func:`format_model_info`.

    ``CONFIG`` (positional or ``config=``) is a preset name or a YAML file; its top-level ``model:``
    section is the model's config (other sections are ignored, so a full training config works;
    ``task: detector`` or ``task=detector`` selects the person detector). A file without a
    ``model:`` key is read as a plain model mapping. Overrides may be written ``model.key=value``
    or ``key=value``. A clip frame lasts ``data.window_s / model.num_frames`` seconds (YAML or
    override; the default window without either), which turns the receptive field into seconds.
    Configuration errors raise :class:`ConfigError` (the command line prints them and exits 2).
    """
    path, rest = split_config_arg(config_path, overrides)
    detector = config_task(path, rest) == "detector"
    raw = read_yaml(path) if path is not None else {}
    tree = parse_overrides(rest)
    tree.pop("task", None)
    window_s = _window_s(raw, tree)
    model_raw = raw.get("model", {} if "task" in raw else raw)
    if not isinstance(model_raw, dict):
        raise ConfigError(f"config file {path or '<overrides>'!r}: section 'model' must be a mapping")
    model_over = tree.pop("model", {})
    merged = merge_trees(merge_trees(model_raw, tree), model_over if isinstance(model_over, dict) else {})
    if detector:
        det_cfg = config_from_dict(DetectorModelSection, {"model": merged}).model
        info = detector_info(det_cfg, frame_spacing_s=window_s / det_cfg.num_frames)
    else:
        cfg = config_from_dict(ModelSection, {"model": merged}).model
        info = model_info(cfg, frame_spacing_s=window_s / cfg.num_frames)
    print(format_model_info(info))
    return 0


@dataclass
class EnsembleOptions:
    """Options of ``thermact model ensemble`` (``key=value`` on the command line)."""

    members: list[str] = field(default_factory=list)
    """Action checkpoints (paths or shipped names) to average: runs of one recipe on the same
    training data, e.g. with different seeds (at least two)."""
    out: str = ""
    """The ensemble's checkpoint (.pt, required)."""
    exist_ok: bool = False
    """Replace an existing output file (otherwise it is refused and left untouched)."""

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise ConfigError(
                f"config key 'members': an ensemble needs at least two checkpoints, got {len(self.members)}"
            )
        if len(set(self.members)) != len(self.members):
            raise ConfigError(f"config key 'members': a checkpoint is listed twice: {self.members}")
        if not self.out:
            raise ConfigError("config key 'out' is required: pass out=FILE.pt")


_SAME: dict[str, Callable[[TrainedActionModel], object]] = {
    "classes": lambda t: list(t.classes),
    "clip": lambda t: t.clip,
    "normalisation": lambda t: t.norm.to_dict(),
    "training data": lambda t: (t.checkpoint.get("dataset"), t.config.data.split, t.config.data.fold),
}
"""What every member must share with the first, and how to read it from a restored model."""


def _model_section(trained: TrainedActionModel) -> dict[str, Any]:
    """The member's ``model:`` config without the path of its pretrained start."""
    return {k: v for k, v in vars(trained.config.model).items() if k != "pretrained"}


def _check_member(first: TrainedActionModel, other: TrainedActionModel) -> None:
    """CheckpointError naming ``other`` unless it can be averaged with ``first``."""
    if other.config.model.members != 1:
        raise CheckpointError(f"{other.path}: is already an ensemble; list its members instead")
    if other.model.interaction is not None:
        raise CheckpointError(f"{other.path}: a model with an interaction head cannot join an ensemble")
    if _model_section(other) != _model_section(first):
        raise CheckpointError(f"{other.path}: model config not the same as in {first.path}")
    for what, read in _SAME.items():
        if read(other) != read(first):
            raise CheckpointError(f"{other.path}: {what} not the same as in {first.path}")


def ensemble_checkpoint(paths: Sequence[str]) -> dict[str, Any]:
    """The checkpoint of the ensemble of the action checkpoints ``paths`` (restored and checked:
    one architecture, same classes, clip, normalisation and training data; none an ensemble or
    with an interaction head). Its config is the first member's with ``model.members``; its
    ``ensemble`` entry lists the members' files and epochs.

    Raises:
        CheckpointError: a member cannot be restored or averaged with the first (naming it).
    """
    members = [restore_model(p) for p in paths]
    for other in members:
        _check_member(members[0], other)
    base = inference_state(load_checkpoint(paths[0]))
    config = copy.deepcopy(base["config"])
    config["model"]["members"] = len(members)
    return {
        **base,
        "config": config,
        "model": member_state([m.model.state_dict() for m in members]),
        "metrics": {},
        "ensemble": {"members": [str(m.path) for m in members], "epochs": [m.epoch for m in members]},
    }


def run_ensemble(opts: EnsembleOptions) -> Path:
    """Write the ensemble of ``opts.members`` to ``opts.out`` (atomically) and restore it once.

    Raises:
        ConfigError: the output path is not a writable ``.pt`` file, exists (without
            ``exist_ok``) or is one of the members.
        CheckpointError: see :func:`ensemble_checkpoint`.
    """
    out = check_out_path(opts.out, ".pt")
    if out.exists() and not opts.exist_ok:
        raise ConfigError(f"output path {str(out)!r} exists; pass exist_ok=true to replace it")
    payload = ensemble_checkpoint(opts.members)
    if out.exists() and any(out.resolve() == resolve_checkpoint(p).resolve() for p in opts.members):
        raise ConfigError(f"output path {str(out)!r} is one of the members")
    save_checkpoint(out, payload)
    restore_model(out)
    return out


def main_ensemble(target: str | None, overrides: list[str], lenient: bool = False) -> int:
    """``thermact model ensemble members=[A.pt,B.pt,..] out=FILE.pt [exist_ok=true]``."""
    if target is not None:
        raise ConfigError(f"unexpected positional argument {target!r}; pass members=[A.pt,B.pt,..]")
    opts = build_options(EnsembleOptions, "out", None, overrides)
    out = run_ensemble(opts)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, ensemble of {len(opts.members)} action models)")
    return 0
