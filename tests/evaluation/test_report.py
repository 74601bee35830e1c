from __future__ import annotations

import json

import numpy as np
import pytest

from thermact.evaluation.evaluate import EvalResult, Predictions, score_predictions
from thermact.evaluation.report import (
    EvalMetadata,
    classes_unseen_in_training,
    classes_without_gt,
    eval_counts,
    format_number,
    markdown_table,
    report_dict,
    report_markdown,
    summary_lines,
)

NAMES = ["sit", "stand", "walk|fast", "lie"]


def _result() -> EvalResult:
    """4 boxes on 2 keyframes: GT classes 0, 0, 1, 2; class 3 has no GT.

    Arg-max predictions: 0, 1, 1, 3 → class 0: 1 of 2 right, class 1: 1 of 1 (predicted twice),
    class 2: 0 of 1, class 3 predicted once without GT.
    """
    scores = np.array(
        [
            [0.7, 0.1, 0.1, 0.1],
            [0.2, 0.6, 0.1, 0.1],
            [0.1, 0.8, 0.05, 0.05],
            [0.1, 0.1, 0.3, 0.5],
        ],
        dtype=np.float32,
    )
    preds = Predictions(
        keyframe_ids=["a", "a", "b", "b"],
        recording_ids=["R1"] * 4,
        keyframe_ms=np.array([1000, 1000, 2000, 2000], dtype=np.int64),
        boxes=np.array([[0, 0, 10, 10], [20, 0, 30, 10], [0, 0, 10, 10], [20, 0, 30, 10]], dtype=np.float32),
        labels=np.array([0, 0, 1, 2], dtype=np.int64),
        track_ids=np.array([0, 1, 0, 1], dtype=np.int64),
        scores=scores,
    )
    return score_predictions(preds, len(NAMES))


def _meta(**changes: object) -> EvalMetadata:
    meta = EvalMetadata(
        checkpoint="runs/x/best.pt",
        model="thermal_net_s",
        classes=list(NAMES),
        dataset="data/thermal_v1",
        split="session",
        fold="SL18->SL14",
        fold_index=0,
        trained_on="session fold 0 (SL18->SL14)",
        train_counts=[5, 3, 0, 0],
        leaked_keyframes=0,
        leaked_overlap_s=0.0,
        plots={"pr_curves": "pr_curves.png", "confusion_matrix": "confusion_matrix.png"},
        files={"detections": "detections.csv"},
        version="0.1.0",
    )
    for key, value in changes.items():
        setattr(meta, key, value)
    return meta


def _row(markdown: str, first_cells: str) -> list[str]:
    """Cells of the Markdown table row starting with ``| first_cells |``."""
    for line in markdown.splitlines():
        if line.startswith(f"| {first_cells} |"):
            return [c.strip() for c in line.strip().strip("|").split(" | ")]
    raise AssertionError(f"no row starting with {first_cells!r}")


def test_derived_class_facts() -> None:
    result = _result()
    assert eval_counts(result) == [2, 1, 1, 0]
    assert classes_without_gt(result) == [3]
    assert classes_unseen_in_training(result, [5, 3, 0, 0]) == [2]  # class 3 unseen too, but has no GT
    assert classes_unseen_in_training(result, None) == []
    with pytest.raises(ValueError, match="3 training counts for 4 classes"):
        classes_unseen_in_training(result, [1, 2, 3])


def test_fmt_and_table() -> None:
    assert format_number(None) == "N/A"
    assert format_number(0.12345) == "0.123"
    assert format_number(2.0, 1) == "2.0"
    table = markdown_table(["a", "b|c"], [[1, "x|y"]], "lr")
    assert table.splitlines() == ["| a | b\\|c |", "| --- | ---: |", "| 1 | x\\|y |"]


