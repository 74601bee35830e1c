"""The run skeleton: resume compatibility checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thermact.config import config_from_dict, config_to_dict
from thermact.engine.run import check_resume_compatible
from thermact.errors import ConfigError
from thermact.tasks.action import ActionRunConfig


def test_resume_accepts_a_checkpoint_written_before_the_interaction_key(tmp_path: Path) -> None:
    config = config_to_dict(ActionRunConfig())
    old = json.loads(json.dumps(config))
    del old["model"]["head"]["interaction"]
    check_resume_compatible({"config": old, "classes": ["a"]}, ActionRunConfig(), ["a"], "old.pt")
    ia = json.loads(json.dumps(config))
    ia["model"]["head"]["interaction"]["structure"] = "serial"
    with pytest.raises(ConfigError, match="model.head"):
        check_resume_compatible(
            {"config": old, "classes": ["a"]}, config_from_dict(ActionRunConfig, ia), ["a"], "old.pt"
        )
