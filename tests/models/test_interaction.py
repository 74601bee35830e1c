"""Interaction aggregation (AlphAction's IA structure): attention values, masking, arrangements, backward."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from thermact.models.factory import HeadConfig, InteractionConfig, ModelConfig, build_model
from thermact.models.interaction import InteractionHead, InteractionUnit, block_names, parallel_layers
from thermact.models.memory import MemoryContext


def _randomise(module: nn.Module, seed: int = 0) -> None:
    """Non-zero weights everywhere (the output projections start at zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


def _unit(dim_out: int = 8, positions: int = 0, heads: int = 1) -> InteractionUnit:
    unit = InteractionUnit(8, 6, dim_out, 8, num_heads=heads, num_positions=positions)
    _randomise(unit)
    return unit.eval()


def test_unit_matches_hand_computed_attention() -> None:
    unit = InteractionUnit(3, 2, 3, 4, layer_norm=False)
    _randomise(unit, seed=3)
    x = torch.tensor([[1.0, -2.0, 0.5]])
    ctx = torch.tensor([[[0.3, 1.0], [2.0, -1.0], [9.0, 9.0]]])
    mask = torch.tensor([[True, True, False]])
    q, k, v = unit.query(x)[0], unit.key(ctx[0, :2]), unit.value(ctx[0, :2])
    w = torch.softmax(k @ q / math.sqrt(4.0), dim=0)
    expected = x + unit.out(torch.relu(w @ v))
    torch.testing.assert_close(unit.eval()(x, ctx, mask), expected)


@pytest.mark.parametrize("dim_out", [8, 5])
def test_no_context_gives_exactly_the_residual(dim_out: int) -> None:
    unit = _unit(dim_out)
    x = torch.randn(3, 8)
    residual = x if unit.shortcut is None else unit.shortcut(x)
    empty = unit(x, torch.zeros(3, 0, 6), torch.zeros(3, 0, dtype=torch.bool))
    assert torch.equal(empty, residual)
    masked = unit(x, torch.randn(3, 4, 6), torch.zeros(3, 4, dtype=torch.bool))
    assert torch.equal(masked, residual)
    assert torch.isfinite(masked).all()
    # one person with context, one without: only the first changes
    mask = torch.tensor([[True, False, False, False], [False] * 4, [False] * 4])
    mixed = unit(x, torch.randn(3, 4, 6), mask)
    assert torch.equal(mixed[1:], residual[1:])
    assert not torch.allclose(mixed[0], residual[0])


@pytest.mark.parametrize("heads", [1, 2])
def test_masked_entries_change_nothing(heads: int) -> None:
    unit = _unit(heads=heads)
    x, ctx = torch.randn(2, 8), torch.randn(2, 5, 6)
    mask = torch.tensor([[True, False, True, False, False], [False, True, True, True, False]])
    base = unit(x, ctx, mask)
    changed = ctx.clone()
    changed[0, 1] = 100.0
    changed[1, 4] = -50.0
    assert torch.equal(unit(x, changed, mask), base)
    changed[0, 2] = 3.0  # a real entry: the output moves
    assert not torch.allclose(unit(x, changed, mask)[0], base[0])


def test_shared_context_equals_expanded_context() -> None:
    unit = _unit()
    x, ctx = torch.randn(3, 8), torch.randn(4, 6)
    mask = torch.rand(3, 4) > 0.3
    torch.testing.assert_close(unit(x, ctx, mask), unit(x, ctx.expand(3, 4, 6), mask))


def test_temporal_positions_shift_keys_and_values() -> None:
    unit = _unit(positions=5)
    x, ctx = torch.randn(2, 8), torch.randn(2, 3, 6)
    mask = torch.ones(2, 3, dtype=torch.bool)
    same = torch.zeros(2, 3, dtype=torch.int64)
    with torch.no_grad():
        unit.temporal_position_k.zero_()
        unit.temporal_position_v.zero_()
        unit.temporal_position_v[4] = torch.linspace(-1.0, 2.0, 8)
    plain = unit(x, ctx, mask, same)
    assert not torch.allclose(unit(x, ctx, mask, torch.full((2, 3), 4)), plain)
    with pytest.raises(ValueError, match="positions"):
        unit(x, ctx, mask)


def test_block_names_and_parallel_layers() -> None:
    assert block_names(["P", "M", "P", "M"]) == ["P_block_1", "M_block_1", "P_block_2", "M_block_2"]
    assert parallel_layers(["P", "M", "P", "M"]) == [[0, 1], [2, 3]]
    assert parallel_layers(["P", "P"]) == [[0], [1]]
    with pytest.raises(ValueError, match="equal size"):
        parallel_layers(["P", "M", "P"])


def _head(structure: Any, blocks: tuple[str, ...] = ("P", "M", "P", "M")) -> InteractionHead:
    head = InteractionHead(12, blocks, structure, dim_inner=8, memory_window_s=3.0, memory_slot_s=1.0)
    _randomise(head)
    return head.eval()


def _memory(num: int, m: int = 3, seed: int = 0) -> MemoryContext:
    gen = torch.Generator().manual_seed(seed)
    return MemoryContext(
        torch.randn(num, m, 12, generator=gen),
        torch.ones(num, m, dtype=torch.bool),
        torch.tensor([[-1000, 1000, -2000]] * num)[:, :m],
    )


@pytest.mark.parametrize("structure", ["serial", "dense_serial", "parallel"])
def test_persons_interact_only_within_their_clip(structure: Any) -> None:
    head = _head(structure)
    x = torch.randn(4, 12)
    index = torch.tensor([0, 0, 1, 2])  # two persons in clip 0, one each in clips 1 and 2
    out = head(x, index)
    moved = x.clone()
    moved[1] += 1.0
    out2 = head(moved, index)
    assert not torch.allclose(out2[0], out[0])  # the other person of clip 0 matters
    assert torch.equal(out2[2:], out[2:])  # other clips do not
    # a person alone in its clip (zero others) and without memory: independent of everybody
    alone = head(x[2:3], torch.tensor([0]))
    torch.testing.assert_close(alone, out[2:3])


def test_dense_serial_mixture_starts_at_the_previous_block() -> None:
    head = InteractionHead(12, ["P", "M", "P", "M"], "dense_serial", dim_inner=8)
    assert sorted(head.dense_params) == ["2", "3"]
    assert head.dense_params["3"].shape == (3, 8)
    mix = torch.softmax(head.dense_params["3"].detach(), dim=0)
    assert float(mix[2].min()) > 0.9999 and float(mix[:2].max()) < 1e-4
    assert len(InteractionHead(12, ["P", "M", "P"], "serial", dim_inner=8).dense_params) == 0


def test_memory_changes_output_and_empty_memory_equals_none() -> None:
    head = _head("dense_serial")
    x, index = torch.randn(2, 12), torch.tensor([0, 1])
    none = head(x, index)
    torch.testing.assert_close(head(x, index, MemoryContext.empty(2, 12)), none)
    masked = _memory(2)
    masked = MemoryContext(masked.features, torch.zeros_like(masked.mask), masked.offsets_ms)
    torch.testing.assert_close(head(x, index, masked), none)
    assert not torch.allclose(head(x, index, _memory(2)), none)
    assert head.num_positions == 7  # +-3 s in 1 s slots
    assert head.memory_positions(torch.tensor([[-3000, -400, 0, 600, 9000]])).tolist() == [[0, 3, 3, 4, 6]]


def _detector_inputs(name: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    gen = torch.Generator().manual_seed(0)
    T, H, W = (8, 32, 32) if name.startswith("slowfast") else (8, 24, 32)
    clip = torch.randn(2, 1, T, H, W, generator=gen)
    rois = torch.tensor(
        [[0.0, 2.0, 3.0, 14.0, 20.0], [1.0, 10.0, 4.0, 30.0, 22.0], [1.0, 0.0, 0.0, 8.0, 9.0]]
    )
    return clip, rois, T


@pytest.mark.parametrize("structure", ["parallel", "serial", "dense_serial"])
@pytest.mark.parametrize("name", ["thermal_net_s", "slowfast_r50_4x16"])
def test_detector_backward_under_anomaly_detection(name: Any, structure: Any) -> None:
    clip, rois, T = _detector_inputs(name)
    ia = InteractionConfig(structure=structure, dim_inner=16, dropout=0.3)
    model = build_model(
        ModelConfig(name=name, num_frames=T, head=HeadConfig(mlp_dim=32, interaction=ia)), verbose=False
    )
    assert model.interaction is not None
    _randomise(model.interaction, seed=1)  # non-zero output projections: every parameter gets gradient
    dim = model.head.dim_in
    memory = MemoryContext(
        torch.randn(3, 4, dim),
        torch.tensor([[True, True, False, False], [True] * 4, [False] * 4]),
        torch.tensor([[-1000, 2000, 0, 0], [-3000, -1000, 1000, 9000], [0] * 4]),
    )
    model.train()
    torch.manual_seed(1)
    with torch.autograd.set_detect_anomaly(True):
        logits, pooled = model(clip, rois, memory=memory, return_pooled=True)
        loss = nn.functional.cross_entropy(logits, torch.tensor([0, 3, 1])) + logits.pow(2).mean()
        loss.backward()
    assert pooled.shape == (3, dim) and torch.isfinite(logits).all()
    bad = [n for n, p in model.named_parameters() if p.grad is None or not bool(torch.isfinite(p.grad).all())]
    assert not bad, bad
    assert not [n for n, m in model.named_modules() if getattr(m, "inplace", False)]
    # the two halves give the forward's logits
    model.eval()
    with torch.no_grad():
        whole = model(clip, rois, memory=memory)
        halves = model.classify(model.person_features(clip, rois), rois[:, 0].long(), memory)
    torch.testing.assert_close(halves, whole)


def test_structure_none_is_the_plain_model() -> None:
    torch.manual_seed(0)
    plain = build_model(ModelConfig(num_frames=8, head=HeadConfig(mlp_dim=32)), verbose=False)
    torch.manual_seed(0)
    default = build_model(
        ModelConfig(num_frames=8, head=HeadConfig(mlp_dim=32, interaction=InteractionConfig())), verbose=False
    )
    assert default.interaction is None
    assert list(plain.state_dict()) == list(default.state_dict())
    clip, rois, _ = _detector_inputs("thermal_net_s")
    plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            plain(clip, rois), plain.classify(plain.person_features(clip, rois), rois[:, 0])
        )
    with pytest.raises(ValueError, match="no interaction head"):
        plain.new_memory_bank()
