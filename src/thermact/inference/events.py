"""Events raised from the per-person classifications of a stream.

A rule sees every *fresh* classification (:class:`~thermact.inference.pipeline.PersonResult` with
``fresh=True``, one per person per cadence) and every track that ends, and returns
:class:`Event` notifications: ``kind="raised"`` once when its condition starts to hold and
``kind="cleared"`` once when it stops (both carry the same ``start_ms`` / ``raised_ms``).

:class:`ClassDurationEvent` (and its preset :class:`LyingWithRiskEvent`):

* a *run* starts at the first classification whose top class is the target and continues while
  every following classification of that track has it too; one with another top class before
  the event is raised breaks the run;
* the event is **raised** at the first classification at least ``min_duration_s`` after the
  run's start (``raised_ms - start_ms >= min_duration_s``; with a 1 s cadence it is raised within
  one second of the threshold);
* once raised, it is **cleared** when the top class has been another one for at least
  ``clear_after_s`` (from the first such classification; a target classification in between
  resets that clock), or when the track ends (the person left or was lost for longer than the
  tracker's ``max_age_s``): ``reason`` ``"class_changed"`` / ``"track_ended"``.

State is kept only for tracks in a run or with a raised event and dropped when they end, so it
stays bounded by the live tracks.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from typing import Literal, Protocol

from thermact.inference.pipeline import PersonResult

__all__ = ["ClassDurationEvent", "Event", "EventRule", "LyingWithRiskEvent", "iso_time"]

LYING_WITH_RISK = "lying down-lying with risk"


@dataclasses.dataclass(frozen=True)
class Event:
    """A notification of a rule about one person.

    Attributes:
        name: the rule's name.
        kind: ``"raised"`` or ``"cleared"``.
        sensor_id, track_id: who.
        label: the class the rule watches.
        start_ms: time of the first classification of the run.
        raised_ms: when the event was raised.
        cleared_ms: when it was cleared (None for ``kind="raised"``).
        reason: why it was cleared (``"class_changed"``, ``"track_ended"``, ``"sensor_closed"``).
    """

    name: str
    kind: Literal["raised", "cleared"]
    sensor_id: str
    track_id: int
    label: str
    start_ms: int
    raised_ms: int
    cleared_ms: int | None = None
    reason: str | None = None

    @property
    def duration_s(self) -> float:
        """Seconds from the run's start to the clearing (or to the raising while active)."""
        end = self.cleared_ms if self.cleared_ms is not None else self.raised_ms
        return (end - self.start_ms) / 1000.0

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One line for a person: the times in ISO-8601 UTC and the seconds since the run's start
        (the raw Unix milliseconds stay in :meth:`to_dict`)."""
        who = f"sensor {self.sensor_id} person {self.track_id} '{self.label}'"
        if self.kind == "raised":
            return (
                f"RAISED  {self.name}: {who} at {iso_time(self.raised_ms)}, "
                f"{self.duration_s:.1f} s since {iso_time(self.start_ms)}"
            )
        end = iso_time(self.cleared_ms if self.cleared_ms is not None else self.raised_ms)
        return (
            f"CLEARED {self.name}: {who} at {end}, after {self.duration_s:.1f} s since "
            f"{iso_time(self.start_ms)} ({self.reason})"
        )


def iso_time(unix_ms: int) -> str:
    """``unix_ms`` as ISO-8601 UTC with milliseconds, e.g. ``2025-10-14T22:51:00.170Z``."""
    when = datetime.datetime.fromtimestamp(unix_ms / 1000.0, tz=datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventRule(Protocol):
    """What a :class:`~thermact.inference.streaming.StreamingPredictor` calls."""

    name: str

    def update(self, result: PersonResult) -> list[Event]:
        """Called with every fresh classification, in time order per track."""
        ...

    def end_track(
        self, sensor_id: str, track_id: int, timestamp_ms: int, reason: str = "track_ended"
    ) -> list[Event]:
        """Called when a track ends (or its sensor is closed)."""
        ...

    def active(self) -> list[Event]:
        """The events raised and not yet cleared."""
        ...

    @property
    def num_states(self) -> int:
        """Per-track states held (for memory checks)."""
        ...


@dataclasses.dataclass
class _RunState:
    start_ms: int
    raised: Event | None = None
    other_since_ms: int | None = None


class ClassDurationEvent:
    """Raised once when a person's top class is ``label`` continuously for ``>= min_duration_s``.

    Args:
        label: the watched class name (as in the action model's class list).
        min_duration_s: how long the run must last before the event is raised (``>= 0``).
        clear_after_s: how long another class must last before a raised event clears (``>= 0``).
        name: the event's name (default: ``label``).
    """

    def __init__(
        self, label: str, min_duration_s: float, clear_after_s: float = 2.0, name: str | None = None
    ) -> None:
        for key, value in (("min_duration_s", min_duration_s), ("clear_after_s", clear_after_s)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{key} must be a finite number >= 0, got {value}")
        self.label = label
        self.min_duration_ms = min_duration_s * 1000.0
        self.clear_after_ms = clear_after_s * 1000.0
        self.name = name if name is not None else label
        self._states: dict[tuple[str, int], _RunState] = {}

    @property
    def num_states(self) -> int:
        return len(self._states)

    def active(self) -> list[Event]:
        return [s.raised for s in self._states.values() if s.raised is not None]

    def _cleared(self, state: _RunState, when: int, reason: str) -> Event:
        assert state.raised is not None
        return dataclasses.replace(state.raised, kind="cleared", cleared_ms=when, reason=reason)

    def update(self, result: PersonResult) -> list[Event]:
        key = (result.sensor_id, result.track_id)
        t = result.timestamp_ms
        state = self._states.get(key)
        if result.top_label == self.label:
            if state is None:
                state = self._states[key] = _RunState(t)
            state.other_since_ms = None
            if state.raised is None and t - state.start_ms >= self.min_duration_ms:
                state.raised = Event(
                    self.name, "raised", result.sensor_id, result.track_id, self.label, state.start_ms, t
                )
                return [state.raised]
            return []
        if state is None:
            return []
        if state.raised is None:  # the run is broken before the event
            del self._states[key]
            return []
        if state.other_since_ms is None:
            state.other_since_ms = t
        if t - state.other_since_ms >= self.clear_after_ms:
            del self._states[key]
            return [self._cleared(state, t, "class_changed")]
        return []

    def end_track(
        self, sensor_id: str, track_id: int, timestamp_ms: int, reason: str = "track_ended"
    ) -> list[Event]:
        state = self._states.pop((sensor_id, track_id), None)
        if state is None or state.raised is None:
            return []
        return [self._cleared(state, timestamp_ms, reason)]


class LyingWithRiskEvent(ClassDurationEvent):
    """A person lying with risk (fallen) for at least ``min_duration_s`` seconds."""

    def __init__(
        self, min_duration_s: float = 10.0, clear_after_s: float = 2.0, label: str = LYING_WITH_RISK
    ) -> None:
        super().__init__(label, min_duration_s, clear_after_s, name="lying_with_risk")
