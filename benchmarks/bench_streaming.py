"""How many 6 fps sensors one CPU core serves in real time, end to end, with PyTorch and onnxruntime.

End to end = :class:`thermact.inference.StreamingPredictor`: dead-pixel repair and ring buffer,
the person detector on every frame (its person boxes grown to the body heat around them,
:mod:`thermact.models.heat_boxes`), the tracker, and the action model on each tracked person once
per second (``cadence_s=1``), on the model's causal clip (2.7 s; 8 frames for the live model).
One core: PyTorch with ``torch.set_num_threads(1)``, onnxruntime with one intra-op and one
inter-op thread.

Sensors: ``N`` simulated sensors replay the 8 bundled recordings (sensor ``j`` plays recording
``j mod 8`` from a start point that differs between the sensors sharing a recording, all clocks
started together, sensor ``j`` delayed by ``j / N`` of a frame interval so arrivals are spread),
``--seconds`` of each (their real, irregular ~5.9 fps timing and dead pixels).

1. **Throughput**: all frames of ``--sensors`` sensors pushed as fast as possible, one frame per
   sensor per ``push_many`` (what a saturated server sees). *Sensors per core* = frames processed
   per second / 6. The stage times of the predictor say where the time goes: detector (normalise,
   network, decode, growth), action model (normalise, network, softmax), tracking (tracker and clip
   assembly), ingest (checks, repair, ring buffer) and other (Python bookkeeping).
2. **Latency**: a single-server queue simulated on a virtual clock: frames arrive at their replay
   times; whenever the server is free it takes every frame that has arrived and processes it
   (measured compute time advances the clock); latency = when a frame's results are ready - its
   arrival. Reported as p50 / p99 over all frames and over the frames that produced a
   classification, at 1 sensor, at 80 % of the measured capacity and at ``--sensors`` (whether
   that many are served in real time: utilisation below 1 and bounded latency).

Models: ``--checkpoint`` / ``--detector`` (paths or shipped names; defaults: the shipped live
live models, ``thermal_net_live`` and ``person_detector_live``; ``--checkpoint
thermal_net_live_ens3`` for the ensemble that ``thermact detect`` uses, three times the action
compute; for the larger ones pass
``runs/thermal_net_s/last.pt`` and ``runs/person_detector/last.pt``). A missing action checkpoint is replaced by a randomly
initialised model of ``--action-config`` (the compute is the same); a missing detector by one of
``--detector-config`` trained for one
epoch here (~3 s), so that the number of tracked persons is realistic.

Usage: ``PYTHONPATH=src python benchmarks/bench_streaming.py [--sensors 100] [--seconds 20]``
(about 2 minutes per backend on one core). Prints a table and writes JSON atomically
(``benchmarks/results/streaming.json``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thermact.config import build_config, config_to_dict
from thermact.data.recording import INVALID_SENTINEL_C, Recording
from thermact.data.source import load_dataset
from thermact.data.transforms import NormStats
from thermact.engine.checkpoint import save_checkpoint
from thermact.engine.run import train
from thermact.errors import CheckpointError
from thermact.export.onnx import export_action_onnx, export_detector_onnx
from thermact.inference.pipeline import FrameInput
from thermact.inference.runners import (
    ActionModelLike,
    DetectorLike,
    Precision,
    load_action_model,
    load_detector,
)
from thermact.inference.streaming import StreamingPredictor
from thermact.io import write_json_atomic
from thermact.models.factory import build_model
from thermact.runtime import configure_cpu_math
from thermact.shipped import DEFAULT_DETECTOR, DEFAULT_STREAM_ACTION_MODEL, resolve_checkpoint
from thermact.tasks.action import ActionRunConfig, restore_model
from thermact.tasks.person import PERSON, DetectorRunConfig, restore_detector

FPS = 6.0
START_STEP_S = 7.3
"""Offset between the start points of two sensors replaying the same recording."""
Frame = tuple[float, str, int, np.ndarray]


def _existing(spec: str) -> Path | None:
    """The file of a checkpoint path or shipped name, None when there is none."""
    try:
        return resolve_checkpoint(spec)
    except CheckpointError:
        return None


def ensure_models(
    checkpoint_spec: str, detector_spec: str, action_config: str, detector_config: str, tmp: Path
) -> tuple[Path, Path, list[str]]:
    notes: list[str] = []
    checkpoint, detector = _existing(checkpoint_spec), _existing(detector_spec)
    if checkpoint is None:
        torch.manual_seed(0)
        cfg = build_config(ActionRunConfig, action_config, ["data.keyframe_position=causal"])
        model = build_model(cfg.model, cfg.clip, verbose=False)
        data = load_dataset()
        checkpoint = tmp / "action.pt"
        save_checkpoint(
            checkpoint,
            {
                "model": model.state_dict(),
                "config": config_to_dict(cfg),
                "classes": list(data.classes.names),
                "norm": NormStats(17.24, 1.39).to_dict(),
                "epoch": 0,
            },
        )
        notes.append(f"action model: random {cfg.model.name} (no checkpoint given)")
    if detector is None:
        cfg_d = build_config(
            DetectorRunConfig,
            detector_config,
            ["optim.epochs=1", "optim.batch_size=8", f"run_dir={tmp / 'det'}"],
        )
        detector = train(PERSON, cfg_d).last_checkpoint
        notes.append("person detector: trained 1 epoch here (no checkpoint given)")
    return checkpoint, detector, notes


def schedule(recordings: list[Recording], sensors: int, seconds: float) -> list[Frame]:
    """``(arrival_s, sensor_id, timestamp_ms, raw frame)`` of ``sensors`` simulated sensors, by arrival.

    Sensor ``j`` replays recording ``j mod R`` from ``START_STEP_S * (j // R)`` seconds in (wrapped
    so that ``seconds`` fit), so sensors sharing a recording see different moments, as real
    sensors do; its clock is shifted by ``j / sensors`` of a frame interval.
    """
    frames: list[Frame] = []
    for j in range(sensors):
        rec = recordings[j % len(recordings)]
        ts = rec.timestamps
        span_s = float(ts[-1] - ts[0]) / 1000.0
        room = max(span_s - seconds, 0.0)
        start_s = (START_STEP_S * (j // len(recordings))) % room if room > 0 else 0.0
        first = int(np.searchsorted(ts, ts[0] + round(start_s * 1000.0)))
        delay_ms = round(1000.0 / FPS * j / sensors)
        for i in range(first, len(ts)):
            rel = int(ts[i] - ts[first]) + delay_ms
            if rel > seconds * 1000:
                break
            raw = np.where(rec.valid[i], rec.frames[i], np.float32(INVALID_SENTINEL_C)).astype(np.float32)
            frames.append((rel / 1000.0, f"s{j:03d}", 10_000_000 + rel, raw))
    frames.sort(key=lambda f: (f[0], f[1]))
    return frames


def make_predictor(action: ActionModelLike, detector: DetectorLike, sensors: int) -> StreamingPredictor:
    return StreamingPredictor(action, detector, cadence_s=1.0, max_sensors=sensors)


def throughput(
    action: ActionModelLike, detector: DetectorLike, frames: list[Frame], sensors: int
) -> dict[str, Any]:
    pred = make_predictor(action, detector, sensors)
    batch: list[FrameInput] = []
    seen: set[str] = set()
    t0 = time.perf_counter()
    for _, sid, t, f in frames:
        if sid in seen:
            pred.push_many(batch)
            batch, seen = [], set()
        batch.append(FrameInput(sid, t, f))
        seen.add(sid)
    if batch:
        pred.push_many(batch)
    wall = time.perf_counter() - t0
    st = pred.stats()
    n = st.counters.accepted
    times = st.times
    return {
        "sensors": sensors,
        "frames": n,
        "wall_s": wall,
        "frames_per_s": n / wall,
        "sensors_per_core": n / wall / FPS,
        "classifications": st.counters.classifications,
        "classifications_per_s": st.counters.classifications / wall,
        "detections_per_frame": st.counters.detections / max(n, 1),
        "detector_calls": times.detector_calls,
        "action_calls": times.action_calls,
        "action_clips": times.action_clips,
        "ms_per_frame": {
            "detector": 1000 * times.detector_s / n,
            "action": 1000 * times.action_s / n,
            "tracking": 1000 * times.tracking_s / n,
            "ingest": 1000 * times.ingest_s / n,
            "other": 1000 * times.other_s / n,
            "total": 1000 * times.total_s / n,
        },
        "share": {
            k: v / times.total_s
            for k, v in (
                ("detector", times.detector_s),
                ("action", times.action_s),
                ("tracking", times.tracking_s),
                ("ingest", times.ingest_s),
                ("other", times.other_s),
            )
        },
    }


def latency(
    action: ActionModelLike, detector: DetectorLike, frames: list[Frame], sensors: int
) -> dict[str, Any]:
    """Virtual-clock single-server queue (see the module docstring)."""
    pred = make_predictor(action, detector, sensors)
    now = 0.0
    i = 0
    frame_lat: list[float] = []
    result_lat: list[float] = []
    busy = 0.0
    while i < len(frames):
        now = max(now, frames[i][0])
        j = i
        while j < len(frames) and frames[j][0] <= now:
            j += 1
        batch = [FrameInput(sid, t, f, arr) for arr, sid, t, f in frames[i:j]]
        t0 = time.perf_counter()
        pred.push_many(batch)
        dt = time.perf_counter() - t0
        busy += dt
        now += dt
        for fr in pred.last_frames:
            frame_lat.append(now - fr.arrival_s)
            if any(p.fresh for p in fr.persons):
                result_lat.append(now - fr.arrival_s)
        i = j
    span = frames[-1][0] - frames[0][0]

    def pct(values: list[float]) -> dict[str, float]:
        if not values:
            return {"p50": float("nan"), "p99": float("nan")}
        p50, p99 = np.percentile(np.asarray(values), [50, 99])
        return {"p50": 1000 * float(p50), "p99": 1000 * float(p99)}

    return {
        "sensors": sensors,
        "frames": len(frame_lat),
        "utilisation": busy / max(span, 1e-9),
        "frame_latency_ms": pct(frame_lat),
        "result_latency_ms": pct(result_lat),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", default=DEFAULT_STREAM_ACTION_MODEL, help="path or shipped model name"
    )
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, help="path or shipped model name")
    parser.add_argument("--action-config", default="configs/thermal_net_live.yaml")
    parser.add_argument("--detector-config", default="configs/person_detector_live.yaml")
    parser.add_argument("--sensors", type=int, default=100, help="sensors of the throughput run")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds replayed per sensor")
    parser.add_argument("--out", default="benchmarks/results/streaming.json")
    parser.add_argument(
        "--backends",
        default="pytorch,pytorch-bf16,onnxruntime",
        help="comma-separated: pytorch, pytorch-bf16 (bfloat16 autocast), onnxruntime, pytorch-no-growth "
        "(fp32 with the detector's person boxes as decoded, not grown to body heat: what that step costs)",
    )
    args = parser.parse_args(argv)
    configure_cpu_math()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    data = load_dataset()
    recordings = list(data.recordings.values())
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp_name:
        tmp = Path(tmp_name)
        ckpt, det, notes = ensure_models(
            args.checkpoint, args.detector, args.action_config, args.detector_config, tmp
        )
        for backend in args.backends.split(","):
            if backend in ("pytorch", "pytorch-bf16", "pytorch-no-growth"):
                precision: Precision = "bf16" if backend == "pytorch-bf16" else "fp32"
                action: ActionModelLike = load_action_model(ckpt, precision=precision)
                growth = backend != "pytorch-no-growth"
                detector: DetectorLike = load_detector(det, precision=precision, heat_growth=growth)
            elif backend == "onnxruntime":
                action = load_action_model(export_action_onnx(restore_model(ckpt), tmp / "a.onnx"), threads=1)
                detector = load_detector(
                    export_detector_onnx(restore_detector(det), tmp / "d.onnx"), threads=1
                )
            else:
                parser.error(f"unknown backend {backend!r}")
            throughput(action, detector, schedule(recordings, 2, 3.0), 2)  # warm-up
            thr = throughput(action, detector, schedule(recordings, args.sensors, args.seconds), args.sensors)
            n_load = max(1, int(0.8 * thr["sensors_per_core"]))
            lat = [
                latency(action, detector, schedule(recordings, n, args.seconds), n)
                for n in sorted({1, n_load, args.sensors})
            ]
            results[backend] = {"throughput": thr, "latency": lat}
    total = time.perf_counter() - t_start

    print(f"streaming end to end on one CPU core, {args.seconds:g} s per sensor, classify every 1 s")
    for note in notes:
        print(f"  note: {note}")
    print(
        f"{'backend':<12} {'sensors/core':>12} {'frames/s':>9} {'det ms':>7} {'act ms':>7} {'trk ms':>7} "
        f"{'ing ms':>7} {'oth ms':>7} (per frame, {args.sensors} sensors)"
    )
    for backend, r in results.items():
        t = r["throughput"]
        m = t["ms_per_frame"]
        print(
            f"{backend:<12} {t['sensors_per_core']:>12.1f} {t['frames_per_s']:>9.1f} {m['detector']:>7.2f} "
            f"{m['action']:>7.2f} {m['tracking']:>7.2f} {m['ingest']:>7.2f} {m['other']:>7.2f}"
        )
    print(
        f"{'backend':<12} {'sensors':>7} {'util':>5} {'frame p50':>9} {'p99':>7} {'result p50':>10} {'p99':>7}  (ms)"
    )
    for backend, r in results.items():
        for lat_row in r["latency"]:
            f, res = lat_row["frame_latency_ms"], lat_row["result_latency_ms"]
            print(
                f"{backend:<12} {lat_row['sensors']:>7} {lat_row['utilisation']:>5.2f} {f['p50']:>9.1f} "
                f"{f['p99']:>7.1f} {res['p50']:>10.1f} {res['p99']:>7.1f}"
            )
    print(f"total {total:.1f} s")
    write_json_atomic(
        args.out,
        {
            "benchmark": "streaming",
            "device": "cpu, 1 thread",
            "torch": torch.__version__,
            "onnxruntime": importlib.metadata.version("onnxruntime"),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "checkpoint": args.checkpoint,
            "detector": args.detector,
            "notes": notes,
            "seconds_per_sensor": args.seconds,
            "fps_per_sensor": FPS,
            "cadence_s": 1.0,
            "total_seconds": total,
            "results": results,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
