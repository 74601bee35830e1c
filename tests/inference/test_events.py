"""Events: raised once after the duration, cleared on a class change or when the track ends."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from thermact.inference.events import LYING_WITH_RISK, ClassDurationEvent, Event, LyingWithRiskEvent
from thermact.inference.pipeline import PersonResult
from thermact.inference.streaming import StreamingPredictor

H, W = 40, 60


def _result(t: int, label: str, track: int = 1, sensor: str = "a") -> PersonResult:
    return PersonResult(
        sensor, track, t, (0.0, 0.0, 5.0, 5.0), 0.9, np.full(2, 0.5, np.float32), 0, label, 0.5, True, t
    )


def _feed(rule: ClassDurationEvent, labels: list[tuple[int, str]], track: int = 1) -> list[Event]:
    out: list[Event] = []
    for t, label in labels:
        out.extend(rule.update(_result(t, label, track)))
    return out


def test_raised_once_after_the_duration_and_cleared_after_another_class_lasts() -> None:
    rule = LyingWithRiskEvent(min_duration_s=3.0, clear_after_s=2.0)
    lying = [(1000 * s, LYING_WITH_RISK) for s in range(0, 7)]  # 0 .. 6 s
    events = _feed(rule, lying)
    assert [(e.kind, e.start_ms, e.raised_ms) for e in events] == [("raised", 0, 3000)]
    assert rule.active() == events and rule.num_states == 1
    # another class for 1 s, lying again (resets the clearing clock), then standing for 2 s
    events = _feed(
        rule, [(7000, "standing"), (8000, LYING_WITH_RISK), (9000, "standing"), (10000, "sitting")]
    )
    assert events == []
    events = _feed(rule, [(11000, "standing")])
    assert len(events) == 1
    e = events[0]
    assert (e.kind, e.start_ms, e.raised_ms, e.cleared_ms, e.reason) == (
        "cleared",
        0,
        3000,
        11000,
        "class_changed",
    )
    assert e.duration_s == 11.0 and e.name == "lying_with_risk" and "CLEARED" in e.describe()
    assert rule.active() == [] and rule.num_states == 0
    # a new run later raises again, once
    events = _feed(rule, [(20000 + 1000 * s, LYING_WITH_RISK) for s in range(5)])
    assert [(e.kind, e.start_ms, e.raised_ms) for e in events] == [("raised", 20000, 23000)]


def test_a_broken_run_does_not_raise_and_tracks_are_independent() -> None:
    rule = ClassDurationEvent("walking", min_duration_s=2.0, clear_after_s=0.0, name="walk")
    assert _feed(rule, [(0, "walking"), (1000, "walking"), (1500, "standing"), (2500, "walking")]) == []
    assert rule.num_states == 1  # the new run that started at 2500
    assert _feed(rule, [(3000, "walking")], track=2) == []
    events = _feed(rule, [(4500, "walking")]) + _feed(rule, [(5000, "walking")], track=2)
    assert [(e.track_id, e.start_ms, e.raised_ms) for e in events] == [(1, 2500, 4500), (2, 3000, 5000)]
    # clear_after_s=0: the first other class clears
    assert [e.kind for e in _feed(rule, [(5500, "standing")])] == ["cleared"]


def test_track_end_clears_a_raised_event_and_forgets_a_pending_run() -> None:
    rule = LyingWithRiskEvent(min_duration_s=1.0)
    _feed(rule, [(0, LYING_WITH_RISK), (1000, LYING_WITH_RISK)], track=1)
    _feed(rule, [(0, LYING_WITH_RISK)], track=2)
    assert rule.num_states == 2
    assert rule.end_track("a", 2, 1500) == []
    (e,) = rule.end_track("a", 1, 1600)
    assert (e.kind, e.cleared_ms, e.reason, e.track_id) == ("cleared", 1600, "track_ended", 1)
    assert rule.num_states == 0 and rule.end_track("a", 1, 1700) == []
    with pytest.raises(ValueError, match="min_duration_s"):
        LyingWithRiskEvent(min_duration_s=-1.0)


def test_predictor_raises_and_clears_from_the_action_models_classes(
    fake_detector: Any, fake_action: Any, classes: list[str]
) -> None:
    """Frames at 20 °C: standing, at 30 °C: lying with risk (the fake model reads the last frame);
    a person is present while the frame is >= 15 °C."""
    risk = classes.index(LYING_WITH_RISK)

    def logits(clips: np.ndarray, rois: np.ndarray) -> np.ndarray:
        z = np.zeros((rois.shape[0], len(classes)))
        for k, r in enumerate(rois):
            z[k, risk if clips[int(r[0]), -1].mean() > 25 else classes.index("standing")] = 4.0
        return z

    seen: list[Event] = []
    pred = StreamingPredictor(
        fake_action(classes, logits),
        fake_detector(present=lambda f: bool(f.mean() >= 15)),
        cadence_s=1.0,
        events=[LyingWithRiskEvent(min_duration_s=5.0, clear_after_s=2.0)],
        on_event=seen.append,
    )
    t0 = 5_000_000
    # 0-3 s standing, 3-12 s lying, 12-17 s standing, 17-19 s lying, then the person leaves (10 °C)
    schedule = [(20.0, 3), (30.0, 9), (20.0, 5), (30.0, 2), (10.0, 6)]
    t, kinds = t0, list[str]()
    for value, seconds in schedule:
        for _ in range(seconds * 6):
            t += 167
            pred.push("room", t, np.full((H, W), value, np.float32))
            kinds.extend(e.kind for e in pred.take_events())
    assert kinds == ["raised", "cleared"] and len(seen) == 2
    raised, cleared = seen
    assert raised.sensor_id == "room" and raised.track_id == cleared.track_id == 1
    assert abs(raised.start_ms - (t0 + 3000)) <= 1200  # first classification of the lying run
    assert 5000 <= raised.raised_ms - raised.start_ms <= 5000 + 1200
    assert cleared.reason == "class_changed"
    assert 2000 <= cleared.cleared_ms - (t0 + 12000) <= 2000 + 2 * 1200  # type: ignore[operator]
    assert pred.active_events() == [] and pred.events_raised == 1 and pred.events_cleared == 1


def test_describe_prints_utc_times_and_seconds_since_the_start() -> None:
    start = 1760482258170  # 2025-10-14T22:50:58.170Z
    raised = Event("lying_with_risk", "raised", "SL14_R1", 3, LYING_WITH_RISK, start, start + 12_000)
    assert raised.describe() == (
        "RAISED  lying_with_risk: sensor SL14_R1 person 3 'lying down-lying with risk' at "
        "2025-10-14T22:51:10.170Z, 12.0 s since 2025-10-14T22:50:58.170Z"
    )
    cleared = Event(
        "lying_with_risk", "cleared", "SL14_R1", 3, LYING_WITH_RISK, start, start + 12_000,
        start + 15_500, "track_ended",
    )  # fmt: skip
    assert cleared.describe().endswith(
        "at 2025-10-14T22:51:13.670Z, after 15.5 s since 2025-10-14T22:50:58.170Z (track_ended)"
    )
    assert cleared.to_dict()["cleared_ms"] == start + 15_500  # the JSON keeps the raw milliseconds
