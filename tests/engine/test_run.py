"""The run skeleton: resume compatibility checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from thermact.config import config_from_dict, config_to_dict
from thermact.engine.run import check_resume_compatible, prepare_run_dir
from thermact.errors import ConfigError, OutputError
from thermact.io import DirectoryLock
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


def test_run_dir_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        prepare_run_dir(afile, False, None)
    with pytest.raises(ConfigError, match=r"run_dir.*cannot write"):
        prepare_run_dir(afile / "below", False, None)
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: nothing to test
            pytest.skip("running as a user that can write anywhere")
        with pytest.raises(ConfigError, match=r"run_dir.*cannot write.*ermission"):
            prepare_run_dir(locked / "run", False, None)
    finally:
        locked.chmod(0o700)


def test_a_second_writer_of_a_run_directory_is_refused(tmp_path: Path) -> None:
    with (
        DirectoryLock(tmp_path),
        pytest.raises(OutputError, match="in use by another thermact process"),
        DirectoryLock(tmp_path),
    ):
        pass
    with DirectoryLock(tmp_path):  # released: free again
        pass
    assert list(tmp_path.iterdir()) == []  # the lock leaves no file behind
