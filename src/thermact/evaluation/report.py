"""The evaluation report as data: ``report.json`` and ``report.md`` built from an :class:`EvalResult`.

Pure functions, no I/O: :func:`report_dict` returns a JSON-ready dict, :func:`report_markdown` the
Markdown text. Both take the scores (:class:`~thermact.evaluation.evaluate.EvalResult`) and an
:class:`EvalMetadata` saying what was evaluated on what.

Conventions, as in the metrics themselves:

* a class with no ground-truth box in the evaluated set has AP, recall and F1 ``None``, written
  ``null`` in JSON and ``N/A`` in Markdown; it does not enter frame-mAP, macro-F1 or balanced
  accuracy (:mod:`thermact.evaluation.frame_map`, :mod:`thermact.evaluation.classification`);
* a class with ground truth in the evaluated set but no box in the checkpoint's *training*
  keyframes is flagged (``classes_unseen_in_training``; ``†`` in Markdown): the model cannot have
  learnt it, which says more about the split than about the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from thermact.evaluation.evaluate import EvalResult

NA = "N/A"
UNSEEN_MARK = "†"


@dataclasses.dataclass
class EvalMetadata:
    """What was evaluated, on what, and where the outputs are.

    Attributes:
        checkpoint: path of the evaluated checkpoint.
        model: model name of the checkpoint's config (e.g. ``thermal_net_s``).
        classes: class names in id order (the checkpoint's, equal to the dataset's).
        dataset: dataset directory.
        split: split name or file evaluated on.
        fold: name of the evaluated fold (e.g. ``"SL18->SL14"``).
        fold_index: its index in the split.
        split_leaky: True when the split itself is leaky (the ``given`` split).
        trained_on: ``"<split> fold <index> (<name>)"`` of the checkpoint's training run, or None.
        train_counts: person boxes per class id in the checkpoint's training keyframes, or None
            when they cannot be determined (another dataset, an unresolvable split file).
        leaked_keyframes: evaluated keyframes whose clip shares time with a training clip of the
            checkpoint (None: unknown); non-zero makes the scores optimistic.
        leaked_overlap_s: total seconds of that shared time.
        checkpoint_epoch: epochs completed when the checkpoint was written (None: unknown).
        checkpoint_metrics: the validation metrics stored in the checkpoint.
        device: the device the model ran on.
        plots: role (``pr_curves``, ``confusion_matrix``, ``training_curves``) → file name,
            relative to the report, of the PNGs that were written.
        files: role (``detections``, ``groundtruth``, ``label_map``) → relative file name.
        version: thermact version.
    """

    checkpoint: str
    model: str
    classes: list[str]
    dataset: str
    split: str
    fold: str
    fold_index: int
    split_leaky: bool = False
    trained_on: str | None = None
    train_counts: list[int] | None = None
    leaked_keyframes: int | None = None
    leaked_overlap_s: float | None = None
    checkpoint_epoch: int | None = None
    checkpoint_metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    device: str = "cpu"
    plots: dict[str, str] = dataclasses.field(default_factory=dict)
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    version: str = ""


# ---------------------------------------------------------------------------------------------
# Derived facts


def eval_counts(result: EvalResult) -> list[int]:
    """Ground-truth person boxes per class id in the evaluated set."""
    return [pc.support for pc in result.classification.per_class]


def classes_without_gt(result: EvalResult) -> list[int]:
    """Class ids with no ground-truth box in the evaluated set (reported as N/A)."""
    return [pc.label for pc in result.classification.per_class if pc.support == 0]


def classes_unseen_in_training(result: EvalResult, train_counts: Sequence[int] | None) -> list[int]:
    """Class ids present in the evaluated ground truth but absent from the training keyframes."""
    if train_counts is None:
        return []
    if len(train_counts) != len(result.classification.per_class):
        raise ValueError(
            f"{len(train_counts)} training counts for {len(result.classification.per_class)} classes"
        )
    return [
        pc.label for pc in result.classification.per_class if pc.support > 0 and train_counts[pc.label] == 0
    ]


def format_number(value: float | None, digits: int = 3) -> str:
    """``0.12345`` → ``"0.123"``; ``None`` → ``"N/A"``."""
    return NA if value is None else f"{value:.{digits}f}"


# ---------------------------------------------------------------------------------------------
# JSON


def report_dict(result: EvalResult, meta: EvalMetadata) -> dict[str, Any]:
    """The content of ``report.json``: :meth:`EvalResult.to_dict` plus metadata and class flags.

    Top-level keys: ``metadata``, ``summary``, ``num_keyframes``, ``num_boxes``, ``frame_map``,
    ``classification`` (as :meth:`EvalResult.to_dict`), ``classes`` (names in id order),
    ``class_counts`` (``test`` and ``train`` boxes by class name; ``train`` null when unknown),
    ``classes_without_gt`` and ``classes_unseen_in_training`` (names), ``plots`` and ``files``.
    """
    names = list(meta.classes)
    _check_classes(result, names)
    train = meta.train_counts
    metadata = {
        "checkpoint": meta.checkpoint,
        "model": meta.model,
        "dataset": meta.dataset,
        "split": meta.split,
        "fold": meta.fold,
        "fold_index": meta.fold_index,
        "split_leaky": meta.split_leaky,
        "trained_on": meta.trained_on,
        "leaked_keyframes": meta.leaked_keyframes,
        "leaked_overlap_s": meta.leaked_overlap_s,
        "checkpoint_epoch": meta.checkpoint_epoch,
        "checkpoint_metrics": dict(meta.checkpoint_metrics),
        "device": meta.device,
        "thermact_version": meta.version,
    }
    return {
        "metadata": metadata,
        **result.to_dict(names),
        "classes": names,
        "class_counts": {
            "test": dict(zip(names, eval_counts(result), strict=True)),
            "train": None if train is None else dict(zip(names, train, strict=True)),
        },
        "classes_without_gt": [names[c] for c in classes_without_gt(result)],
        "classes_unseen_in_training": [names[c] for c in classes_unseen_in_training(result, train)],
        "plots": dict(meta.plots),
        "files": dict(meta.files),
    }


def _check_classes(result: EvalResult, names: Sequence[str]) -> None:
    if len(names) != len(result.classification.per_class):
        raise ValueError(f"{len(names)} class names for {len(result.classification.per_class)} classes")


# ---------------------------------------------------------------------------------------------
# Markdown


def _cell(text: object) -> str:
    """A Markdown table cell: pipes escaped, newlines flattened."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[object], rows: Sequence[Sequence[object]], align: str = "") -> str:
    """A GitHub-flavoured Markdown table; ``align`` holds one of ``l``/``r`` per column (default l)."""
    marks = [("---:" if a == "r" else "---") for a in align.ljust(len(header), "l")]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


