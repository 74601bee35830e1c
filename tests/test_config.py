from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import pytest
import yaml

from thermact.config import build_config, config_from_dict, config_to_dict, parse_overrides, save_config
from thermact.errors import ConfigError


@dataclasses.dataclass
class Inner:
    window_s: float = 2.7
    num_frames: int = 16
    position: Literal["center", "causal"] = "center"


@dataclasses.dataclass
class Outer:
    name: str = "run"
    seed: int = 0
    deterministic: bool = False
    size: tuple[int, int] | None = None
    tags: list[str] = dataclasses.field(default_factory=list)
    data: Inner = dataclasses.field(default_factory=Inner)


def test_defaults_file_and_overrides_layer_in_order(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"seed": 3, "data": {"window_s": 2.0, "num_frames": 8}}))
    cfg = build_config(
        Outer, path, ["data.window_s=2.5", "size=[40, 60]", "tags=[a, b]", "deterministic=true"]
    )
    assert cfg.seed == 3
    assert cfg.data.window_s == 2.5
    assert cfg.data.num_frames == 8
    assert cfg.size == (40, 60)
    assert cfg.tags == ["a", "b"]
    assert cfg.deterministic is True
    assert cfg.data.position == "center"


def test_int_is_accepted_for_float_and_null_for_optional() -> None:
    cfg = build_config(Outer, None, ["data.window_s=3", "size=null"])
    assert cfg.data.window_s == 3.0 and isinstance(cfg.data.window_s, float)
    assert cfg.size is None


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("data.windw_s=2", "did you mean 'window_s'"),
        ("sed=1", "did you mean 'seed'"),
        ("data.num_frames=abc", "'data.num_frames': expected int"),
        ("data.position=causl", "did you mean 'causal'"),
        ("deterministic=1", "'deterministic': expected bool"),
        ("size=[1, 2, 3]", "'size'"),
        ("nonsense", "not of the form key=value"),
    ],
)
def test_bad_keys_and_values_name_the_key(override: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(Outer, None, [override])
    assert fragment in str(info.value)


def test_bad_yaml_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml"):
        build_config(Outer, missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        build_config(Outer, broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        build_config(Outer, listy)


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    cfg = build_config(Outer, None, ["size=[40, 60]", "data.num_frames=4", "tags=[x]"])
    out = tmp_path / "run" / "config.yaml"
    save_config(cfg, out)
    again = build_config(Outer, out)
    assert again == cfg
    assert config_from_dict(Outer, config_to_dict(cfg)) == cfg
    assert config_to_dict(cfg)["size"] == [40, 60]


def test_parse_overrides_builds_nested_tree() -> None:
    assert parse_overrides(["a.b=1", "a.c=x", "d=1.5"]) == {"a": {"b": 1, "c": "x"}, "d": 1.5}


@dataclasses.dataclass
class Opts:
    checkpoint: str = ""
    batch_size: int = 16


def test_positional_argument_stands_for_a_key() -> None:
    from thermact.config import build_options

    assert build_options(Opts, "checkpoint", "a.pt", ["batch_size=4"]) == Opts("a.pt", 4)
    assert build_options(Opts, "checkpoint", None, ["checkpoint=b.pt"]) == Opts("b.pt", 16)
    assert build_options(Opts, "checkpoint", "a.pt", ["checkpoint=a.pt"]).checkpoint == "a.pt"
    with pytest.raises(ConfigError, match="two values for 'checkpoint'"):
        build_options(Opts, "checkpoint", "a.pt", ["checkpoint=b.pt"])
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        build_options(Opts, "checkpoint", "a.pt", ["batch=4"])
