"""``thermact model info``."""

from __future__ import annotations

from pathlib import Path

import pytest

from thermact.commands.model import main_info as main_model_info
from thermact.errors import ConfigError


def test_main_model_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        "data:\n  fps: 9\nmodel:\n  name: thermal_net_s\n  head:\n    mlp_dim: 32\ntrain:\n  lr: 0.1\n"
    )
    assert main_model_info(str(cfg), ["model.num_frames=8"]) == 0
    out = capsys.readouterr().out
    assert "27 frames = 3.00 s at 9 fps" in out and "[1, 1, 8, 40, 60]" in out
    # a file that is a bare ModelConfig mapping, plus overrides with and without the prefix
    bare = tmp_path / "model.yaml"
    bare.write_text("name: thermal_net_s\n")
    assert main_model_info(str(bare), ["head.mlp_dim=16", "data.fps=3"]) == 0
    assert "9.00 s at 3 fps" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"model\.head\.mlp_dimm.*did you mean 'mlp_dim'"):
        main_model_info(str(cfg), ["model.head.mlp_dimm=3"])
    with pytest.raises(ConfigError, match="does not exist"):
        main_model_info(str(tmp_path / "missing.yaml"), [])
