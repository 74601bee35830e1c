"""``thermact model info [CONFIG] [key=value ...]``: parameters, MACs, stage shapes and the
temporal receptive field of a configured model (:mod:`thermact.models.info`), an action model or
a person detector (``task: detector`` configs such as ``person_detector_live``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from thermact.config import config_from_dict, merge_trees, parse_overrides, read_yaml
from thermact.engine.config import DataSection, config_task, split_config_arg
from thermact.errors import ConfigError
from thermact.models.factory import ModelConfig
from thermact.models.info import detector_info, format_model_info, model_info
from thermact.models.person_detector import DetectorModelConfig

__all__ = ["DetectorModelSection", "ModelSection", "main_info"]


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
