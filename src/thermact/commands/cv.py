"""``thermact cv``: the honest protocols, every fold trained and tested, mean ± spread.

Protocols: ``session`` (train on one session, test on the other, both directions) and
``recording`` (leave one recording out, with the time purge of :mod:`thermact.data.splits`).
Each fold is a full :func:`thermact.engine.run.train` run in ``<run_dir>/<protocol>/fold<i>``.

Self-supervised pretraining (``pretrain.epochs=N``, action models): every fold first pretrains a
backbone on its **own** training recordings (:mod:`thermact.tasks.pretrain`, in
``<run_dir>/<protocol>/pretrain<i>``; the test session's frames are never seen) and then trains
from it (``model.pretrained``), so the cross-validation stays honest.

Which epoch counts: the held-out fold is the only data not used for training, so choosing the
best epoch on it would select on the test set. The headline numbers are therefore those of the
**last** epoch (no selection); the best-epoch numbers are reported beside them, marked as an
optimistic upper bound.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from thermact.commands._common import load_task_config
from thermact.config import build_options
from thermact.data.source import load_dataset
from thermact.data.splits import resolve_split
from thermact.engine.run import train
from thermact.engine.task import Task
from thermact.errors import ConfigError
from thermact.io import write_json_atomic, write_text_atomic
from thermact.tasks.pretrain import PRETRAIN, PretrainRunConfig, PretrainSection

logger = logging.getLogger(__name__)

PROTOCOL_SPLITS = {"session": "session", "recording": "lorecording"}


@dataclasses.dataclass(frozen=True)
class CvPretrain:
    """Per-fold self-supervised pretraining (the ``pretrain.*`` keys of ``thermact cv``)."""

    epochs: int = 0
    """Pretraining epochs before each fold (0: none); each fold pretrains on its own training recordings."""
    mask_ratio: float = 0.5
    """Share of the 4x4-pixel squares hidden in every frame of a pretraining clip."""
    frame_stride: int = 2
    """A pretraining clip ends at every this-many-th frame of the fold's training recordings."""

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"epochs: must be >= 0, got {self.epochs}")
        PretrainSection(self.mask_ratio, self.frame_stride)  # the same checks as thermact pretrain


@dataclasses.dataclass(frozen=True)
class CvOptions:
    """The keys of ``thermact cv`` beside the run config's."""

    protocol: Literal["session", "recording"] = "session"
    """session: leave one session out; recording: leave one recording out (time-purged)."""
    pretrain: CvPretrain = dataclasses.field(default_factory=CvPretrain)


def cv_options(overrides: Sequence[str]) -> tuple[CvOptions, list[str]]:
    """Split a command line into the :class:`CvOptions` (``protocol=``, ``pretrain.*``) and the run
    config's overrides."""
    mine = [o for o in overrides if o.startswith(("protocol=", "pretrain."))]
    return build_options(CvOptions, "protocol", None, mine), [o for o in overrides if o not in mine]


def fold_pretrain_config(cfg: Any, plan: CvPretrain, run_dir: Path) -> PretrainRunConfig:
    """The pretraining run of one fold: ``cfg``'s data fold, augmentations, optimiser and model,
    ``plan.epochs`` epochs, into ``run_dir``."""
    return PretrainRunConfig(
        run=dataclasses.replace(cfg.run, run_dir=str(run_dir)),
        data=cfg.data,
        augment=cfg.augment,
        optim=dataclasses.replace(cfg.optim, epochs=plan.epochs),
        model=cfg.model,
        pretrain=PretrainSection(plan.mask_ratio, plan.frame_stride),
    )


