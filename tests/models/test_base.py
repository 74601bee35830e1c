"""Tests of thermact.models.base: the Backbone protocol and make_pathways."""

from __future__ import annotations

import pytest
import torch

from thermact.models.base import Backbone, make_pathways
from thermact.models.thermal_net import thermal_net_s


def _clip(n: int) -> torch.Tensor:
    # frame t holds the value t everywhere
    return torch.arange(n, dtype=torch.float32).view(1, 1, n, 1, 1).expand(2, 1, n, 3, 4)


def _frames(x: torch.Tensor) -> list[int]:
    return [int(v) for v in x[0, 0, :, 0, 0].tolist()]


def test_stride_one_returns_the_clip_itself() -> None:
    clip = _clip(8)
    (out,) = make_pathways(clip, (1,))
    assert out is clip


def test_slowfast_pathways_are_uniform_and_centred() -> None:
    slow, fast = make_pathways(_clip(32), (8, 1))
    assert _frames(slow) == [3, 11, 19, 27]
    assert _frames(fast) == list(range(32))
    (slow4,) = make_pathways(_clip(32), (4,))
    assert _frames(slow4) == [1, 5, 9, 13, 17, 21, 25, 29]
    # T not a multiple of the stride: floor(T / s) frames, still centred
    (odd,) = make_pathways(_clip(10), (4,))
    assert _frames(odd) == [2, 6]  # offset (10 - 1 - 4) // 2 = 2
    assert slow.shape == (2, 1, 4, 3, 4)


def test_make_pathways_errors() -> None:
    with pytest.raises(ValueError, match="too short"):
        make_pathways(_clip(3), (4, 1))
    with pytest.raises(ValueError, match=r"\[B, C, T, H, W\]"):
        make_pathways(torch.zeros(1, 8, 3, 4), (1,))
    with pytest.raises(ValueError, match=">= 1"):
        make_pathways(_clip(8), (0,))
    with pytest.raises(ValueError, match="empty"):
        make_pathways(_clip(8), ())


def test_thermal_net_satisfies_protocol() -> None:
    assert isinstance(thermal_net_s(), Backbone)
    assert not isinstance(torch.nn.Linear(2, 2), Backbone)


def test_causal_pathways_keep_the_keyframe_and_match_the_data_layer() -> None:
    from thermact.data.clips import pathway_indices

    clip = torch.arange(32, dtype=torch.float32).reshape(1, 1, 32, 1, 1)
    for position in ("center", "causal"):
        slow, fast = make_pathways(clip, (8, 1), position)
        assert slow.flatten().long().tolist() == pathway_indices(32, 8, position).tolist()
        assert fast is clip
    assert make_pathways(clip, (8,), "causal")[0].flatten().tolist()[-1] == 31.0
