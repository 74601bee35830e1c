"""``thermact data inspect`` and ``thermact data split``.

``data inspect [DATASET] [out=PATH] [window_s=..] [num_frames=..] [keyframe_position=..]
[session_gap_s=300]`` prints :func:`thermact.data.inspect.format_report` and writes the JSON report;
``data split [DATASET] [out=DIR] [window_s=..] [num_frames=..] [groups=FILE] [session_gap_s=300]``
writes the split definitions of :func:`thermact.data.splits.build_standard_splits`. ``DATASET`` is
a bundled dataset's name (``thermal_v1``, ``thermal_v2``) or a directory.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from thermact.commands._common import load_with_progress
from thermact.config import build_config
from thermact.data.clips import ClipConfig, KeyframePosition
from thermact.data.inspect import build_report, format_report, problems_error
from thermact.data.sessions import SESSION_GAP_S
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
    """Clip window (seconds) of the leakage and invalid-pixel checks."""
    num_frames: int = ClipConfig.num_frames
    """Frames per clip of those checks."""
    keyframe_position: KeyframePosition = "center"
    """center or causal clips."""
    session_gap_s: float = SESSION_GAP_S
    """A pause longer than this between recordings of one device starts a new session."""

    def clip(self) -> ClipConfig:
        return _clip(self.window_s, self.num_frames, self.keyframe_position)


def main_inspect(dataset: str | None, overrides: list[str], lenient: bool) -> int:
    """``thermact data inspect``.

    The dataset is always read leniently so that every problem is listed (an unreadable
    recording too); a missing directory or class mapping still fails at once. Problems found
    while loading make the command raise :func:`~thermact.data.inspect.problems_error` (exit
    status 2, one ``error:`` line naming the first problem) after the complete report is written,
    unless ``lenient`` (``--lenient``) accepts them.
    """
    opts = build_config(InspectOptions, None, overrides)
    clip = opts.clip()
    data = load_with_progress(dataset, lenient=True, warn=lambda _message: None)
    report = build_report(data, clip, session_gap_s=opts.session_gap_s)
    out = opts.out if opts.out is not None else Path("runs") / "inspect" / f"{data.root.name}.json"
    write_json_atomic(out, report)
    print(format_report(report))
    print(f"\nwrote {out}")
    if data.problems.count:
        if not lenient:
            raise problems_error(data)
        print(data.problems.summary())
    return 0


@dataclasses.dataclass
class SplitOptions:
    """Options of ``thermact data split`` (``key=value`` on the command line)."""

    out: Path = Path("splits")
    """Directory the split files are written to."""
    window_s: float = ClipConfig.window_s
    """Clip window (seconds) the purge is computed for."""
    num_frames: int = ClipConfig.num_frames
    """Frames per clip the purge is computed for."""
    keyframe_position: KeyframePosition = "center"
    """center or causal clips."""
    groups: Path | None = None
    """JSON/YAML mapping recording id → group, for a custom split written as ``custom.json``."""
    session_gap_s: float = SESSION_GAP_S
    """A pause longer than this between recordings of one device starts a new session."""

    def clip(self) -> ClipConfig:
        return _clip(self.window_s, self.num_frames, self.keyframe_position)


def main_split(dataset: str | None, overrides: list[str], lenient: bool) -> int:
    """``thermact data split``: writes those of ``given.json``, ``session.json`` (leave one session
    out) and ``lorecording.json`` the data allows (:func:`~thermact.data.splits.build_standard_splits`)
    and, with ``groups=``, ``custom.json`` into ``out``; prints a table of the folds with their
    purge and leakage."""
    opts = build_config(SplitOptions, None, overrides)
    clip = opts.clip()
    groups = read_groups(opts.groups) if opts.groups is not None else None
    data = load_with_progress(dataset, lenient=lenient)
    splits = build_standard_splits(data, clip, groups, str(opts.groups), opts.session_gap_s)
    for name, split in splits.items():
        save_split(split, opts.out / f"{name}.json")
    print(format_split_table(data, splits))
    print(f"wrote {', '.join(f'{n}.json' for n in splits)} to {opts.out}")
    if data.problems.count:
        print(data.problems.summary())
    return 0
