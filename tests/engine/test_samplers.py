"""The epoch sampler: seeded order, DDP shards, mid-epoch resume."""

from __future__ import annotations

from thermact.engine.samplers import EpochSampler


def test_epoch_sampler_shards_and_resumes() -> None:
    s = EpochSampler(10, seed=3)
    order = s.order(0)
    assert sorted(order) == list(range(10)) and order != s.order(1)
    s.start = 4
    assert list(s) == order[4:]
    shards = [EpochSampler(10, seed=3, num_replicas=3, rank=r).order(0) for r in range(3)]
    assert [len(x) for x in shards] == [4, 4, 4]
    assert {i for shard in shards for i in shard} == set(range(10))
