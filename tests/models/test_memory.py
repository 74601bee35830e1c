"""The memory bank: window and selection on hand-built keys, batch writes, bounds, safe state dicts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from thermact.errors import CheckpointError
from thermact.models.memory import FeatureBank, MemoryContext


def _feat(value: float, n: int = 1, dim: int = 3) -> torch.Tensor:
    return torch.full((n, dim), value)


def _bank(**kw: object) -> FeatureBank:
    """Recording 'a' at 0, 1000, 5000, 9000, 20000 ms (feature value = time in s), 'b' at 1000."""
    bank = FeatureBank(dim=3, window_s=8.0, **kw)  # type: ignore[arg-type]
    for t in (9000, 0, 20000, 5000, 1000):
        bank.put("a", t, _feat(t / 1000), torch.tensor([7]))
    bank.put("b", 1000, _feat(-1.0), torch.tensor([7]))
    return bank


def test_gather_takes_the_window_of_the_same_recording_nearest_first() -> None:
    bank = _bank()
    mem = bank.gather(["a"], torch.tensor([1000]), torch.tensor([0, 0]))
    # 0 ms (-1 s), 5000 (+4 s), 9000 (+8 s, the window is inclusive); not 1000 itself, not 20000, not 'b'
    assert mem.offsets_ms.tolist() == [[-1000, 4000, 8000]] * 2
    assert mem.features[0, :, 0].tolist() == [0.0, 5.0, 9.0]
    assert mem.mask.all() and mem.features.shape == (2, 3, 3)
    assert bank.neighbours("a", 13000) == [9000, 20000, 5000]
    assert bank.neighbours("c", 0) == []


def test_gather_pads_caps_and_handles_empty() -> None:
    bank = _bank(max_length=2)
    mem = bank.gather(["a", "b", "zz"], [1000, 1000, 0], torch.tensor([0, 1, 2, 0]))
    assert mem.features.shape == (4, 2, 3)
    assert mem.mask.tolist() == [[True, True], [False, False], [False, False], [True, True]]
    assert mem.offsets_ms[0].tolist() == [-1000, 4000]  # the two nearest
    assert float(mem.features[1].abs().sum()) == 0.0  # padding is zeros
    none = FeatureBank(3, 8.0).gather(["a"], [0], torch.tensor([0]))
    assert none.features.shape == (1, 0, 3) and none.mask.shape == (1, 0)
    assert _bank().gather([], [], torch.zeros(0, dtype=torch.int64)).features.shape == (0, 0, 3)


def test_same_track_memory() -> None:
    bank = FeatureBank(2, 5.0, same_track=True)
    bank.put("r", 0, torch.tensor([[1.0, 1.0], [2.0, 2.0]]), torch.tensor([1, 2]))
    bank.put("r", 2000, torch.tensor([[3.0, 3.0]]), torch.tensor([2]))
    mem = bank.gather(["r"], [1000], torch.tensor([0, 0, 0]), torch.tensor([1, 2, 3]))
    assert mem.mask.tolist() == [[True, False], [True, True], [False, False]]
    assert mem.features[0, 0].tolist() == [1.0, 1.0]
    assert mem.features[1, :, 0].tolist() == [2.0, 3.0]  # -1 s before +1 s (tie: earlier first)
    with pytest.raises(ValueError, match="track ids"):
        bank.gather(["r"], [1000], torch.tensor([0]))


def test_write_splits_a_batch_by_keyframe_and_detaches() -> None:
    bank = FeatureBank(2, 3.0)
    feats = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]], requires_grad=True)
    bank.write(
        ["r", "r", "s"],
        torch.tensor([0, 1000, 0]),
        feats * 2,
        torch.tensor([0, 0, 1]),
        torch.tensor([4, 5, 6]),
    )
    assert len(bank) == 3 and ("r", 1000) in bank
    mem = bank.gather(["r"], [1000], torch.tensor([0]))
    assert mem.features[0, :, 0].tolist() == [2.0, 4.0] and not mem.features.requires_grad
    assert mem.offsets_ms.tolist() == [[-1000, -1000]]
    assert bank.gather(["s"], [0], torch.tensor([0])).features.shape[1] == 0  # itself excluded


def test_capacity_drops_the_oldest_written_and_rewrite_refreshes() -> None:
    bank = FeatureBank(3, 100.0, capacity=3)
    for t in (0, 1000, 2000):
        bank.put("a", t, _feat(t), torch.tensor([0]))
    bank.put("a", 0, _feat(-5.0), torch.tensor([0]))  # rewrite: 0 is now the newest
    bank.put("a", 3000, _feat(3.0), torch.tensor([0]))  # evicts 1000
    assert len(bank) == 3 and ("a", 1000) not in bank and ("a", 0) in bank
    assert bank.neighbours("a", 5000) == [3000, 2000, 0]
    assert bank.drop_older_than("a", 2500) == 2 and bank.neighbours("a", 5000) == [3000]


def test_state_dict_round_trip_through_weights_only_load(tmp_path: Path) -> None:
    bank = _bank(max_length=4, same_track=False, capacity=50)
    bank.put("b", 3000, torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64))  # a keyframe without persons
    path = tmp_path / "bank.pt"
    torch.save({"memory": bank.state_dict()}, path)
    state = torch.load(path, weights_only=True)["memory"]
    assert state["recordings"] == ["a", "b"] and state["features"].shape == (6, 3)
    assert state["offsets"].dtype == torch.int64 and state["keyframe_ms"].tolist()[:2] == [9000, 0]
    again = FeatureBank.from_state_dict(state)
    assert (again.window_s, again.max_length, again.capacity, len(again)) == (8.0, 4, 50, 7)
    args = (["a", "b"], [1000, 1000], torch.tensor([0, 1]))
    a, b = bank.gather(*args), again.gather(*args)
    assert torch.equal(a.features, b.features) and torch.equal(a.offsets_ms, b.offsets_ms)
    assert list(again._entries) == list(bank._entries)  # write order kept (eviction order)


def test_malformed_state_is_a_checkpoint_error() -> None:
    state = _bank().state_dict()
    with pytest.raises(CheckpointError, match="size 3"):
        FeatureBank(4, 8.0).load_state_dict(state)
    broken = dict(state, offsets=state["offsets"][:-1])
    with pytest.raises(CheckpointError, match="inconsistent"):
        FeatureBank(3, 8.0).load_state_dict(broken, where="ckpt.pt: memory")
    with pytest.raises(CheckpointError, match="ckpt.pt: memory: lacks the entry 'features'"):
        FeatureBank.from_state_dict({k: v for k, v in state.items() if k != "features"}, "ckpt.pt: memory")
    with pytest.raises(CheckpointError, match="int64"):
        FeatureBank(3, 8.0).load_state_dict(dict(state, keyframe_ms=state["keyframe_ms"].float()))


def test_memory_context_checks_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[K, M\]"):
        MemoryContext(
            torch.zeros(2, 3, 4), torch.zeros(2, 2, dtype=torch.bool), torch.zeros(2, 3, dtype=torch.int64)
        )
    assert MemoryContext.empty(2, 4).features.shape == (2, 0, 4)
