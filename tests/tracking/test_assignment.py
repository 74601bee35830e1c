"""Tests for thermact.tracking.assignment against brute force and hand-computed cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from thermact.tracking.assignment import gated_assignment, linear_assignment


def _brute_full(cost: np.ndarray) -> float:
    n, m = cost.shape
    if n <= m:
        return float(
            min(sum(cost[i, j] for i, j in enumerate(p)) for p in itertools.permutations(range(m), n))
        )
    return float(min(sum(cost[i, j] for j, i in enumerate(p)) for p in itertools.permutations(range(n), m)))


def _brute_gated(cost: np.ndarray, max_cost: float) -> float:
    """Best sum of (cost - max_cost) over all partial matchings of allowed pairs."""
    n, m = cost.shape
    best = 0.0
    # each row picks a column or None (-1), columns distinct
    for choice in itertools.product(range(-1, m), repeat=n):
        cols = [c for c in choice if c >= 0]
        if len(set(cols)) != len(cols):
            continue
        total = 0.0
        ok = True
        for i, j in enumerate(choice):
            if j < 0:
                continue
            c = cost[i, j]
            if not np.isfinite(c) or c > max_cost:
                ok = False
                break
            total += c - max_cost
        if ok:
            best = min(best, total)
    return best


def test_linear_assignment_known_example() -> None:
    cost = np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])
    rows, cols = linear_assignment(cost)
    assert rows.tolist() == [0, 1, 2]
    assert cols.tolist() == [1, 0, 2]
    assert cost[rows, cols].sum() == 5.0


@pytest.mark.parametrize("seed", range(4))
def test_linear_assignment_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(60):
        n, m = (int(v) for v in rng.integers(1, 6, size=2))
        # integer costs make ties frequent; normal costs check signs
        cost = (
            rng.integers(0, 4, size=(n, m)).astype(float) if rng.random() < 0.5 else rng.normal(size=(n, m))
        )
        rows, cols = linear_assignment(cost)
        assert len(rows) == len(cols) == min(n, m)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert rows.tolist() == sorted(rows.tolist())
        assert cost[rows, cols].sum() == pytest.approx(_brute_full(cost), abs=1e-9)


def test_linear_assignment_tall_matrix_and_empty() -> None:
    cost = np.array([[5.0, 9.0], [1.0, 7.0], [8.0, 2.0], [0.5, 0.4]])
    rows, cols = linear_assignment(cost)
    # best: row 3 -> col 0 (0.5) + row 2 -> col 1 (2) = 2.5 vs row1->0 + row3->1 = 1.4
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(1, 0), (3, 1)]
    for shape in ((0, 3), (3, 0), (0, 0)):
        r, c = linear_assignment(np.zeros(shape))
        assert r.shape == (0,) and c.shape == (0,)


def test_linear_assignment_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="finite"):
        linear_assignment(np.array([[1.0, np.inf]]))
    with pytest.raises(ValueError, match="2-D"):
        linear_assignment(np.zeros(3))


@pytest.mark.parametrize("seed", range(3))
def test_gated_assignment_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    for _ in range(50):
        n, m = (int(v) for v in rng.integers(1, 5, size=2))
        cost = rng.uniform(0.0, 2.0, size=(n, m))
        cost[rng.random((n, m)) < 0.25] = np.inf
        max_cost = float(rng.uniform(0.5, 2.5))
        res = gated_assignment(cost, max_cost)
        pairs = res.matches.tolist()
        assert all(np.isfinite(cost[i, j]) and cost[i, j] <= max_cost for i, j in pairs)
        assert sorted({i for i, _ in pairs} | set(res.unmatched_rows.tolist())) == list(range(n))
        assert sorted({j for _, j in pairs} | set(res.unmatched_cols.tolist())) == list(range(m))
        assert len({i for i, _ in pairs}) == len(pairs) == len({j for _, j in pairs})
        got = sum(cost[i, j] - max_cost for i, j in pairs)
        assert got == pytest.approx(_brute_gated(cost, max_cost), abs=1e-9)


def test_gated_assignment_without_conflicts_takes_every_allowed_pair() -> None:
    """People apart: each track gates one detection and each detection one track (the path
    without a solver); the result is still the optimum, and a conflict falls back to the solver."""
    rng = np.random.default_rng(7)
    for _ in range(100):
        n, m = (int(v) for v in rng.integers(2, 5, size=2))
        cost = np.full((n, m), np.inf)
        rows, cols = rng.permutation(n)[: min(n, m)], rng.permutation(m)[: min(n, m)]
        cost[rows, cols] = rng.uniform(0.0, 2.0, size=len(rows))
        res = gated_assignment(cost, 1.0)
        allowed = sorted([int(i), int(j)] for i, j in zip(rows, cols, strict=True) if cost[i, j] <= 1.0)
        assert res.matches.tolist() == allowed
        assert sum(cost[i, j] - 1.0 for i, j in allowed) == pytest.approx(_brute_gated(cost, 1.0), abs=1e-12)
    conflict = np.array([[0.2, 0.3, np.inf], [0.1, np.inf, np.inf], [np.inf, np.inf, 0.5]])
    assert gated_assignment(conflict, 1.0).matches.tolist() == [[0, 1], [1, 0], [2, 2]]


def test_gated_assignment_single_row_or_column_ties_go_to_lower_index() -> None:
    res = gated_assignment(np.array([[0.5, 0.2, 0.2, np.inf]]), 3.0)
    assert res.matches.tolist() == [[0, 1]]
    assert res.unmatched_rows.tolist() == [] and res.unmatched_cols.tolist() == [0, 2, 3]
    res = gated_assignment(np.array([[np.inf], [0.7], [0.7]]), 3.0)
    assert res.matches.tolist() == [[1, 0]] and res.unmatched_rows.tolist() == [0, 2]
    res = gated_assignment(np.array([[3.5, np.nan]]), 3.0)  # nothing allowed
    assert res.matches.shape == (0, 2) and res.unmatched_cols.tolist() == [0, 1]


def test_gated_assignment_prefers_margin_over_cardinality() -> None:
    cost = np.array([[0.0, 0.9], [0.9, np.inf]])
    # gate 1: {(0,0)} gains 1.0, {(0,1),(1,0)} gains 0.2
    assert gated_assignment(cost, 1.0).matches.tolist() == [[0, 0]]
    # gate 10: {(0,0)} gains 10, the two pairs gain 18.2
    res = gated_assignment(cost, 10.0)
    assert res.matches.tolist() == [[0, 1], [1, 0]]
    assert res.unmatched_rows.size == 0 and res.unmatched_cols.size == 0


def test_gated_assignment_forbidden_pairs_and_nan() -> None:
    cost = np.array([[0.2, np.nan, 3.0], [np.inf, 0.7, 0.1]])
    res = gated_assignment(cost, 0.5)
    assert res.matches.tolist() == [[0, 0], [1, 2]]
    assert res.unmatched_cols.tolist() == [1]
    none = gated_assignment(np.full((2, 3), np.inf), 1.0)
    assert none.matches.shape == (0, 2)
    assert none.unmatched_rows.tolist() == [0, 1] and none.unmatched_cols.tolist() == [0, 1, 2]
    empty = gated_assignment(np.zeros((0, 4)), 1.0)
    assert empty.matches.shape == (0, 2) and empty.unmatched_cols.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="max_cost"):
        gated_assignment(cost, np.inf)


def test_gated_assignment_tall_matrix() -> None:
    cost = np.array([[0.9], [0.1], [0.4]])
    res = gated_assignment(cost, 0.5)
    assert res.matches.tolist() == [[1, 0]]
    assert res.unmatched_rows.tolist() == [0, 2]


def test_50x50_optimal_against_swaps_and_full_gate() -> None:
    rng = np.random.default_rng(7)
    cost = rng.random((50, 50))
    rows, cols = linear_assignment(cost)
    total = cost[rows, cols].sum()
    # no exchange of two assignments improves the total (a necessary optimality condition)
    c = cost[rows, cols]
    swapped = cost[rows[:, None], cols[None, :]] + cost[rows[None, :], cols[:, None]]
    assert (swapped - c[:, None] - c[None, :] >= -1e-12).all()
    # greedy is never better, and here strictly worse
    greedy, used = 0.0, set()
    for i in range(50):
        j = min((j for j in range(50) if j not in used), key=lambda j: cost[i, j])
        used.add(j)
        greedy += cost[i, j]
    assert total < greedy
    # with a gate above every cost, the gated matching is the full optimal assignment
    res = gated_assignment(cost, 100.0)
    assert res.matches.shape == (50, 2)
    assert cost[res.matches[:, 0], res.matches[:, 1]].sum() == pytest.approx(total, abs=1e-9)
