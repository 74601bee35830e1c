"""The samplers of every run: a seeded epoch order (resumable mid-epoch, sharded under DDP) and an
in-order shard for evaluation."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

__all__ = ["EpochSampler", "ShardSampler"]


class EpochSampler(Sampler[int]):
    """Indices of one epoch: a permutation (or class-balanced draw) seeded by ``(seed, epoch)``.

    With ``num_replicas > 1`` (DDP) the epoch's order is padded to a multiple of the number of
    processes and rank ``r`` takes every ``num_replicas``-th index from position ``r``, like
    ``DistributedSampler``. ``start`` skips the first indices of this rank's share (used to resume
    in the middle of an epoch).
    """

    def __init__(
        self,
        num_items: int,
        seed: int,
        weights: Sequence[float] | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.num_items = num_items
        self.seed = seed
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.start = 0

    def order(self, epoch: int) -> list[int]:
        """This rank's indices for ``epoch`` (before skipping ``start``)."""
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        if self.weights is None:
            full = torch.randperm(self.num_items, generator=gen).tolist()
        else:
            full = torch.multinomial(self.weights, self.num_items, replacement=True, generator=gen).tolist()
        per_rank = math.ceil(len(full) / self.num_replicas)
        full = (full * self.num_replicas)[: per_rank * self.num_replicas]
        return full[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order(self.epoch)[self.start :])

    def __len__(self) -> int:
        return math.ceil(self.num_items / self.num_replicas) - self.start


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + num_replicas, ...`` in order: each process evaluates its share once."""

    def __init__(self, num_items: int, num_replicas: int = 1, rank: int = 0) -> None:
        self.indices = list(range(rank, num_items, num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