_PLOT_TITLES = {
    "pr_curves": "Precision / recall per class (frame-mAP@0.5 detections)",
    "confusion_matrix": "Confusion matrix (row-normalised, counts annotated)",
    "training_curves": "Training curves",
}
_FILE_TITLES = {
    "detections": "AVA-style detections (one row per box × class, score last)",
    "groundtruth": "AVA-style ground truth",
    "label_map": "label map (1-based ids)",
}


def report_markdown(result: EvalResult, meta: EvalMetadata) -> str:
    """The content of ``report.md``: metadata, headline metrics, per-class table, confusion, plots."""
    names = list(meta.classes)
    _check_classes(result, names)
    s = result.summary()
    out: list[str] = [f"# Evaluation of {meta.model} on {meta.split} / {meta.fold}", ""]
    epoch = f" (epoch {meta.checkpoint_epoch})" if meta.checkpoint_epoch is not None else ""
    about = [
        ("checkpoint", f"`{meta.checkpoint}`{epoch}"),
        ("dataset", f"`{meta.dataset}`"),
        ("evaluated on", f"split `{meta.split}`, fold {meta.fold_index} `{meta.fold}`"),
        ("trained on", meta.trained_on if meta.trained_on is not None else "unknown"),
        ("keyframes / person boxes", f"{result.num_keyframes} / {result.num_boxes}"),
        ("device", meta.device),
    ]
    out += [markdown_table(["", ""], about), ""]
    for w in _warnings(result, meta):
        out += [f"> **Warning:** {w}", ""]
    headline = [
        ("frame-mAP@0.5", format_number(s["frame_map"])),
        ("accuracy", format_number(s["accuracy"])),
        ("balanced accuracy", format_number(s["balanced_accuracy"])),
        ("macro-F1", format_number(s["macro_f1"])),
    ]
    out += ["## Headline", "", markdown_table(["metric", "value"], headline, "lr"), ""]
    out += [
        "Person boxes are the ground-truth ones: frame-mAP scores every (box, class) pair by the class "
        "probability (AVA protocol); the classification metrics use the arg-max class of each box.",
        "",
    ]
    out += _per_class_section(result, meta, names) + _confusion_section(result, names)
    if meta.plots:
        out += ["## Plots", ""]
        for role, file in meta.plots.items():
            title = _PLOT_TITLES.get(role, role)
            out += [f"### {title}", "", f"![{title}]({file})", ""]
    if meta.files:
        out += ["## Files", ""]
        out += [f"- [`{file}`]({file}): {_FILE_TITLES.get(role, role)}" for role, file in meta.files.items()]
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _per_class_section(result: EvalResult, meta: EvalMetadata, names: list[str]) -> list[str]:
    out = ["## Per class", ""]
    unseen = set(classes_unseen_in_training(result, meta.train_counts))
    ap_by_class = {c.label: c.ap for c in result.frame_map.per_class}
    rows: list[list[object]] = []
    for pc in result.classification.per_class:
        name = names[pc.label] + (f" {UNSEEN_MARK}" if pc.label in unseen else "")
        train = NA if meta.train_counts is None else meta.train_counts[pc.label]
        ap = format_number(ap_by_class.get(pc.label))
        rows.append(
            [
                pc.label,
                name,
                ap,
                format_number(pc.precision),
                format_number(pc.recall),
                format_number(pc.f1),
                pc.support,
                pc.predicted,
                train,
            ]
        )
    header = ["id", "class", "AP", "precision", "recall", "F1", "support", "predicted", "train boxes"]
    out += [markdown_table(header, rows, "rlrrrrrrr"), ""]
    missing = [names[c] for c in classes_without_gt(result)]
    if missing:
        out += [
            f"N/A: no ground-truth box in the evaluated set ({', '.join(missing)}); these classes do not "
            "enter frame-mAP, macro-F1 or balanced accuracy.",
            "",
        ]
    if unseen:
        out += [
            f"{UNSEEN_MARK} present in the evaluated set but with no box in the checkpoint's training "
            f"keyframes ({', '.join(names[c] for c in sorted(unseen))}): the model never saw them.",
            "",
        ]
    return out


