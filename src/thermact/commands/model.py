"""``thermact model info [CONFIG] [key=value ...]``: parameters, MACs, stage shapes and the
temporal receptive field of a configured model (:mod:`thermact.models.info`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from thermact.config import config_from_dict, merge_trees, parse_overrides, read_yaml
from thermact.errors import ConfigError
from thermact.models.factory import ModelConfig
from thermact.models.info import DEFAULT_FPS, format_model_info, model_info

__all__ = ["main_info"]


@dataclass
class ModelSection:
    """The keys of ``model info``: the ``model:`` section (errors name keys ``model.<key>``)."""

    model: ModelConfig = field(default_factory=ModelConfig)


def main_info(config_path: str | None, overrides: list[str], lenient: bool = False) -> int:
    """``thermact model info [CONFIG] [key=value ...]``: print :func:`format_model_info`.

    ``CONFIG`` is a YAML file; its top-level ``model:`` section is the :class:`ModelConfig` (other
    sections are ignored, so a full training config works). A file without a ``model:`` key is read
    as a plain ModelConfig mapping. Overrides may be written ``model.key=value`` or ``key=value``;
    the frame rate for the receptive field in seconds is ``data.fps`` (YAML or override, default 6).
    Configuration errors raise :class:`ConfigError` (the command line prints them and exits 2).
    """
    raw = read_yaml(config_path) if config_path is not None else {}
    tree = parse_overrides(overrides)
    fps_value: Any = DEFAULT_FPS
    data_section = raw.get("data")
    if isinstance(data_section, dict) and "fps" in data_section:
        fps_value = data_section["fps"]
    data_over = tree.pop("data", None)
    if isinstance(data_over, dict) and "fps" in data_over:
        fps_value = data_over["fps"]
    if isinstance(fps_value, bool) or not isinstance(fps_value, (int, float)) or fps_value <= 0:
        raise ConfigError(f"config key 'data.fps': expected a positive number, got {fps_value!r}")
    model_raw = raw.get("model", raw)
    if not isinstance(model_raw, dict):
        where = config_path if config_path is not None else "<overrides>"
        raise ConfigError(f"config file {where!r}: section 'model' must be a mapping")
    model_over = tree.pop("model", {})
    merged = merge_trees(merge_trees(model_raw, tree), model_over if isinstance(model_over, dict) else {})
    cfg = config_from_dict(ModelSection, {"model": merged}).model
    info = model_info(cfg, fps=float(fps_value))
    print(format_model_info(info))
    return 0
