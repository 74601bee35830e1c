"""PNG figures of an evaluation: PR curves, confusion matrix, training curves.

Figures are built with :class:`matplotlib.figure.Figure` directly (never ``pyplot``), so no GUI
backend, display or global figure state is involved; PNGs are rendered by the Agg canvas into
memory and written atomically with :func:`thermact.io.atomic_open`. Every ``plot_*`` function
writes one file and returns nothing.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from thermact.evaluation.frame_map import FrameMAP
from thermact.io import atomic_open

DPI = 110


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Render ``fig`` to PNG in memory (Agg) and write it to ``path`` atomically."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    with atomic_open(path, "wb") as handle:
        handle.write(buf.getvalue())


def _colors(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap: Colormap = colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]


PR_COLUMNS = 4
"""Panels per row of the PR-curve grid."""


def pr_curves_figure(fmap: FrameMAP, class_names: Sequence[str]) -> Figure:
    """One panel per class with ground truth, in a grid of :data:`PR_COLUMNS` columns, each with
    its own full 0..1 axes and its AP and GT count in its title (so a class with a handful of
    boxes is as legible as a frequent one). Classes without GT are listed in the title as N/A.

    The curves are the raw points of :func:`~thermact.evaluation.frame_map.average_precision`
    (score-sorted detections), starting at recall 0 with the first precision.
    """
    with_gt = [c for c in fmap.per_class if c.ap is not None]
    cols = max(1, min(PR_COLUMNS, len(with_gt)))
    rows = max(1, math.ceil(len(with_gt) / cols))
    fig = Figure(figsize=(3.0 * cols, 2.6 * rows + 0.6))
    for i, (color, c) in enumerate(zip(_colors(len(with_gt)), with_gt, strict=True)):
        ax = fig.add_subplot(rows, cols, i + 1)
        recall = [0.0, *c.recall]
        precision = [c.precision[0] if c.precision else 0.0, *c.precision]
        ax.plot(recall, precision, color=color, linewidth=1.4)
        ax.fill_between(recall, precision, step=None, color=color, alpha=0.15)
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.02)
        ax.set_title(f"{class_names[c.label]}\nAP {c.ap:.2f}, n={c.num_gt}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        if i % cols == 0:
            ax.set_ylabel("precision", fontsize=8)
        if i >= len(with_gt) - cols:
            ax.set_xlabel("recall", fontsize=8)
    map_text = "N/A" if fmap.map is None else f"{fmap.map:.3f}"
    title = f"frame-mAP@{fmap.iou_threshold:g} = {map_text}"
    missing = [class_names[c.label] for c in fmap.per_class if c.ap is None]
    if missing:
        title += f"\nN/A (no ground truth): {', '.join(missing)}"
    fig.suptitle(title, fontsize=10)
    if not with_gt:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no class has ground truth", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def plot_pr_curves(fmap: FrameMAP, class_names: Sequence[str], path: str | os.PathLike[str]) -> None:
    """Write :func:`pr_curves_figure` to ``path`` (PNG)."""
    save_figure(pr_curves_figure(fmap, class_names), path)


def plot_confusion_matrix(
    confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: str | os.PathLike[str]
) -> None:
    """Confusion matrix ``[true, predicted]``: colour = row-normalised rate, text = count.

    Rows of classes without ground truth have no rate and are drawn grey; zero counts are left
    blank. Row labels carry the GT count of the class.
    """
    cm = np.asarray(confusion, dtype=np.int64)
    n = len(class_names)
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {list(cm.shape)} for {n} classes")
    support = cm.sum(axis=1)
    rates = np.ma.masked_invalid(
        np.divide(cm, support[:, None], out=np.full(cm.shape, np.nan), where=support[:, None] > 0)
    )
    side = max(4.0, 0.45 * n + 2.5)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib import colormaps

    cmap = colormaps["Blues"].with_extremes(bad="#dddddd")
    image = ax.imshow(rates, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    for t in range(n):
        for p in range(n):
            if cm[t, p]:
                rate = float(rates[t, p])
                ax.text(
                    p,
                    t,
                    str(int(cm[t, p])),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if rate > 0.6 else "black",
                )
    ax.set_xticks(range(n), labels=list(class_names), rotation=60, ha="right", fontsize=7)
    ax.set_yticks(
        range(n),
        labels=[f"{name} ({int(s)})" for name, s in zip(class_names, support, strict=True)],
        fontsize=7,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (GT boxes)")
    total = int(cm.sum())
    acc = float(np.trace(cm)) / total if total else math.nan
    ax.set_title(f"{total} boxes, accuracy {acc:.3f}", fontsize=9)
    save_figure(fig, path)


@dataclasses.dataclass
class TrainingLog:
    """The series of a run's ``metrics.jsonl`` (see :func:`parse_training_log`)."""

    steps: list[int]
    loss: list[float]
    lr: list[float]
    val_epochs: list[int]
    """Epoch of each validation record, as logged (``thermact train`` logs epochs completed, 1-based)."""
    val: dict[str, list[float | None]]
    """metric name → value per validation record (None where missing)."""
    val_steps: list[int] = dataclasses.field(default_factory=list)
    """Optimiser step of each validation record."""
    epoch_steps: list[int] = dataclasses.field(default_factory=list)
    """Step at the end of each epoch with a ``train_loss`` record."""
    epoch_loss: list[float] = dataclasses.field(default_factory=list)
    """Mean training loss over every batch of that epoch."""


