"""``thermact eval``: score a trained checkpoint on a split fold and write a report.

Usage::

    thermact eval [CHECKPOINT] [checkpoint=PATH] [split=NAME|FILE] [fold=N] [dataset=DIR]
                  [out=DIR] [exist_ok=true] [batch_size=16] [device=auto|cpu|cuda] [time_unit=ms|s]
                  [detector=PATH]

A person-detector checkpoint (config ``task: detector``) is evaluated by
:func:`run_detector_evaluation` (person AP@0.5, recall, hot-object false positives). For an action checkpoint, ``detector=PATH`` also runs the two-stage pipeline:
the detector's person boxes replace the ground-truth boxes and the report gets the end-to-end
frame-mAP@0.5 (score = detector score x class probability) next to the GT-box numbers.

By default the fold the checkpoint was validated on (its config's ``data.split`` / ``data.fold``)
is evaluated, on the checkpoint's dataset, with the checkpoint's clip parameters and
normalisation. Written into ``out`` (default ``<checkpoint dir>/eval_<split>_<fold>``), each file
atomically:

* ``report.json`` / ``report.md``: metrics, per-class table (N/A for classes without ground
  truth; classes absent from the checkpoint's training keyframes flagged), confusion matrix,
  metadata (:mod:`thermact.evaluation.report`);
* ``pr_curves.png``, ``confusion_matrix.png`` and, when the run's ``metrics.jsonl`` lies next to
  the checkpoint, ``training_curves.png`` (:mod:`thermact.evaluation.plots`);
* ``detections.csv`` (one row per box × class, score last), ``groundtruth.csv`` and
  ``label_map.pbtxt``, in the format of the official AVA evaluator (:mod:`thermact.data.ava`;
  timestamps in integer Unix milliseconds).

Honesty checks: the evaluated keyframes are compared in absolute time with the checkpoint's own
training keyframes (resolved from its config's split on the same dataset); any overlap, and a
leaky split, is reported as a warning in the terminal and in the report.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import DataLoader

from thermact import __version__
from thermact.commands._common import check_out_dir, load_with_progress, task_of
from thermact.config import build_options, check_number
from thermact.data.annotations import Keyframe
from thermact.data.ava import (
    AvaRow,
    TimeUnit,
    detection_rows,
    keyframes_to_ava_rows,
    write_ava_csv,
    write_label_map,
)
from thermact.data.clips import ClipConfig
from thermact.data.dataset import ClipDataset, collate_clips
from thermact.data.source import DatasetFingerprint, ThermalData, fingerprint_dataset, resolve_dataset
from thermact.data.splits import (
    STANDARD_SPLITS,
    Fold,
    SplitDefinition,
    all_keyframes_fold,
    build_split,
    leakage,
    resolve_split,
)
from thermact.engine.checkpoint import load_checkpoint
from thermact.engine.restore import TrainedModel, checkpoint_task
from thermact.engine.run import keyframes_by_id, select_device
from thermact.errors import CheckpointError, ConfigError, DataError, ThermactError
from thermact.evaluation import plots
from thermact.evaluation.detection import DetectionMetrics, detection_metrics
from thermact.evaluation.end_to_end import detect_keyframes, end_to_end_frame_map
from thermact.evaluation.evaluate import EvalResult, Predictions, predict, score_predictions
from thermact.evaluation.report import (
    EvalMetadata,
    detector_report_markdown,
    format_number,
    report_dict,
    report_markdown,
    summary_lines,
)
from thermact.evaluation.smoothing import SmoothingMode, smooth_track_scores
from thermact.inference.falls import fall_alert_reports, fall_alerts_markdown
from thermact.inference.runners import ActionRunner, DetectorRunner
from thermact.inference.streaming import StreamingPredictor
from thermact.io import write_json_atomic, write_text_atomic
from thermact.models.postprocess import Detections
from thermact.models.tta import TTA, check_tta, with_tta
from thermact.tasks.action import TrainedActionModel, class_counts, restore_model
from thermact.tasks.person import restore_detector

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class EvalOptions:
    """Options of ``thermact eval`` (``key=value`` on the command line)."""

    checkpoint: str = ""
    """The checkpoint to evaluate (required; also accepted as the positional argument)."""
    split: str | None = None
    """Split name or file; None: the checkpoint's ``data.split``."""
    fold: int | None = None
    """Fold index; None: the checkpoint's ``data.fold``."""
    dataset: str | None = None
    """Dataset directory; None: the checkpoint's ``data.root`` (None there: the bundled one)."""
    out: str | None = None
    """Output directory; None: ``<checkpoint dir>/eval_<split>_<fold>``."""
    exist_ok: bool = False
    """Write into an existing non-empty ``out`` (files of the same name are replaced)."""
    batch_size: int = 16
    """Clips per forward pass."""
    num_workers: int = 0
    """DataLoader worker processes."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto (CUDA when present), cpu or cuda."""
    time_unit: Literal["ms", "s"] = "ms"
    """Timestamps of the AVA CSVs: integer Unix ms (read by the official AVA evaluator and
    PySlowFast), or seconds with 3 decimals (thermact and spreadsheets only)."""
    detector: str | None = None
    """A person-detector checkpoint: also report the end-to-end frame-mAP on its boxes."""
    smooth_s: float = 0.0
    """Smooth each track's class scores over time with this time constant in seconds (0: off;
    thermact.evaluation.smoothing). Ground-truth boxes only (the end-to-end numbers are raw)."""
    smooth: SmoothingMode = "causal"
    """causal (past keyframes of the track only, as live) or offline (past and future)."""
    tta: TTA = "none"
    """none, or flips: every person's class scores averaged over the four flips of its clip
    (thermact.models.tta; up to 4x the action model's compute); also on detector boxes and fall alerts."""

    def __post_init__(self) -> None:
        if not self.checkpoint:
            raise ConfigError("config key 'checkpoint' is required: pass checkpoint=PATH")
        check_number("smooth_s", self.smooth_s, low=0.0)
        if self.batch_size < 1:
            raise ConfigError(f"config key 'batch_size': must be >= 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ConfigError(f"config key 'num_workers': must be >= 0, got {self.num_workers}")
        if self.fold is not None and self.fold < 0:
            raise ConfigError(f"config key 'fold': must be >= 0, got {self.fold}")


def load_options(target: str | None, overrides: Sequence[str]) -> EvalOptions:
    """Validated options; a positional ``target`` is the checkpoint (conflicts with checkpoint=)."""
    return build_options(EvalOptions, "checkpoint", target, overrides)


# ---------------------------------------------------------------------------------------------
# Steps


def check_class_list(
    checkpoint_classes: Sequence[str], dataset_classes: Sequence[str], checkpoint: str, dataset: str
) -> None:
    """Raise :class:`CheckpointError` unless the checkpoint was trained on the dataset's class list."""
    a, b = list(checkpoint_classes), list(dataset_classes)
    if a == b:
        return
    detail = f"{len(a)} classes in the checkpoint, {len(b)} in the dataset"
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            detail += f"; first difference at id {i}: {x!r} (checkpoint) vs {y!r} (dataset)"
            break
    else:
        longer, which = (a, "checkpoint") if len(a) > len(b) else (b, "dataset")
        detail += f"; the {which} has extra class {longer[min(len(a), len(b))]!r}"
    raise CheckpointError(f"{checkpoint}: trained on other classes than dataset {dataset}: {detail}")


def default_out_dir(checkpoint: Path, split: str, fold_index: int) -> Path:
    """``<checkpoint dir>/eval_<split>_<fold>`` (a split file contributes its stem)."""
    tag = split if split in STANDARD_SPLITS else Path(split).stem
    return checkpoint.parent / f"eval_{tag}_{fold_index}"


def pick_fold(split: SplitDefinition, index: int, key: str) -> Fold:
    if not 0 <= index < len(split.folds):
        names = ", ".join(f"{i}={f.name}" for i, f in enumerate(split.folds))
        raise ConfigError(f"config key {key!r}: fold {index} out of range for split {split.name!r} ({names})")
    return split.folds[index]


@dataclasses.dataclass
class TrainingSide:
    """What is known about the checkpoint's training keyframes on the evaluated dataset."""

    description: str | None
    keyframe_ids: list[str] | None


def training_side(trained: TrainedModel[Any, Any], data: ThermalData, clip: ClipConfig) -> TrainingSide:
    """The training keyframes of the checkpoint's own split fold, when they can be resolved.

    They are only meaningful on the dataset the checkpoint was trained on; otherwise (or when its
    split file is gone) they are unknown and the report says so.
    """
    cfg = trained.config
    trained_root = resolve_dataset(cfg.data.root)
    if trained_root.resolve() != Path(data.root).resolve():
        return TrainingSide(f"{cfg.data.split} fold {cfg.data.fold} of dataset {trained_root}", None)
    try:
        split = resolve_split(data, cfg.data.split, clip)
        fold = pick_fold(split, cfg.data.fold, "data.fold")
    except ThermactError as err:
        logger.warning("the checkpoint's training split cannot be resolved: %s", err)
        return TrainingSide(f"{cfg.data.split} fold {cfg.data.fold}", None)
    return TrainingSide(f"{cfg.data.split} fold {cfg.data.fold} ({fold.name})", list(fold.train))


def time_leakage(
    data: ThermalData, train_ids: list[str], test_ids: list[str], clip: ClipConfig
) -> tuple[int, float]:
    """Test keyframes whose clip window shares time with a training clip window, and the seconds shared."""
    probe = SplitDefinition("checkpoint", "given", False, clip, [Fold("train->eval", train_ids, test_ids)])
    fold = leakage(data, probe, clip).folds[0]
    return fold.count, fold.overlap_s


def ava_detection_rows(preds: Predictions, frame_sizes: Mapping[str, tuple[int, int]]) -> list[AvaRow]:
    """One AVA row per (box, class) of ``preds``, scored by the class probability, in box order."""
    rows: list[AvaRow] = []
    start = 0
    n = len(preds)
    while start < n:
        end = start
        while end < n and preds.keyframe_ids[end] == preds.keyframe_ids[start]:
            end += 1
        rid = preds.recording_ids[start]
        rows += detection_rows(
            rid,
            int(preds.keyframe_ms[start]),
            preds.boxes[start:end],
            preds.scores[start:end],
            frame_sizes[rid],
            person_ids=[int(t) for t in preds.track_ids[start:end]],
        )
        start = end
    return rows


def read_training_log(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl``; unreadable lines are skipped with a warning."""
    records: list[dict[str, Any]] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("%s:%d: not JSON, skipped", path, lineno)
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


# ---------------------------------------------------------------------------------------------
# The command


@dataclasses.dataclass
class EvalOutcome:
    """Everything an evaluation produced (for callers and tests)."""

    out_dir: Path
    result: EvalResult
    predictions: Predictions
    metadata: EvalMetadata
    report: dict[str, Any]
    files: dict[str, Path]
    """role → path of every file written."""
    end_to_end: dict[str, Any] | None = None
    """With ``detector=PATH``: the action model on detector boxes (see :mod:`thermact.evaluation.end_to_end`)."""


@dataclasses.dataclass
class EvalTarget:
    """What an evaluation scores and where it writes (shared by both tasks)."""

    out: Path
    data: ThermalData
    split_spec: str
    split: SplitDefinition
    fold: Fold
    fold_index: int
    keyframes: list[Keyframe]
    """The test keyframes of the fold."""


def eval_target(opts: EvalOptions, trained: TrainedModel[Any, Any], lenient: bool) -> EvalTarget:
    """The dataset, split fold and output directory of ``opts``. Defaults: the checkpoint's own
    split fold on its own dataset; **every keyframe** of a dataset the checkpoint was not trained on
    (told apart by the content fingerprint it stores), and of its own dataset when it trained on
    every keyframe (split ``all``: the numbers are then training numbers, and the report says so)."""
    cfg = trained.config
    data = load_with_progress(opts.dataset if opts.dataset is not None else cfg.data.root, lenient)
    explicit = opts.split is not None or opts.fold is not None
    why_all = None if explicit else _why_all_keyframes(trained, data)
    if why_all is not None:
        logger.info("scoring every keyframe of %s (%d): %s", data.name, len(data.keyframes), why_all)
        all_split = build_split(data, "all", trained.clip)
        split = dataclasses.replace(all_split, folds=[all_keyframes_fold(data)])
        split_spec, fold_index = "all keyframes", 0
    else:
        split_spec = opts.split if opts.split is not None else cfg.data.split
        fold_index = opts.fold if opts.fold is not None else cfg.data.fold
        split = resolve_split(data, split_spec, trained.clip)
    fold = pick_fold(split, fold_index, "fold" if opts.fold is not None else "data.fold")
    tag = "all" if why_all is not None else split_spec
    out = Path(opts.out) if opts.out is not None else default_out_dir(trained.path, tag, fold_index)
    check_out_dir(out, opts.exist_ok)
    keyframes = keyframes_by_id(data, fold.test, "test")
    return EvalTarget(out, data, split_spec, split, fold, fold_index, keyframes)


def _why_all_keyframes(trained: TrainedModel[Any, Any], data: ThermalData) -> str | None:
    """Why the default evaluation scores every keyframe of ``data`` (None: the checkpoint's fold)."""
    stored = trained.checkpoint.get("dataset")
    if isinstance(stored, dict):
        seen = DatasetFingerprint.from_dict(stored, where=f"{trained.path}: dataset")
        now = fingerprint_dataset(data)
        if seen.digest != now.digest:
            shared = seen.shared_recordings(now)
            note = f"; {len(shared)} of its recordings were in the training data" if shared else ""
            return f"the checkpoint was trained on another dataset ({seen.name}){note}"
    elif resolve_dataset(trained.config.data.root).resolve() != Path(data.root).resolve():
        return "the checkpoint was trained on another dataset directory"
    if trained.config.data.split == "all":
        return "the checkpoint was trained on every keyframe of this dataset: these are training numbers"
    return None


def model_label(trained: TrainedActionModel) -> str:
    """The model's name, and how many it averages when it is an ensemble."""
    members = trained.config.model.members
    return trained.config.model.name + (f" (ensemble of {members})" if members > 1 else "")


def run_evaluation(opts: EvalOptions, lenient: bool = False) -> EvalOutcome:
    """Evaluate ``opts.checkpoint`` and write the report files (see the module docstring)."""
    device = select_device(opts.device)
    trained = restore_model(opts.checkpoint, device)
    check_tta(trained.model, opts.tta, str(trained.path))
    target = eval_target(opts, trained, lenient)
    data, test_kfs = target.data, target.keyframes
    check_class_list(trained.classes, data.classes.names, str(trained.path), str(data.root))
    side = training_side(trained, data, trained.clip)
    train_counts = leaked = overlap = None
    if side.keyframe_ids is not None:
        train_counts = class_counts(keyframes_by_id(data, side.keyframe_ids, "training"), len(data.classes))
        leaked, overlap = time_leakage(data, side.keyframe_ids, list(target.fold.test), trained.clip)
    dataset = ClipDataset.from_data(data, test_kfs, trained.clip, norm=trained.norm)
    loader = DataLoader(
        dataset,
        batch_size=opts.batch_size,
        shuffle=False,
        collate_fn=collate_clips,
        num_workers=opts.num_workers,
    )
    mode = trained.config.model.head.mode
    preds = predict(with_tta(trained.model, opts.tta, mode), loader, device, mode=mode)
    preds = smooth_track_scores(preds, opts.smooth_s, opts.smooth)
    if len(preds) == 0:
        raise DataError(
            f"split {target.split.name!r} fold {target.fold.name!r}: the test keyframes have no person box to evaluate"
        )
    result = score_predictions(preds, len(trained.classes))
    end_to_end = run_end_to_end(opts.detector, trained, data, test_kfs, device, opts.batch_size, opts.tta)
    target.out.mkdir(parents=True, exist_ok=True)
    files = write_action_files(opts, trained, target, preds, result)
    meta = EvalMetadata(
        checkpoint=str(trained.path),
        model=model_label(trained),
        classes=list(trained.classes),
        dataset=str(data.root),
        split=target.split_spec,
        fold=target.fold.name,
        fold_index=target.fold_index,
        split_leaky=target.split.leaky,
        trained_on=side.description,
        train_counts=train_counts,
        leaked_keyframes=leaked,
        leaked_overlap_s=overlap,
        checkpoint_epoch=trained.epoch,
        checkpoint_metrics={k: v for k, v in trained.metrics.items() if k != "epoch"},
        device=str(device),
        plots={r: files[r].name for r in ("pr_curves", "confusion_matrix", "training_curves") if r in files},
        files={r: files[r].name for r in ("detections", "groundtruth", "label_map")},
        version=__version__,
    )
    report = report_dict(result, meta)
    markdown = report_markdown(result, meta)
    if opts.smooth_s > 0:
        report["smoothing"] = {"mode": opts.smooth, "tau_s": opts.smooth_s}
        markdown += f"\nScores smoothed along each track ({opts.smooth}, time constant {opts.smooth_s} s).\n"
    if opts.tta != "none":
        report["tta"] = opts.tta
        markdown += "\nScores averaged over the four flips of each clip (tta=flips).\n"
    if end_to_end is not None:
        report["end_to_end"] = end_to_end
        markdown += end_to_end_markdown(end_to_end, result.frame_map.map)
    files["report_json"] = target.out / "report.json"
    write_json_atomic(files["report_json"], report)
    files["report_md"] = target.out / "report.md"
    write_text_atomic(files["report_md"], markdown)
    return EvalOutcome(target.out, result, preds, meta, report, files, end_to_end)


def write_action_files(
    opts: EvalOptions, trained: TrainedActionModel, target: EvalTarget, preds: Predictions, result: EvalResult
) -> dict[str, Path]:
    """The AVA CSVs, the label map and the plots of an action evaluation; role → path."""
    out, data = target.out, target.data
    files: dict[str, Path] = {}
    frame_sizes = {rid: data.recording(rid).frame_size for rid in {k.recording_id for k in target.keyframes}}
    unit: TimeUnit = opts.time_unit
    files["detections"] = out / "detections.csv"
    write_ava_csv(files["detections"], ava_detection_rows(preds, frame_sizes), time_unit=unit)
    files["groundtruth"] = out / "groundtruth.csv"
    gt_rows = [
        r for kf in target.keyframes for r in keyframes_to_ava_rows([kf], frame_sizes[kf.recording_id])
    ]
    write_ava_csv(files["groundtruth"], gt_rows, time_unit=unit)
    files["label_map"] = out / "label_map.pbtxt"
    write_label_map(files["label_map"], data.classes)
    names = list(trained.classes)
    files["pr_curves"] = out / "pr_curves.png"
    plots.plot_pr_curves(result.frame_map, names, files["pr_curves"])
    files["confusion_matrix"] = out / "confusion_matrix.png"
    plots.plot_confusion_matrix(result.classification.confusion, names, files["confusion_matrix"])
    log_path = trained.path.parent / "metrics.jsonl"
    records = read_training_log(log_path) if log_path.is_file() else []
    if records:
        files["training_curves"] = out / "training_curves.png"
        plots.plot_training_curves(records, files["training_curves"])
    return files


def run_end_to_end(
    detector_path: str | None,
    trained: TrainedActionModel,
    data: ThermalData,
    test_kfs: Sequence[Keyframe],
    device: torch.device,
    batch_size: int,
    tta: TTA = "none",
) -> dict[str, Any] | None:
    """The two-stage numbers for ``detector=PATH`` (None without a detector)."""
    if detector_path is None:
        return None
    trained_detector = restore_detector(detector_path, device)
    ecfg = trained_detector.config.eval
    detector = DetectorRunner.from_trained(trained_detector, device)
    dets = detect_keyframes(detector, data, test_kfs, ecfg.min_score, batch_size)
    e2e = end_to_end_frame_map(trained, dets, data, test_kfs, device, batch_size, tta)
    det_metrics = detection_metrics(dets, test_kfs, ecfg.score_threshold)
    live = StreamingPredictor(ActionRunner.from_trained(trained, device, tta=tta), detector, max_sensors=1)
    return {
        "detector": str(detector_path),
        "frame_map": e2e.frame_map.map,
        "per_class_ap": {trained.classes[c.label]: c.ap for c in e2e.frame_map.per_class},
        "num_person_detections": e2e.num_person_detections,
        "matched_boxes": e2e.matched.summary(),
        "detector_metrics": det_metrics.summary(),
        "fall_alerts": fall_alert_reports(live, data, test_kfs),
    }


def end_to_end_markdown(e2e: Mapping[str, Any], gt_frame_map: float | None) -> str:
    f, m = format_number, e2e["matched_boxes"]
    return (
        "\n## End to end: action model on detector boxes\n\n"
        f"Detector `{e2e['detector']}`: person AP@0.5 {f(e2e['detector_metrics']['person_ap'])}, "
        f"{e2e['num_person_detections']} person detections scored (detector score x class probability).\n\n"
        "| boxes | frame-mAP@0.5 |\n| --- | --- |\n"
        f"| ground truth | {f(gt_frame_map)} |\n| detector | {f(e2e['frame_map'])} |\n"
        f"| detector, only the boxes that found an annotated person | {f(m['frame_map'])} |\n\n"
        f"The detector found {m['found']} of the {m['num_persons']} annotated persons (IoU ≥ 0.5); on their "
        f"detected boxes the top class is right for {f(m['accuracy'])} of them.\n"
        + fall_alerts_markdown(e2e.get("fall_alerts") or [])
    )


# ---------------------------------------------------------------------------------------------
# Person-detector checkpoints


@dataclasses.dataclass
class DetectorEvalOutcome:
    out_dir: Path
    metrics: DetectionMetrics
    detections: dict[str, Detections]
    report: dict[str, Any]
    files: dict[str, Path]


def run_detector_evaluation(opts: EvalOptions, lenient: bool = False) -> DetectorEvalOutcome:
    """``thermact eval`` of a person-detector checkpoint: person AP@0.5, recall / precision /
    hot-object false positives at the checkpoint's operating threshold, ``report.json``,
    ``report.md`` and ``pr_curve.png``."""
    device = select_device(opts.device)
    trained = restore_detector(opts.checkpoint, device)
    cfg = trained.config
    target = eval_target(opts, trained, lenient)
    data, test_kfs, fold, split, out = target.data, target.keyframes, target.fold, target.split, target.out
    leaked: int | None = None
    try:
        own = pick_fold(resolve_split(data, cfg.data.split, trained.clip), cfg.data.fold, "data.fold")
        leaked, _ = time_leakage(data, list(own.train), list(fold.test), trained.clip)
    except ThermactError as err:  # a missing split file only loses the leakage check
        logger.warning("the checkpoint's training split cannot be resolved: %s", err)
    detector = DetectorRunner.from_trained(trained, device)
    dets = detect_keyframes(detector, data, test_kfs, cfg.eval.min_score, opts.batch_size)
    metrics = detection_metrics(dets, test_kfs, cfg.eval.score_threshold)

    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {"pr_curve": out / "pr_curve.png"}
    plots.plot_pr_curves(metrics.curve, ["person"], files["pr_curve"])
    report = {
        "task": "detector",
        "summary": metrics.summary(),
        "metrics": metrics.to_dict(),
        "metadata": {
            "checkpoint": str(trained.path),
            "checkpoint_epoch": trained.epoch,
            "model": cfg.model.name,
            "classes": trained.classes,
            "dataset": str(data.root),
            "split": target.split_spec,
            "fold": fold.name,
            "fold_index": target.fold_index,
            "split_leaky": split.leaky,
            "leaked_keyframes": leaked,
            "device": str(device),
            "pr_curve": files["pr_curve"].name,
            "version": __version__,
        },
    }
    files["report_json"] = out / "report.json"
    write_json_atomic(files["report_json"], report)
    files["report_md"] = out / "report.md"
    write_text_atomic(files["report_md"], detector_report_markdown(report))
    return DetectorEvalOutcome(out, metrics, dets, report, files)


# ---------------------------------------------------------------------------------------------
# The command


def outcome_lines(outcome: EvalOutcome) -> list[str]:
    """What ``thermact eval`` prints of an action model: the summary (the end-to-end frame-mAP on
    detector boxes right below the frame-mAP on ground-truth boxes) and where the files went."""
    lines = summary_lines(outcome.result, outcome.metadata)
    if outcome.end_to_end is not None:
        e2e, m, f = outcome.end_to_end, outcome.end_to_end["matched_boxes"], format_number
        lines[2:2] = [
            f"end-to-end frame-mAP@0.5 {f(e2e['frame_map'])} on the detector's boxes "
            f"({e2e['num_person_detections']} person detections of {e2e['detector']})",
            f"  of which found {m['found']} of {m['num_persons']} persons: top-1 {f(m['accuracy'])}, "
            f"frame-mAP@0.5 {f(m['frame_map'])} without the boxes that found no one",
        ]
    return [
        *lines,
        f"wrote {', '.join(p.name for p in outcome.files.values())} to {outcome.out_dir}",
        f"report: {outcome.files['report_md']}",
    ]


def _main_action(opts: EvalOptions, lenient: bool) -> None:
    for line in outcome_lines(run_evaluation(opts, lenient)):
        print(line)


def _main_detector(opts: EvalOptions, lenient: bool) -> None:
    det = run_detector_evaluation(opts, lenient)
    for key, value in det.metrics.summary().items():
        print(f"  {key:20s} {'N/A' if value is None else f'{value:.3f}'}")
    print(f"wrote {', '.join(p.name for p in det.files.values())} to {det.out_dir}")
    print(f"report: {det.files['report_md']}")


EVALUATORS: dict[str, Callable[[EvalOptions, bool], None]] = {
    "action": _main_action,
    "detector": _main_detector,
}


def main(target: str | None, overrides: list[str], lenient: bool) -> int:
    """``thermact eval [CHECKPOINT] [key=value ...]``: evaluate, print a summary, write the report."""
    opts = load_options(target, overrides)
    EVALUATORS[task_of(checkpoint_task(load_checkpoint(opts.checkpoint))).name](opts, lenient)
    return 0
