"""Multi-process training through ``torchrun`` (DDP), and the single-process default.

``torchrun --nproc_per_node=N -m thermact train ...`` sets ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``; :func:`init_distributed` then starts a process group and each process takes its
own GPU (NCCL for CUDA tensors, with gloo beside it for the small CPU tensors of
:meth:`DistContext.any`; gloo alone on the CPU). Without those variables everything runs in one process and
the helpers below are no-ops. Only rank 0 writes files and prints; metrics are computed on rank 0
from the predictions of all ranks.
"""

from __future__ import annotations

import dataclasses
import gc
import os
from typing import Any

import torch
import torch.distributed as dist

from thermact.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` on every rank, in rank order (``[obj]`` when not distributed)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any rank (``flag`` itself when not distributed)."""
        if not self.enabled:
            return flag
        box = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(box, op=dist.ReduceOp.MAX)
        return bool(box.item() > 0)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def init_distributed(device_name: str) -> tuple[DistContext, torch.device | None]:
    """Start the process group when launched by torchrun; return the context and the device.

    The device is None when not distributed (the caller picks it from the config).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(), None
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name != "cpu"
    if use_cuda:
        check_gpu_count(local_rank, torch.cuda.device_count())
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=process_group_backend(use_cuda))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    return DistContext(rank, local_rank, world_size), device


def process_group_backend(use_cuda: bool) -> str:
    """NCCL for CUDA tensors with gloo for CPU ones (collectives of both kinds work), or gloo."""
    return "cpu:gloo,cuda:nccl" if use_cuda else "gloo"


def check_gpu_count(local_rank: int, gpus: int) -> None:
    """A :class:`ConfigError` when this process's ``LOCAL_RANK`` has no GPU of its own."""
    if local_rank >= gpus:
        raise ConfigError(
            f"config key 'device': torchrun started process LOCAL_RANK={local_rank} but this machine "
            f"has {gpus} GPU{'s' if gpus != 1 else ''}; start at most {gpus} per node "
            "(--nproc_per_node) or train on the CPU with device=cpu"
        )


def shutdown_distributed(ctx: DistContext) -> None:
    """Destroy the process group, after collecting the run's cyclic garbage (a DDP wrapper and the
    work objects of its last collectives) while the interpreter is still whole: gloo threads that
    free such objects during interpreter shutdown abort the process ('terminate called without an
    active exception', seen in 1 of ~50 runs of the two-process test even after the closing barrier)."""
    if ctx.enabled and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def wrap_ddp(model: torch.nn.Module, device: torch.device, ctx: DistContext) -> torch.nn.Module:
    """``model`` wrapped in ``DistributedDataParallel`` under ``torchrun``, else itself."""
    if not ctx.enabled:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )
