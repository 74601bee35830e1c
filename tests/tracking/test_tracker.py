"""Tests for thermact.tracking.tracker on synthetic scenarios and on the bundled annotations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from thermact.data.source import ThermalData
from thermact.errors import ConfigError
from thermact.tracking.metrics import EvalFrame, IdMetrics, evaluate_ids
from thermact.tracking.tracker import Tracker, TrackerConfig, pairwise_iou


def box(cx: float, cy: float, w: float = 8.0, h: float = 10.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def step(tracker: Tracker, t_ms: int, *boxes: list[float]) -> list[int]:
    """Run one frame; return the track id reported for each detection (-1 if none)."""
    arr = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    out = tracker.update(t_ms, arr, np.ones(len(boxes)))
    ids = [-1] * len(boxes)
    for tb in out:
        ids[tb.detection_index] = tb.track_id
        assert tb.box == tuple(arr[tb.detection_index])
    return ids


def test_pairwise_iou_values() -> None:
    a = np.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    b = np.array([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
    np.testing.assert_allclose(pairwise_iou(a, b), [[1 / 7, 1.0, 0.0], [0.0, 0.0, 0.0]])


def test_birth_needs_min_hits_and_ids_are_consecutive() -> None:
    tracker = Tracker(TrackerConfig(min_hits=3))
    assert step(tracker, 0, box(20, 20)) == [-1]
    first = tracker.tracks[0]
    assert (first.state, first.id) == ("tentative", -1)
    assert step(tracker, 167, box(20, 20)) == [-1]
    assert step(tracker, 333, box(20, 20)) == [1]
    assert tracker.tracks[0] is first
    assert (first.state, first.id, first.hits) == ("confirmed", 1, 3)
    # a tentative track that misses a frame dies without using an id
    assert step(tracker, 500, box(20, 20), box(45, 10)) == [1, -1]
    assert step(tracker, 667, box(20, 20)) == [1]
    assert len(tracker.tracks) == 1
    assert step(tracker, 833, box(20, 20), box(45, 10)) == [1, -1]
    assert step(tracker, 1000, box(20, 20), box(45, 10)) == [1, -1]
    assert step(tracker, 1167, box(20, 20), box(45, 10)) == [1, 2]


def test_min_hits_one_reports_at_once() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1))
    assert step(tracker, 0, box(10, 10), box(40, 30)) == [1, 2]
    assert tracker.next_id == 3


def test_two_people_crossing_keep_their_ids() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1, max_center_distance_px=6.0))
    for k in range(21):
        # diagonal paths that meet (identical boxes) at k = 10; detection order swaps halfway
        a, b = box(10 + 2 * k, 10 + k), box(10 + 2 * k, 30 - k)
        if k < 10:
            assert step(tracker, 167 * k, a, b) == [1, 2]
        elif k == 10:  # identical boxes: either labelling is right
            assert sorted(step(tracker, 167 * k, b, a)) == [1, 2]
        else:
            assert step(tracker, 167 * k, b, a) == [2, 1], k
    vx, vy, _, _ = tracker.tracks[0].velocity
    assert vx == pytest.approx(12.0, abs=1.0) and vy == pytest.approx(6.0, abs=1.0)


def test_fast_walker_with_zero_iou_keeps_its_id() -> None:
    positions = [6 + 9 * k for k in range(6)]  # 8 px wide box moving 9 px per second
    boxes = [box(x, 20) for x in positions]
    assert pairwise_iou(np.array(boxes[:-1]), np.array(boxes[1:])).diagonal().max() == 0.0
    tracker = Tracker(TrackerConfig(min_hits=1, max_center_distance_px=10.0, max_age_s=2.0))
    assert [step(tracker, 1000 * k, b)[0] for k, b in enumerate(boxes)] == [1] * 6
    assert tracker.tracks[0].velocity[0] == pytest.approx(9.0, abs=0.05)
    # without the centre-distance fallback reaching 9 px, every frame starts a new track
    tracker = Tracker(TrackerConfig(min_hits=1, max_center_distance_px=5.0, max_age_s=2.0))
    assert [step(tracker, 1000 * k, b)[0] for k, b in enumerate(boxes)] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(("gap_ms", "expected"), [(2000, 1), (3000, 1), (3001, 2), (3500, 2)])
def test_gap_within_max_age_keeps_id_beyond_makes_new(gap_ms: int, expected: int) -> None:
    tracker = Tracker(TrackerConfig(min_hits=1, max_age_s=3.0))
    for t in (0, 167, 333):
        assert step(tracker, t, box(30, 20)) == [1]
    assert step(tracker, 333 + gap_ms, box(31, 20)) == [expected]
    assert len(tracker.tracks) == 1  # the old track was dropped, not kept as lost


def test_empty_frames_make_tracks_lost_then_recovered() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1, max_age_s=1.0))
    assert step(tracker, 0, box(30, 20)) == [1]
    assert tracker.update(200, np.zeros((0, 4)), np.zeros(0)) == []
    assert tracker.update(400, np.zeros(0), np.zeros(0)) == []  # flat empty array accepted
    track = tracker.tracks[0]
    assert (track.state, track.misses, track.age, track.last_seen_ms) == ("lost", 2, 3, 0)
    assert step(tracker, 600, box(30, 20)) == [1]
    assert (track.state, track.misses, track.hits) == ("confirmed", 0, 2)
    tracker.update(1700, np.zeros((0, 4)), np.zeros(0))  # 1.1 s after the last match
    assert tracker.tracks == []


def test_out_of_order_and_duplicate_frames_are_ignored() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1))
    assert step(tracker, 0, box(30, 20)) == [1]
    assert step(tracker, 1000, box(32, 20)) == [1]
    before = (tracker.tracks[0].box, tracker.tracks[0].velocity, tracker.tracks[0].hits)
    assert step(tracker, 500, box(10, 10)) == [-1]  # older: ignored
    assert step(tracker, 1000, box(50, 30)) == [-1]  # duplicate timestamp: ignored
    assert tracker.frames_ignored == 2
    assert tracker.last_timestamp_ms == 1000
    assert len(tracker.tracks) == 1
    assert (tracker.tracks[0].box, tracker.tracks[0].velocity, tracker.tracks[0].hits) == before
    assert step(tracker, 1167, box(32.5, 20)) == [1]


def test_min_score_filters_and_indices_refer_to_input() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1, min_score=0.5))
    out = tracker.update(0, np.array([box(10, 10), box(40, 30)]), np.array([0.3, 0.9]))
    assert [(tb.track_id, tb.detection_index, tb.score) for tb in out] == [(1, 1, 0.9)]


def _scored(tracker: Tracker, t_ms: int, *dets: tuple[list[float], float]) -> list[int]:
    """Like :func:`step` with a score per detection."""
    out = tracker.update(t_ms, np.array([b for b, _ in dets]).reshape(-1, 4), np.array([s for _, s in dets]))
    ids = [-1] * len(dets)
    for tb in out:
        ids[tb.detection_index] = tb.track_id
    return ids


def test_low_score_detections_continue_tracks_but_never_start_one() -> None:
    # a person walks in (score 0.9), lies down (0.15: a lying person scores lower), while a
    # warm chair flickers at 0.2 elsewhere
    frames = [[(box(20 + t, 20), 0.9), (box(50, 30), 0.2)] for t in range(3)] + [
        [(box(23, 22, 12, 6), 0.15), (box(50, 30), 0.2)] for _ in range(4)
    ]
    byte = Tracker(TrackerConfig(min_score=0.1, birth_score=0.3))
    plain = Tracker(TrackerConfig(min_score=0.3))
    got_byte = [_scored(byte, 200 * i, *f) for i, f in enumerate(frames)]
    got_plain = [_scored(plain, 200 * i, *f) for i, f in enumerate(frames)]
    assert got_byte == [[-1, -1], [1, -1], [1, -1], [1, -1], [1, -1], [1, -1], [1, -1]]
    assert got_plain == [[-1, -1], [1, -1], [1, -1], [-1, -1], [-1, -1], [-1, -1], [-1, -1]]
    assert byte.next_id == 2 and len(byte.tracks) == 1  # the chair never made a track
    # the default (birth_score 0) associates every detection once, low or not
    every = Tracker(TrackerConfig(min_score=0.1))
    assert [_scored(every, 200 * i, *f) for i, f in enumerate(frames)][-1] == [1, 2]


def test_state_is_bounded_and_reset_restarts_ids() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1, max_age_s=0.5))
    rng = np.random.default_rng(0)
    for k in range(200):  # one person popping up at random places every 0.3 s
        step(tracker, 300 * k, box(float(rng.uniform(5, 55)), float(rng.uniform(5, 35))))
        assert len(tracker.tracks) <= 3  # tracks older than 0.5 s are gone
    assert tracker.next_id > 20
    tracker.reset()
    assert tracker.tracks == [] and tracker.last_timestamp_ms is None and tracker.frames_ignored == 0
    assert step(tracker, 0, box(20, 20)) == [1]


def test_deterministic() -> None:
    rng = np.random.default_rng(3)
    frames = []
    for k in range(60):
        n = int(rng.integers(0, 5))
        centres = rng.uniform([5, 5], [55, 35], size=(n, 2))
        frames.append((167 * k, np.array([box(x, y) for x, y in centres]).reshape(-1, 4), rng.random(n)))

    def run() -> list[list[tuple[int, int]]]:
        tracker = Tracker(TrackerConfig(min_hits=2, max_center_distance_px=12.0))
        return [[(tb.track_id, tb.detection_index) for tb in tracker.update(*f)] for f in frames]

    first = run()
    assert first == run()
    assert sum(len(f) for f in first) > 0


def test_bad_input_and_config() -> None:
    tracker = Tracker()
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        tracker.update(0, np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="scores"):
        tracker.update(0, np.zeros((2, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        tracker.update(0, np.array([[0.0, 0.0, np.nan, 1.0]]), np.ones(1))
    with pytest.raises(ConfigError, match=r"tracker\.min_hits"):
        TrackerConfig(min_hits=0)
    with pytest.raises(ConfigError, match=r"tracker\.max_age_s"):
        TrackerConfig(max_age_s=-1.0)
    with pytest.raises(ConfigError, match=r"tracker\.iou_threshold"):
        TrackerConfig(iou_threshold=0.0)
    with pytest.raises(ConfigError, match=r"tracker\.max_center_distance_px"):
        TrackerConfig(max_center_distance_px=float("nan"))


# ---------------------------------------------------------------------------------------------
# The bundled annotations as detections

KEYFRAME_CONFIG = TrackerConfig(min_hits=1, max_age_s=4.0, max_center_distance_px=12.0)
"""Keyframes are 1.0-3.3 s apart: a track must survive the longest gap, and move further."""


def _track_annotations(data: ThermalData, config: TrackerConfig) -> dict[str, IdMetrics]:
    per_recording: dict[str, IdMetrics] = {}
    for rid, keyframes in data.annotations.by_recording().items():
        tracker = Tracker(config)
        frames = []
        for kf in keyframes:
            boxes = np.array([p.xyxy for p in kf.persons], dtype=np.float64).reshape(-1, 4)
            out = tracker.update(kf.timestamp_ms, boxes, np.ones(len(boxes)))
            frames.append(
                EvalFrame.build(
                    kf.timestamp_ms,
                    boxes,
                    [p.track_id for p in kf.persons],
                    [tb.box for tb in out],
                    [tb.track_id for tb in out],
                )
            )
        per_recording[rid] = evaluate_ids(frames)
    return per_recording


def test_real_annotations_tracked_with_few_id_switches(real_data: ThermalData) -> None:
    per_recording = _track_annotations(real_data, KEYFRAME_CONFIG)
    switches = {rid: m.id_switches for rid, m in per_recording.items() if m.id_switches}
    # The two breaks are annotated jumps the 12 px gate does not bridge: SL14_R4 track 0 moves
    # 18.9 px in 2.28 s, SL18_R4 track 0 (alone in the room) 16.1 px in 1.16 s.
    assert switches == {"SL14_R4": 1, "SL18_R4": 1}
    total = sum(per_recording.values(), IdMetrics())
    assert dataclasses.astuple(total)[:8] == (387, 500, 500, 500, 0, 0, 2, 0)
    assert (total.num_gt_ids, total.num_pred_ids) == (12, 14)
    assert (total.idtp, total.idfp, total.idfn) == (490, 10, 10)
    assert total.idf1 == pytest.approx(0.98)
    assert total.mota == pytest.approx(0.996)
    # birth patience 2: the first keyframe of each of the 14 tracks goes unreported
    strict = sum(
        _track_annotations(real_data, dataclasses.replace(KEYFRAME_CONFIG, min_hits=2)).values(), IdMetrics()
    )
    assert (strict.matches, strict.misses, strict.id_switches, strict.fragmentations) == (486, 14, 2, 2)
    assert strict.idf1 > 0.9
