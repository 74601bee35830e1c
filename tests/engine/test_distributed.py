"""torchrun's environment → process group and device (the two-process run is in tests/tasks)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from thermact.engine.distributed import (
    DistContext,
    check_gpu_count,
    init_distributed,
    process_group_backend,
)
from thermact.errors import ConfigError


def test_without_torchrun_nothing_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx, device = init_distributed("auto")
    assert ctx == DistContext() and device is None and not ctx.enabled and ctx.is_main
    assert ctx.gather("x") == ["x"] and ctx.any(True) and not ctx.any(False) and ctx.broadcast(3) == 3
    assert not dist.is_initialized()


def test_backend_serves_cpu_tensors_beside_nccl() -> None:
    assert process_group_backend(use_cuda=True) == "cpu:gloo,cuda:nccl"
    assert process_group_backend(use_cuda=False) == "gloo"


def test_a_process_without_a_gpu_of_its_own_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    check_gpu_count(0, 1)
    check_gpu_count(3, 4)
    with pytest.raises(ConfigError, match=r"LOCAL_RANK=1 but this machine has 1 GPU;.*device=cpu"):
        check_gpu_count(1, 1)
    # the same from torchrun's variables, before any process group or device is touched
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda _: pytest.fail("set_device was called"))
    with pytest.raises(ConfigError, match="LOCAL_RANK=1 but this machine has 1 GPU"):
        init_distributed("auto")
    assert not dist.is_initialized()
