"""Multi-person tracking by detection: stable ids across irregularly timed frames.

Each frame, every live track is predicted to the frame's time with a constant-velocity Kalman
filter, the predictions are associated with the frame's detections by optimal assignment
(:func:`thermact.tracking.assignment.gated_assignment`), matched tracks are corrected with their
detection, and unmatched detections start new tracks.

Boxes are pixel XYXY ``[x1, y1, x2, y2]`` (the 60×40 sensor frame, see :mod:`thermact.ops.boxes`);
times are integer milliseconds.

Motion model
    Per track, four independent constant-velocity Kalman filters on the box centre ``cx, cy`` and
    size ``w, h`` (state: value and rate of change in px/s). The prediction uses the real time
    step ``dt`` between frames (frames arrive at ~6 fps with gaps up to 2.6 s) and a
    white-acceleration process noise, so the uncertainty grows with the gap. Predicted sizes are
    kept at least 1 px.

Association cost
    People are 7-19 px wide; walking between two frames a box can move further than its own
    width, so IoU alone drops to 0. The cost of a (track, detection) pair combines both cues::

        cost = (1 - IoU) + min(d / max_center_distance_px, 1)

    with ``d`` the distance of the box centres. People in a room start, stop and turn, so each
    track offers two hypotheses, its predicted box and its last detected box ("it stopped"):
    ``IoU`` is the larger of the two IoUs with the detection, ``d`` the smaller of the two
    distances. A pair is allowed when ``IoU >= iou_threshold``
    or ``d <= max_center_distance_px``; the assignment maximises ``sum(ASSIGNMENT_GATE - cost)``
    over allowed pairs (every allowed pair gains at least 1, so more matches are preferred and,
    among as many matches, the cheaper ones).

Low-score detections (``birth_score``, as ByteTrack)
    A person who lies down or stays still often keeps being detected, but with a lower score. With
    ``birth_score > min_score`` the association runs twice: first the detections scoring at least
    ``birth_score`` against all tracks, then the remaining confirmed and lost tracks against the
    detections scoring in ``[min_score, birth_score)``. A low-score detection can only continue a
    track; it never starts one. ``birth_score <= min_score`` (the default) is one association of
    every detection, as before.

Track life cycle
    A (high-score) detection not matched to a track starts a *tentative* track. It becomes *confirmed* (and
    gets its id) once it has been matched in ``min_hits`` frames, counting its first
    (``min_hits=1``: confirmed at once); a tentative track that misses a frame is dropped. A
    confirmed track that misses a frame becomes *lost*; it is still predicted and can be matched
    again (back to confirmed, same id) until more than ``max_age_s`` seconds have passed since
    its last match, then it is dropped (the check runs on each frame's timestamp before
    association, so a detection arriving after a longer gap starts a new track). Only confirmed
    tracks matched in the current frame are reported.

Ids
    Positive integers 1, 2, 3, ... in order of confirmation, never reused until :meth:`Tracker.reset`.

Timestamps
    Frames must come in increasing time. A frame whose timestamp is not larger than the last
    processed one (out of order or a duplicate) is ignored: :meth:`Tracker.update` returns an
    empty list, leaves all state unchanged and counts it in :attr:`Tracker.frames_ignored` (the
    recording loader likewise keeps the first of duplicate timestamps).

Everything is deterministic: ties in the assignment go to the lower index; new tracks are created
in detection order.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from thermact.errors import ConfigError
from thermact.tracking.assignment import gated_assignment

__all__ = ["ASSIGNMENT_GATE", "Track", "TrackState", "TrackedBox", "Tracker", "TrackerConfig", "pairwise_iou"]

TrackState = Literal["tentative", "confirmed", "lost"]
FloatArray = npt.NDArray[np.float64]

ASSIGNMENT_GATE = 3.0
"""``max_cost`` of the gated assignment; allowed costs lie in [0, 2]."""


@dataclasses.dataclass(frozen=True)
class TrackerConfig:
    """Settings of :class:`Tracker` (all validated on construction, :class:`ConfigError` naming the key).

    Attributes:
        iou_threshold: a pair with at least this IoU (predicted vs detected box) is allowed.
        max_center_distance_px: a pair whose box centres are at most this far apart is allowed
            (the fallback for small, fast boxes); also the distance scale of the cost.
        min_hits: birth patience: matched frames (including the first) before a track is confirmed.
        max_age_s: death patience: seconds without a match after which a track is dropped.
        min_score: detections scoring below this are ignored.
        birth_score: detections scoring below this (and at least ``min_score``) only continue
            confirmed or lost tracks (second association, see the module docstring); 0: off.
        measurement_noise_px: standard deviation of a detected box's centre / size.
        center_acceleration_px_s2: process noise (std of acceleration) of the centre.
        size_acceleration_px_s2: process noise (std of acceleration) of the width / height.
        initial_velocity_px_s: prior std of the centre velocity of a new track.
        initial_size_rate_px_s: prior std of the rate of change of the size of a new track.
    """

    iou_threshold: float = 0.1
    max_center_distance_px: float = 8.0
    min_hits: int = 2
    max_age_s: float = 3.0
    min_score: float = 0.0
    birth_score: float = 0.0
    measurement_noise_px: float = 1.0
    center_acceleration_px_s2: float = 4.0
    size_acceleration_px_s2: float = 2.0
    initial_velocity_px_s: float = 5.0
    initial_size_rate_px_s: float = 2.0

    def __post_init__(self) -> None:
        def number(name: str) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"tracker.{name}: expected a finite number, got {value!r}")
            return float(value)

        if not 0.0 < number("iou_threshold") <= 1.0:
            raise ConfigError(f"tracker.iou_threshold: must be in (0, 1], got {self.iou_threshold!r}")
        for name in (
            "max_center_distance_px",
            "max_age_s",
            "measurement_noise_px",
            "center_acceleration_px_s2",
            "size_acceleration_px_s2",
            "initial_velocity_px_s",
            "initial_size_rate_px_s",
        ):
            if number(name) <= 0.0:
                raise ConfigError(f"tracker.{name}: must be > 0, got {getattr(self, name)!r}")
        number("min_score")
        number("birth_score")
        if isinstance(self.min_hits, bool) or not isinstance(self.min_hits, int) or self.min_hits < 1:
            raise ConfigError(f"tracker.min_hits: must be an integer >= 1, got {self.min_hits!r}")


@dataclasses.dataclass(frozen=True)
class TrackedBox:
    """A confirmed track matched in the current frame.

    Attributes:
        track_id: the track's id (>= 1).
        box: the matched detection's pixel XYXY box, as given to :meth:`Tracker.update`.
        score: the detection's score.
        detection_index: index of the detection in that frame's ``boxes``.
    """

    track_id: int
    box: tuple[float, float, float, float]
    score: float
    detection_index: int


def _xyxy_to_cxcywh(boxes: FloatArray) -> FloatArray:
    return np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], axis=1)


def _center_distance(boxes: FloatArray, det_cxcywh: FloatArray) -> FloatArray:
    """Distance of the centres of XYXY ``boxes [N, 4]`` and ``det_cxcywh [M, 4]`` → ``[N, M]``."""
    c = _xyxy_to_cxcywh(boxes)
    return np.hypot(c[:, None, 0] - det_cxcywh[None, :, 0], c[:, None, 1] - det_cxcywh[None, :, 1])


def pairwise_iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """IoU of XYXY boxes ``a [N, 4]`` and ``b [M, 4]`` → ``[N, M]`` (0 where the union is empty)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.maximum(rb - lt, 0.0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


class Track:
    """One tracked person: Kalman state and life-cycle counters.

    Attributes:
        id: the public id (>= 1) once confirmed, -1 while tentative.
        state: ``"tentative"``, ``"confirmed"`` or ``"lost"``.
        hits: number of frames in which the track was matched (its first detection included).
        age: number of processed frames since the track was born (birth frame = 1).
        misses: consecutive processed frames without a match.
        born_ms: timestamp of the first detection.
        last_seen_ms: timestamp of the last match.
        time_ms: timestamp the Kalman state refers to (the last processed frame).
        last_box: the pixel XYXY detection of the last match.
    """

    def __init__(self, box_cxcywh: FloatArray, timestamp_ms: int, config: TrackerConfig) -> None:
        self.id = -1
        self.state: TrackState = "tentative"
        self.hits = 1
        self.age = 1
        self.misses = 0
        self.born_ms = timestamp_ms
        self.last_seen_ms = timestamp_ms
        self.time_ms = timestamp_ms
        cx, cy, w, h = (float(v) for v in box_cxcywh)
        self.last_box: tuple[float, float, float, float] = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        r2 = config.measurement_noise_px**2
        # Per component (cx, cy, w, h): mean [value, rate] and 2x2 covariance.
        self._mean = np.stack([box_cxcywh.astype(np.float64), np.zeros(4)], axis=1)  # [4, 2]
        rate_var = np.array(
            [config.initial_velocity_px_s**2] * 2 + [config.initial_size_rate_px_s**2] * 2, dtype=np.float64
        )
        self._cov = np.zeros((4, 2, 2))
        self._cov[:, 0, 0] = r2
        self._cov[:, 1, 1] = rate_var
        self._accel = np.array(
            [config.center_acceleration_px_s2] * 2 + [config.size_acceleration_px_s2] * 2, dtype=np.float64
        )
        self._r2 = r2

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Filtered (or, for a track missed in the last frame, predicted) pixel XYXY box."""
        cx, cy = self._mean[0, 0], self._mean[1, 0]
        w, h = max(self._mean[2, 0], 1.0), max(self._mean[3, 0], 1.0)
        return (float(cx - w / 2), float(cy - h / 2), float(cx + w / 2), float(cy + h / 2))

    @property
    def velocity(self) -> tuple[float, float, float, float]:
        """Estimated rates ``(d cx, d cy, d w, d h)`` in px/s."""
        return (
            float(self._mean[0, 1]),
            float(self._mean[1, 1]),
            float(self._mean[2, 1]),
            float(self._mean[3, 1]),
        )

    def predict(self, timestamp_ms: int) -> None:
        """Advance the state to ``timestamp_ms`` (constant velocity, white-acceleration noise)."""
        dt = (timestamp_ms - self.time_ms) / 1000.0
        if dt <= 0:
            return
        F = np.array([[1.0, dt], [0.0, 1.0]])
        q = np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        self._mean = self._mean @ F.T
        self._cov = F @ self._cov @ F.T + (self._accel**2)[:, None, None] * q
        self.time_ms = timestamp_ms

    def correct(self, box_cxcywh: FloatArray) -> None:
        """Kalman update with a measured ``[cx, cy, w, h]``."""
        innovation = box_cxcywh - self._mean[:, 0]
        s = self._cov[:, 0, 0] + self._r2
        gain = self._cov[:, :, 0] / s[:, None]  # [4, 2]
        self._mean = self._mean + gain * innovation[:, None]
        self._cov = self._cov - gain[:, :, None] * self._cov[:, None, 0, :]

    def __repr__(self) -> str:
        box = ", ".join(f"{v:.1f}" for v in self.box)
        return f"Track(id={self.id}, state={self.state}, hits={self.hits}, box=[{box}])"


def _check_detections(boxes: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """``boxes [N, 4]`` and ``scores [N]`` as float64 arrays (a ValueError when malformed or non-finite)."""
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        b = b.reshape(0, 4)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"Tracker.update: boxes must have shape [N, 4], got {list(b.shape)}")
    if s.shape[0] != b.shape[0]:
        raise ValueError(f"Tracker.update: scores must have shape [{b.shape[0]}], got {list(s.shape)}")
    if not (np.isfinite(b).all() and np.isfinite(s).all()):
        raise ValueError("Tracker.update: boxes and scores must be finite")
    return b, s


class Tracker:
    """Online multi-object tracker (see the module docstring for the method).

    Example::

        tracker = Tracker(TrackerConfig(min_hits=2, max_age_s=3.0))
        for t_ms, boxes, scores in detections:        # boxes [N, 4] pixel XYXY, scores [N]
            for tb in tracker.update(t_ms, boxes, scores):
                print(t_ms, tb.track_id, tb.box)
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config if config is not None else TrackerConfig()
        self.reset()

    def reset(self) -> None:
        """Forget all tracks and timestamps; ids start at 1 again."""
        self.tracks: list[Track] = []
        self.last_timestamp_ms: int | None = None
        self.frames_ignored = 0
        self._next_id = 1

    @property
    def next_id(self) -> int:
        """The id the next confirmed track will get."""
        return self._next_id

    def _confirm(self, track: Track) -> None:
        if track.id < 0:
            track.id = self._next_id
            self._next_id += 1
        track.state = "confirmed"

    def update(self, timestamp_ms: int, boxes: npt.ArrayLike, scores: npt.ArrayLike) -> list[TrackedBox]:
        """Process one frame of detections.

        Args:
            timestamp_ms: frame time in milliseconds; must exceed the last processed frame's,
                otherwise the frame is ignored (see the module docstring).
            boxes: ``[N, 4]`` pixel XYXY detections (``N`` may be 0).
            scores: ``[N]`` detection scores.

        Returns:
            The confirmed tracks matched in this frame, sorted by ``track_id``.

        Raises:
            ValueError: on wrongly shaped or non-finite boxes / scores.
        """
        b, s = _check_detections(boxes, scores)
        t = int(timestamp_ms)
        if self.last_timestamp_ms is not None and t <= self.last_timestamp_ms:
            self.frames_ignored += 1
            return []
        self.last_timestamp_ms = t
        cfg = self.config

        # Death by age, before association.
        max_age_ms = cfg.max_age_s * 1000.0
        self.tracks = [tr for tr in self.tracks if t - tr.last_seen_ms <= max_age_ms]
        for tr in self.tracks:
            tr.predict(t)
            tr.age += 1

        high_idx, low_idx = self._split_by_score(s)
        det_idx = np.concatenate([high_idx, low_idx])  # positions >= n_high: continue tracks only
        n_high = high_idx.shape[0]
        det_boxes = b[det_idx]
        det_cxcywh = _xyxy_to_cxcywh(det_boxes)

        matches, unmatched_dets = self._associate(self.tracks, det_boxes[:n_high], det_cxcywh[:n_high])
        if low_idx.shape[0]:
            matches += self._associate_low(matches, det_boxes, det_cxcywh, n_high)

        out: list[TrackedBox] = []
        matched_tracks = set()
        for ti, dj in matches:
            tr = self.tracks[ti]
            matched_tracks.add(ti)
            tr.correct(det_cxcywh[dj])
            x1, y1, x2, y2 = (float(v) for v in det_boxes[dj])
            tr.last_box = (x1, y1, x2, y2)
            tr.hits += 1
            tr.misses = 0
            tr.last_seen_ms = t
            if tr.state == "lost" or (tr.state == "tentative" and tr.hits >= cfg.min_hits):
                self._confirm(tr)
            if tr.state == "confirmed":
                out.append(self._report(tr, b, s, int(det_idx[dj])))

        survivors: list[Track] = []
        for ti, tr in enumerate(self.tracks):
            if ti not in matched_tracks:
                tr.misses += 1
                if tr.state == "tentative":
                    continue  # a tentative track dies at its first miss
                tr.state = "lost"
            survivors.append(tr)
        for dj in unmatched_dets:
            tr = Track(det_cxcywh[dj], t, cfg)
            if cfg.min_hits <= 1:
                self._confirm(tr)
                out.append(self._report(tr, b, s, int(det_idx[dj])))
            survivors.append(tr)
        self.tracks = survivors
        out.sort(key=lambda tb: tb.track_id)
        return out

    def _split_by_score(self, scores: FloatArray) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Positions of the high-score detections (may start tracks) and of the low-score ones."""
        cfg = self.config
        high = np.nonzero(scores >= max(cfg.min_score, cfg.birth_score))[0]
        low = np.nonzero((scores >= cfg.min_score) & (scores < cfg.birth_score))[0]
        return high, low

    def _associate_low(
        self, matches: list[tuple[int, int]], det_boxes: FloatArray, det_cxcywh: FloatArray, n_high: int
    ) -> list[tuple[int, int]]:
        """Second association: the confirmed / lost tracks left unmatched against the low-score
        detections (positions ``n_high:``); matches in track and detection positions."""
        matched = {ti for ti, _ in matches}
        left = [ti for ti, tr in enumerate(self.tracks) if ti not in matched and tr.state != "tentative"]
        if not left:
            return []
        second, _ = self._associate([self.tracks[ti] for ti in left], det_boxes[n_high:], det_cxcywh[n_high:])
        return [(left[ti], n_high + dj) for ti, dj in second]

    def _associate(
        self, tracks: list[Track], det_boxes: FloatArray, det_cxcywh: FloatArray
    ) -> tuple[list[tuple[int, int]], list[int]]:
        """Gated optimal assignment of the (predicted) ``tracks`` to the detections: ``(track
        position, detection position)`` matches and the unmatched detections. Two hypotheses per
        track: it moved as predicted, or it stopped where last seen."""
        if not tracks or not det_boxes.shape[0]:
            return [], list(range(det_boxes.shape[0]))
        cfg = self.config
        n = len(tracks)
        # rows 0..n-1: predicted boxes, n..2n-1: the boxes where the tracks were last seen
        hypotheses = np.array([tr.box for tr in tracks] + [tr.last_box for tr in tracks], dtype=np.float64)
        iou_both, dist_both = pairwise_iou(hypotheses, det_boxes), _center_distance(hypotheses, det_cxcywh)
        iou = np.maximum(iou_both[:n], iou_both[n:])
        dist = np.minimum(dist_both[:n], dist_both[n:])
        allowed = (iou >= cfg.iou_threshold) | (dist <= cfg.max_center_distance_px)
        cost = (1.0 - iou) + np.minimum(dist / cfg.max_center_distance_px, 1.0)
        result = gated_assignment(np.where(allowed, cost, np.inf), ASSIGNMENT_GATE)
        return [(int(i), int(j)) for i, j in result.matches], [int(j) for j in result.unmatched_cols]

    @staticmethod
    def _report(track: Track, boxes: FloatArray, scores: FloatArray, index: int) -> TrackedBox:
        x1, y1, x2, y2 = (float(v) for v in boxes[index])
        return TrackedBox(track.id, (x1, y1, x2, y2), float(scores[index]), index)
