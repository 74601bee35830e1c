"""AlphAction IA checkpoints: the interaction head's loader, and parity of the blocks it keeps.

``reference/alphaction_ia_dense_serial_r101_8x8_reference.pt`` holds what AlphAction's own
``IA_structure.py`` (its ``DenseSerialIAStructure``, ``I_BLOCK_LIST [P, O, M, P, O, M]``) computes
for weights made by the rule written in the file: the reductions of fixed person and memory
features and the output of each block thermact keeps (P_block_1, M_block_1, P_block_2, M_block_2)
for AlphAction's own contexts (``benchmarks/reference/make_references.py alphaction-ia``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from thermact.errors import CheckpointError
from thermact.models.head import RoIActionHead
from thermact.models.interaction import InteractionHead
from thermact.models.pretrained import load_alphaction_interaction, read_layout

REFERENCE = Path(__file__).parent / "reference" / "alphaction_ia_dense_serial_r101_8x8_reference.pt"
PREFIX = "roi_heads.action.feature_extractor.ia_structure."
TOLERANCE = 1e-4  # relative to max |output|
WeightRule = Callable[[dict[str, list[int]], list[str]], dict[str, Tensor]]  # the weights_by_rule fixture


class _IAModel(nn.Module):
    """The head side of an R101 ActionModel with an interaction head (no backbone: fast)."""

    def __init__(self, window_s: float) -> None:
        super().__init__()
        self.head = RoIActionHead((2048, 256), 1 / 16, num_classes=14, mlp_dim=1024)
        self.interaction = InteractionHead(
            2304, ["P", "M", "P", "M"], "dense_serial", dim_inner=1024, memory_window_s=window_s
        )


def test_alphaction_ia_checkpoint_loads_into_the_interaction_head(
    tmp_path: Path, weights_by_rule: WeightRule
) -> None:
    layout = read_layout("alphaction_ia_dense_serial_r101_8x8")
    assert layout["backbone"] == {} and layout["backbone_layout"] == "alphaction_slowfast_r101_8x8"
    theirs = weights_by_rule(layout["head"], [])
    backbone = {"backbone.slow.conv1.weight": torch.zeros(64, 3, 1, 7, 7)}  # ignored by this loader
    path = tmp_path / "ia.pth"
    torch.save({"model": {"module." + k: v for k, v in {**backbone, **theirs}.items()}, "iteration": 1}, path)
    model = _IAModel(window_s=8.0)  # 17 temporal positions: the central 17 of AlphAction's 61
    report = load_alphaction_interaction(model, path)
    assert report.complete, str(report)
    ours = model.state_dict()
    expected_loaded = [k for k in ours if k.startswith(("interaction.", "head.mlp."))]
    assert sorted(report.loaded) == sorted(expected_loaded) and len(expected_loaded) == 4 + 36 + 4 + 2 + 4
    dropped = [k for k in layout["head"] if "O_block" in k or "object_dim" in k or "cls_score" in k]
    assert sorted(report.dropped) == sorted("module." + k for k in dropped)
    pre = "roi_heads.action.feature_extractor."
    ia = pre + "ia_structure."
    torch.testing.assert_close(
        ours["interaction.blocks.M_block_2.shortcut.weight"],
        theirs[ia + "M_block_2.shortcut.weight"].flatten(1),
    )
    assert ours["interaction.blocks.M_block_2.out.weight"].shape == (2304, 1024)
    torch.testing.assert_close(
        ours["interaction.blocks.M_block_1.temporal_position_k"],
        theirs[ia + "M_block_1.temporal_position_k"].reshape(61, 1024)[22:39],
    )
    # our block 2 (P_block_2) mixes P_block_1, M_block_1 = rows 0 and 2 of AlphAction's dense_params.3
    torch.testing.assert_close(
        ours["interaction.dense_params.2"], theirs[ia + "dense_params.3"].flatten(1)[[0, 2]]
    )
    torch.testing.assert_close(
        ours["interaction.dense_params.3"], theirs[ia + "dense_params.5"].flatten(1)[[0, 2, 3]]
    )
    torch.testing.assert_close(ours["head.mlp.3.weight"], theirs[pre + "fc2.weight"])
    torch.testing.assert_close(
        ours["interaction.person_key_dim_reduce.bias"], theirs[ia + "person_key_dim_reduce.bias"]
    )


def test_alphaction_ia_checkpoint_misfit_is_reported(tmp_path: Path, weights_by_rule: WeightRule) -> None:
    layout = read_layout("alphaction_ia_dense_serial_r101_8x8")
    theirs = {k: v for k, v in weights_by_rule(layout["head"], []).items() if "M_block_2.shortcut" not in k}
    path = tmp_path / "ia.pth"
    torch.save({"model": theirs}, path)
    model = _IAModel(window_s=30.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"missing.*M_block_2\.shortcut"):
        load_alphaction_interaction(model, path)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    torch.save({"model": {"backbone.slow.conv1.weight": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="no AlphAction IA structure"):
        load_alphaction_interaction(model, path)


def _features(shape: tuple[int, ...], seed: int) -> Tensor:
    """The reference's ``input_rule``: features drawn from a generator seeded with ``seed``."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _relative(ours: Tensor, theirs: Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


