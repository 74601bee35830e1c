"""``thermact stream``: replay recordings as live sensors through a :class:`StreamingPredictor`.

Usage::

    thermact stream [DIR] [checkpoint=ACTION.pt] [detector=DETECTOR.pt] [speed=1.0|max] [onnx=false]
                    [cadence_s=1.0] [lying_min_s=10] [limit_s=...]

Every recording of ``DIR`` (a dataset directory or a directory of ``.h5`` files; default: the
bundled dataset's frames) is one sensor named after its file. With ``align=true`` (default) the
recordings are shifted in time to start together (all sensors live at once; the bundled ones were
recorded on two days); ``align=false`` keeps their real times and skips stretches of more than
``max_idle_s`` without any frame. Their frames (invalid pixels put back as the sensor's
``-273.2`` °C) are interleaved by timestamp and pushed at real speed (``speed=2`` twice as
fast, ``speed=max`` as fast as the models allow, in rounds of at most one frame per sensor). Events are printed as they happen, then a summary: frames, drops, events,
throughput, latency from a frame's arrival to its results, and the time per stage.
``onnx=true`` exports both models to ONNX (in a temporary directory) and runs them with
onnxruntime instead of PyTorch.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from thermact.config import build_config, parse_overrides
from thermact.data.recording import Recording
from thermact.data.source import load_recordings
from thermact.errors import ConfigError, ProblemLog
from thermact.export.onnx import export_action_onnx, export_detector_onnx
from thermact.inference.events import Event, LyingWithRiskEvent
from thermact.inference.pipeline import FrameInput
from thermact.inference.runners import (
    ActionModelLike,
    DetectorLike,
    Precision,
    load_action_model,
    load_detector,
)
from thermact.inference.streaming import StreamingPredictor, StreamStats, interleave
from thermact.io import check_writable, write_json_atomic
from thermact.models.tta import TTA
from thermact.shipped import DEFAULT_DETECTOR, DEFAULT_STREAM_ACTION_MODEL
from thermact.tasks.action import restore_model
from thermact.tasks.person import restore_detector
from thermact.tracking.tracker import TrackerConfig

__all__ = ["StreamOptions", "load_stream_options", "main", "run_stream"]


@dataclasses.dataclass
class StreamOptions:
    """Options of ``thermact stream``."""

    checkpoint: str = DEFAULT_STREAM_ACTION_MODEL
    """Action model: a checkpoint (.pt), an exported .onnx or a shipped model's name."""
    detector: str = DEFAULT_DETECTOR
    """Person detector: a checkpoint (.pt), an .onnx exported with its metadata or a shipped name."""
    speed: float | Literal["max"] = 1.0
    """Replay speed: 1.0 real time, 2.0 twice as fast, max as fast as the models allow."""
    onnx: bool = False
    """Export both models to ONNX and run them with onnxruntime."""
    cadence_s: float = 1.0
    """Seconds between two classifications of one person."""
    score_threshold: float = 0.3
    """Lowest person-detection score tracked."""
    heat_growth: bool = True
    """Grow the person boxes to the body heat around them as the detector's config says
    (``eval.heat_growth_c``, README: Person detector); false: the boxes as decoded."""
    lying_min_s: float = 10.0
    """Seconds of 'lying with risk' before an event is raised."""
    lying_clear_s: float = 2.0
    """Seconds of another class before a raised event clears."""
    align: bool = True
    """Shift the recordings to start at the same time."""
    max_idle_s: float = 5.0
    """At real speed, a stretch longer than this without frames is skipped (``align=false``)."""
    limit_s: float | None = None
    """Stop after this many seconds of stream time (None: the whole recordings)."""
    threads: int = 1
    """CPU threads of PyTorch / onnxruntime."""
    precision: Precision = "fp32"
    """PyTorch models: ``fp32`` or ``bf16`` (bfloat16 autocast; about twice as fast on CPUs with
    AMX / AVX512-BF16)."""
    tta: TTA = "none"
    """Action model: none, or flips (scores averaged over the four flips of each clip; up to 4x its
    compute; PyTorch only)."""
    out: str | None = None
    """Also write the summary and all events as JSON here."""
    tracker: TrackerConfig = dataclasses.field(default_factory=TrackerConfig)

    def __post_init__(self) -> None:
        if self.speed != "max" and not (isinstance(self.speed, float) and self.speed > 0):
            raise ConfigError(f"config key 'speed': must be > 0 or 'max', got {self.speed!r}")
        if not self.cadence_s > 0:
            raise ConfigError(f"config key 'cadence_s': must be > 0, got {self.cadence_s}")
        if self.limit_s is not None and not self.limit_s > 0:
            raise ConfigError(f"config key 'limit_s': must be > 0, got {self.limit_s}")
        if not self.max_idle_s > 0:
            raise ConfigError(f"config key 'max_idle_s': must be > 0, got {self.max_idle_s}")
        if self.threads < 1:
            raise ConfigError(f"config key 'threads': must be >= 1, got {self.threads}")
        if self.onnx and self.tta != "none":
            raise ConfigError(
                f"config keys 'onnx', 'tta': tta={self.tta} runs the PyTorch model (onnx=false)"
            )


