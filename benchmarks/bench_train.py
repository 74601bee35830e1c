"""Training throughput (clips/s) of each shipped config on this machine, and its data loading.

For every config in ``configs/`` it builds the real data pipeline and model of that config
(the bundled dataset, its split fold, its input size) and times ``--steps`` optimiser steps of
the training loop's own pieces (the task run's ``loss``, backward and ``optimizer_step``, with the
memory bank of interaction models) after ``--warmup`` steps, then inference (eval mode) on the same batches,
separately from the time the loader takes to produce the same batches. Prints a table and
writes JSON (default ``benchmarks/results/train.json``).

    python benchmarks/bench_train.py                        # all configs (SlowFast: few steps)
    python benchmarks/bench_train.py --configs configs/thermal_net_s.yaml --steps 20
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from thermact.config import build_config
from thermact.engine.distributed import DistContext
from thermact.engine.loop import optimizer_step
from thermact.engine.run import autocast_dtype, make_optimizer, select_device
from thermact.io import write_json_atomic
from thermact.runtime import configure_cpu_math
from thermact.tasks.action import ACTION, ActionRunConfig

ROOT = Path(__file__).resolve().parents[1]


def bench_config(path: Path, steps: int, warmup: int, amp: str | None) -> dict[str, Any]:
    overrides = [f"amp={amp}"] if amp else []
    cfg = build_config(ActionRunConfig, path, overrides)
    device = select_device(cfg.run.device)
    amp_dtype = autocast_dtype(cfg.run.amp, device)
    run = ACTION.build(cfg, DistContext(), device, amp_dtype)
    model = run.model
    model.train()
    optimizer = make_optimizer(model, cfg.optim)

    load_times: list[float] = []
    batches = []
    it = iter(run.train_loader)
    for _ in range(warmup + steps):
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(run.train_loader)
            batch = next(it)
        load_times.append(time.perf_counter() - t0)
        batches.append(batch)

    bank = run.bank
    step_times: list[float] = []
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        loss, _ = run.loss(model, batch)
        if loss is not None:
            loss.backward()  # type: ignore[no-untyped-call]
        optimizer_step(model, optimizer, None, cfg.optim.lr, cfg.optim.clip_grad_norm)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            step_times.append(time.perf_counter() - t0)
    # inference on the same batches (eval mode; interaction models read the memory filled above)
    model.eval()
    infer_times: list[float] = []
    with torch.inference_mode():
        for i, batch in enumerate(batches):
            t0 = time.perf_counter()
            clip, rois = batch.frames.to(device), batch.rois.to(device)
            memory = None
            if bank is not None:
                index = batch.rois[:, 0].to(torch.int64)
                memory = bank.gather(batch.recording_ids, batch.keyframe_ms, index, batch.track_ids, device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                model(clip, rois, memory=memory)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                infer_times.append(time.perf_counter() - t0)
    batch_size = cfg.optim.batch_size
    step = statistics.median(step_times)
    infer = statistics.median(infer_times)
    load = statistics.median(load_times[warmup:])
    return {
        "config": path.name,
        "model": cfg.model.name,
        "device": str(device),
        "amp": cfg.run.amp,
        "batch_size": batch_size,
        "input": [cfg.model.num_frames, *(cfg.model.input_size or (40, 60))],
        "step_s_median": step,
        "train_clips_per_s": batch_size / step,
        "train_ms_per_clip": 1000.0 * step / batch_size,
        "infer_ms_per_clip": 1000.0 * infer / batch_size,
        "loader_clips_per_s": batch_size / load if load > 0 else float("inf"),
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action_configs = [
        p for p in sorted((ROOT / "configs").glob("*.yaml")) if "task: detector" not in p.read_text()
    ]
    parser.add_argument("--configs", nargs="*", type=Path, default=action_configs)
    parser.add_argument(
        "--steps", type=int, default=0, help="timed steps (default 10 ThermalNet, 2 SlowFast)"
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--amp", choices=["none", "bf16"], default=None, help="override the configs' amp")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train.json")
    args = parser.parse_args()
    configure_cpu_math()
    rows = []
    for path in args.configs:
        steps = args.steps or (2 if "slowfast" in path.name else 10)
        row = bench_config(path, steps, args.warmup, args.amp)
        rows.append(row)
        print(
            f"{row['config']:<24} {row['device']:<5} amp={row['amp']:<5} batch {row['batch_size']:>2}  "
            f"train {row['train_clips_per_s']:8.2f} clips/s ({row['train_ms_per_clip']:.1f} ms/clip)  "
            f"infer {row['infer_ms_per_clip']:.2f} ms/clip  loader {row['loader_clips_per_s']:9.1f} clips/s",
            flush=True,
        )
    write_json_atomic(args.out, {"threads": torch.get_num_threads(), "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
