"""Tests for thermact.evaluation.smoothing: scores smoothed along tracks."""

from __future__ import annotations

import numpy as np
import pytest

from thermact.evaluation.evaluate import Predictions, score_predictions
from thermact.evaluation.smoothing import smooth_track_scores


def _preds(scores: list[list[float]], times_ms: list[int], tracks: list[int], recs: list[str]) -> Predictions:
    n = len(scores)
    return Predictions(
        keyframe_ids=[f"{r}/{t}" for r, t in zip(recs, times_ms, strict=True)],
        recording_ids=recs,
        keyframe_ms=np.asarray(times_ms, dtype=np.int64),
        boxes=np.tile(np.array([[0, 0, 10, 10]], np.float32), (n, 1)),
        labels=np.zeros(n, np.int64),
        track_ids=np.asarray(tracks, np.int64),
        scores=np.asarray(scores, np.float32),
    )


def test_causal_smoothing_hand_values() -> None:
    p = _preds([[1, 0], [0, 1], [0, 1], [1, 0]], [0, 1000, 2000, 0], [1, 1, 1, 2], ["a", "a", "a", "a"])
    out = smooth_track_scores(p, tau_s=1.0, mode="causal")
    e = np.exp(-1.0)
    np.testing.assert_allclose(out.scores[0], [1, 0], atol=1e-6)  # nothing before it
    np.testing.assert_allclose(out.scores[1], [e / (1 + e), 1 / (1 + e)], atol=1e-6)
    w = np.array([e**2, e, 1.0])
    np.testing.assert_allclose(out.scores[2], [w[0] / w.sum(), (w[1] + w[2]) / w.sum()], atol=1e-6)
    np.testing.assert_allclose(out.scores[3], [1, 0], atol=1e-6)  # another track is not mixed in
    np.testing.assert_allclose(out.scores.sum(axis=1), 1.0, atol=1e-6)


def test_causal_ignores_the_future_offline_does_not() -> None:
    times, tracks, recs = [0, 1000, 2000], [5, 5, 5], ["r", "r", "r"]
    a = _preds([[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]], times, tracks, recs)
    b = _preds([[0.9, 0.1], [0.5, 0.5], [0.9, 0.1]], times, tracks, recs)
    np.testing.assert_array_equal(
        smooth_track_scores(a, 2.0).scores[:2], smooth_track_scores(b, 2.0).scores[:2]
    )
    assert not np.allclose(
        smooth_track_scores(a, 2.0, "offline").scores[1],
        smooth_track_scores(b, 2.0, "offline").scores[1],
    )
    # the same track id in another recording is another person
    c = _preds([[1, 0], [0, 1]], [0, 500], [5, 5], ["r", "s"])
    np.testing.assert_array_equal(smooth_track_scores(c, 5.0).scores, c.scores)


def test_smoothing_fixes_a_one_keyframe_flicker_in_frame_map() -> None:
    # a long lying track (class 1) with one wrong keyframe, and a standing track (class 0)
    scores = [[0.2, 0.8]] * 5 + [[0.7, 0.3]] + [[0.2, 0.8]] * 4 + [[0.6, 0.4]] * 5
    labels = [1] * 10 + [0] * 5
    p = _preds(
        scores, [i * 1000 for i in range(10)] + [i * 1000 for i in range(5)], [1] * 10 + [2] * 5, ["r"] * 15
    )
    p.labels[:] = labels
    raw = score_predictions(p, 2)
    smooth = score_predictions(smooth_track_scores(p, 2.0), 2)
    assert raw.classification.accuracy == pytest.approx(14 / 15)
    assert smooth.classification.accuracy == 1.0 and smooth.frame_map.map == pytest.approx(1.0)
    assert smooth_track_scores(p, 0.0) is p
    with pytest.raises(ValueError, match="tau_s"):
        smooth_track_scores(p, -1.0)


def test_mode_is_checked() -> None:
    p = _preds([[1, 0]], [0], [1], ["r"])
    with pytest.raises(ValueError, match="mode"):
        smooth_track_scores(p, 1.0, "both")  # type: ignore[arg-type]
