"""Shared fixtures of the model tests: the weight rule of the parity references, the shipped
single action model and real clips fed to it."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from thermact.data.dataset import ClipBatch, ClipDataset, collate_clips
from thermact.data.source import ThermalData
from thermact.tasks.action import TrainedActionModel, restore_model

WeightRule = Callable[[dict[str, list[int]], list[str]], dict[str, Tensor]]


def _weights_by_rule(keys: dict[str, list[int]], bn_keys: list[str]) -> dict[str, Tensor]:
    """The references' ``weight_rule``: per key a generator seeded with the key's CRC32."""
    bn = set(bn_keys)
    out: dict[str, Tensor] = {}
    for key, shape in keys.items():
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(0)
        elif key in bn and key.endswith((".weight", ".running_var")):
            out[key] = torch.rand(shape, generator=g) * 0.5 + 0.75
        elif key in bn:
            out[key] = torch.rand(shape, generator=g) * 0.5 - 0.25
        elif len(shape) >= 2:
            out[key] = torch.randn(shape, generator=g) * (2 / math.prod(shape[1:])) ** 0.5
        else:
            out[key] = torch.randn(shape, generator=g) * 0.01
    return out


@pytest.fixture(scope="session")
def weights_by_rule() -> WeightRule:
    """``weights_by_rule(keys, bn_keys)``: the tensors of a reference's ``weight_rule``
    (``tests/models/reference/*_reference.pt``) for its key -> shape map."""
    return _weights_by_rule


@pytest.fixture(scope="module")
def shipped() -> TrainedActionModel:
    """The shipped single action model ``thermal_net_live``."""
    return restore_model("thermal_net_live", "cpu")


@pytest.fixture(scope="module")
def batch(shipped: TrainedActionModel, real_data: ThermalData) -> ClipBatch:
    """Three real causal clips of the bundled data, two of them with two persons (5 boxes)."""
    two = [k for k in real_data.keyframes if len(k.persons) == 2][:2]
    one = [k for k in real_data.keyframes if len(k.persons) == 1][5:6]
    dataset = ClipDataset.from_data(real_data, [*two, *one], shipped.clip, norm=shipped.norm)
    return collate_clips([dataset[i] for i in range(len(dataset))])