def _confusion_section(result: EvalResult, names: list[str]) -> list[str]:
    cm = result.classification.confusion
    n = len(names)
    rows = [[f"{c} {names[c]}", *cm[c], sum(cm[c])] for c in range(n)]
    rows.append(["predicted", *[sum(cm[t][p] for t in range(n)) for p in range(n)], ""])
    table = markdown_table(["true \\ predicted", *range(n), "total"], rows, "l" + "r" * (n + 1))
    return [
        "## Confusion matrix",
        "",
        "Rows: true class; columns: predicted class (ids as above); counts.",
        "",
        table,
        "",
    ]


def _warnings(result: EvalResult, meta: EvalMetadata) -> list[str]:
    out = []
    if meta.split_leaky:
        out.append(
            f"split `{meta.split}` is leaky: its test clips share time with its training clips, so these "
            "scores are optimistic."
        )
    if meta.leaked_keyframes:
        out.append(
            f"{meta.leaked_keyframes} of {result.num_keyframes} evaluated keyframes share "
            f"{format_number(meta.leaked_overlap_s, 1)} s of clip time with the checkpoint's training clips; "
            "the scores are optimistic."
        )
    if meta.train_counts is None:
        out.append(
            "the checkpoint's training keyframes are unknown: classes unseen in training are not flagged."
        )
    return out


def summary_lines(result: EvalResult, meta: EvalMetadata) -> list[str]:
    """A few lines for the terminal: what was evaluated and the headline numbers."""
    s = result.summary()
    names = meta.classes
    lines = [
        f"evaluated {meta.model} ({meta.checkpoint}) on split {meta.split} fold {meta.fold_index} "
        f"({meta.fold}): {result.num_keyframes} keyframes, {result.num_boxes} person boxes",
        f"frame-mAP@0.5 {format_number(s['frame_map'])}  accuracy {format_number(s['accuracy'])}  "
        f"balanced accuracy {format_number(s['balanced_accuracy'])}  macro-F1 {format_number(s['macro_f1'])}",
    ]
    missing = classes_without_gt(result)
    if missing:
        lines.append(f"N/A (no ground truth): {', '.join(names[c] for c in missing)}")
    unseen = classes_unseen_in_training(result, meta.train_counts)
    if unseen:
        lines.append(f"not in the training keyframes: {', '.join(names[c] for c in unseen)}")
    lines += [f"warning: {w.replace('`', '')}" for w in _warnings(result, meta)]
    return lines


def detector_report_markdown(report: Mapping[str, Any]) -> str:
    """``report.md`` of a person-detector evaluation (``thermact eval checkpoint=DETECTOR.pt``)."""
    m = report["metrics"]
    meta = report["metadata"]
    lines = [
        f"# Person detector evaluation: {meta['model']}",
        "",
        f"Checkpoint `{meta['checkpoint']}` (epoch {meta['checkpoint_epoch']}), dataset `{meta['dataset']}`, "
        f"split `{meta['split']}` fold {meta['fold']} ({m['num_keyframes']} keyframes, {m['num_persons']} persons, "
        f"{m['num_others']} hot-object / furniture boxes).",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| person AP@0.5 (class-agnostic) | {format_number(m['person_ap'])} |",
        f"| recall @ score >= {m['score_threshold']:g} | {format_number(m['recall'])} |",
        f"| precision @ score >= {m['score_threshold']:g} | {format_number(m['precision'])} |",
        f"| hot objects / furniture taken for a person | {m['hot_object_fp']} detections, "
        f"{format_number(m['hot_object_fp_rate'])} of the boxes |",
    ]
    if meta.get("leaked_keyframes"):
        lines += [
            "",
            f"**Warning**: {meta['leaked_keyframes']} test keyframes share time with training clips.",
        ]
    if meta.get("pr_curve"):
        lines += ["", f"![precision/recall]({meta['pr_curve']})"]
    return "\n".join(lines) + "\n"
