"""Detection, tracking and action classification of frame streams: the one implementation behind
``thermact detect`` (offline, whole recordings) and ``thermact stream`` / :class:`StreamingPredictor`
(live, many sensors).

Per sensor, every accepted frame goes through:

1. **ingest**: the frame (``[H, W]`` °C) must be newer than the sensor's last frame (duplicates
   and frames out of order are dropped and counted). Invalid pixels (the ``-273.2`` °C sentinel,
   NaN, ±inf, impossible values: :func:`thermact.data.recording.invalid_mask`) are repaired
   *causally*, like :func:`thermact.data.recording.repair_invalid_pixels` restricted to the past:
   the same pixel's last valid value if it was seen at most ``temporal_radius`` frames ago, else
   the median of the valid pixels around it (growing neighbourhood). A frame without any valid
   pixel is dropped (counted). The repaired frame goes into the sensor's :class:`FrameRing`, a
   fixed-capacity ring buffer, so memory stays flat however long a sensor runs.
2. **detection**: the detector's causal clip (``T`` frames over ``window_s`` ending at this frame,
   nearest buffered frame per grid point with edge replication,
   :func:`thermact.data.clips.nearest_indices`), person boxes above ``score_threshold``.
3. **tracking**: :class:`thermact.tracking.Tracker` turns the boxes into stable track ids.
4. **classification**: each confirmed track matched in this frame is *due* when it was never
   classified or at least ``cadence_s`` (less half the last frame interval, so the mean rate is
   at least ``1 / cadence_s``) has passed since its last classification. A due track gets the
   action model's clip of ``window_s`` / ``num_frames`` in the **causal** position: the clip
   *ends at the current frame*. Live use has no future frames, and offline runs use the same
   position so that ``thermact detect`` and a live stream give the same answers. (An action
   model trained on centred clips, ``data.keyframe_position: center``, sees the person's last
   2.7 s instead of the 1.35 s either side it was trained on: expect some loss of accuracy;
   train with ``data.keyframe_position=causal`` for live use.)

Batching: :meth:`InferencePipeline.process` takes frames of many sensors; each *round* holds at
most one frame per sensor and makes **one** detector call for all of its frames and **one** action
call for all of its due tracks (several frames of one sensor in one call are spread over
successive rounds, in order). Per-sensor results do not depend on what else is in the batch.

Models are used through two small protocols, :class:`~thermact.inference.runners.ActionModelLike`
and :class:`~thermact.inference.runners.DetectorLike` (:mod:`thermact.inference.runners` implements
them for PyTorch and onnxruntime models); the per-sensor state (ring buffer, repair, tracker,
per-track classifications) is :class:`~thermact.inference.sensor.SensorState`.

Boxes are pixel XYXY over the ``H x W`` frame; times are integer milliseconds.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from thermact.data.clips import clip_times
from thermact.errors import DataError
from thermact.inference.runners import ActionModelLike, ActionRunner, ClipKeys, DetectorLike
from thermact.inference.sensor import SensorCounters, SensorState, buffer_capacity
from thermact.models.postprocess import PERSON, Detections
from thermact.tracking.tracker import TrackedBox, TrackerConfig

__all__ = [
    "AcceptedFrame",
    "ActionRequests",
    "FrameInput",
    "FrameResult",
    "InferencePipeline",
    "PersonResult",
    "StageTimes",
    "counters_dict",
    "results_by_mode",
]

FloatArray = npt.NDArray[np.float32]


@dataclasses.dataclass(frozen=True)
class FrameInput:
    """One frame of one sensor: ``frame`` ``[H, W]`` raw °C; ``arrival_s`` the clock time it arrived
    (for latency; None: when it was handed over)."""

    sensor_id: str
    timestamp_ms: int
    frame: npt.NDArray[np.floating[Any]]
    arrival_s: float | None = None


@dataclasses.dataclass(frozen=True)
class PersonResult:
    """One tracked person in one frame.

    Attributes:
        sensor_id, track_id, timestamp_ms: who and when.
        box: pixel XYXY detection box matched to the track.
        det_score: its detection score.
        scores: ``[C]`` class scores of the track's latest classification.
        top_class, top_label, top_score: the best class of ``scores``.
        fresh: classified at this frame (else the scores are those of ``classified_ms``).
        classified_ms: time of the frame the scores come from.
    """

    sensor_id: str
    track_id: int
    timestamp_ms: int
    box: tuple[float, float, float, float]
    det_score: float
    scores: FloatArray
    top_class: int
    top_label: str
    top_score: float
    fresh: bool
    classified_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "box": [round(float(v), 3) for v in self.box],
            "det_score": round(self.det_score, 5),
            "top_class": self.top_class,
            "top_label": self.top_label,
            "top_score": round(self.top_score, 5),
            "scores": [round(float(v), 5) for v in self.scores],
            "fresh": self.fresh,
            "classified_ms": self.classified_ms,
        }


@dataclasses.dataclass(frozen=True)
class FrameResult:
    """An accepted frame: its tracked persons, the tracks that ended at it, repaired pixel count."""

    sensor_id: str
    timestamp_ms: int
    persons: tuple[PersonResult, ...]
    ended_tracks: tuple[int, ...]
    repaired_pixels: int
    arrival_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "sensor_id": self.sensor_id,
            "timestamp_ms": self.timestamp_ms,
            "persons": [p.to_dict() for p in self.persons],
            "ended_tracks": list(self.ended_tracks),
            "repaired_pixels": self.repaired_pixels,
        }


@dataclasses.dataclass
class StageTimes:
    """Seconds spent per stage (``other`` = total - the rest: Python bookkeeping)."""

    ingest_s: float = 0.0
    detector_s: float = 0.0
    tracking_s: float = 0.0
    action_s: float = 0.0
    total_s: float = 0.0
    frames: int = 0
    rounds: int = 0
    detector_calls: int = 0
    action_calls: int = 0
    action_clips: int = 0
    action_boxes: int = 0

    @property
    def other_s(self) -> float:
        return max(0.0, self.total_s - self.ingest_s - self.detector_s - self.tracking_s - self.action_s)

    def to_dict(self) -> dict[str, float | int]:
        d: dict[str, float | int] = dataclasses.asdict(self)
        d["other_s"] = self.other_s
        return d


# ---------------------------------------------------------------------------------------------
# The pipeline


@dataclasses.dataclass
class AcceptedFrame:
    """A frame that passed ingest in this round: its sensor's state, time, repaired pixels, arrival."""

    state: SensorState
    timestamp_ms: int
    repaired: int
    arrival_s: float


