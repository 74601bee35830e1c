"""Interaction aggregation over pooled person features (AlphAction's IA structure).

AlphAction (Tang et al., "Asynchronous Interaction Aggregation for Action Detection", ECCV 2020)
refines each person's pooled RoI feature by attending to

* ``"P"``: the other persons of the same clip, and
* ``"M"``: a memory of person features at neighbouring keyframes of the same video
  (:mod:`thermact.models.memory`),

with interaction blocks arranged in one of three ways (AlphAction's semantics):

* ``"serial"``: blocks one after the other; a ``P`` block's keys are the current features of the
  other persons (the output of the previous block), the memory keys stay fixed.
* ``"dense_serial"``: serial, but from the third block on, a block's input (and its ``P`` keys) is
  a learned per-channel softmax mixture of the outputs of *all* earlier blocks
  (``dense_params[str(i)]`` ``[i, dim_inner]``, initialised to select the previous block's output).
* ``"parallel"``: the block list is cut into layers (a new layer starts when a kind repeats, so
  ``[P, M, P, M]`` is ``[[P, M], [P, M]]``); block ``j`` of a layer refines the output of block
  ``j`` of the previous layer, and the outputs of the last layer are summed.

Every block is an :class:`InteractionUnit`: single- or multi-head scaled dot-product attention of
the person (query) over a padded, masked context, LayerNorm (no affine), ReLU, output projection,
dropout and a residual (through a linear ``shortcut`` when the output size differs). A person
with no context (``M = 0`` or every entry masked) gets exactly the residual. Memory blocks may add
learned temporal-position embeddings to keys and values (AlphAction's ``TEMPORAL_POSITION``).

:class:`InteractionHead` reduces the pooled person features ``[K, D]`` to ``dim_inner`` (query and
person keys separately, the memory with its own reduction), runs the blocks and returns
``[K, dim_out]``; the detector adds this to the pooled features before its MLP (AlphAction's
``FUSION: add``). Parameter names and shapes follow AlphAction's (1x1x1 ``Conv3d`` there, ``Linear``
here: :func:`thermact.models.pretrained.load_alphaction_interaction` maps them). Not supported:
AlphAction's object (``"O"``) blocks (no object features here).

Shapes:
    person features: ``[K, D]``; batch index: int64 ``[K]`` (the clip of each person);
    memory: :class:`~thermact.models.memory.MemoryContext` ``[K, M, D_mem]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thermact.models.memory import MemoryContext

__all__ = ["ARRANGEMENTS", "Arrangement", "InteractionHead", "InteractionUnit", "parallel_layers"]

Arrangement = Literal["parallel", "serial", "dense_serial"]
ARRANGEMENTS: tuple[Arrangement, ...] = ("parallel", "serial", "dense_serial")
BLOCK_KINDS = ("P", "M")


def _init_linear(layer: nn.Linear, std: float) -> None:
    if std == 0:
        nn.init.zeros_(layer.weight)
    else:
        nn.init.normal_(layer.weight, std=std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class InteractionUnit(nn.Module):
    """Attention of each person over its own (or a shared) context, with a residual.

    Args:
        dim_query: size of the person features ``x``.
        dim_context: size of the context features.
        dim_out: output size (a linear ``shortcut`` maps ``x`` when it differs from ``dim_query``).
        dim_inner: attention width (split over ``num_heads``).
        num_heads: attention heads (AlphAction: 1).
        dropout: dropout after the output projection.
        layer_norm: LayerNorm without affine on the attention output (AlphAction ``LAYER_NORM``).
        num_positions: learned temporal-position embeddings added to keys and values
            (``temporal_position_k`` / ``_v`` ``[num_positions, dim_inner]``); 0: none.
        init_std: std of the normal init of the projections (biases zero).
        zero_init_out: the output projection starts at zero (the unit starts as its residual).

    Shapes (``forward``):
        x: ``[K, dim_query]``.
        context: ``[K, M, dim_context]`` (one context per person) or ``[M, dim_context]`` (shared).
        mask: bool ``[K, M]``, True for entries person ``k`` may attend to.
        positions: int64 ``[K, M]`` in ``[0, num_positions)`` (only with ``num_positions > 0``).
        output: ``[K, dim_out]``.
    """

    def __init__(
        self,
        dim_query: int,
        dim_context: int,
        dim_out: int,
        dim_inner: int,
        num_heads: int = 1,
        dropout: float = 0.0,
        layer_norm: bool = True,
        num_positions: int = 0,
        init_std: float = 0.01,
        zero_init_out: bool = True,
    ) -> None:
        super().__init__()
        if min(dim_query, dim_context, dim_out, dim_inner, num_heads) < 1 or dim_inner % num_heads:
            raise ValueError(
                f"sizes must be >= 1 and dim_inner ({dim_inner}) a multiple of num_heads ({num_heads})"
            )
        if num_positions < 0:
            raise ValueError(f"num_positions must be >= 0, got {num_positions}")
        self.dim_inner = dim_inner
        self.num_heads = num_heads
        self.num_positions = num_positions
        self.use_layer_norm = layer_norm
        self.scale = (dim_inner // num_heads) ** -0.5
        if num_positions > 0:
            self.temporal_position_k = nn.Parameter(torch.zeros(num_positions, dim_inner))
            self.temporal_position_v = nn.Parameter(torch.zeros(num_positions, dim_inner))
        self.query = nn.Linear(dim_query, dim_inner)
        self.key = nn.Linear(dim_context, dim_inner)
        self.value = nn.Linear(dim_context, dim_inner)
        self.out = nn.Linear(dim_inner, dim_out)
        self.dropout = nn.Dropout(dropout, inplace=False)
        self.shortcut: nn.Linear | None = nn.Linear(dim_query, dim_out) if dim_query != dim_out else None
        for layer in (self.query, self.key, self.value, self.shortcut):
            if layer is not None:
                _init_linear(layer, init_std)
        _init_linear(self.out, 0.0 if zero_init_out else init_std)

    def forward(self, x: Tensor, context: Tensor, mask: Tensor, positions: Tensor | None = None) -> Tensor:
        K = x.shape[0]
        h, dh = self.num_heads, self.dim_inner // self.num_heads
        shared = context.dim() == 2
        if mask.dim() != 2 or mask.shape[0] != K or mask.shape[1] != context.shape[-2]:
            raise ValueError(f"mask must be [K, M] = [{K}, {context.shape[-2]}], got {list(mask.shape)}")
        q = self.query(x).reshape(K, h, dh)
        k = self.key(context)
        v = self.value(context)
        if self.num_positions > 0:
            if positions is None:
                raise ValueError("this unit has temporal positions: pass positions [K, M]")
            k = k + self.temporal_position_k[positions]  # -> [K, M, dim_inner]
            v = v + self.temporal_position_v[positions]
            shared = False
        if shared:
            scores = torch.einsum("khd,mhd->khm", q, k.reshape(-1, h, dh))
        else:
            scores = torch.einsum("khd,kmhd->khm", q, k.reshape(K, -1, h, dh))
        keep = mask.unsqueeze(1)  # [K, 1, M]
        scores = (scores * self.scale).masked_fill(~keep, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1) * keep.to(scores.dtype)  # fully masked rows: all zero
        if shared:
            att = torch.einsum("khm,mhd->khd", weights, v.reshape(-1, h, dh))
        else:
            att = torch.einsum("khm,kmhd->khd", weights, v.reshape(K, -1, h, dh))
        att = att.reshape(K, self.dim_inner)
        if self.use_layer_norm:
            att = F.layer_norm(att, (self.dim_inner,))
        delta = self.dropout(self.out(F.relu(att)))
        delta = delta * mask.any(dim=1, keepdim=True).to(delta.dtype)  # no context: exactly the residual
        residual = x if self.shortcut is None else self.shortcut(x)
        out: Tensor = residual + delta
        return out

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, num_positions={self.num_positions}, layer_norm={self.use_layer_norm}"


def block_names(blocks: Sequence[str]) -> list[str]:
    """AlphAction's block names: ``[P, M, P, M] -> [P_block_1, M_block_1, P_block_2, M_block_2]``."""
    count: dict[str, int] = {}
    names = []
    for kind in blocks:
        count[kind] = count.get(kind, 0) + 1
        names.append(f"{kind}_block_{count[kind]}")
    return names


