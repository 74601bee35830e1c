"""Fall alerts as a user judges them: episodes alerted, how fast, and false alerts per sensor-hour.

Ground truth: a *lying-with-risk episode* is a run of consecutive annotated keyframes of one
person (one ``track_id`` of a recording) whose class is lying with risk; a keyframe of that person
with another class, or a gap of more than ``max_gap_s`` between two of its keyframes, ends it.
The episode starts at its first keyframe.

Alerts: the live pipeline's fresh classifications (one per tracked person per cadence) go through
the alert rule (:class:`~thermact.inference.events.ClassDurationEvent`: raised once per track when
its top class has been lying with risk for ``min_duration_s``, cleared when the person gets up or
the track ends). Each alert keeps the box of its track when it was raised.

Matching: an alert belongs to an episode of the same recording when it is active during the
episode or within ``deadline_s`` after its end (raised at or before ``end + deadline_s``, not
cleared before ``start``) and its box overlaps the person's annotated box (IoU >=
``min_iou``, at the episode keyframe nearest to the raising). An episode is *alerted in time* when
an alert belonging to it was raised no later than ``start + deadline_s``; its delay is
``max(0, raised - start)`` of the earliest such alert. An alert belonging to no episode is a
*false alert*. Rates are per sensor-hour of the replayed recordings.

Annotated time: the keyframes of a recording cover only part of it (in ``thermal_v2`` the first
and last ~13 s of most recordings carry no keyframe), and an alert raised where nobody labelled the frames cannot be
judged — the person may well be lying. So each report also counts the false alerts raised within
the *annotated span* of their recording (first to last keyframe, :func:`annotated_spans`) per hour
of those spans.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from thermact.data.annotations import Keyframe
from thermact.data.source import ThermalData
from thermact.inference.events import LYING_WITH_RISK, ClassDurationEvent
from thermact.inference.pipeline import PersonResult
from thermact.inference.sensor import raw_frames
from thermact.inference.streaming import StreamingPredictor

__all__ = [
    "FALL_RULE_SECONDS",
    "Alert",
    "Episode",
    "FallReport",
    "alerts_from_classifications",
    "annotated_spans",
    "fall_alert_reports",
    "fall_alerts_markdown",
    "lying_episodes",
    "score_alerts",
]

XYXY = tuple[float, float, float, float]


@dataclasses.dataclass(frozen=True)
class Episode:
    """One annotated lying-with-risk episode of one person.

    Attributes:
        boxes: ``(timestamp_ms, pixel XYXY)`` of each of its keyframes, in time order.
    """

    recording_id: str
    track_id: int
    start_ms: int
    end_ms: int
    boxes: tuple[tuple[int, XYXY], ...]

    def box_near(self, timestamp_ms: int) -> XYXY:
        """The annotated box of the keyframe nearest to ``timestamp_ms``."""
        return min(self.boxes, key=lambda tb: abs(tb[0] - timestamp_ms))[1]


def lying_episodes(
    keyframes: Iterable[Keyframe], label: str = LYING_WITH_RISK, max_gap_s: float = 10.0
) -> list[Episode]:
    """The lying-with-risk episodes of annotated keyframes (module docstring), sorted by
    recording and start. ``label`` is the class name as stored in the boxes."""
    per_person: dict[tuple[str, int], list[tuple[int, bool, XYXY]]] = defaultdict(list)
    for kf in keyframes:
        for p in kf.persons:
            per_person[(kf.recording_id, p.track_id)].append((kf.timestamp_ms, p.name == label, p.xyxy))
    episodes: list[Episode] = []
    for (rid, tid), seen in per_person.items():
        run: list[tuple[int, XYXY]] = []
        for t, lying, box in sorted(seen):
            if run and (not lying or t - run[-1][0] > max_gap_s * 1000.0):
                episodes.append(Episode(rid, tid, run[0][0], run[-1][0], tuple(run)))
                run = []
            if lying:
                run.append((t, box))
        if run:
            episodes.append(Episode(rid, tid, run[0][0], run[-1][0], tuple(run)))
    return sorted(episodes, key=lambda e: (e.recording_id, e.start_ms, e.track_id))


@dataclasses.dataclass(frozen=True)
class Alert:
    """A raised alert: who (recording, predicted track), when, and where (box at the raising)."""

    recording_id: str
    track_id: int
    raised_ms: int
    cleared_ms: int | None
    box: XYXY


def alerts_from_classifications(
    results: Sequence[PersonResult],
    min_duration_s: float,
    clear_after_s: float = 2.0,
    label: str = LYING_WITH_RISK,
) -> list[Alert]:
    """Run the alert rule over fresh classifications (in time order per track); a track ends at
    its last classification. Returns the alerts raised, with their clearing time."""
    rule = ClassDurationEvent(label, min_duration_s, clear_after_s)
    last_seen: dict[tuple[str, int], int] = {}
    for r in results:
        last_seen[(r.sensor_id, r.track_id)] = r.timestamp_ms
    raised: dict[tuple[str, int, int], Alert] = {}
    cleared: dict[tuple[str, int, int], int] = {}
    remaining = dict(last_seen)
    for r in sorted(results, key=lambda x: x.timestamp_ms):
        events = rule.update(r)
        key = (r.sensor_id, r.track_id)
        if remaining.get(key) == r.timestamp_ms:
            events += rule.end_track(r.sensor_id, r.track_id, r.timestamp_ms)
            del remaining[key]
        for e in events:
            ident = (e.sensor_id, e.track_id, e.raised_ms)
            if e.kind == "raised":
                raised[ident] = Alert(e.sensor_id, e.track_id, e.raised_ms, None, r.box)
            elif e.cleared_ms is not None:
                cleared[ident] = e.cleared_ms
    return [dataclasses.replace(a, cleared_ms=cleared.get(k)) for k, a in sorted(raised.items())]


def _iou(a: XYXY, b: XYXY) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class FallReport:
    """How the alerts of a rule served the annotated episodes (module docstring)."""

    min_duration_s: float
    deadline_s: float
    episodes: int
    alerted_in_time: int
    delays_s: tuple[float, ...]
    """Per episode alerted in time."""
    missed: tuple[str, ...]
    """``recording:track@start_ms`` of the episodes not alerted in time."""
    alerts: int
    false_alerts: int
    sensor_hours: float
    false_alerts_annotated: int | None = None
    """False alerts raised within the annotated span of their recording (None: no spans given)."""
    annotated_hours: float | None = None
    """Hours of the annotated spans of the replayed recordings."""

    @property
    def share_alerted(self) -> float | None:
        return self.alerted_in_time / self.episodes if self.episodes else None

    @property
    def false_alerts_per_hour(self) -> float | None:
        return self.false_alerts / self.sensor_hours if self.sensor_hours > 0 else None

    @property
    def false_alerts_per_annotated_hour(self) -> float | None:
        if self.false_alerts_annotated is None or not self.annotated_hours:
            return None
        return self.false_alerts_annotated / self.annotated_hours

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["delays_s"] = [round(d, 3) for d in self.delays_s]
        out["share_alerted"] = self.share_alerted
        out["median_delay_s"] = float(np.median(self.delays_s)) if self.delays_s else None
        out["false_alerts_per_hour"] = self.false_alerts_per_hour
        out["false_alerts_per_annotated_hour"] = self.false_alerts_per_annotated_hour
        return out


def _belongs(alert: Alert, episode: Episode, deadline_ms: float, min_iou: float) -> bool:
    if alert.recording_id != episode.recording_id:
        return False
    if alert.raised_ms > episode.end_ms + deadline_ms:
        return False
    if alert.cleared_ms is not None and alert.cleared_ms < episode.start_ms:
        return False
    return _iou(alert.box, episode.box_near(alert.raised_ms)) >= min_iou


def annotated_spans(keyframes: Iterable[Keyframe]) -> dict[str, tuple[int, int]]:
    """Per recording id, the times (ms) of its first and last annotated keyframe."""
    spans: dict[str, tuple[int, int]] = {}
    for kf in keyframes:
        lo, hi = spans.get(kf.recording_id, (kf.timestamp_ms, kf.timestamp_ms))
        spans[kf.recording_id] = (min(lo, kf.timestamp_ms), max(hi, kf.timestamp_ms))
    return spans


def score_alerts(
    episodes: Sequence[Episode],
    alerts: Sequence[Alert],
    sensor_hours: float,
    min_duration_s: float,
    deadline_s: float = 5.0,
    min_iou: float = 0.1,
    spans: Mapping[str, tuple[int, int]] | None = None,
) -> FallReport:
    """Match ``alerts`` to ``episodes`` and count (module docstring); with ``spans``
    (:func:`annotated_spans` of the replayed recordings) also the false alerts within them."""
    deadline_ms = deadline_s * 1000.0
    used: set[int] = set()
    delays: list[float] = []
    missed: list[str] = []
    for ep in episodes:
        mine = [i for i, a in enumerate(alerts) if _belongs(a, ep, deadline_ms, min_iou)]
        used.update(mine)
        in_time = [alerts[i].raised_ms for i in mine if alerts[i].raised_ms <= ep.start_ms + deadline_ms]
        if in_time:
            delays.append(max(0.0, (min(in_time) - ep.start_ms) / 1000.0))
        else:
            missed.append(f"{ep.recording_id}:{ep.track_id}@{ep.start_ms}")
    in_span = annotated = None
    if spans is not None:
        in_span = sum(
            1
            for i, a in enumerate(alerts)
            if i not in used
            and a.recording_id in spans
            and spans[a.recording_id][0] <= a.raised_ms <= spans[a.recording_id][1]
        )
        annotated = sum(hi - lo for lo, hi in spans.values()) / 3.6e6
    return FallReport(
        min_duration_s, deadline_s, len(episodes), len(delays), tuple(delays), tuple(missed),
        len(alerts), len(alerts) - len(used), sensor_hours, in_span, annotated,
    )  # fmt: skip


FALL_RULE_SECONDS = (0.0, 1.0, 2.0, 5.0, 10.0)
"""The alert rules ``eval`` reports (seconds of lying with risk before an alert, ``lying_min_s``)."""


def fall_alert_reports(
    predictor: StreamingPredictor, data: ThermalData, test_kfs: Sequence[Keyframe]
) -> list[dict[str, Any]]:
    """Replay every recording of the test keyframes through the live predictor and score the fall
    alerts of each rule of :data:`FALL_RULE_SECONDS` (:mod:`thermact.inference.falls`)."""
    results = []
    hours = 0.0
    for rid in sorted({k.recording_id for k in test_kfs}):
        rec = data.recordings[rid]
        results += predictor.replay(rid, rec.timestamps, raw_frames(rec.frames, rec.valid))
        hours += float(rec.timestamps[-1] - rec.timestamps[0]) / 3.6e6
    episodes, spans = lying_episodes(test_kfs), annotated_spans(test_kfs)
    return [
        score_alerts(episodes, alerts_from_classifications(results, s), hours, s, spans=spans).to_dict()
        for s in FALL_RULE_SECONDS
    ]


def fall_alerts_markdown(reports: Sequence[Mapping[str, Any]]) -> str:
    """The fall-alert table of :func:`fall_alert_reports`."""
    if not reports:
        return ""
    first = reports[0]
    lines = [
        "\n## Fall alerts (live pipeline replayed over the test recordings)\n",
        f"{first['episodes']} annotated lying-with-risk episodes, {first['sensor_hours']:.3f} sensor-hours "
        f"({_hours(first.get('annotated_hours'))} of them between a recording's first and last keyframe); "
        f"an episode counts as alerted when an alert on that person is raised within {first['deadline_s']:g} s "
        "of its first annotated keyframe; the last column counts only the false alerts raised in annotated "
        "time (thermact.inference.falls).\n",
        "| lying_min_s | episodes alerted in time | median delay (s) | alerts | false alerts | false alerts / sensor-hour "
        "| in annotated time: false alerts / hour |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in reports:
        share = "N/A" if r["share_alerted"] is None else f"{r['share_alerted']:.0%}"
        delay = "N/A" if r["median_delay_s"] is None else f"{r['median_delay_s']:.1f}"
        rate = "N/A" if r["false_alerts_per_hour"] is None else f"{r['false_alerts_per_hour']:.1f}"
        lines.append(
            f"| {r['min_duration_s']:g} | {r['alerted_in_time']}/{r['episodes']} ({share}) | {delay} | "
            f"{r['alerts']} | {r['false_alerts']} | {rate} | {_annotated_rate(r)} |"
        )
    return "\n".join(lines) + "\n"


def _hours(value: float | None) -> str:
    return "N/A" if value is None else f"{value:.3f}"


def _annotated_rate(report: Mapping[str, Any]) -> str:
    count, rate = report.get("false_alerts_annotated"), report.get("false_alerts_per_annotated_hour")
    return "N/A" if count is None or rate is None else f"{count} / {rate:.1f}"
