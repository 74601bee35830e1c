"""CPU speed and memory of the shipped models at their working input sizes.

For each model and precision (fp32, bf16 autocast) this measures, on the CPU:

* ``fwd``: inference forward (eval mode, ``torch.inference_mode``), median (and min) over repeats;
* ``fwd+bwd``: training forward + backward of ``logits.sum()`` (train mode, no optimizer step);
  the minimum is reported beside the median because a shared machine makes the median noisy;
* peak memory: each (model, precision) runs in a fresh ``spawn``-ed process; ``peak_rss_mib`` is that
  process's ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` at the end (the high-water mark of its
  resident set, Linux kB -> MiB), and ``delta_rss_mib`` the increase of that mark over its value after
  the model and inputs were built, i.e. roughly the activations, saved tensors and gradients of the
  training step (``tracemalloc`` does not see PyTorch's allocations).

Inputs: ``[B, 1, T, 40, 60]`` clips with 2 person boxes per clip; ThermalNet uses its native size and
``T = 16``; SlowFast ``T = 32`` resized to 256x384 inside the detector (as configured for training).
SlowFast on 2 cores is slow (seconds per clip): the default batch is 1 and few repeats.

Usage::

    PYTHONPATH=src python benchmarks/bench_models.py [--models thermal_net_s ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from thermact.io import write_json_atomic
from thermact.models.factory import MODEL_NAMES, HeadConfig, ModelConfig, build_model
from thermact.runtime import configure_cpu_math

DEFAULT_OUT = "benchmarks/results/models.json"


@dataclass
class Setting:
    name: str
    num_frames: int
    input_size: tuple[int, int] | None
    batch: int


SETTINGS: dict[str, Setting] = {
    "thermal_net_s": Setting("thermal_net_s", 16, None, 8),
    "thermal_net_m": Setting("thermal_net_m", 16, None, 8),
    "slowfast_r50_4x16": Setting("slowfast_r50_4x16", 32, (256, 384), 1),
    "slowfast_r101_8x8": Setting("slowfast_r101_8x8", 32, (256, 384), 1),
}


def _usable_cpus() -> int:
    """CPUs this process may run on (``os.cpu_count()`` counts the host's, ignoring affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _autocast(dtype: str) -> AbstractContextManager[Any]:
    if dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def _times(fn: Any, repeats: int, warmup: int) -> tuple[float, float]:
    """``(median, min)`` wall time in seconds over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def _worker(
    setting: Setting, dtype: str, batch: int, repeats: int, warmup: int, threads: int
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    configure_cpu_math()
    torch.manual_seed(0)
    cfg = ModelConfig(
        name=setting.name,  # type: ignore[arg-type]
        num_frames=setting.num_frames,
        input_size=setting.input_size,
        head=HeadConfig(mlp_dim=1024),
    )
    model = build_model(cfg, verbose=False)
    clip = torch.randn(batch, 1, setting.num_frames, 40, 60)
    rows = [[float(b), 5.0 + 20.0 * r, 8.0, 19.0 + 20.0 * r, 27.0] for b in range(batch) for r in range(2)]
    rois = torch.tensor(rows)
    base_rss = _maxrss_mib()

    def forward() -> None:
        with torch.inference_mode(), _autocast(dtype):
            model(clip, rois)

    def train_step() -> None:
        model.zero_grad(set_to_none=True)
        with _autocast(dtype):
            logits = model(clip, rois)
        logits.float().sum().backward()

    model.eval()
    t_fwd, t_fwd_min = _times(forward, repeats, warmup)
    model.train()
    t_train, t_train_min = _times(train_step, repeats, warmup)
    peak = _maxrss_mib()
    return {
        "model": setting.name,
        "dtype": dtype,
        "batch": batch,
        "input": [batch, 1, setting.num_frames, 40, 60],
        "backbone_input_hw": list(setting.input_size) if setting.input_size else [40, 60],
        "params": sum(p.numel() for p in model.parameters()),
        "threads": threads,
        "repeats": repeats,
        "fwd_ms_per_batch": 1000 * t_fwd,
        "fwd_ms_per_clip": 1000 * t_fwd / batch,
        "fwd_bwd_ms_per_batch": 1000 * t_train,
        "fwd_bwd_ms_per_clip": 1000 * t_train / batch,
        "fwd_ms_per_batch_min": 1000 * t_fwd_min,
        "fwd_bwd_ms_per_batch_min": 1000 * t_train_min,
        "peak_rss_mib": peak,
        "delta_rss_mib": peak - base_rss,
    }


def _run_isolated(args: tuple[Setting, str, int, int, int, int]) -> dict[str, Any]:
    return _worker(*args)


def format_table(results: list[dict[str, Any]]) -> str:
    header = (
        f"{'model':<20} {'dtype':<5} {'batch':>5} {'params':>11} {'fwd ms/clip':>12} "
        f"{'fwd+bwd ms/clip':>16} {'fwd+bwd ms/batch (min)':>23} {'peak MiB':>9} {'delta MiB':>10}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r['model']:<20} {r['dtype']:<5} {r['batch']:>5} {r['params']:>11,} {r['fwd_ms_per_clip']:>12.1f} "
            f"{r['fwd_bwd_ms_per_clip']:>16.1f} {r['fwd_bwd_ms_per_batch']:>14.1f} ({r['fwd_bwd_ms_per_batch_min']:>6.1f})"
            f" {r['peak_rss_mib']:>9.0f} "
            f"{r['delta_rss_mib']:>10.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES))
    parser.add_argument("--dtypes", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    parser.add_argument(
        "--batch", type=int, default=None, help="clips per batch (default: 8 ThermalNet, 1 SlowFast)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repeats (default: 10 ThermalNet, 2 SlowFast)"
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--threads", type=int, default=_usable_cpus(), help="torch threads (default: usable CPUs)"
    )
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    ctx = mp.get_context("spawn")
    results: list[dict[str, Any]] = []
    for name in args.models:
        setting = SETTINGS[name]
        batch = args.batch or setting.batch
        repeats = args.repeats or (10 if name.startswith("thermal") else 2)
        for dtype in args.dtypes:
            with ctx.Pool(1) as pool:
                res = pool.apply(
                    _run_isolated, ((setting, dtype, batch, repeats, args.warmup, args.threads),)
                )
            results.append(res)
            print(
                f"{name} {dtype}: fwd {res['fwd_ms_per_clip']:.1f} ms/clip, "
                f"fwd+bwd {res['fwd_bwd_ms_per_batch']:.1f} ms/batch of {batch}",
                file=sys.stderr,
                flush=True,
            )
    print(format_table(results))
    meta = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "usable_cpus": _usable_cpus(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "memory_method": "ru_maxrss of a fresh spawned process per (model, dtype); delta = after build -> end",
    }
    write_json_atomic(args.out, {"meta": meta, "results": results})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
