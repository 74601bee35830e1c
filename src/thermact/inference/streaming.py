"""Live inference for many thermal sensors in one process.

Example::

    from thermact.inference import LyingWithRiskEvent, StreamingPredictor

    predictor = StreamingPredictor(
        "runs/thermal_net_live/last.pt",       # action model: checkpoint, .onnx, TrainedModel, runner
        "runs/person_detector_live/last.pt",   # person detector: checkpoint, .onnx, restored model, runner
        cadence_s=1.0,
        events=[LyingWithRiskEvent(min_duration_s=10)],
    )
    for sensor_id, t_ms, frame in source:      # frame [40, 60] raw °C
        for r in predictor.push(sensor_id, t_ms, frame):
            print(r.sensor_id, r.track_id, r.top_label, r.top_score)
        for e in predictor.take_events():
            print(e.describe())

``push`` / ``push_many`` return the *fresh* classifications (one per tracked person per
``cadence_s``); every frame's tracked boxes, with the scores of each track's latest
classification, are in :attr:`StreamingPredictor.last_frames`. ``push_many`` hands frames of
many sensors over at once: the detector runs once for all of them and the action model once for
every track due (see :mod:`thermact.inference.pipeline` for the processing of each frame, the
causal clip, dead-pixel repair and the dropping of duplicate and out-of-order frames).

Memory is flat: each sensor holds a fixed-size ring buffer, a tracker whose tracks die after
``max_age_s``, per-track state only for live tracks, and latencies in a bounded window.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from thermact.data.recording import INVALID_SENTINEL_C, Recording
from thermact.inference.events import Event, EventRule
from thermact.inference.pipeline import FrameInput, FrameResult, InferencePipeline, PersonResult, StageTimes
from thermact.inference.runners import Precision, as_action_model, as_detector
from thermact.inference.sensor import SensorCounters
from thermact.models.tta import TTA
from thermact.shipped import DEFAULT_DETECTOR, DEFAULT_STREAM_ACTION_MODEL
from thermact.tracking.tracker import TrackerConfig

__all__ = ["StreamStats", "StreamingPredictor", "interleave"]

FrameLike = FrameInput | tuple[str, int, npt.NDArray[np.floating[Any]]]


@dataclasses.dataclass(frozen=True)
class StreamStats:
    """Counters, stage times and latencies of a predictor so far.

    Latencies are from a frame's arrival to the moment its results were ready, over the last
    ``latency_window`` frames (``frame_*``) and fresh classifications (``result_*``), in ms.
    """

    sensors: int
    counters: SensorCounters
    times: StageTimes
    events_raised: int
    events_cleared: int
    frame_latency_ms: tuple[float, float]
    """(p50, p99)."""
    result_latency_ms: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sensors": self.sensors,
            "counters": self.counters.to_dict(),
            "times": self.times.to_dict(),
            "events_raised": self.events_raised,
            "events_cleared": self.events_cleared,
            "frame_latency_ms": {"p50": self.frame_latency_ms[0], "p99": self.frame_latency_ms[1]},
            "result_latency_ms": {"p50": self.result_latency_ms[0], "p99": self.result_latency_ms[1]},
        }


def _percentiles(values: Iterable[float]) -> tuple[float, float]:
    arr = np.fromiter(values, dtype=np.float64)
    if arr.size == 0:
        return (float("nan"), float("nan"))
    p50, p99 = np.percentile(arr, [50, 99])
    return (float(p50) * 1000.0, float(p99) * 1000.0)


class StreamingPredictor:
    """Frames in, per-person classifications and events out, for many sensors.

    Args:
        action: action model: a checkpoint or ``.onnx`` path, a shipped model's name
            (:mod:`thermact.shipped`; the default is the shipped live model), a restored model
            (:func:`~thermact.tasks.action.restore_model`), an ``OnnxActionModel`` or any
            :class:`~thermact.inference.runners.ActionModelLike`.
        detector: person detector: a checkpoint or ``.onnx`` path, a shipped model's name (the
            default is the shipped live detector), a restored detector
            (:func:`~thermact.tasks.person.restore_detector`), an ``OnnxPersonDetector``
            (exported with :func:`~thermact.export.onnx.export_detector_onnx`) or any
            :class:`~thermact.inference.runners.DetectorLike`.
        tracker_config: per-sensor tracker settings.
        cadence_s: seconds between two classifications of one person.
        events: event rules (e.g. :class:`~thermact.inference.events.LyingWithRiskEvent`).
        max_sensors: sensors served at once (one more is a :class:`~thermact.errors.DataError`).
        device: where the PyTorch models run.
        precision: ``"fp32"`` or ``"bf16"`` (bfloat16 autocast) for the PyTorch models built from
            paths or restored models (see :data:`~thermact.inference.runners.Precision`).
        tta: ``"flips"``: the action model's scores averaged over the four flips of each clip
            (:mod:`thermact.models.tta`; up to 4x its compute), for an action model given as a path,
            a shipped name or a restored model; ``"none"`` (default): as trained.
        score_threshold: lowest person-detection score tracked.
        frame_size: ``(H, W)`` of every sensor's frames.
        buffer_frames, max_fps: ring-buffer size per sensor (see
            :class:`~thermact.inference.pipeline.InferencePipeline`).
        on_event: called with every event as it happens (they are also queued for
            :meth:`take_events`, up to ``event_queue`` of them).
        latency_window: latencies kept for :meth:`stats`.
        clock: time source of arrivals and latencies (seconds).
    """

    def __init__(
        self,
        action: Any = DEFAULT_STREAM_ACTION_MODEL,
        detector: Any = DEFAULT_DETECTOR,
        tracker_config: TrackerConfig | None = None,
        cadence_s: float = 1.0,
        events: Sequence[EventRule] = (),
        max_sensors: int = 64,
        device: str | torch.device = "cpu",
        precision: Precision = "fp32",
        tta: TTA = "none",
        score_threshold: float = 0.3,
        frame_size: tuple[int, int] = (40, 60),
        buffer_frames: int | None = None,
        max_fps: float = 12.0,
        on_event: Callable[[Event], None] | None = None,
        event_queue: int = 10_000,
        latency_window: int = 10_000,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.pipeline = InferencePipeline(
            as_action_model(action, device, precision, tta),
            as_detector(detector, device, precision),
            tracker_config,
            cadence_s,
            score_threshold,
            frame_size=frame_size,
            max_sensors=max_sensors,
            buffer_frames=buffer_frames,
            max_fps=max_fps,
            clock=clock,
        )
        self.rules = list(events)
        self.on_event = on_event
        self.clock = clock
        self._events: collections.deque[Event] = collections.deque(maxlen=event_queue)
        self._frame_latency: collections.deque[float] = collections.deque(maxlen=latency_window)
        self._result_latency: collections.deque[float] = collections.deque(maxlen=latency_window)
        self.last_frames: list[FrameResult] = []
        """Every accepted frame of the latest push / push_many (all tracked persons)."""
        self.events_raised = 0
        self.events_cleared = 0

    @property
    def classes(self) -> list[str]:
        return self.pipeline.classes

    def push(
        self,
        sensor_id: str,
        timestamp_ms: int,
        frame: npt.NDArray[np.floating[Any]],
        arrival_s: float | None = None,
    ) -> list[PersonResult]:
        """One frame ``[H, W]`` raw °C of one sensor; returns the fresh classifications it produced."""
        return self.push_many([FrameInput(sensor_id, int(timestamp_ms), frame, arrival_s)])

    def replay(
        self,
        sensor_id: str,
        timestamps: Sequence[int] | npt.NDArray[np.int64],
        frames: npt.NDArray[np.floating[Any]],
    ) -> list[PersonResult]:
        """Push a whole recording ``frames [T, H, W]`` (raw °C, NaN where invalid) of one sensor
        frame by frame, as it would arrive live, then close the sensor; returns every fresh
        classification in time order."""
        fresh: list[PersonResult] = []
        for ts, frame in zip(timestamps, frames, strict=True):
            fresh += self.push(sensor_id, int(ts), frame)
        if len(timestamps):
            self.close_sensor(sensor_id, int(timestamps[-1]), reason="recording_ended")
        return fresh

    def push_many(self, frames: Iterable[FrameLike]) -> list[PersonResult]:
        """Frames of many sensors (``FrameInput`` or ``(sensor_id, timestamp_ms, frame)``), each
        sensor's in time order; one detector and one action call per round (see the module
        docstring). Returns the fresh classifications, in input order."""
        now = self.clock()
        items = [
            f if isinstance(f, FrameInput) else FrameInput(str(f[0]), int(f[1]), f[2], now) for f in frames
        ]
        items = [f if f.arrival_s is not None else dataclasses.replace(f, arrival_s=now) for f in items]
        results = self.pipeline.process(items)
        done = self.clock()
        self.last_frames = results
        fresh: list[PersonResult] = []
        for fr in results:
            self._frame_latency.append(done - fr.arrival_s)
            for p in fr.persons:
                if p.fresh:
                    fresh.append(p)
                    self._result_latency.append(done - fr.arrival_s)
                    for rule in self.rules:
                        self._emit(rule.update(p))
            for tid in fr.ended_tracks:
                for rule in self.rules:
                    self._emit(rule.end_track(fr.sensor_id, tid, fr.timestamp_ms))
        return fresh

    def close_sensor(
        self, sensor_id: str, timestamp_ms: int | None = None, reason: str = "sensor_closed"
    ) -> list[Event]:
        """Stop serving a sensor: its state is freed and its active events are cleared
        (``reason``, at ``timestamp_ms`` or its last frame's time)."""
        state = self.pipeline.sensors.get(sensor_id)
        when = timestamp_ms
        if when is None and state is not None:
            when = state.ring.last_timestamp
        alive = self.pipeline.close_sensor(sensor_id)
        out: list[Event] = []
        for tid in alive:
            for rule in self.rules:
                out.extend(rule.end_track(sensor_id, tid, int(when or 0), reason=reason))
        self._emit(out)
        return out

    def _emit(self, events: list[Event]) -> None:
        for e in events:
            if e.kind == "raised":
                self.events_raised += 1
            else:
                self.events_cleared += 1
            self._events.append(e)
            if self.on_event is not None:
                self.on_event(e)

    def take_events(self) -> list[Event]:
        """The events since the last call (oldest first)."""
        out = list(self._events)
        self._events.clear()
        return out

    def active_events(self) -> list[Event]:
        """Events raised and not yet cleared, over all rules."""
        return [e for rule in self.rules for e in rule.active()]

    def stats(self) -> StreamStats:
        return StreamStats(
            sensors=len(self.pipeline.sensors),
            counters=self.pipeline.counters(),
            times=dataclasses.replace(self.pipeline.times),
            events_raised=self.events_raised,
            events_cleared=self.events_cleared,
            frame_latency_ms=_percentiles(self._frame_latency),
            result_latency_ms=_percentiles(self._result_latency),
        )

    def memory_footprint(self) -> dict[str, int]:
        """Sizes of everything that could grow: buffered frames, per-track and per-event states,
        queued events and latencies (for checks that memory stays flat)."""
        sensors = self.pipeline.sensors.values()
        return {
            "sensors": len(self.pipeline.sensors),
            "buffered_frames": sum(len(s.ring) for s in sensors),
            "buffer_bytes": sum(s.ring.nbytes for s in sensors),
            "tracks": sum(len(s.tracker.tracks) for s in sensors),
            "track_states": sum(s.num_track_states for s in sensors),
            "event_states": sum(r.num_states for r in self.rules),
            "queued_events": len(self._events),
            "memory_keyframes": (
                0 if self.pipeline.memory_action is None else self.pipeline.memory_action.memory_size
            ),
            "latencies": len(self._frame_latency) + len(self._result_latency),
        }


def interleave(
    recordings: Sequence[Recording],
    offsets_ms: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
) -> Iterator[tuple[int, str, npt.NDArray[np.float32]]]:
    """``(timestamp_ms, sensor_id, raw frame)`` of all recordings merged by time (ties: sensor order).

    Raw frames carry ``-273.2`` where the recording's pixels were invalid. ``offsets_ms`` shifts
    each recording's times; ``names`` renames its sensor (default: the recording id).
    """
    offs = list(offsets_ms) if offsets_ms is not None else [0] * len(recordings)
    ids = list(names) if names is not None else [r.recording_id for r in recordings]

    def one(k: int) -> Iterator[tuple[int, int, int]]:
        for i, t in enumerate(recordings[k].timestamps):
            yield int(t) + offs[k], k, i

    for t, k, i in heapq.merge(*(one(k) for k in range(len(recordings)))):
        rec = recordings[k]
        frame = np.where(rec.valid[i], rec.frames[i], np.float32(INVALID_SENTINEL_C)).astype(np.float32)
        yield t, ids[k], frame
