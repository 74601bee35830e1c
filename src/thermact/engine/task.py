"""What differs between the two kinds of model thermact trains, as two small protocols.

A :class:`Task` (one object per kind: :data:`thermact.tasks.action.ACTION`, the per-person action
model, and :data:`thermact.tasks.person.PERSON`, the person detector) names its run config,
builds a :class:`TaskRun` for one training run (data, model, loss, validation), restores a trained
model from a checkpoint and gives the real inputs an ONNX export is verified on.
:func:`thermact.engine.run.train` does everything else, identically for both: run directory,
seeding, device and autocast, DDP, optimiser, resume, the epoch loop
(:func:`thermact.engine.loop.fit`) and checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor, nn

from thermact.data.clips import ClipConfig
from thermact.data.source import ThermalData
from thermact.data.transforms import NormStats
from thermact.engine.distributed import DistContext
from thermact.engine.samplers import EpochSampler

__all__ = ["Task", "TaskRun"]

ConfigT = TypeVar("ConfigT")
TrainedT = TypeVar("TrainedT", covariant=True)


class TaskRun(Protocol):
    """One training run of a task, ready for :func:`thermact.engine.loop.fit`."""

    @property
    def cfg(self) -> Any:
        """The run config as trained (what ``config.yaml`` and every checkpoint hold), with what the
        task resolved from its inputs (e.g. the architecture a pretrained file implies)."""

    @property
    def model(self) -> nn.Module:
        """The bare model (optimiser, gradient clipping, checkpoints)."""

    @property
    def classes(self) -> list[str]: ...

    @property
    def norm(self) -> NormStats:
        """Temperature normalisation, from the training keyframes only."""

    @property
    def clip(self) -> ClipConfig:
        """The clip the model is fed (stored in every checkpoint)."""

    @property
    def sampler(self) -> EpochSampler: ...

    @property
    def train_loader(self) -> Iterable[Any]:
        """Batches drawn through :attr:`sampler`."""

    @property
    def metric(self) -> str:
        """The validation metric that picks ``best.pt`` (higher is better)."""

    @property
    def summary(self) -> str:
        """One line saying what is trained on what (printed at the start)."""

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws for ``epoch``."""

    def loss(self, net: nn.Module, batch: Any) -> tuple[Tensor | None, dict[str, float]]:
        """Forward one batch through ``net`` (the model or its DDP wrapper): its loss (None when the
        batch holds nothing to learn from) and named parts of it for the log."""

    def evaluate(self, net: nn.Module) -> dict[str, Any] | None:
        """Validation metrics on rank 0 (None on the other ranks)."""

    def batch_size(self, batch: Any) -> int:
        """Clips in ``batch`` (for the clips/s display)."""

    def state_dict(self) -> dict[str, Any]:
        """Extra checkpoint entries besides model and optimiser (e.g. an interaction head's memory)."""

    def load_state_dict(self, ckpt: dict[str, Any], path: str) -> None:
        """Restore what :meth:`state_dict` saved, from checkpoint ``ckpt`` read from ``path``."""


class Task(Protocol[ConfigT, TrainedT]):
    """One kind of model: its config, how to train it, restore it and verify its export."""

    name: str
    """The config's ``task`` value (``action``, ``detector``)."""
    config_type: type[ConfigT]

    def build(
        self, cfg: ConfigT, ctx: DistContext, device: torch.device, amp_dtype: torch.dtype | None
    ) -> TaskRun:
        """Load the data of ``cfg``'s split fold and build model, loss and validation."""
        ...

    def restore(self, path: str | Path, device: str | torch.device = "cpu") -> TrainedT:
        """A trained model from its checkpoint (eval mode), with everything needed to feed it."""
        ...

    def export_inputs(
        self, trained: Any, data: ThermalData, num_clips: int, batch_size: int
    ) -> list[tuple[Tensor, ...]]:
        """Batches of real, normalised model inputs from ``data`` to trace and verify an export on."""
        ...
