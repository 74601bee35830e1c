"""Shared fixtures of the model tests: the weight rule of the parity references."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

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