def test_alphaction_ia_blocks_compute_alphactions_function(
    tmp_path: Path, weights_by_rule: WeightRule
) -> None:
    """Loaded as a user does, each kept block computes what AlphAction's block does on its context."""
    ref = torch.load(REFERENCE, weights_only=True)
    layout = read_layout("alphaction_ia_dense_serial_r101_8x8")
    assert {k: v for k, v in layout["head"].items() if k.startswith(PREFIX)} == ref["keys"]
    path = tmp_path / "resnet101_8x8f_denseserial.pth"
    weights = weights_by_rule(layout["head"], [])
    torch.save({"model": {f"module.{k}": v for k, v in weights.items()}, "iteration": 1}, path)
    model = _IAModel(window_s=30.0)  # AlphAction's memory: 61 one-second slots (LENGTH 30, 30)
    assert load_alphaction_interaction(model, path).complete
    ia = model.interaction.eval()
    with torch.no_grad():
        persons, memory = _features((3, 2304), 2), _features((1, 305, 2304), 3)[0]
        query, person_key = ia.person_dim_reduce(persons), ia.person_key_dim_reduce(persons)
        assert ia.mem_dim_reduce is not None
        mem_key = ia.mem_dim_reduce(memory)
        errors = {
            "query": _relative(query, ref["query"]),
            "person_key": _relative(person_key, ref["person_key"]),
            "mem_key": _relative(mem_key[:, ::8], ref["mem_key_every8"]),
            "mem_key_mean": _relative(mem_key.double().mean(0).float(), ref["mem_key_channel_mean"]),
        }
        # AlphAction's contexts: P - every person of the clip, itself included, zero-padded to
        # MAX_PERSON 25 slots, all attended to; M - 305 memory slots, slot i at position i // 5.
        person_context = torch.zeros(3, 25, 1024)
        person_context[:, :3] = person_key
        memory_context = mem_key.expand(3, -1, -1)
        positions = (torch.arange(305) // 5).expand(3, -1)
        for name in ("P_block_1", "M_block_1", "P_block_2", "M_block_2"):
            block = ia.blocks[name]
            if name.startswith("P"):
                out = block(query, person_context, torch.ones(3, 25, dtype=torch.bool))
            else:
                out = block(query, memory_context, torch.ones(3, 305, dtype=torch.bool), positions)
            errors[name] = _relative(out, ref[f"{name}_out"])
    assert max(errors.values()) <= TOLERANCE, errors
    # the reference tells the blocks apart (it could fail): block 1 vs block 2 differ by far more
    assert _relative(ref["P_block_1_out"], ref["P_block_2_out"]) > 1e-2