def load_stream_options(overrides: Sequence[str]) -> StreamOptions:
    return build_config(StreamOptions, None, parse_overrides(overrides))


def _models(opts: StreamOptions, tmp: Path) -> tuple[ActionModelLike, DetectorLike]:
    if not opts.onnx or (opts.checkpoint.endswith(".onnx") and opts.detector.endswith(".onnx")):
        return load_action_model(
            opts.checkpoint, threads=opts.threads, precision=opts.precision, tta=opts.tta
        ), load_detector(
            opts.detector, threads=opts.threads, precision=opts.precision, heat_growth=opts.heat_growth
        )
    action_path = Path(opts.checkpoint)
    if action_path.suffix != ".onnx":
        load_action_model(action_path)  # checks the kind of checkpoint, with a clear error
        action_path = export_action_onnx(restore_model(action_path), tmp / "action.onnx")
    detector_path = Path(opts.detector)
    if detector_path.suffix != ".onnx":
        detector_path = export_detector_onnx(restore_detector(detector_path), tmp / "detector.onnx")
    return load_action_model(action_path, threads=opts.threads), load_detector(
        detector_path, threads=opts.threads, heat_growth=opts.heat_growth
    )


def replay(
    predictor: StreamingPredictor,
    recordings: Sequence[Recording],
    offsets: Sequence[int],
    opts: StreamOptions,
    echo: bool,
) -> bool:
    """Push the recordings' interleaved frames into ``predictor``: at ``opts.speed`` times real
    time, or as fast as possible in rounds of at most one frame per sensor. Returns whether it
    was interrupted (Ctrl-C)."""
    t_first = min(r.start_ms + o for r, o in zip(recordings, offsets, strict=True))
    limit_ms = None if opts.limit_s is None else t_first + int(opts.limit_s * 1000)
    wall0 = time.perf_counter()
    batch: list[FrameInput] = []
    skipped_ms = 0
    prev_t = t_first
    try:
        for t, sensor, frame in interleave(recordings, offsets):
            if limit_ms is not None and t > limit_ms:
                break
            if opts.speed == "max":
                if any(f.sensor_id == sensor for f in batch):  # one frame per sensor and round
                    predictor.push_many(batch)
                    batch = []
                batch.append(FrameInput(sensor, t, frame))
                continue
            if t - prev_t > opts.max_idle_s * 1000:
                skipped_ms += t - prev_t
                if echo:
                    print(f"(skipping {(t - prev_t) / 1000.0:.0f} s without frames)", flush=True)
            prev_t = t
            due = wall0 + (t - t_first - skipped_ms) / 1000.0 / float(opts.speed)
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            predictor.push_many([FrameInput(sensor, t, frame, due)])
        if batch:
            predictor.push_many(batch)
    except KeyboardInterrupt:
        return True
    return False