def latest_run(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records of the latest run when several appended to one log.

    A record whose ``step`` is lower than the previous record's starts a new run (a resume from
    an earlier checkpoint, or a repeated run with ``exist_ok``): earlier records at that step or
    later are dropped. Records without a numeric ``step`` are kept in place.
    """
    kept: list[Mapping[str, Any]] = []
    last: float | None = None
    for r in records:
        step = _step(r)
        if step is not None:
            if last is not None and step < last:
                kept = [k for k in kept if (ks := _step(k)) is None or ks < step]
            last = step
        kept.append(r)
    return kept


def _step(record: Mapping[str, Any]) -> float | None:
    value: Any = record.get("step")
    return float(value) if _is_number(value) else None


def parse_training_log(records: Sequence[Mapping[str, Any]]) -> TrainingLog:
    """Split records into training steps (``step``, ``loss``, ``lr``), epoch means (``step``,
    ``train_loss``) and validations (``epoch``, ``val``).

    Only the latest run of the log is used (:func:`latest_run`); records of other shapes are
    ignored; validation metrics are the numeric entries of ``val``.
    """
    log = TrainingLog([], [], [], [], {})
    vals: list[Mapping[str, Any]] = []
    for r in latest_run(records):
        if isinstance(r.get("val"), Mapping) and isinstance(r.get("epoch"), int):
            log.val_epochs.append(int(r["epoch"]))
            log.val_steps.append(int(r["step"]) if _is_number(r.get("step")) else 0)
            vals.append(r["val"])
        elif _is_number(r.get("train_loss")) and _is_number(r.get("step")):
            log.epoch_steps.append(int(r["step"]))
            log.epoch_loss.append(float(r["train_loss"]))
        elif all(_is_number(r.get(k)) for k in ("step", "loss", "lr")):
            log.steps.append(int(r["step"]))
            log.loss.append(float(r["loss"]))
            log.lr.append(float(r["lr"]))
    names: list[str] = []
    for v in vals:
        names += [k for k, x in v.items() if _is_number(x) and k not in names]
    log.val = {k: [float(v[k]) if _is_number(v.get(k)) else None for v in vals] for k in names}
    return log


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


VAL_LOSS = "val_loss"
"""The validation metric drawn with the training loss (not a 0..1 score)."""


def training_curves_figure(records: Sequence[Mapping[str, Any]]) -> Figure:
    """Three panels: the loss against the optimiser step (the logged single-batch losses faint,
    the mean training loss of each epoch and the validation loss ``val_loss`` at the end of each
    epoch), the learning rate, and the validation metrics (0..1) against the epoch.

    ``records`` are the lines of a run's ``metrics.jsonl`` (see :func:`parse_training_log`); an
    empty series is drawn as an empty panel saying so.
    """
    log = parse_training_log(records)
    fig = Figure(figsize=(13.0, 3.8))
    ax_loss, ax_lr, ax_val = (fig.add_subplot(1, 3, i) for i in (1, 2, 3))
    panels: list[tuple[Any, str, str]] = [
        (ax_loss, "loss", "step"),
        (ax_lr, "learning rate", "step"),
        (ax_val, "validation", "epoch"),
    ]
    for ax, title, xlabel in panels:
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
    if log.steps:
        ax_loss.plot(log.steps, log.loss, linewidth=0.8, alpha=0.35, color="tab:blue", label="batch (logged)")
        ax_lr.plot(log.steps, log.lr, linewidth=1.2, color="tab:orange")
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    else:
        for ax in (ax_loss, ax_lr):
            ax.text(0.5, 0.5, "no training records", ha="center", va="center", transform=ax.transAxes)
    if log.epoch_steps:
        ax_loss.plot(
            log.epoch_steps,
            log.epoch_loss,
            marker="o",
            markersize=3,
            color="tab:blue",
            label="train (epoch mean)",
        )
    val_loss = [
        (s, v) for s, v in zip(log.val_steps, log.val.get(VAL_LOSS, []), strict=False) if v is not None
    ]
    if val_loss:
        ax_loss.plot(
            [s for s, _ in val_loss], [v for _, v in val_loss], marker="s", markersize=3, color="tab:red",
            label="validation",
        )  # fmt: skip
    if log.steps or log.epoch_steps:
        ax_loss.legend(fontsize=8, frameon=False)
    metrics = {k: v for k, v in log.val.items() if k != VAL_LOSS}
    if metrics:
        for color, (name, values) in zip(_colors(len(metrics)), metrics.items(), strict=True):
            xs = [e for e, v in zip(log.val_epochs, values, strict=True) if v is not None]
            ys = [v for v in values if v is not None]
            ax_val.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, color=color, label=name)
        ax_val.set_ylim(0.0, 1.0)
        ax_val.set_xlim(min(log.val_epochs) - 0.5, max(log.val_epochs) + 0.5)
        ax_val.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax_val.legend(fontsize=8, frameon=False)
    else:
        ax_val.text(0.5, 0.5, "no validation records", ha="center", va="center", transform=ax_val.transAxes)
    fig.tight_layout()
    return fig


def plot_training_curves(records: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Write :func:`training_curves_figure` to ``path`` (PNG)."""
    save_figure(training_curves_figure(records), path)
