"""Optimal linear assignment in pure NumPy (no SciPy).

Two entry points:

* :func:`linear_assignment` — the classic rectangular problem: pick ``min(N, M)`` pairs of a
  ``[N, M]`` cost matrix, at most one per row and column, with the smallest total cost (what
  ``scipy.optimize.linear_sum_assignment`` solves).
* :func:`gated_assignment` — matching with the option to leave rows and columns unmatched: pairs
  whose cost exceeds ``max_cost`` (or is not finite) are forbidden, and the result minimises
  ``sum(cost[i, j] - max_cost)`` over the chosen pairs, i.e. it maximises the total *margin*
  ``max_cost - cost`` of the matching. A pair is therefore taken only when it pays off against
  leaving both its row and its column unmatched (the ``cost_limit`` semantics of the ``lap``
  package). Rows/columns without an allowed pair stay unmatched.

The solver is the shortest-augmenting-path Hungarian method with row/column potentials
(Kuhn-Munkres in the Jonker-Volgenant formulation), ``O(N² M)`` for ``N <= M`` rows, with the inner
loop over columns vectorised. It is exact for finite costs; for the sizes a tracker sees (tens of
boxes) it takes well under a millisecond to a few milliseconds. Ties are broken deterministically
(lowest column index first).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

__all__ = ["AssignmentResult", "gated_assignment", "linear_assignment"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def _check_matrix(cost: npt.ArrayLike, name: str) -> FloatArray:
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"{name}: cost matrix must be 2-D [N, M], got shape {list(c.shape)}")
    return c


def _solve_rows_le_cols(cost: FloatArray) -> IntArray:
    """Hungarian method for a finite ``[n, m]`` matrix with ``n <= m``; returns the column of each row."""
    n, m = cost.shape
    inf = np.inf
    u = np.zeros(n + 1)  # row potentials (1-based, 0 unused)
    v = np.zeros(m + 1)  # column potentials (column 0 is the virtual start column)
    p = np.zeros(m + 1, dtype=np.int64)  # p[j] = row (1-based) assigned to column j, 0 = none
    way = np.zeros(m + 1, dtype=np.int64)  # previous column on the alternating path
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = int(p[j0])
            free = ~used[1:]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            # Rows on the tree (assigned to used columns) and used columns shift by delta.
            u[p[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        # Augment along the path back to the virtual column.
        while j0 != 0:
            j1 = int(way[j0])
            p[j0] = p[j1]
            j0 = j1
    col_of_row = np.full(n, -1, dtype=np.int64)
    for j in range(1, m + 1):
        if p[j] != 0:
            col_of_row[p[j] - 1] = j - 1
    return col_of_row


def linear_assignment(cost: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """Minimum-cost assignment of ``min(N, M)`` pairs for a finite ``[N, M]`` cost matrix.

    Args:
        cost: ``[N, M]`` finite costs (any sign).

    Returns:
        ``(rows, cols)``: ``int64 [K]`` each, ``K = min(N, M)``, rows in increasing order; pair ``k``
        is ``(rows[k], cols[k])``. Empty arrays when ``N`` or ``M`` is 0.

    Raises:
        ValueError: if the matrix is not 2-D or holds NaN / ±inf.
    """
    c = _check_matrix(cost, "linear_assignment")
    if not np.isfinite(c).all():
        raise ValueError("linear_assignment: costs must be finite (use gated_assignment to forbid pairs)")
    n, m = c.shape
    if n == 0 or m == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if n <= m:
        cols = _solve_rows_le_cols(c)
        return np.arange(n, dtype=np.int64), cols
    rows_of_col = _solve_rows_le_cols(np.ascontiguousarray(c.T))
    order = np.argsort(rows_of_col, kind="stable")
    return rows_of_col[order], order.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class AssignmentResult:
    """Result of :func:`gated_assignment`.

    Attributes:
        matches: ``int64 [K, 2]`` ``(row, col)`` pairs, sorted by row.
        unmatched_rows: ``int64`` sorted row indices without a pair.
        unmatched_cols: ``int64`` sorted column indices without a pair.
    """

    matches: IntArray
    unmatched_rows: IntArray
    unmatched_cols: IntArray


def gated_assignment(cost: npt.ArrayLike, max_cost: float) -> AssignmentResult:
    """Optimal partial matching: minimise ``sum(cost[i, j] - max_cost)`` over allowed pairs.

    A pair is allowed when its cost is finite and ``<= max_cost``; NaN and ±inf entries are
    forbidden. A pair whose cost equals ``max_cost`` exactly brings no gain; it may or may not be
    taken.

    Args:
        cost: ``[N, M]`` costs (rows e.g. tracks, columns e.g. detections).
        max_cost: the gate; must be finite.

    Returns:
        :class:`AssignmentResult`.
    """
    c = _check_matrix(cost, "gated_assignment")
    if not np.isfinite(max_cost):
        raise ValueError(f"gated_assignment: max_cost must be finite, got {max_cost!r}")
    n, m = c.shape
    with np.errstate(invalid="ignore"):
        allowed = np.isfinite(c) & (c <= max_cost)
    if not allowed.any():
        return _result(np.zeros((0, 2), dtype=np.int64), n, m)
    if n == 1 or m == 1:  # one track or one detection (the common case live): the cheapest allowed pair
        flat = np.where(allowed, c, np.inf).reshape(-1)
        best = int(np.argmin(flat))  # first of equal costs: the lower index
        pair = (0, best) if n == 1 else (best, 0)
        return _result(np.asarray([pair], dtype=np.int64), n, m)
    if allowed.sum(axis=0).max() == 1 and allowed.sum(axis=1).max() == 1 and (c[allowed] < max_cost).all():
        # no row or column with two allowed pairs (people apart, the common case live), each pair
        # a gain: every allowed pair is in the one optimal matching, no solver needed
        return _result(np.argwhere(allowed).astype(np.int64), n, m)
    gain = np.where(allowed, c - max_cost, 0.0)  # <= 0 where allowed
    transposed = n > m
    if transposed:
        gain, allowed = gain.T, allowed.T
    r, k = gain.shape  # r <= k
    # Larger than any total gain a matching can reach, so a forbidden entry is never chosen while
    # a solution without one exists (leaving everything unmatched always is one).
    big = float(-gain.sum()) + 1.0
    # Row i may take a real column j (allowed pairs only) or its own "unmatched" column k + i.
    extended = np.full((r, k + r), big)
    extended[:, :k] = np.where(allowed, gain, big)
    extended[np.arange(r), k + np.arange(r)] = 0.0
    col_of_row = _solve_rows_le_cols(extended)
    pairs = [(i, int(j)) for i, j in enumerate(col_of_row) if j < k and allowed[i, j]]
    if transposed:
        pairs = sorted((j, i) for i, j in pairs)
    return _result(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), n, m)


def _result(matches: IntArray, n: int, m: int) -> AssignmentResult:
    """The :class:`AssignmentResult` of ``matches [K, 2]`` in an ``n x m`` problem."""
    free_rows = np.ones(n, dtype=bool)
    free_rows[matches[:, 0]] = False
    free_cols = np.ones(m, dtype=bool)
    free_cols[matches[:, 1]] = False
    return AssignmentResult(matches, np.flatnonzero(free_rows), np.flatnonzero(free_cols))
