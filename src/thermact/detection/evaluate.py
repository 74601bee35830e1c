"""Evaluating the person detector, alone and as the first stage of the action pipeline.

* :func:`detect_keyframes`: run a :class:`~thermact.detection.restore.PersonDetector` on the causal
  clip of each keyframe → keyframe id → :class:`~thermact.detection.decode.Detections`.
* :func:`end_to_end_frame_map`: the two-stage pipeline of AVA-style detectors: the detector's
  person boxes replace the ground-truth boxes as the action model's RoIs, and every (box, class)
  becomes one detection scored ``detector score × class probability``; frame-mAP@0.5 against the
  ground-truth persons and their action classes.
* :func:`run_detector_evaluation`: ``thermact eval`` of a detector checkpoint: person AP@0.5,
  recall / precision / hot-object false positives at the checkpoint's operating threshold,
  ``report.json``, ``report.md`` and ``pr_curve.png``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from thermact import __version__
from thermact.data.annotations import Box, Keyframe
from thermact.data.dataset import ClipDataset, collate_clips
from thermact.data.source import ThermalData
from thermact.detection.dataset import DetectionClipDataset, collate_detection
from thermact.detection.decode import Detections, person_boxes
from thermact.detection.metrics import DetectionMetrics, detection_metrics
from thermact.detection.restore import PersonDetector, TrainedDetector, restore_detector
from thermact.engine.restore import TrainedModel
from thermact.errors import ThermactError
from thermact.evaluation.evaluate import Predictions, predict
from thermact.evaluation.frame_map import Detection, FrameMAP, GroundTruth, frame_map
from thermact.io import write_json_atomic, write_text_atomic

__all__ = [
    "DetectorEvalOutcome",
    "EndToEnd",
    "detect_keyframes",
    "end_to_end_frame_map",
    "run_detector_evaluation",
]


def detect_keyframes(
    detector: PersonDetector,
    data: ThermalData,
    keyframes: Sequence[Keyframe],
    score_threshold: float = 0.01,
    batch_size: int = 32,
) -> dict[str, Detections]:
    """Keyframe id → detections (all classes) on the detector's causal clip ending at the keyframe."""
    dataset = DetectionClipDataset(data.recordings, keyframes, detector.trained.clip)  # raw °C
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_detection)
    out: dict[str, Detections] = {}
    for batch in loader:
        for key, dets in zip(
            batch.keyframe_ids, detector.detect(batch.frames[:, 0], score_threshold), strict=True
        ):
            out[key] = dets
    return out


@dataclasses.dataclass
class EndToEnd:
    """The action model on detector boxes."""

    frame_map: FrameMAP
    predictions: Predictions
    """Per detected person box: class probabilities (``track_ids`` = index into the keyframe's person detections)."""
    num_person_detections: int

    def summary(self) -> dict[str, Any]:
        return {
            "frame_map": self.frame_map.map,
            "num_person_detections": self.num_person_detections,
            "per_class_ap": [c.ap for c in self.frame_map.per_class],
        }


def end_to_end_frame_map(
    action: TrainedModel,
    person_dets: Mapping[str, Detections],
    data: ThermalData,
    keyframes: Sequence[Keyframe],
    device: torch.device,
    batch_size: int = 16,
) -> EndToEnd:
    """Frame-mAP@0.5 of the action model fed with detector boxes (see the module docstring).

    ``person_dets`` holds each keyframe's detections (persons are taken from them); the action
    model samples its own clip (its config's window and keyframe position) and normalisation.
    """
    from thermact.engine.train import clip_config

    detected: list[Keyframe] = []
    for kf in keyframes:
        d = person_boxes(person_dets.get(kf.keyframe_id, Detections.empty()))
        boxes = tuple(
            Box((b[0], b[1], b[2], b[3]), "person", 0, "detected", i) for i, b in enumerate(d.boxes.tolist())
        )
        detected.append(dataclasses.replace(kf, persons=boxes))
    dataset = ClipDataset.from_data(data, detected, clip_config(action.config), norm=action.norm)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_clips)
    preds = predict(action.model, loader, device, mode=action.config.model.head.mode)
    dets: list[Detection] = []
    for r in range(len(preds)):
        kf_id = preds.keyframe_ids[r]
        det_score = float(person_boxes(person_dets[kf_id]).scores[int(preds.track_ids[r])])
        box = (
            float(preds.boxes[r, 0]),
            float(preds.boxes[r, 1]),
            float(preds.boxes[r, 2]),
            float(preds.boxes[r, 3]),
        )
        for c in range(preds.scores.shape[1]):
            dets.append(Detection(kf_id, box, c, det_score * float(preds.scores[r, c])))
    gt = [
        GroundTruth(kf.keyframe_id, b.xyxy, int(b.label))
        for kf in keyframes
        for b in kf.persons
        if b.label is not None
    ]
    fmap = frame_map(dets, gt, len(action.classes))
    return EndToEnd(fmap, preds, len(preds))


