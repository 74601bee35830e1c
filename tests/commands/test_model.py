"""``thermact model info``."""

from __future__ import annotations

from pathlib import Path

import pytest

from thermact.commands.model import main_info as main_model_info
from thermact.errors import ConfigError


def test_main_model_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        "data:\n  window_s: 4.5\nmodel:\n  name: thermal_net_s\n  head:\n    mlp_dim: 32\ntrain:\n  lr: 0.1\n"
    )
    assert main_model_info(str(cfg), ["model.num_frames=8"]) == 0
    out = capsys.readouterr().out
    assert "27 frames = 15.19 s (0.562 s per clip frame; the clip: 8 frames = 4.50 s)" in out
    assert "[1, 1, 8, 40, 60]" in out
    # a file that is a bare ModelConfig mapping, plus overrides with and without the prefix
    bare = tmp_path / "model.yaml"
    bare.write_text("name: thermal_net_s\n")
    assert main_model_info(str(bare), ["head.mlp_dim=16", "data.window_s=3.2"]) == 0
    assert "27 frames = 5.40 s (0.200 s per clip frame" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"model\.head\.mlp_dimm.*did you mean 'mlp_dim'"):
        main_model_info(str(cfg), ["model.head.mlp_dimm=3"])
    with pytest.raises(ConfigError, match="does not exist"):
        main_model_info(str(tmp_path / "missing.yaml"), [])


def test_model_info_of_the_live_presets(capsys: pytest.CaptureFixture[str]) -> None:
    """The live action model: 8 clip frames over 2.7 s, 0.3375 s apart (not the sensor's 1/6 s)."""
    assert main_model_info("thermal_net_live", []) == 0
    out = capsys.readouterr().out
    assert "27 frames = 9.11 s (0.338 s per clip frame; the clip: 8 frames = 2.70 s)" in out
    assert "194,598 total" in out
    for args in (("person_detector_live", []), (None, ["config=person_detector_live"])):
        assert main_model_info(*args) == 0
        out = capsys.readouterr().out
        assert "model            person_detector_t" in out and "107,198 total" in out
        assert "MACs             24.5" in out and "3 frames = 0.50 s" in out
    assert main_model_info("person_detector", ["model.num_frames=5", "data.window_s=1.0"]) == 0
    assert "5 frames = 1.00 s (0.200 s per clip frame" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="'person_detector_x' is not one of"):
        main_model_info("person_detector_live", ["model.name=person_detector_x"])
    with pytest.raises(ConfigError, match="data.window_s"):
        main_model_info("thermal_net_live", ["data.window_s=0"])
