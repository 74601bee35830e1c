"""Time along a track: smooth each person's class scores over time.

An action lasts: a person lying on the floor at one keyframe is very likely lying at the next.
:func:`smooth_track_scores` replaces the scores of every box by an exponentially weighted mean of
the scores of the same track (same recording, same ``track_id``) at nearby times::

    s'_i = sum_j w_ij s_j / sum_j w_ij,     w_ij = exp(-|t_i - t_j| / tau)

over the boxes ``j`` of the track with ``t_j <= t_i`` (``causal``: only the past, as a live
system has it) or all of them (``offline``: past and future). ``tau_s = 0`` returns the scores
unchanged.

Scores stay probabilities (a convex combination of probability vectors), so frame-mAP and the
arg-max class are computed from them as from the raw scores. ``causal`` is what a live system
could apply (an exponential moving average over each track's calls); the live pipeline does not
smooth yet.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from typing import Literal

import numpy as np

from thermact.evaluation.evaluate import Predictions

__all__ = ["SmoothingMode", "smooth_track_scores"]

SmoothingMode = Literal["causal", "offline"]


def _check_tau(tau_s: float) -> None:
    if not (math.isfinite(tau_s) and tau_s >= 0):
        raise ValueError(f"tau_s must be a finite number >= 0, got {tau_s}")


def smooth_track_scores(preds: Predictions, tau_s: float, mode: SmoothingMode = "causal") -> Predictions:
    """``preds`` with each box's scores ``[K, C]`` smoothed along its track (see the module docstring).

    Args:
        preds: per-box predictions; ``recording_ids``, ``track_ids`` and ``keyframe_ms`` define
            the tracks and their times.
        tau_s: time constant in seconds (``>= 0``; 0 returns ``preds`` itself).
        mode: ``causal`` (the track's past and present: live) or ``offline`` (its whole length).
    """
    _check_tau(tau_s)
    if mode not in ("causal", "offline"):
        raise ValueError(f"mode must be 'causal' or 'offline', got {mode!r}")
    if tau_s == 0 or len(preds) == 0:
        return preds
    tracks: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, (rec, track) in enumerate(zip(preds.recording_ids, preds.track_ids.tolist(), strict=True)):
        tracks[(rec, int(track))].append(i)
    scores = preds.scores.astype(np.float64)
    out = np.empty_like(scores)
    for rows in tracks.values():
        idx = np.asarray(rows, dtype=np.int64)
        t = preds.keyframe_ms[idx].astype(np.float64) / 1000.0
        lag = t[:, None] - t[None, :]  # [i, j] = t_i - t_j
        weights = np.exp(-np.abs(lag) / tau_s)
        if mode == "causal":
            weights = np.where(lag >= 0, weights, 0.0)
        out[idx] = weights @ scores[idx] / weights.sum(axis=1, keepdims=True)
    return dataclasses.replace(preds, scores=out.astype(preds.scores.dtype))
