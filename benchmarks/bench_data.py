"""Benchmark the clip data pipeline: clips per second through a DataLoader on the bundled data.

Settings: ``num_workers`` 0 and 2, without and with augmentation (flips, temperature jitter, box
jitter), each with normalisation and the default clip (2.7 s, 16 frames). One extra setting
resizes to 80×120. Every keyframe of the dataset is loaded ``--epochs`` times with batch size 8;
the first (warm-up) epoch, which includes starting the workers and their reading the HDF5 files,
is timed separately. Prints a table and writes JSON atomically (default
``benchmarks/results/data.json``).

Usage: ``PYTHONPATH=src python benchmarks/bench_data.py [--out PATH] [--epochs N] [--root DATASET]
[--threads T]``

Timings on a shared machine are noisy: with ``num_workers=0`` the per-clip torch ops (resize) run
multi-threaded in the main process and can stall on a busy machine; DataLoader workers run
single-threaded. ``--threads 1`` gives steadier main-process numbers.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

from thermact.data.clips import ClipConfig
from thermact.data.dataset import ClipDataset, collate_clips
from thermact.data.source import ThermalData, load_dataset
from thermact.data.transforms import Augment, compute_norm_stats
from thermact.io import write_json_atomic


@dataclass(frozen=True)
class Setting:
    num_workers: int
    augment: bool
    input_size: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        size = f", resize {self.input_size[0]}x{self.input_size[1]}" if self.input_size else ""
        return f"workers={self.num_workers}, augment={'yes' if self.augment else 'no'}{size}"


SETTINGS = (
    Setting(0, False),
    Setting(0, True),
    Setting(2, False),
    Setting(2, True),
    Setting(0, True, (80, 120)),
)


def run_setting(data: ThermalData, setting: Setting, epochs: int, batch_size: int) -> dict[str, Any]:
    clip = ClipConfig()
    train = [k for k in data.keyframes if k.given_split == "train"] or data.keyframes
    norm = compute_norm_stats(data.recordings, train, clip)
    ds = ClipDataset.from_data(
        data,
        None,
        clip,
        norm=norm,
        augment=Augment(p_hflip=0.5, p_vflip=0.5, p_rot180=0.5, box_jitter=0.05) if setting.augment else None,
        input_size=setting.input_size,
    )
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        num_workers=setting.num_workers,
        collate_fn=collate_clips,
        persistent_workers=setting.num_workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    epoch_s: list[float] = []
    boxes = 0
    for epoch in range(epochs + 1):
        ds.set_epoch(epoch)
        t0 = time.perf_counter()
        for batch in loader:
            boxes += int(batch.rois.shape[0])
        epoch_s.append(time.perf_counter() - t0)
    timed = epoch_s[1:]
    clips = len(ds) * len(timed)
    return {
        "setting": setting.name,
        "num_workers": setting.num_workers,
        "augment": setting.augment,
        "input_size": list(setting.input_size) if setting.input_size else None,
        "clips_per_epoch": len(ds),
        "epochs_timed": len(timed),
        "first_epoch_s": epoch_s[0],
        "clips_per_s": clips / sum(timed),
        "ms_per_clip": 1e3 * sum(timed) / clips,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/data.json", help="JSON output path")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per setting (after one warm-up)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--root", default=None, help="dataset directory (default: the bundled one)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads of the main process"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    data = load_dataset(args.root, with_raw=False)
    load_s = time.perf_counter() - t0
    print(
        f"dataset loaded in {load_s:.2f} s: {len(data.recordings)} recordings, {len(data.keyframes)} keyframes"
    )
    rows = [run_setting(data, s, args.epochs, args.batch_size) for s in SETTINGS]

    print(f"{'setting':<44} {'clips/s':>9} {'ms/clip':>8} {'1st epoch s':>12}")
    for r in rows:
        print(
            f"{r['setting']:<44} {r['clips_per_s']:>9.1f} {r['ms_per_clip']:>8.3f} {r['first_epoch_s']:>12.2f}"
        )
    write_json_atomic(
        args.out,
        {
            "benchmark": "data",
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "threads": torch.get_num_threads(),
            "dataset_load_s": load_s,
            "batch_size": args.batch_size,
            "clip": {"window_s": ClipConfig().window_s, "num_frames": ClipConfig().num_frames},
            "results": rows,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