@dataclasses.dataclass
class ActionRequests:
    """The action call of one round: one causal clip per frame with a due track, one RoI per due
    track (``rows[(frame index, track id)]`` = its row), and who and when the clips are."""

    clips: list[FloatArray] = dataclasses.field(default_factory=list)
    rois: list[list[float]] = dataclasses.field(default_factory=list)
    track_ids: list[int] = dataclasses.field(default_factory=list)
    keys: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    rows: dict[tuple[int, int], int] = dataclasses.field(default_factory=dict)


class InferencePipeline:
    """Detection + tracking + cadenced action classification over the frames of many sensors.

    Args:
        action: an :class:`ActionModelLike` (see :func:`as_action_model`).
        detector: a :class:`DetectorLike` (see :func:`as_detector`).
        tracker_config: settings of each sensor's :class:`~thermact.tracking.Tracker`.
        cadence_s: seconds between two classifications of one track.
        score_threshold: lowest person-detection score passed to the tracker.
        frame_size: ``(H, W)`` of every sensor.
        max_sensors: the most sensors held at once (a new one beyond it is a :class:`DataError`).
        buffer_frames: ring-buffer capacity per sensor (default :func:`buffer_capacity` of the
            longer clip at ``max_fps``).
        max_fps: the highest frame rate the default buffer is sized for.
        temporal_radius: frames a dead pixel's last valid value is reused for.
        clock: time source for ``arrival_s`` defaults and stage timings.
    """

    def __init__(
        self,
        action: ActionModelLike,
        detector: DetectorLike,
        tracker_config: TrackerConfig | None = None,
        cadence_s: float = 1.0,
        score_threshold: float = 0.3,
        frame_size: tuple[int, int] = (40, 60),
        max_sensors: int = 64,
        buffer_frames: int | None = None,
        max_fps: float = 12.0,
        temporal_radius: int = 3,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not (math.isfinite(cadence_s) and cadence_s > 0):
            raise ValueError(f"cadence_s must be > 0, got {cadence_s}")
        if max_sensors < 1:
            raise ValueError(f"max_sensors must be >= 1, got {max_sensors}")
        self.action = action
        self.memory_action: ActionRunner | None = (
            action if isinstance(action, ActionRunner) and action.uses_memory else None
        )
        """The action model when it keeps a per-sensor memory (fed with :class:`ClipKeys`)."""
        self.detector = detector
        self.tracker_config = tracker_config if tracker_config is not None else TrackerConfig()
        self.cadence_ms = cadence_s * 1000.0
        self.score_threshold = float(score_threshold)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.max_sensors = int(max_sensors)
        window = max(action.clip.window_s, detector.clip.window_s)
        self.buffer_frames = (
            int(buffer_frames) if buffer_frames is not None else buffer_capacity(window, max_fps)
        )
        self.temporal_radius = int(temporal_radius)
        self.clock = clock
        self.sensors: dict[str, SensorState] = {}
        self.times = StageTimes()
        self._classes = list(action.classes)
        self._closed = SensorCounters()

    @property
    def classes(self) -> list[str]:
        return self._classes

    def sensor(self, sensor_id: str) -> SensorState:
        """The state of ``sensor_id`` (created on first use)."""
        state = self.sensors.get(sensor_id)
        if state is None:
            if len(self.sensors) >= self.max_sensors:
                raise DataError(
                    f"sensor {sensor_id!r}: already serving max_sensors={self.max_sensors} sensors "
                    "(close one with close_sensor() or raise max_sensors)"
                )
            state = SensorState(sensor_id, self.buffer_frames, self.frame_size, self.tracker_config)
            self.sensors[sensor_id] = state
        return state

    def close_sensor(self, sensor_id: str) -> tuple[int, ...]:
        """Forget a sensor; returns the ids of its tracks that were still alive."""
        state = self.sensors.pop(sensor_id, None)
        if self.memory_action is not None:
            self.memory_action.forget(sensor_id)
        if state is None:
            return ()
        self._closed.add(state.counters)
        return tuple(sorted(state.alive))

    def counters(self) -> SensorCounters:
        """Totals over all sensors, closed ones included."""
        total = SensorCounters()
        total.add(self._closed)
        for s in self.sensors.values():
            total.add(s.counters)
        return total

    def process(self, frames: Iterable[FrameInput]) -> list[FrameResult]:
        """Run frames of any sensors (each sensor's in time order); results of the accepted frames,
        in input order. See the module docstring for the batching."""
        t_start = self.clock()
        items = list(frames)
        for f in items:  # check everything before any state changes
            shape = tuple(np.shape(f.frame))
            if shape != self.frame_size:
                raise DataError(
                    f"sensor {f.sensor_id!r}: frame at {f.timestamp_ms} ms has shape {list(shape)}, "
                    f"expected {list(self.frame_size)}"
                )
        new = {f.sensor_id for f in items} - set(self.sensors)
        if len(self.sensors) + len(new) > self.max_sensors:
            raise DataError(
                f"sensor(s) {sorted(new)}: would exceed max_sensors={self.max_sensors} "
                f"(serving {len(self.sensors)}; close one with close_sensor() or raise max_sensors)"
            )
        rounds: list[list[FrameInput]] = []
        seen: dict[str, int] = {}
        for f in items:
            r = seen.get(f.sensor_id, 0)
            seen[f.sensor_id] = r + 1
            if r == len(rounds):
                rounds.append([])
            rounds[r].append(f)
        out: list[FrameResult] = []
        for items in rounds:
            out.extend(self._process_round(items, t_start))
        self.times.total_s += self.clock() - t_start
        return out

    def _process_round(self, items: list[FrameInput], t_start: float) -> list[FrameResult]:
        """One round (at most one frame per sensor): ingest, one detector call, tracking, one action
        call for every due track, results."""
        times, clock = self.times, self.clock
        times.rounds += 1
        t0 = clock()
        accepted = self._ingest(items, t_start)
        t1 = clock()
        times.ingest_s += t1 - t0
        if not accepted:
            return []
        clips = np.stack(
            [a.state.ring.gather(clip_times(a.timestamp_ms, self.detector.clip)) for a in accepted]
        )
        dets = self.detector.detect(clips, self.score_threshold)
        times.detector_calls += 1
        times.frames += len(accepted)
        t2 = clock()
        times.detector_s += t2 - t1
        tracked, ended, requests = self._track(accepted, dets)
        t3 = clock()
        times.tracking_s += t3 - t2
        scores = self._classify(requests)
        times.action_s += clock() - t3
        return self._results(accepted, tracked, ended, requests, scores)

    def _ingest(self, items: list[FrameInput], t_start: float) -> list[AcceptedFrame]:
        """Check, repair and buffer each frame (dropped ones are counted by their sensor)."""
        accepted = []
        for f in items:
            state = self.sensor(f.sensor_id)
            repaired = state.ingest(int(f.timestamp_ms), np.asarray(f.frame), self.temporal_radius)
            if repaired is not None:
                arrival = f.arrival_s if f.arrival_s is not None else t_start
                accepted.append(AcceptedFrame(state, int(f.timestamp_ms), repaired, arrival))
        return accepted

    def _track(
        self, accepted: list[AcceptedFrame], dets: list[Detections]
    ) -> tuple[list[list[TrackedBox]], list[tuple[int, ...]], ActionRequests]:
        """Update every frame's tracker with its person detections; collect the due tracks."""
        tracked_per_frame: list[list[TrackedBox]] = []
        ended_per_frame: list[tuple[int, ...]] = []
        requests = ActionRequests()
        for i, (a, d) in enumerate(zip(accepted, dets, strict=True)):
            person = d.labels.cpu().numpy() == PERSON
            boxes, scores = d.boxes.cpu().numpy()[person], d.scores.cpu().numpy()[person]
            tracked, ended = a.state.update_tracks(a.timestamp_ms, boxes, scores)
            tracked_per_frame.append(tracked)
            ended_per_frame.append(ended)
            due = a.state.due(tracked, a.timestamp_ms, self.cadence_ms)
            if not due:
                continue
            clip_index = len(requests.clips)
            requests.clips.append(a.state.ring.gather(clip_times(a.timestamp_ms, self.action.clip)))
            requests.keys.append((a.state.sensor_id, a.timestamp_ms))
            for tb in due:
                requests.rows[(i, tb.track_id)] = len(requests.rois)
                requests.rois.append([float(clip_index), *tb.box])
                requests.track_ids.append(tb.track_id)
        return tracked_per_frame, ended_per_frame, requests

    def _classify(self, requests: ActionRequests) -> FloatArray:
        """Class scores ``[K, C]`` of every due track, in one action call (none when none is due)."""
        if not requests.rois:
            return np.zeros((0, len(self._classes)), dtype=np.float32)
        clips, boxes = np.stack(requests.clips), np.asarray(requests.rois, dtype=np.float32)
        if self.memory_action is not None:
            keys = ClipKeys(
                [k[0] for k in requests.keys],
                [k[1] for k in requests.keys],
                np.asarray(requests.track_ids, dtype=np.int64),
            )
            scores = self.memory_action.scores(clips, boxes, keys)
        else:
            scores = self.action.scores(clips, boxes)
        self.times.action_calls += 1
        self.times.action_clips += len(requests.clips)
        self.times.action_boxes += len(requests.rois)
        return scores

    def _results(
        self,
        accepted: list[AcceptedFrame],
        tracked: list[list[TrackedBox]],
        ended: list[tuple[int, ...]],
        requests: ActionRequests,
        scores: FloatArray,
    ) -> list[FrameResult]:
        """Record the new classifications and report every tracked person of every frame."""
        results: list[FrameResult] = []
        for i, a in enumerate(accepted):
            state = a.state
            persons: list[PersonResult] = []
            for tb in tracked[i]:
                row = requests.rows.get((i, tb.track_id))
                if row is not None:
                    state.record(tb.track_id, scores[row], a.timestamp_ms)
                s, when = state.latest(tb.track_id)
                top = int(np.argmax(s))
                persons.append(
                    PersonResult(
                        state.sensor_id,
                        tb.track_id,
                        a.timestamp_ms,
                        tb.box,
                        tb.score,
                        s,
                        top,
                        self._classes[top],
                        float(s[top]),
                        row is not None,
                        when,
                    )
                )
            results.append(
                FrameResult(
                    state.sensor_id, a.timestamp_ms, tuple(persons), ended[i], a.repaired, a.arrival_s
                )
            )
        return results


def results_by_mode(results: Iterable[FrameResult], mode: Literal["all", "fresh"]) -> list[PersonResult]:
    """The person results of ``results``: all of them, or only fresh classifications."""
    return [p for r in results for p in r.persons if mode == "all" or p.fresh]


def counters_dict(counters: Mapping[str, SensorCounters]) -> dict[str, dict[str, int]]:
    return {k: v.to_dict() for k, v in counters.items()}
