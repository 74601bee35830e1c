from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from thermact.engine.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from thermact.errors import CheckpointError


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path: Path) -> None:
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    state = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(2)}, "config": {"a": 1}, "classes": ["x"], "rng": state})
    loaded = load_checkpoint(path)
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    restore_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]
    assert torch.equal(loaded["model"]["w"], torch.ones(2))
    assert loaded["classes"] == ["x"]


def test_bad_checkpoints_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="missing.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="junk.pt: cannot be loaded"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="other.pt: not a thermact checkpoint"):
        load_checkpoint(other)

    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "thermact-checkpoint", "obj": Path("/")}, pickled)
    with pytest.raises(CheckpointError, match="weights-only"):
        load_checkpoint(pickled)
