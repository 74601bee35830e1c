"""Benchmark the ThermalNet-S action model on the CPU: eager PyTorch vs onnxruntime, per clip.

The default ``configs/thermal_net_s.yaml`` model (16 frames of 40x60, MLP 1024, 14 classes,
randomly initialised) is exported with :func:`thermact.export.onnx.export_action_model`. Inputs are
real normalised clips of the bundled dataset with 2 person boxes each, in batches of 1 and 16
clips; PyTorch runs with ``torch.set_num_threads(n)`` and onnxruntime with ``n`` intra-op threads,
``n`` in 1 and 2. Reported: median ms per batch and per clip, the speed-up of onnxruntime, and the
max abs logit difference between the two. Prints a table and writes JSON atomically (default
``benchmarks/results/onnx.json``).

Usage: ``PYTHONPATH=src python benchmarks/bench_onnx.py [--out PATH] [--repeats N]``

Timings on a shared machine are noisy (another busy process stalls thread barriers); compare the
1-thread rows first.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thermact.data.clips import ClipConfig
from thermact.data.dataset import real_clips
from thermact.data.source import load_dataset
from thermact.data.transforms import compute_norm_stats
from thermact.export.onnx import export_action_model
from thermact.export.runtime import OnnxActionModel
from thermact.io import write_json_atomic
from thermact.models.factory import ModelConfig, build_model
from thermact.runtime import configure_cpu_math

BATCHES = (1, 16)
THREADS = (1, 2)
BOXES_PER_CLIP = 2
CLIP = ClipConfig(2.7, 16, "center")


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def two_boxes_per_clip(clips: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    """Each clip's first real person box plus a second, shifted copy (2 boxes per clip)."""
    rows: list[torch.Tensor] = []
    for b in range(clips.shape[0]):
        own = rois[rois[:, 0] == b]
        first = own[0]
        second = first.clone()
        second[1:] = (first[1:] + torch.tensor([6.0, 4.0, 6.0, 4.0])).clamp(
            max=torch.tensor([60.0, 40.0] * 2)
        )
        rows += [first, second]
    return torch.stack(rows)


def torch_forward(model: torch.nn.Module, clips: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out: torch.Tensor = model(clips, rois)
    return out


def run(repeats: int, workdir: Path) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="thermal_net_s", num_frames=CLIP.num_frames), verbose=False).eval()
    path = export_action_model(model, workdir / "thermal_net_s.onnx", CLIP.num_frames)
    data = load_dataset()
    norm = compute_norm_stats(data.recordings, data.keyframes[::10], CLIP)
    clips_list, rois_list = real_clips(data, CLIP, norm, num_clips=max(BATCHES), batch_size=max(BATCHES))
    all_clips, all_rois = clips_list[0], rois_list[0]
    rows: list[dict[str, Any]] = []
    for threads in THREADS:
        torch.set_num_threads(threads)
        runner = OnnxActionModel(path, intra_op_threads=threads)
        for batch in BATCHES:
            clips = all_clips[:batch].contiguous()
            rois = two_boxes_per_clip(clips, all_rois[all_rois[:, 0] < batch])
            clips_np, rois_np = clips.numpy(), rois.numpy()

            torch_fn = functools.partial(torch_forward, model, clips, rois)
            onnx_fn = functools.partial(runner, clips_np, rois_np)
            diff = float(np.abs(torch_fn().numpy() - onnx_fn()).max())
            torch_ms = median_ms(torch_fn, repeats)
            onnx_ms = median_ms(onnx_fn, repeats)
            rows.append(
                {
                    "threads": threads,
                    "clips": batch,
                    "boxes": int(rois.shape[0]),
                    "torch_ms": torch_ms,
                    "onnx_ms": onnx_ms,
                    "torch_ms_per_clip": torch_ms / batch,
                    "onnx_ms_per_clip": onnx_ms / batch,
                    "speedup": torch_ms / onnx_ms,
                    "max_abs_diff": diff,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="benchmarks/results/onnx.json", help="JSON output path")
    parser.add_argument(
        "--repeats", type=int, default=10, help="timed runs per measurement (median reported)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    configure_cpu_math()

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        rows = run(args.repeats, Path(tmp))
    total_s = time.perf_counter() - t0

    print(f"ThermalNet-S action model, {CLIP.num_frames}x40x60 clips, {BOXES_PER_CLIP} boxes per clip, CPU")
    print(
        f"{'threads':>7} {'clips':>5} {'torch ms':>9} {'onnx ms':>9} {'torch/clip':>11} {'onnx/clip':>10} "
        f"{'speed-up':>8} {'max|diff|':>10}"
    )
    for r in rows:
        print(
            f"{r['threads']:>7} {r['clips']:>5} {r['torch_ms']:>9.1f} {r['onnx_ms']:>9.1f} "
            f"{r['torch_ms_per_clip']:>11.2f} {r['onnx_ms_per_clip']:>10.2f} {r['speedup']:>7.2f}x "
            f"{r['max_abs_diff']:>10.2e}"
        )
    print(f"total {total_s:.1f} s")
    write_json_atomic(
        args.out,
        {
            "benchmark": "onnx",
            "model": "thermal_net_s",
            "device": "cpu",
            "torch": torch.__version__,
            "onnxruntime": importlib.metadata.version("onnxruntime"),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "clip": [CLIP.num_frames, 40, 60],
            "boxes_per_clip": BOXES_PER_CLIP,
            "repeats": args.repeats,
            "statistic": "median",
            "total_seconds": total_s,
            "results": rows,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