def test_report_dict_holds_the_result_and_metadata() -> None:
    result = _result()
    rep = report_dict(result, _meta())
    json.dumps(rep)  # plain JSON types only
    assert rep["summary"] == result.summary()
    assert rep["classification"]["accuracy"] == pytest.approx(0.5)
    assert rep["classification"]["confusion"] == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert rep["frame_map"]["per_class"]["lie"]["ap"] is None
    assert rep["frame_map"]["per_class"]["sit"]["num_gt"] == 2
    assert rep["classification"]["per_class"]["lie"]["recall"] is None
    assert rep["classes"] == NAMES
    assert rep["classes_without_gt"] == ["lie"]
    assert rep["classes_unseen_in_training"] == ["walk|fast"]
    assert rep["class_counts"] == {
        "test": {"sit": 2, "stand": 1, "walk|fast": 1, "lie": 0},
        "train": {"sit": 5, "stand": 3, "walk|fast": 0, "lie": 0},
    }
    md = rep["metadata"]
    assert (md["split"], md["fold"], md["fold_index"], md["checkpoint"]) == (
        "session",
        "SL18->SL14",
        0,
        "runs/x/best.pt",
    )
    assert rep["plots"]["pr_curves"] == "pr_curves.png"


def test_report_dict_without_training_counts() -> None:
    rep = report_dict(_result(), _meta(train_counts=None, trained_on=None))
    assert rep["class_counts"]["train"] is None
    assert rep["classes_unseen_in_training"] == []


def test_report_dict_rejects_a_wrong_class_list() -> None:
    with pytest.raises(ValueError, match="3 class names for 4 classes"):
        report_dict(_result(), _meta(classes=NAMES[:3]))


def test_markdown_per_class_rows() -> None:
    result = _result()
    text = report_markdown(result, _meta())
    for name in NAMES:
        assert name.replace("|", "\\|") in text
    # id, class, AP, precision, recall, F1, support, predicted, train boxes
    lie = _row(text, "3 | lie")
    assert lie[2:] == ["N/A", "0.000", "N/A", "N/A", "0", "1", "0"]
    sit = _row(text, "0 | sit")
    ap_sit = result.frame_map.per_class[0].ap
    assert ap_sit is not None
    assert sit[2:] == [f"{ap_sit:.3f}", "1.000", "0.500", "0.667", "2", "1", "5"]
    walk = _row(text, "2 | walk\\|fast †")
    assert walk[6:] == ["1", "0", "0"]
    assert "N/A: no ground-truth box in the evaluated set (lie)" in text
    assert "† present in the evaluated set but with no box" in text
    # headline and confusion rows
    assert _row(text, "accuracy") == ["accuracy", "0.500"]
    assert _row(text, "frame-mAP@0.5")[1] == format_number(result.frame_map.map)
    assert _row(text, "0 sit") == ["0 sit", "1", "1", "0", "0", "2"]
    assert _row(text, "predicted") == ["predicted", "1", "2", "0", "1", ""]
    assert "![Precision / recall per class (frame-mAP@0.5 detections)](pr_curves.png)" in text
    assert "[`detections.csv`](detections.csv)" in text
    assert "Warning" not in text


def test_markdown_warnings() -> None:
    text = report_markdown(_result(), _meta(split_leaky=True, leaked_keyframes=2, leaked_overlap_s=3.0))
    assert "> **Warning:** split `session` is leaky" in text
    assert "2 of 2 evaluated keyframes share 3.0 s of clip time with the checkpoint's training clips" in text
    unknown = report_markdown(_result(), _meta(train_counts=None, trained_on=None))
    assert "training keyframes are unknown" in unknown
    assert _row(unknown, "0 | sit")[-1] == "N/A"
    assert "†" not in unknown


def test_summary_lines() -> None:
    lines = summary_lines(_result(), _meta(split_leaky=True))
    assert lines[0].startswith(
        "evaluated thermal_net_s (runs/x/best.pt) on split session fold 0 (SL18->SL14)"
    )
    assert "2 keyframes, 4 person boxes" in lines[0]
    assert "accuracy 0.500" in lines[1]
    assert "N/A (no ground truth): lie" in lines
    assert "not in the training keyframes: walk|fast" in lines
    assert any(line.startswith("warning: split session is leaky") for line in lines)
