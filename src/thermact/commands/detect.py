"""``thermact detect``: persons, tracks and actions over whole recordings, offline.

Usage::

    thermact detect [RECORDING.h5 | DIR] checkpoint=ACTION.pt detector=DETECTOR.pt [out=DIR]
                    [cadence_s=1.0] [score_threshold=0.3] [heat_growth=true] [animation=auto|gif|mp4|none] [every=3]

``DIR`` is a dataset directory (its ``frames/*.h5``) or a directory of ``.h5`` recordings; the
default is the bundled dataset. Each recording is fed frame by frame, as one live sensor, through the
:class:`~thermact.inference.streaming.StreamingPredictor` the live stream uses (its invalid pixels
put back as the sensor sent them and repaired causally), so the results equal what
``thermact stream`` / :class:`~thermact.inference.streaming.StreamingPredictor` produce live:
the person detector on every frame, the tracker, and the action model on each confirmed track
every ``cadence_s`` seconds on the **causal** clip ending at that frame.

Outputs in ``out`` (default ``runs/detect``), each written atomically:

* ``<recording>.jsonl``: one line per frame: ``recording``, ``timestamp_ms``, ``frame_index``
  and ``persons`` (per tracked person: ``track_id``, ``box`` pixel XYXY, ``det_score``,
  ``top_class``, ``top_label``, ``top_score``, ``scores`` over the classes of ``summary.json``,
  ``fresh`` (classified at this frame) and ``classified_ms`` (the frame its scores come from));
* ``detections.csv``: AVA detection rows as the official AVA evaluator and PySlowFast read them
  (:mod:`thermact.data.ava`: 8 columns, score last, timestamps in integer Unix milliseconds) for
  every fresh classification, one row per class, score = detection score × class score (the
  track ids are in the ``.jsonl`` files); ``label_map.pbtxt`` with the class ids;
* ``<recording>.gif`` (or ``.mp4`` when ``ffmpeg`` is installed): every ``every``-th frame,
  colour-mapped and upscaled ``scale`` times, with boxes, track ids and labels;
* ``events.jsonl``: lying-with-risk events (``lying_min_s`` seconds, see
  :mod:`thermact.inference.events`);
* ``summary.json``: options, classes, per-recording counts and timings.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from thermact.commands._common import check_out_dir
from thermact.config import build_config, config_to_dict, parse_overrides
from thermact.data.ava import AvaRow, detection_rows, write_ava_csv, write_label_map
from thermact.data.recording import Recording
from thermact.data.source import default_dataset_root, load_recordings
from thermact.errors import ConfigError, DataError, ProblemLog
from thermact.inference.events import Event, LyingWithRiskEvent
from thermact.inference.pipeline import FrameResult, PersonResult
from thermact.inference.render import render_animation
from thermact.inference.runners import Precision, load_action_model, load_detector
from thermact.inference.sensor import raw_frames
from thermact.inference.streaming import StreamingPredictor
from thermact.io import atomic_open, write_json_atomic
from thermact.models.tta import TTA
from thermact.shipped import DEFAULT_ACTION_MODEL, DEFAULT_DETECTOR
from thermact.tracking.tracker import TrackerConfig

__all__ = ["DetectOptions", "RecordingOutcome", "load_detect_options", "main", "run_detect"]


@dataclasses.dataclass
class DetectOptions:
    """Options of ``thermact detect`` (``key=value`` on the command line)."""

    checkpoint: str = DEFAULT_ACTION_MODEL
    """Action model: a checkpoint (.pt), an exported .onnx or a shipped model's name."""
    detector: str = DEFAULT_DETECTOR
    """Person detector: a checkpoint (.pt), an .onnx exported with its metadata or a shipped name."""
    out: str = "runs/detect"
    """Output directory."""
    exist_ok: bool = False
    """Write into an existing non-empty ``out`` (files of the same name are replaced)."""
    cadence_s: float = 1.0
    """Seconds between two classifications of one track."""
    score_threshold: float = 0.3
    """Lowest person-detection score tracked."""
    heat_growth: bool = True
    """Grow the person boxes to the body heat around them as the detector's config says
    (``eval.heat_growth_c``, README: Person detector); false: the boxes as decoded."""
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    """auto (CUDA when present), cpu or cuda."""
    precision: Precision = "fp32"
    """PyTorch models: ``fp32`` or ``bf16`` (bfloat16 autocast)."""
    tta: TTA = "none"
    """Action model: none, or flips (scores averaged over the four flips of each clip; up to 4x its compute)."""
    animation: Literal["auto", "gif", "mp4", "none"] = "auto"
    """``auto``: MP4 when ``ffmpeg`` is installed, else GIF."""
    every: int = 3
    """The animation shows every ``every``-th frame."""
    scale: int = 6
    """Animation pixels per sensor pixel."""
    cmap: str = "inferno"
    """Matplotlib colour map of the animation."""
    lying_min_s: float = 10.0
    """Seconds of 'lying with risk' before an event is raised (``events.jsonl``)."""
    threads: int = 1
    """CPU threads of PyTorch / onnxruntime (more threads rarely help these small models)."""
    tracker: TrackerConfig = dataclasses.field(default_factory=TrackerConfig)

    def __post_init__(self) -> None:
        if not self.checkpoint or not self.detector:
            raise ConfigError("config keys 'checkpoint', 'detector': must not be empty")
        if not self.cadence_s > 0:
            raise ConfigError(f"config key 'cadence_s': must be > 0, got {self.cadence_s}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError(f"config key 'score_threshold': must be in [0, 1], got {self.score_threshold}")
        if self.every < 1 or self.scale < 1:
            raise ConfigError(f"config keys 'every', 'scale': must be >= 1, got {self.every}, {self.scale}")
        if not self.lying_min_s >= 0:
            raise ConfigError(f"config key 'lying_min_s': must be >= 0, got {self.lying_min_s}")
        if self.threads < 1:
            raise ConfigError(f"config key 'threads': must be >= 1, got {self.threads}")
        import matplotlib

        if self.cmap not in matplotlib.colormaps:
            raise ConfigError(f"config key 'cmap': unknown matplotlib colour map {self.cmap!r}")


def load_detect_options(overrides: Sequence[str]) -> DetectOptions:
    return build_config(DetectOptions, None, parse_overrides(overrides))


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


@dataclasses.dataclass
class RecordingOutcome:
    """What ``detect`` did with one recording."""

    recording_id: str
    frames: int
    tracks: int
    classifications: int
    seconds: float
    outputs: list[str]
    label_frames: dict[str, int]
    """Frames per top label over all tracked persons."""
    counters: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _jsonl_line(rec_id: str, index: int, fr: FrameResult) -> str:
    return json.dumps(
        {
            "recording": rec_id,
            "timestamp_ms": fr.timestamp_ms,
            "frame_index": index,
            "persons": [p.to_dict() for p in fr.persons],
        }
    )


def _csv_rows(rec_id: str, persons: Sequence[PersonResult], frame_size: tuple[int, int]) -> list[AvaRow]:
    fresh = [p for p in persons if p.fresh]
    if not fresh:
        return []
    boxes = np.array([p.box for p in fresh], dtype=np.float64)
    scores = np.stack([p.scores.astype(np.float64) * p.det_score for p in fresh])
    return detection_rows(
        rec_id, fresh[0].timestamp_ms, boxes, scores, frame_size, person_ids=[p.track_id for p in fresh]
    )


def detect_recording(
    predictor: StreamingPredictor, rec: Recording, opts: DetectOptions, out: Path, progress: bool
) -> tuple[RecordingOutcome, list[AvaRow], list[Event]]:
    """Push one recording frame by frame through ``predictor`` (as a live sensor would send it),
    write its ``.jsonl`` and animation; return its outcome, AVA rows and events."""
    rid, frame_size = rec.recording_id, rec.frame_size
    raw = raw_frames(rec.frames, rec.valid)
    shown: list[int] = []
    shown_persons: list[tuple[PersonResult, ...]] = []
    rows: list[AvaRow] = []
    labels: Counter[str] = Counter()
    track_ids: set[int] = set()
    t0 = time.perf_counter()
    bar = tqdm(total=len(raw), desc=rid, unit="frame", disable=None if progress else True, leave=False)
    with atomic_open(out / f"{rid}.jsonl", "w") as handle, bar:
        for i, (ts, frame) in enumerate(zip(rec.timestamps, raw, strict=True)):
            predictor.push(rid, int(ts), frame)
            for fr in predictor.last_frames:
                handle.write(_jsonl_line(rid, i, fr) + "\n")
                rows.extend(_csv_rows(rid, fr.persons, frame_size))
                labels.update(p.top_label for p in fr.persons)
                track_ids.update(p.track_id for p in fr.persons)
                if i % opts.every == 0:
                    shown.append(i)
                    shown_persons.append(fr.persons)
            bar.update(1)
    counters = dataclasses.replace(predictor.stats().counters)
    # frames the file repeated or held out of order (lenient) were dropped / sorted on reading
    counters.frames_in += rec.timing.duplicates_removed
    counters.duplicates += rec.timing.duplicates_removed
    counters.out_of_order += rec.timing.out_of_order
    predictor.close_sensor(rid, int(rec.timestamps[-1]), reason="recording_ended")  # its tracks end with it
    seconds = time.perf_counter() - t0
    outputs = [str(out / f"{rid}.jsonl")]
    if opts.animation != "none" and shown:
        fmt: Literal["auto", "gif", "mp4"] = opts.animation
        path = render_animation(
            out / rid, rec.frames[shown], rec.timestamps[shown], shown_persons,
            scale=opts.scale, cmap=opts.cmap, fmt=fmt, title=rid,
        )  # fmt: skip
        outputs.append(str(path))
    outcome = RecordingOutcome(
        rid, counters.accepted, len(track_ids), counters.classifications, seconds, outputs,
        dict(labels.most_common()), counters.to_dict(),
    )  # fmt: skip
    return outcome, rows, predictor.take_events()


def run_detect(
    target: str | None, opts: DetectOptions, lenient: bool = False, progress: bool = True
) -> tuple[list[RecordingOutcome], list[Event]]:
    """Run the live predictor over every recording of ``target`` and write the outputs (module
    docstring), with ``opts.threads`` torch threads (the caller's setting is restored after).

    Raises:
        CheckpointError: a model cannot be loaded or is of the wrong kind.
        DataError: a recording is missing or unreadable (lenient: skipped with a warning).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(opts.threads)
    try:
        return _detect_all(target, opts, lenient, progress)
    finally:
        torch.set_num_threads(previous)


def _detect_all(
    target: str | None, opts: DetectOptions, lenient: bool, progress: bool
) -> tuple[list[RecordingOutcome], list[Event]]:
    out = Path(opts.out)
    check_out_dir(out, opts.exist_ok)
    device = _device(opts.device)
    action = load_action_model(
        opts.checkpoint, device, threads=opts.threads, precision=opts.precision, tta=opts.tta
    )
    detector = load_detector(
        opts.detector, device, threads=opts.threads, precision=opts.precision, heat_growth=opts.heat_growth
    )
    problems = ProblemLog(lenient=lenient)
    recordings = load_recordings(target, problems)  # read (and check) all inputs before writing anything
    ids = [r.recording_id for r in recordings]
    if len(set(ids)) != len(ids):
        raise DataError(f"{target}: recording ids (file stems) repeat: {sorted(ids)}")
    events: list[Event] = []
    rows: list[AvaRow] = []
    outcomes: list[RecordingOutcome] = []
    for rec in recordings:
        predictor = StreamingPredictor(
            action, detector, opts.tracker, opts.cadence_s, events=[LyingWithRiskEvent(opts.lying_min_s)],
            max_sensors=1, score_threshold=opts.score_threshold, frame_size=rec.frame_size,
        )  # fmt: skip
        outcome, rec_rows, rec_events = detect_recording(predictor, rec, opts, out, progress)
        outcomes.append(outcome)
        rows.extend(rec_rows)
        events.extend(rec_events)
    write_ava_csv(out / "detections.csv", rows)
    write_label_map(out / "label_map.pbtxt", action.classes)
    with atomic_open(out / "events.jsonl", "w") as handle:
        for e in events:
            handle.write(json.dumps(e.to_dict()) + "\n")
    write_json_atomic(
        out / "summary.json",
        {
            "options": config_to_dict(opts),
            "target": str(target) if target is not None else str(default_dataset_root()),
            "classes": action.classes,
            "clip": {
                "window_s": action.clip.window_s,
                "num_frames": action.clip.num_frames,
                "position": "causal",
            },
            "recordings": [o.to_dict() for o in outcomes],
            "events": [e.to_dict() for e in events],
            "csv_rows": len(rows),
        },
    )
    return outcomes, events


def main(target: str | None, overrides: list[str], lenient: bool) -> int:
    """``thermact detect [RECORDING.h5|DIR] checkpoint=ACTION.pt detector=DETECTOR.pt [key=value ...]``."""
    opts = load_detect_options(overrides)
    outcomes, events = run_detect(target, opts, lenient)
    for o in outcomes:
        top = ", ".join(f"{k} {v}" for k, v in list(o.label_frames.items())[:3]) or "no person tracked"
        print(
            f"{o.recording_id}: {o.frames} frames, {o.tracks} tracks, {o.classifications} classifications "
            f"in {o.seconds:.1f} s; most frequent: {top}"
        )
    for e in events:
        print(e.describe())
    animated = any(len(o.outputs) > 1 for o in outcomes)
    per_recording = ".jsonl + animation" if animated else ".jsonl"
    print(
        f"wrote {Path(opts.out)}/ (per recording {per_recording}, detections.csv, events.jsonl, summary.json)"
    )
    return 0
