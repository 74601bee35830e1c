from __future__ import annotations

import itertools

import pytest

from thermact.engine.schedule import lr_at


def test_warmup_then_cosine() -> None:
    kw = {"base_lr": 1.0, "total_steps": 110, "warmup_steps": 10, "warmup_factor": 0.1, "min_lr": 0.0}
    assert lr_at(0, **kw) == pytest.approx(0.1)
    assert lr_at(5, **kw) == pytest.approx(0.55)
    assert lr_at(10, **kw) == pytest.approx(1.0)
    assert lr_at(60, **kw) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_at(110, **kw) == pytest.approx(0.0)
    assert lr_at(500, **kw) == pytest.approx(0.0)
    values = [lr_at(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_min_lr_and_no_warmup() -> None:
    assert lr_at(0, base_lr=0.2, total_steps=4, min_lr=0.02) == pytest.approx(0.2)
    assert lr_at(4, base_lr=0.2, total_steps=4, min_lr=0.02) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="total_steps"):
        lr_at(0, base_lr=0.1, total_steps=0)
