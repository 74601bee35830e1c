"""Inference tests run single-threaded (tensors this small gain nothing from intra-op threads); their
fixtures (tiny real checkpoints, short recordings, fake models) live in the top-level conftest."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every test here runs with one torch thread."""