@dataclasses.dataclass
class DetectorEvalOutcome:
    out_dir: Path
    metrics: DetectionMetrics
    detections: dict[str, Detections]
    report: dict[str, Any]
    files: dict[str, Path]


def _fmt(value: float | None) -> str:
    return "N/A" if value is None else f"{value:.3f}"


def detector_report_markdown(report: Mapping[str, Any]) -> str:
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
        f"| person AP@0.5 (class-agnostic) | {_fmt(m['person_ap'])} |",
        f"| recall @ score >= {m['score_threshold']:g} | {_fmt(m['recall'])} |",
        f"| precision @ score >= {m['score_threshold']:g} | {_fmt(m['precision'])} |",
        f"| hot objects / furniture taken for a person | {m['hot_object_fp']} detections, "
        f"{_fmt(m['hot_object_fp_rate'])} of the boxes |",
    ]
    if meta.get("leaked_keyframes"):
        lines += [
            "",
            f"**Warning**: {meta['leaked_keyframes']} test keyframes share time with training clips.",
        ]
    if meta.get("pr_curve"):
        lines += ["", f"![precision/recall]({meta['pr_curve']})"]
    return "\n".join(lines) + "\n"


def run_detector_evaluation(opts: Any, lenient: bool = False) -> DetectorEvalOutcome:
    """``thermact eval`` of a detector checkpoint; ``opts`` is a :class:`thermact.evaluation.run_eval.EvalOptions`."""
    from thermact.data.inspect import load_with_progress
    from thermact.data.splits import resolve_split
    from thermact.engine.train import keyframes_by_id, select_device
    from thermact.evaluation import plots
    from thermact.evaluation.run_eval import check_out_dir, default_out_dir, pick_fold, time_leakage

    device = select_device(opts.device)
    trained: TrainedDetector = restore_detector(opts.checkpoint, device)
    cfg = trained.config
    split_spec = opts.split if opts.split is not None else cfg.data.split
    fold_index = opts.fold if opts.fold is not None else cfg.data.fold
    out = Path(opts.out) if opts.out is not None else default_out_dir(trained.path, split_spec, fold_index)
    check_out_dir(out, opts.exist_ok)
    data = load_with_progress(opts.dataset if opts.dataset is not None else cfg.data.root, lenient)
    clip = trained.clip
    split = resolve_split(data, split_spec, clip)
    fold = pick_fold(split, fold_index, "fold" if opts.fold is not None else "data.fold")
    test_kfs = keyframes_by_id(data, fold.test, "test")
    leaked: int | None = None
    try:
        own = pick_fold(resolve_split(data, cfg.data.split, clip), cfg.data.fold, "data.fold")
        leaked, _ = time_leakage(data, list(own.train), list(fold.test), clip)
    except ThermactError as err:  # a missing split file only loses the leakage check
        print(f"warning: the checkpoint's training split cannot be resolved: {err}", file=sys.stderr)
    detector = PersonDetector(trained)
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
            "split": split_spec,
            "fold": fold.name,
            "fold_index": fold_index,
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
