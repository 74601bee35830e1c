"""``thermact baseline [kind=box_gbm|prior] [protocol=session|recording] [key=value ...]``: the simple
baselines (:mod:`thermact.baselines.classifier`) on every fold of a protocol, reported as ``thermact
cv`` reports a network (same folds, same metrics, mean ± standard deviation over folds).

A baseline is fitted, not trained for epochs: each fold's number is the only one there is (no
epoch to pick on the test fold). Written atomically to ``<run_dir>/<protocol>/baseline_<kind>.json``
and ``.md`` (``baseline_box_gbm_<cues>`` for other cues than ``all``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Literal

from thermact.baselines.classifier import BaselineKind, CueSet, feature_table, fit_predict, sklearn_ensemble
from thermact.commands._common import load_with_progress
from thermact.commands.cv import PROTOCOL_SPLITS, FoldResult, aggregate, format_cv_markdown
from thermact.config import build_options, check_number
from thermact.data.clips import ClipConfig
from thermact.data.splits import resolve_split
from thermact.engine.run import keyframes_by_id
from thermact.evaluation.evaluate import score_predictions
from thermact.io import check_writable, write_json_atomic, write_text_atomic

__all__ = ["BaselineData", "BaselineOptions", "main", "report_stem", "run_baseline"]


@dataclasses.dataclass
class BaselineData:
    """The keyframes and clips the baseline sees (defaults: the live model's clips)."""

    root: str | None = None
    """Dataset: a name (thermal_v1, thermal_v2) or a directory; null: the bundled default."""
    window_s: float = 2.7
    """Seconds of sensor time a clip covers (a run config's data.window_s)."""
    num_frames: int = 8
    """Frames per clip (a run config's model.num_frames)."""
    keyframe_position: Literal["center", "causal"] = "causal"
    """center (offline) or causal (the clip ends at the keyframe: live use)."""

    def __post_init__(self) -> None:
        check_number("window_s", self.window_s, low=0.0, low_open=True)
        if self.num_frames < 1:
            raise ValueError(f"num_frames: must be >= 1, got {self.num_frames}")

    @property
    def clip(self) -> ClipConfig:
        return ClipConfig(self.window_s, self.num_frames, self.keyframe_position)


@dataclasses.dataclass
class BaselineOptions:
    """Options of ``thermact baseline`` (``key=value`` on the command line)."""

    kind: BaselineKind = "box_gbm"
    """prior (training class frequencies) or box_gbm (gradient boosting on box cues; thermact[baselines])."""
    protocol: Literal["session", "recording"] = "session"
    """session (leave one session out) or recording (leave one recording out), as thermact cv."""
    run_dir: str = "runs/baseline"
    """Reports go to <run_dir>/<protocol>/baseline_<kind>.json and .md."""
    seed: int = 0
    """Seed of the gradient boosting."""
    cues: CueSet = "all"
    """box_gbm's cues: all (the box centre included), network (the network's: no position) or radial
    (network + the place relative to the optical axis)."""
    data: BaselineData = dataclasses.field(default_factory=BaselineData)


def report_stem(opts: BaselineOptions) -> str:
    """``baseline_<kind>``, and ``_<cues>`` for box_gbm on other cues than all."""
    suffix = f"_{opts.cues}" if opts.kind == "box_gbm" and opts.cues != "all" else ""
    return f"baseline_{opts.kind}{suffix}"


def run_baseline(opts: BaselineOptions, lenient: bool = False) -> dict[str, Any]:
    """Fit and score baseline ``opts.kind`` on every fold of ``opts.protocol``; the JSON-able report
    of :func:`thermact.commands.cv.run_cv` (also written)."""
    base = Path(opts.run_dir) / opts.protocol
    check_writable(base, "run_dir")
    if opts.kind == "box_gbm":
        sklearn_ensemble()  # the optional extra: refused before any work
    data = load_with_progress(opts.data.root, lenient)
    clip = opts.data.clip
    split = resolve_split(data, PROTOCOL_SPLITS[opts.protocol], clip)
    num_classes = len(data.classes)
    sides = [
        (keyframes_by_id(data, f.train, "training"), keyframes_by_id(data, f.test, "test"))
        for f in split.folds
    ]
    every = {kf.keyframe_id: kf for train, test in sides for kf in (*train, *test)}
    table = feature_table(data.recordings, list(every.values()), clip)  # each keyframe's cues once
    folds: list[FoldResult] = []
    for index, fold in enumerate(split.folds):
        t0 = time.perf_counter()
        train, test = table.of_keyframes(fold.train), table.of_keyframes(fold.test)
        preds = fit_predict(opts.kind, train, test, num_classes, opts.seed, opts.cues)
        metrics = dict(score_predictions(preds, num_classes).summary())
        folds.append(FoldResult(index, fold.name, "", metrics, metrics, -1, time.perf_counter() - t0))
    names = list(folds[0].last) if folds else []
    report = {
        "protocol": opts.protocol,
        "task": "baseline",
        "metrics": names,
        "split": split.name,
        "model": f"baseline {opts.kind}" + (f" (cues: {opts.cues})" if opts.kind == "box_gbm" else ""),
        "epochs": 0,
        "headline": "a fitted baseline (no epochs, nothing picked on the test fold)",
        "last_epoch": aggregate(folds, "last", names),
        "best_epoch_optimistic": None,
        "folds": [dataclasses.asdict(f) for f in folds],
    }
    write_json_atomic(base / f"{report_stem(opts)}.json", report)
    write_text_atomic(base / f"{report_stem(opts)}.md", format_cv_markdown(report))
    return report


def main(target: str | None, overrides: list[str], lenient: bool) -> int:
    """``thermact baseline [kind=..] [protocol=..] [key=value ...]``: print the report's markdown."""
    opts = build_options(BaselineOptions, "kind", target, overrides)
    report = run_baseline(opts, lenient)
    print(format_cv_markdown(report))
    print(f"wrote {Path(opts.run_dir) / opts.protocol / f'{report_stem(opts)}.json'} and .md")
    return 0
