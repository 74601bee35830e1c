"""Benchmark thermact.ops.roi_align on the CPU: forward and forward+backward time vs. number of boxes.

Two feature-map settings: the thermal-native backbone map ``[4, 128, 20, 30]`` (stride 2 on the
40×60 frame, spatial_scale 0.5) and a SlowFast-style fused map ``[4, 2304, 16, 24]`` (spatial_scale
16/40 on the frame). Output 7×7, adaptive sampling, aligned=True. Prints a table and writes JSON
atomically (default ``benchmarks/results/roi_align.json``).

Usage: ``PYTHONPATH=src python benchmarks/bench_roi_align.py [--out PATH] [--repeats N] [--threads T]``

Timings on a shared machine are noisy: with several threads, another busy process can stall
OpenMP barriers; ``--threads 1`` gives steadier numbers there.
"""

from __future__ import annotations

import argparse
import functools
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from thermact.io import write_json_atomic
from thermact.ops.roi_align import roi_align

FRAME_H, FRAME_W = 40.0, 60.0
BOX_COUNTS = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Setting:
    name: str
    shape: tuple[int, int, int, int]  # N, C, H, W
    spatial_scale: float


SETTINGS = (
    Setting("thermal_native", (4, 128, 20, 30), 0.5),
    Setting("slowfast", (4, 2304, 16, 24), 16.0 / 40.0),
)


def make_rois(k: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    """``k`` person-sized boxes ``[k, 5]`` (batch_index, x1, y1, x2, y2) in frame pixels, spread over images."""
    w = torch.rand(k, generator=gen) * 15.0 + 5.0
    h = torch.rand(k, generator=gen) * 15.0 + 5.0
    x1 = torch.rand(k, generator=gen) * (FRAME_W - w)
    y1 = torch.rand(k, generator=gen) * (FRAME_H - h)
    b = (torch.arange(k) * batch // k).to(torch.float32)  # grouped by image, as a detector emits them
    return torch.stack([b, x1, y1, x1 + w, y1 + h], dim=1)


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _forward(feat: torch.Tensor, rois: torch.Tensor, scale: float) -> None:
    with torch.no_grad():
        roi_align(feat, rois, 7, spatial_scale=scale)


def _forward_backward(feat: torch.Tensor, rois: torch.Tensor, scale: float) -> None:
    feat.grad = None
    torch.autograd.backward(roi_align(feat, rois, 7, spatial_scale=scale).sum())


def run(repeats: int) -> list[dict[str, Any]]:
    gen = torch.Generator().manual_seed(0)
    rows: list[dict[str, Any]] = []
    for setting in SETTINGS:
        feat = torch.randn(*setting.shape, generator=gen)
        feat_g = feat.clone().requires_grad_(True)
        for k in BOX_COUNTS:
            rois = make_rois(k, setting.shape[0], gen)
            fwd = functools.partial(_forward, feat, rois, setting.spatial_scale)
            fwd_bwd = functools.partial(_forward_backward, feat_g, rois, setting.spatial_scale)
            rows.append(
                {
                    "setting": setting.name,
                    "feature_shape": list(setting.shape),
                    "spatial_scale": setting.spatial_scale,
                    "boxes": k,
                    "forward_ms": median_ms(fwd, repeats),
                    "forward_backward_ms": median_ms(fwd_bwd, repeats),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="benchmarks/results/roi_align.json", help="JSON output path")
    parser.add_argument(
        "--repeats", type=int, default=15, help="timed runs per measurement (median reported)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0: keep torch's default)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.threads < 0:
        parser.error("--threads must be >= 0")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    rows = run(args.repeats)
    total_s = time.perf_counter() - t0

    print(
        f"roi_align CPU benchmark (output 7x7, aligned, adaptive sampling, threads={torch.get_num_threads()})"
    )
    print(f"{'setting':<16} {'feature [N,C,H,W]':<20} {'boxes':>5} {'fwd ms':>9} {'fwd+bwd ms':>11}")
    for r in rows:
        shape = "x".join(str(s) for s in r["feature_shape"])
        print(
            f"{r['setting']:<16} {shape:<20} {r['boxes']:>5} {r['forward_ms']:>9.2f} "
            f"{r['forward_backward_ms']:>11.2f}"
        )
    print(f"total {total_s:.1f} s")

    write_json_atomic(
        args.out,
        {
            "benchmark": "roi_align",
            "device": "cpu",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "output_size": [7, 7],
            "sampling_ratio": -1,
            "aligned": True,
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
