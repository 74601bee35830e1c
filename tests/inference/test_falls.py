"""thermact.inference.falls: episodes from annotations, alerts from classifications, matching."""

from __future__ import annotations

import numpy as np
import pytest

from thermact.data.annotations import Box, Keyframe
from thermact.data.source import ThermalData
from thermact.inference.events import LYING_WITH_RISK
from thermact.inference.falls import (
    Alert,
    Episode,
    alerts_from_classifications,
    annotated_spans,
    fall_alerts_markdown,
    lying_episodes,
    score_alerts,
)
from thermact.inference.pipeline import PersonResult

BOX = (10.0, 10.0, 20.0, 30.0)


def _kf(t_s: float, name: str, track: int = 0, rec: str = "r") -> Keyframe:
    person = Box(BOX, "person", 3, name, track)
    return Keyframe(f"{rec}-{t_s}", rec, int(t_s * 1000), None, (person,))


def _result(t_s: float, label: str, track: int = 1, box: tuple[float, ...] = BOX) -> PersonResult:
    return PersonResult(
        "r",
        track,
        int(t_s * 1000),
        box,
        0.9,
        np.zeros(2),
        0,
        label,
        0.9,
        True,
        int(t_s * 1000),  # type: ignore[arg-type]
    )


def test_episodes_of_the_bundled_annotations(real_data: ThermalData) -> None:
    episodes = lying_episodes(real_data.keyframes)
    assert len(episodes) == 14 and sum(len(e.boxes) for e in episodes) == 272  # every lying box
    first = episodes[0]
    assert (first.recording_id, first.track_id, len(first.boxes)) == ("SL14_R1", 0, 23)
    assert first.end_ms - first.start_ms == 29_161
    # SL14_R2: the person lies 3.9 s, gets up (a transition keyframe), lies again for 45.8 s
    r2 = [e for e in episodes if e.recording_id == "SL14_R2"]
    assert [len(e.boxes) for e in r2] == [4, 36] and r2[0].end_ms < r2[1].start_ms


def test_episodes_end_at_another_class_or_a_gap() -> None:
    kfs = [_kf(0, LYING_WITH_RISK), _kf(1, LYING_WITH_RISK), _kf(2, "standing"), _kf(3, LYING_WITH_RISK)]
    kfs += [_kf(20, LYING_WITH_RISK), _kf(21, "sitting", track=1)]
    episodes = lying_episodes(kfs, max_gap_s=10.0)
    assert [(e.start_ms, e.end_ms) for e in episodes] == [(0, 1000), (3000, 3000), (20000, 20000)]
    assert len(lying_episodes(kfs, max_gap_s=60.0)) == 2


def test_alerts_are_raised_once_and_cleared_when_the_person_gets_up() -> None:
    run = [_result(t, LYING_WITH_RISK) for t in range(6)]
    up = [_result(t, "standing") for t in range(6, 10)]
    alerts = alerts_from_classifications([*run, *up], min_duration_s=2.0, clear_after_s=2.0)
    assert alerts == [Alert("r", 1, 2000, 8000, BOX)]
    # a run that ends with the track is cleared at its last classification
    assert alerts_from_classifications(run, 2.0)[0].cleared_ms == 5000
    # a run shorter than the rule raises nothing
    assert alerts_from_classifications([*run[:2], *up], 2.0) == []


def test_matching_counts_in_time_late_and_false_alerts() -> None:
    ep = Episode("r", 0, 10_000, 40_000, ((10_000, BOX), (40_000, BOX)))
    far = (40.0, 0.0, 50.0, 10.0)
    alerts = [
        Alert("r", 1, 13_000, None, BOX),  # 3 s after the start: in time
        Alert("r", 2, 20_000, None, far),  # elsewhere in the room: false
        Alert("q", 3, 13_000, None, BOX),  # another sensor: false
    ]
    report = score_alerts([ep], alerts, sensor_hours=0.5, min_duration_s=2.0)
    assert (report.alerted_in_time, report.false_alerts, report.delays_s) == (1, 2, (3.0,))
    assert report.share_alerted == 1.0 and report.false_alerts_per_hour == pytest.approx(4.0)
    late = score_alerts([ep], [Alert("r", 1, 16_000, None, BOX)], 0.5, 2.0)
    assert late.alerted_in_time == 0 and late.false_alerts == 0 and late.missed == ("r:0@10000",)
    early = score_alerts([ep], [Alert("r", 1, 5_000, 30_000, BOX)], 0.5, 0.0)  # active at the start
    assert early.delays_s == (0.0,) and early.to_dict()["median_delay_s"] == 0.0
    gone = score_alerts([ep], [Alert("r", 1, 5_000, 9_000, BOX)], 0.5, 0.0)  # cleared before it
    assert gone.alerted_in_time == 0 and gone.false_alerts == 1


def test_annotated_spans_of_the_bundled_recordings(real_data: ThermalData) -> None:
    spans = annotated_spans(real_data.keyframes)
    assert len(spans) == 8 and spans["SL14_R1"] == (1760482260170, 1760482319014)
    first = int(real_data.recordings["SL14_R1"].timestamps[0])
    assert spans["SL14_R1"][0] - first == 12_795  # the first ~13 s of a recording are not annotated
    assert sum(hi - lo for lo, hi in spans.values()) == 471_565  # of 674 s of recordings


def test_false_alerts_in_annotated_time_leave_out_alerts_nobody_could_judge() -> None:
    ep = Episode("r", 0, 10_000, 40_000, ((10_000, BOX), (40_000, BOX)))
    far = (40.0, 0.0, 50.0, 10.0)
    alerts = [
        Alert("r", 1, 12_000, None, BOX),  # the episode's
        Alert("r", 2, 2_000, None, far),  # before the first keyframe: false, not judged
        Alert("r", 3, 20_000, None, far),  # within the span: false and judged
        Alert("r", 4, 50_000, None, far),  # after the last keyframe: false, not judged
    ]
    spans = annotated_spans([_kf(5, "standing"), _kf(10, LYING_WITH_RISK), _kf(41, "standing")])
    assert spans == {"r": (5_000, 41_000)}
    report = score_alerts([ep], alerts, 0.5, 0.0, spans=spans)
    assert (report.false_alerts, report.false_alerts_annotated) == (3, 1)
    assert report.annotated_hours == pytest.approx(36 / 3600)
    assert report.false_alerts_per_annotated_hour == pytest.approx(100.0)
    assert report.false_alerts_per_hour == pytest.approx(6.0)
    row = fall_alerts_markdown([report.to_dict()]).splitlines()[-1]
    assert row == "| 0 | 1/1 (100%) | 2.0 | 4 | 3 | 6.0 | 1 / 100.0 |"
    without = score_alerts([ep], alerts, 0.5, 0.0)
    assert without.false_alerts_annotated is None and without.false_alerts_per_annotated_hour is None
