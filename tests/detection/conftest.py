"""Detector tests run single-threaded: on tensors this small, intra-op threads only add
synchronisation (on a busy 2-core machine a 2-thread run was 6x slower than a 1-thread one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