def parallel_layers(blocks: Sequence[str]) -> list[list[int]]:
    """Indices of ``blocks`` per parallel layer; a new layer starts when a kind repeats.

    ``[P, M, P, M] -> [[0, 1], [2, 3]]``. Every layer must have as many blocks as the first.
    """
    layers: list[list[int]] = [[]]
    for i, kind in enumerate(blocks):
        if any(blocks[j] == kind for j in layers[-1]):
            layers.append([])
        layers[-1].append(i)
    if any(len(layer) != len(layers[0]) for layer in layers):
        raise ValueError(
            f"parallel blocks {list(blocks)} do not split into layers of equal size "
            f"({[[blocks[i] for i in layer] for layer in layers]})"
        )
    return layers


class InteractionHead(nn.Module):
    """AlphAction's IA structure over pooled person features (see the module docstring).

    Args:
        dim_person: size ``D`` of the pooled person features.
        blocks: block kinds in order, each ``"P"`` (persons of the same clip) or ``"M"`` (memory).
        structure: ``"serial"``, ``"dense_serial"`` or ``"parallel"``.
        dim_memory: size of the memory features (default ``dim_person``).
        dim_inner: width of the reduced features and of the attention.
        dim_out: output size (default ``dim_person``, as needed for the additive fusion).
        num_heads: attention heads per block.
        dropout: dropout after the reductions and inside the blocks.
        layer_norm: LayerNorm in the blocks.
        memory_window_s: memory window (seconds), used for the temporal positions and by the
            memory bank a caller builds (:meth:`new_memory_bank`).
        memory_slot_s: width of one temporal-position slot (seconds); 0: no temporal positions.
            With slots, memory blocks have ``2 * ceil(memory_window_s / memory_slot_s) + 1``
            position embeddings, slot ``i`` centred at ``(i - half) * memory_slot_s``.
        memory_max: at most this many memory entries per person (for the bank).
        memory_same_track: memory restricted to the person's own track (for the bank).
        init_std: std of the normal init of the projections.

    Shapes (``forward``):
        person: ``[K, dim_person]``; batch_index: int64 ``[K]``; memory: ``[K, M, dim_memory]``
        or None (no memory: memory blocks pass their residual); output ``[K, dim_out]``.
    """

    def __init__(
        self,
        dim_person: int,
        blocks: Sequence[str],
        structure: Arrangement = "dense_serial",
        dim_memory: int | None = None,
        dim_inner: int = 512,
        dim_out: int | None = None,
        num_heads: int = 1,
        dropout: float = 0.0,
        layer_norm: bool = True,
        memory_window_s: float = 8.0,
        memory_slot_s: float = 1.0,
        memory_max: int = 32,
        memory_same_track: bool = False,
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        kinds = [str(b) for b in blocks]
        if not kinds or any(k not in BLOCK_KINDS for k in kinds):
            raise ValueError(f"blocks must be a non-empty list of 'P' / 'M', got {list(blocks)}")
        if structure not in ARRANGEMENTS:
            raise ValueError(f"structure must be one of {ARRANGEMENTS}, got {structure!r}")
        if memory_window_s <= 0 or memory_slot_s < 0 or memory_max < 1:
            raise ValueError(
                f"memory_window_s must be > 0, memory_slot_s >= 0, memory_max >= 1; got "
                f"{memory_window_s}, {memory_slot_s}, {memory_max}"
            )
        self.kinds: tuple[str, ...] = tuple(kinds)
        self.names: tuple[str, ...] = tuple(block_names(kinds))
        self.structure: Arrangement = structure
        self.dim_person = dim_person
        self.dim_memory = dim_person if dim_memory is None else dim_memory
        self.dim_inner = dim_inner
        self.dim_out = dim_person if dim_out is None else dim_out
        self.memory_window_s = float(memory_window_s)
        self.memory_slot_s = float(memory_slot_s)
        self.memory_max = int(memory_max)
        self.memory_same_track = bool(memory_same_track)
        self.has_person = "P" in kinds
        self.has_memory = "M" in kinds
        self.num_positions = (
            2 * math.ceil(self.memory_window_s / self.memory_slot_s - 1e-9) + 1 if memory_slot_s > 0 else 0
        )
        self.layers = parallel_layers(kinds) if structure == "parallel" else [[i] for i in range(len(kinds))]

        self.person_dim_reduce = nn.Linear(dim_person, dim_inner)
        _init_linear(self.person_dim_reduce, init_std)
        self.reduce_dropout = nn.Dropout(dropout, inplace=False)
        self.mem_dim_reduce: nn.Linear | None = None
        self.person_key_dim_reduce: nn.Linear | None = None
        if self.has_memory:
            self.mem_dim_reduce = nn.Linear(self.dim_memory, dim_inner)
            _init_linear(self.mem_dim_reduce, init_std)
        if self.has_person:
            self.person_key_dim_reduce = nn.Linear(dim_person, dim_inner)
            _init_linear(self.person_key_dim_reduce, init_std)
        last_layer = set(self.layers[-1])
        self.blocks = nn.ModuleDict()
        for i, (kind, name) in enumerate(zip(kinds, self.names, strict=True)):
            self.blocks[name] = InteractionUnit(
                dim_query=dim_inner,
                dim_context=dim_inner,
                dim_out=self.dim_out if i in last_layer else dim_inner,
                dim_inner=dim_inner,
                num_heads=num_heads,
                dropout=dropout,
                layer_norm=layer_norm,
                num_positions=self.num_positions if kind == "M" else 0,
                init_std=init_std,
            )
        self.dense_params = nn.ParameterDict()
        if structure == "dense_serial":
            for i in range(2, len(kinds)):
                init = torch.full((i, dim_inner), -5.0 * math.log(10.0))
                init[i - 1] = 0.0  # softmax ~ picks the previous block's output
                self.dense_params[str(i)] = nn.Parameter(init)

    def memory_positions(self, offsets_ms: Tensor) -> Tensor:
        """Slot index ``[K, M]`` of each memory entry (clamped to the embeddings there are)."""
        half = (self.num_positions - 1) // 2
        slot = torch.round(offsets_ms.to(torch.float32) / (1000.0 * self.memory_slot_s)).to(torch.int64)
        return torch.clamp(slot + half, 0, self.num_positions - 1)

    def _memory(
        self, memory: MemoryContext | None, num: int, like: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Reduced memory keys ``[K, M, dim_inner]``, mask ``[K, M]`` and positions (or None)."""
        assert self.mem_dim_reduce is not None
        if memory is None:
            memory = MemoryContext.empty(num, self.dim_memory, like.device)
        if memory.features.shape[0] != num or memory.features.shape[2] != self.dim_memory:
            raise ValueError(
                f"memory must be [K, M, {self.dim_memory}] with K={num}, got {list(memory.features.shape)}"
            )
        keys = self.reduce_dropout(self.mem_dim_reduce(memory.features.to(like.dtype)))
        positions = self.memory_positions(memory.offsets_ms) if self.num_positions > 0 else None
        return keys, memory.mask, positions

    def forward(self, person: Tensor, batch_index: Tensor, memory: MemoryContext | None = None) -> Tensor:
        if person.dim() != 2 or person.shape[1] != self.dim_person:
            raise ValueError(f"person features must be [K, {self.dim_person}], got {list(person.shape)}")
        K = person.shape[0]
        query = self.reduce_dropout(self.person_dim_reduce(person))
        person_key: Tensor | None = None
        person_mask: Tensor | None = None
        if self.person_key_dim_reduce is not None:
            person_key = self.reduce_dropout(self.person_key_dim_reduce(person))
            index = batch_index.reshape(-1)
            order = torch.arange(K, device=person.device)
            person_mask = (index.unsqueeze(1) == index.unsqueeze(0)) & (
                order.unsqueeze(1) != order.unsqueeze(0)
            )
        mem_key, mem_mask, mem_pos = self._memory(memory, K, query) if self.has_memory else (None, None, None)

        def run(i: int, q: Tensor, keys: Tensor | None) -> Tensor:
            unit = self.blocks[self.names[i]]
            if self.kinds[i] == "P":
                assert keys is not None and person_mask is not None
                out: Tensor = unit(q, keys, person_mask)
            else:
                assert mem_key is not None and mem_mask is not None
                out = unit(q, mem_key, mem_mask, mem_pos)
            return out

        if self.structure == "parallel":
            last = [query] * len(self.layers[0])
            for layer in self.layers:
                new: list[Tensor] = []
                for j, i in enumerate(layer):
                    q = run(i, last[j], person_key)
                    if self.kinds[i] == "P":
                        person_key = q
                    new.append(q)
                last = new
            total: Tensor = torch.stack(last).sum(dim=0)
            return total

        history: list[Tensor] = []
        for i in range(len(self.kinds)):
            if self.structure == "dense_serial" and i >= 2:
                mix = torch.softmax(self.dense_params[str(i)], dim=0)  # [i, dim_inner]
                query = (torch.stack(history, dim=1) * mix).sum(dim=1)
                person_key = query
            query = run(i, query, person_key)
            person_key = query
            history.append(query)
        result: Tensor = query
        return result

    def extra_repr(self) -> str:
        return (
            f"structure={self.structure!r}, blocks={list(self.kinds)}, memory_window_s={self.memory_window_s}, "
            f"memory_slot_s={self.memory_slot_s}, memory_max={self.memory_max}, "
            f"memory_same_track={self.memory_same_track}"
        )
