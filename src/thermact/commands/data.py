"""``thermact data inspect`` and ``thermact data split``.

``data inspect [DATASET] [out=PATH] [window_s=..] [num_frames=..] [keyframe_position=..]`` prints
:func:`thermact.data.inspect.format_report` and writes the JSON report;
``data split [DATASET] [out=DIR] [window_s=..] [num_frames=..] [groups=FILE]`` writes the split
definitions of :func:`thermact.data.splits.build_standard_splits`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from thermact.commands._common import load_with_progress
from thermact.config import build_config
from thermact.data.clips import ClipConfig, KeyframePosition
from thermact.data.inspect import build_report, format_report
from thermact.data.splits import build_standard_splits, format_split_table, read_groups, save_split
from thermact.errors import ConfigError
from thermact.io import write_json_atomic

__all__ = ["InspectOptions", "SplitOptions", "main_inspect", "main_split"]


def _clip(window_s: float, num_frames: int, keyframe_position: KeyframePosition) -> ClipConfig:
    try:
        return ClipConfig(window_s, num_frames, keyframe_position)
    except ValueError as err:
        raise ConfigError(f"clip options: {err}") from err


@dataclasses.dataclass
class InspectOptions:
    """Options of ``thermact data inspect`` (``key=value`` on the command line)."""

    out: Path | None = None
    """JSON report path; default ``runs/inspect/<dataset name>.json``."""
    window_s: float = ClipConfig.window_s
    num_frames: int = ClipConfig.num_frames
    keyframe_position: KeyframePosition = "center"

    def clip(self) -> ClipConfig:
        return _clip(self.window_s, self.num_frames, self.keyframe_position)


def main_inspect(dataset: str | None, overrides: list[str], lenient: bool) -> int:
    """``thermact data inspect``.

    The dataset is always read leniently so that every problem is listed; missing or unreadable
    files still fail at once. Problems found while loading make the command exit with status 1
    after the report is written, unless ``lenient`` (``--lenient``) accepts them.
    """
    opts = build_config(InspectOptions, None, overrides)
    clip = opts.clip()
    data = load_with_progress(dataset, lenient=True, warn=lambda _message: None)
    report = build_report(data, clip)
    out = opts.out if opts.out is not None else Path("runs") / "inspect" / f"{data.root.name}.json"
    write_json_atomic(out, report)
    print(format_report(report))
    print(f"\nwrote {out}")
    if data.problems.count:
        if not lenient:
            print(
                f"error: {data.problems.count} problem(s) in the input (listed above); "
                "pass --lenient to skip those records",
                file=sys.stderr,
            )
            return 1
        print(data.problems.summary())
    return 0


@dataclasses.dataclass
class SplitOptions:
    """Options of ``thermact data split`` (``key=value`` on the command line)."""

    out: Path = Path("splits")
    """Directory the split files are written to."""
    window_s: float = ClipConfig.window_s
    num_frames: int = ClipConfig.num_frames
    keyframe_position: KeyframePosition = "center"
    groups: Path | None = None
    """JSON/YAML mapping recording id → group, for a custom split written as ``custom.json``."""

    def clip(self) -> ClipConfig:
        return _clip(self.window_s, self.num_frames, self.keyframe_position)


def main_split(dataset: str | None, overrides: list[str], lenient: bool) -> int:
    """``thermact data split``: writes ``given.json``, ``session.json`` (when the data holds at
    least two sessions), ``lorecording.json`` and, with ``groups=``, ``custom.json`` into ``out``;
    prints a table of the folds with their purge and leakage."""
    opts = build_config(SplitOptions, None, overrides)
    clip = opts.clip()
    groups = read_groups(opts.groups) if opts.groups is not None else None
    data = load_with_progress(dataset, lenient=lenient)
    splits = build_standard_splits(data, clip, groups, str(opts.groups))
    for name, split in splits.items():
        save_split(split, opts.out / f"{name}.json")
    print(format_split_table(data, splits))
    print(f"wrote {', '.join(f'{n}.json' for n in splits)} to {opts.out}")
    if data.problems.count:
        print(data.problems.summary())
    return 0