@dataclasses.dataclass
class FoldResult:
    index: int
    name: str
    run_dir: str
    last: dict[str, float | None]
    best: dict[str, float | None]
    best_epoch: int
    seconds: float


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation."""
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


def aggregate(
    folds: list[FoldResult], which: Literal["last", "best"], metrics: Sequence[str]
) -> dict[str, dict[str, float] | None]:
    """Mean, standard deviation, min and max over folds of each metric (None: no fold has it)."""
    out: dict[str, dict[str, float] | None] = {}
    for metric in metrics:
        values = [v for f in folds if (v := getattr(f, which).get(metric)) is not None]
        if not values:
            out[metric] = None
            continue
        m, s = mean_std([float(v) for v in values])
        out[metric] = {"mean": m, "std": s, "min": min(values), "max": max(values), "folds": len(values)}
    return out


def _last_val(run_dir: Path) -> dict[str, float | None]:
    records = [
        json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()
    ]
    vals = [r["val"] for r in records if "val" in r]
    return dict(vals[-1]) if vals else {}


def run_cv(
    task: Task[Any, Any],
    cfg: Any,
    protocol: Literal["session", "recording"],
    pretrain: CvPretrain | None = None,
) -> dict[str, Any]:
    """Train and test every fold of ``protocol`` (each first pretrained when ``pretrain.epochs``);
    return the JSON-able report (also written)."""
    pretrain = pretrain if pretrain is not None and pretrain.epochs > 0 else None
    if pretrain is not None and task.name != "action":
        raise ConfigError(f"config key 'pretrain.epochs': only action models are pretrained, not {task.name}")
    if pretrain is not None and cfg.model.pretrained is not None:
        raise ConfigError(
            "config key 'pretrain.epochs': model.pretrained is set; pretraining starts from random weights"
        )
    base = Path(cfg.run.run_dir) / protocol
    data = load_dataset(cfg.data.root, lenient=cfg.data.lenient)
    split = resolve_split(data, PROTOCOL_SPLITS[protocol], cfg.clip)
    folds: list[FoldResult] = []
    for index, fold in enumerate(split.folds):
        fold_cfg = dataclasses.replace(
            cfg,
            run=dataclasses.replace(cfg.run, run_dir=str(base / f"fold{index}")),
            data=dataclasses.replace(cfg.data, split=PROTOCOL_SPLITS[protocol], fold=index),
        )
        logger.info("== fold %d/%d: %s", index + 1, len(split.folds), fold.name)
        t0 = time.perf_counter()
        if pretrain is not None:
            pre = train(PRETRAIN, fold_pretrain_config(fold_cfg, pretrain, base / f"pretrain{index}"))
            if pre.interrupted:
                raise KeyboardInterrupt
            model = dataclasses.replace(fold_cfg.model, pretrained=str(pre.last_checkpoint))
            fold_cfg = dataclasses.replace(fold_cfg, model=model)
        result = train(task, fold_cfg)
        if result.interrupted:
            raise KeyboardInterrupt
        best = {k: v for k, v in result.best_metrics.items() if k != "epoch"}
        folds.append(
            FoldResult(
                index,
                fold.name,
                str(result.run_dir),
                _last_val(result.run_dir),
                best,
                int(result.best_metrics.get("epoch", -1)),
                time.perf_counter() - t0,
            )
        )
    metrics = list(dict.fromkeys(m for f in folds for m in f.last))  # the task's validation metrics
    report = {
        "protocol": protocol,
        "task": task.name,
        "metrics": metrics,
        "split": split.name,
        "model": cfg.model.name,
        "epochs": cfg.optim.epochs,
        "pretrain": dataclasses.asdict(pretrain) if pretrain is not None else None,
        "headline": "last epoch of each fold (no model selection on the test fold)",
        "last_epoch": aggregate(folds, "last", metrics),
        "best_epoch_optimistic": aggregate(folds, "best", metrics),
        "folds": [dataclasses.asdict(f) for f in folds],
    }
    write_json_atomic(base / "cv_report.json", report)
    write_text_atomic(base / "cv_report.md", format_cv_markdown(report))
    return report


def _pm(entry: dict[str, float] | None) -> str:
    return "N/A" if entry is None else f"{entry['mean']:.3f} ± {entry['std']:.3f}"


def format_cv_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Cross-validation: {report['model']}, protocol `{report['protocol']}`",
        "",
        f"Headline: {report['headline']}. Mean ± standard deviation over {len(report['folds'])} folds.",
        "",
    ]
    metrics = report["metrics"]
    best = report["best_epoch_optimistic"]  # None: a fitted baseline, no epochs
    header = "| metric | last epoch | best epoch (optimistic) |" if best else "| metric | mean ± std |"
    lines += [header, "| --- | --- | --- |" if best else "| --- | --- |"]
    for metric in metrics:
        row = f"| {metric} | {_pm(report['last_epoch'][metric])} |"
        lines.append(row + (f" {_pm(best[metric])} |" if best else ""))
    lines += [
        "",
        "| fold | test | " + " | ".join(metrics) + " | minutes |",
        "| --- | --- |" + " --- |" * (len(metrics) + 1),
    ]
    for f in report["folds"]:
        vals = " | ".join("N/A" if f["last"].get(m) is None else f"{f['last'][m]:.3f}" for m in metrics)
        lines.append(f"| {f['index']} | {f['name']} | {vals} | {f['seconds'] / 60:.1f} |")
    return "\n".join(lines) + "\n"


def main(target: str | None, overrides: list[str], lenient: bool) -> int:
    """``thermact cv [config=FILE] protocol=session|recording [pretrain.epochs=N] [key=value ...]``."""
    opts, rest = cv_options(overrides)
    task, cfg = load_task_config(target, rest, lenient)
    report = run_cv(task, cfg, opts.protocol, opts.pretrain)
    print(format_cv_markdown(report))
    print(f"wrote {Path(cfg.run.run_dir) / opts.protocol / 'cv_report.json'} and cv_report.md")
    return 0