def print_summary(summary: dict[str, Any], stats: StreamStats) -> None:
    """The closing lines of ``thermact stream``: frames and drops, events, latency, time per stage."""
    c, tm = stats.counters, stats.times
    print(
        f"done{' (interrupted)' if summary['interrupted'] else ''}: {c.accepted} of {c.frames_in} frames "
        f"({c.duplicates} duplicate, {c.out_of_order} out of order, {c.empty_frames} empty dropped; "
        f"{c.repaired_frames} frames with {c.repaired_pixels} dead pixels repaired) in {summary['wall_s']:.1f} s, "
        f"{summary['frames_per_s']:.1f} frames/s"
    )
    print(
        f"  {c.classifications} classifications, {stats.events_raised} events raised, "
        f"{stats.events_cleared} cleared; latency arrival->result p50 {stats.result_latency_ms[0]:.1f} ms, "
        f"p99 {stats.result_latency_ms[1]:.1f} ms"
    )
    total = max(tm.total_s, 1e-9)
    stages = (
        ("detector", tm.detector_s),
        ("action", tm.action_s),
        ("tracking", tm.tracking_s),
        ("ingest", tm.ingest_s),
        ("other", tm.other_s),
    )
    print("  time: " + ", ".join(f"{k} {v:.2f} s ({100 * v / total:.0f}%)" for k, v in stages))


def run_stream(
    target: str | None, opts: StreamOptions, lenient: bool = False, echo: bool = True
) -> dict[str, Any]:
    """Replay ``target`` through a predictor (see the module docstring); returns the summary."""
    if opts.out is not None:
        check_writable(opts.out, "out")
    torch.set_num_threads(opts.threads)
    recordings = load_recordings(target, ProblemLog(lenient=lenient))
    events: list[Event] = []
    t_first = min(r.start_ms for r in recordings)
    offsets = [t_first - r.start_ms if opts.align else 0 for r in recordings]

    def show(e: Event) -> None:
        events.append(e)
        if echo:
            at = (e.raised_ms if e.kind == "raised" else int(e.cleared_ms or 0)) - t_first
            print(f"[{at / 1000.0:8.1f} s] {e.describe()}", flush=True)

    backend = "onnxruntime" if opts.onnx else "pytorch"
    with tempfile.TemporaryDirectory(prefix="thermact-stream-") as tmp:
        action, detector = _models(opts, Path(tmp))
        predictor = StreamingPredictor(
            action, detector, opts.tracker, opts.cadence_s,
            events=[LyingWithRiskEvent(opts.lying_min_s, opts.lying_clear_s)], max_sensors=len(recordings),
            score_threshold=opts.score_threshold, on_event=show,
        )  # fmt: skip
        if echo:
            print(
                f"streaming {len(recordings)} sensor(s) at speed {opts.speed} with {backend}, "
                f"{opts.threads} thread(s); classes every {opts.cadence_s:g} s",
                flush=True,
            )
        wall0 = time.perf_counter()
        interrupted = replay(predictor, recordings, offsets, opts, echo)
        for rec in recordings:
            predictor.close_sensor(rec.recording_id)
        wall = time.perf_counter() - wall0
    stats = predictor.stats()
    # frames the files repeated or held out of order were dropped / sorted on reading: count them too
    counters = dataclasses.replace(stats.counters)
    counters.frames_in += sum(r.timing.duplicates_removed for r in recordings)
    counters.duplicates += sum(r.timing.duplicates_removed for r in recordings)
    counters.out_of_order += sum(r.timing.out_of_order for r in recordings)
    stats = dataclasses.replace(stats, counters=counters)
    summary = {
        **stats.to_dict(),
        "sensors": [r.recording_id for r in recordings],
        "backend": backend,
        "speed": opts.speed,
        "wall_s": wall,
        "interrupted": interrupted,
        "frames_per_s": stats.counters.accepted / wall if wall > 0 else 0.0,
        "events": [e.to_dict() for e in events],
    }
    if echo:
        print_summary(summary, stats)
    if opts.out is not None:
        write_json_atomic(opts.out, summary)
    return summary


def main(target: str | None, overrides: list[str], lenient: bool) -> int:
    """``thermact stream [DIR] [checkpoint=..] [detector=..] [speed=1.0|max] [onnx=false] [key=value ...]``."""
    opts = load_stream_options(overrides)
    summary = run_stream(target, opts, lenient)
    return 130 if summary["interrupted"] else 0
