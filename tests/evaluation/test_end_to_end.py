"""Detector evaluation in `thermact eval`, and the end-to-end (detector boxes → action model) frame-mAP."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from thermact.commands.eval import load_options, outcome_lines, run_evaluation
from thermact.commands.eval import main as main_eval
from thermact.config import build_config, config_to_dict
from thermact.data.clips import ClipConfig
from thermact.data.dataset import ClipDataset, collate_clips
from thermact.data.source import ThermalData
from thermact.data.splits import Fold, SplitDefinition, save_split
from thermact.data.transforms import NormStats
from thermact.engine.checkpoint import save_checkpoint
from thermact.engine.config import load_config
from thermact.engine.run import train
from thermact.evaluation.detection import detection_metrics
from thermact.evaluation.end_to_end import (
    MatchedBoxes,
    detect_keyframes,
    end_to_end_frame_map,
)
from thermact.evaluation.evaluate import predict, score_predictions
from thermact.evaluation.report import format_number
from thermact.inference.falls import annotated_spans, lying_episodes
from thermact.inference.runners import DetectorRunner
from thermact.models.postprocess import Detections
from thermact.tasks.action import ActionRunConfig, restore_model
from thermact.tasks.person import PERSON, DetectorRunConfig, restore_detector

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "person_detector.yaml"


@pytest.fixture(scope="module")
def setup(
    real_data: ThermalData, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, Path, list[str]]:
    """A 1-epoch detector, an untrained tiny action model, and a split file both can use."""
    root = tmp_path_factory.mktemp("deteval")
    sl18 = [k.keyframe_id for k in real_data.keyframes if k.recording_id.startswith("SL18")]
    sl14 = [k.keyframe_id for k in real_data.keyframes if k.recording_id.startswith("SL14")]
    test_ids = sl14[::20]
    split = SplitDefinition(
        "tiny", "given", False, ClipConfig(2.7, 8, "center"), [Fold("f", sl18[::12], test_ids)]
    )
    split_path = root / "tiny.json"
    save_split(split, split_path)
    det_cfg = load_config(
        DetectorRunConfig,
        str(CONFIG),
        ["optim.epochs=1", "optim.batch_size=8", f"run_dir={root / 'det'}", f"data.split={split_path}"],
    )
    det_ckpt = train(PERSON, det_cfg).last_checkpoint
    from thermact.models.factory import build_model

    torch.manual_seed(0)
    cfg = build_config(
        ActionRunConfig,
        None,
        [
            "model.num_frames=8",
            "model.head.mlp_dim=32",
            f"data.split={split_path}",
            f"run_dir={root / 'act'}",
        ],
    )
    model = build_model(cfg.model, verbose=False)
    action_ckpt = root / "act" / "action.pt"
    payload = {
        "model": model.state_dict(),
        "config": config_to_dict(cfg),
        "classes": list(real_data.classes.names),
    }
    save_checkpoint(
        action_ckpt, {**payload, "norm": NormStats(18.0, 2.0).to_dict(), "epoch": 0, "metrics": {}}
    )
    return det_ckpt, action_ckpt, split_path, test_ids


def test_eval_of_a_detector_checkpoint(setup: tuple[Path, Path, Path, list[str]], real_data: ThermalData, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    det_ckpt, _, _, test_ids = setup
    out = tmp_path / "ev"
    assert main_eval(str(det_ckpt), [f"out={out}"], False) == 0
    assert "person_ap" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "detector" and (out / "pr_curve.png").stat().st_size > 1000
    assert "person AP@0.5" in (out / "report.md").read_text()
    # the report's numbers are those of the metrics on the detector's own detections
    kfs = [k for k in real_data.keyframes if k.keyframe_id in set(test_ids)]
    trained = restore_detector(det_ckpt)
    det = DetectorRunner.from_trained(trained)
    expected = detection_metrics(
        detect_keyframes(det, real_data, kfs), kfs, trained.config.eval.score_threshold
    )
    assert report["summary"]["person_ap"] == pytest.approx(expected.person_ap)
    assert report["metrics"]["num_persons"] == sum(len(k.persons) for k in kfs)


def test_end_to_end_on_perfect_boxes_equals_gt_box_frame_map(
    setup: tuple[Path, Path, Path, list[str]], real_data: ThermalData
) -> None:
    _, action_ckpt, _, test_ids = setup
    action = restore_model(action_ckpt)
    kfs = [k for k in real_data.keyframes if k.keyframe_id in set(test_ids)]
    loader = DataLoader(
        ClipDataset.from_data(real_data, kfs, ClipConfig(2.7, 8), norm=action.norm),
        batch_size=16,
        collate_fn=collate_clips,
    )
    gt_result = score_predictions(predict(action.model, loader, torch.device("cpu")), 14)
    perfect = {
        k.keyframe_id: Detections(
            torch.tensor([b.xyxy for b in k.persons]).reshape(-1, 4),
            torch.ones(len(k.persons)),
            torch.zeros(len(k.persons), dtype=torch.int64),
        )
        for k in kfs
    }
    e2e = end_to_end_frame_map(action, perfect, real_data, kfs, torch.device("cpu"))
    assert e2e.num_person_detections == sum(len(k.persons) for k in kfs)
    assert e2e.frame_map.map == pytest.approx(gt_result.frame_map.map, abs=1e-6)
    # every annotated person found by its own box: the matched numbers are the ground-truth ones
    assert e2e.matched.found == e2e.matched.num_persons == sum(len(k.persons) for k in kfs)
    assert e2e.matched.accuracy == pytest.approx(gt_result.classification.accuracy)
    assert e2e.matched.frame_map == pytest.approx(gt_result.frame_map.map, abs=1e-6)
    # halving every detector score leaves the ranking, hence the mAP, unchanged; dropping boxes lowers it
    half = {k: dataclasses.replace(d, scores=d.scores * 0.5) for k, d in perfect.items()}
    assert end_to_end_frame_map(
        action, half, real_data, kfs, torch.device("cpu")
    ).frame_map.map == pytest.approx(gt_result.frame_map.map, abs=1e-6)
    none = end_to_end_frame_map(action, {}, real_data, kfs, torch.device("cpu"))
    assert none.num_person_detections == 0 and none.frame_map.map == 0.0
    assert none.matched == MatchedBoxes(e2e.matched.num_persons, 0, None, None)
    # a confident box on no one, in every keyframe: the end-to-end mAP drops, the matched one does not
    far = {
        k: dataclasses.replace(
            d,
            boxes=torch.cat([d.boxes, torch.tensor([[0.0, 0.0, 3.0, 3.0]])]),
            scores=torch.cat([d.scores * 0.5, torch.ones(1)]),
            labels=torch.cat([d.labels, torch.zeros(1, dtype=torch.int64)]),
        )
        for k, d in perfect.items()
    }
    with_far = end_to_end_frame_map(action, far, real_data, kfs, torch.device("cpu"))
    assert with_far.frame_map.map < gt_result.frame_map.map - 0.01
    assert with_far.matched.found == e2e.matched.found
    assert with_far.matched.frame_map == pytest.approx(gt_result.frame_map.map, abs=1e-6)


def test_action_eval_with_detector_option(
    setup: tuple[Path, Path, Path, list[str]], real_data: ThermalData, tmp_path: Path
) -> None:
    det_ckpt, action_ckpt, _, _ = setup
    outcome = run_evaluation(
        load_options(str(action_ckpt), [f"out={tmp_path / 'e'}", f"detector={det_ckpt}"])
    )
    assert outcome.end_to_end is not None
    e2e = outcome.report["end_to_end"]
    assert 0.0 <= e2e["frame_map"] <= 1.0 and e2e["detector"] == str(det_ckpt)
    assert "End to end" in (tmp_path / "e" / "report.md").read_text()
    # fall alerts: the episodes of the evaluated keyframes, one report per rule
    evaluated = set(outcome.predictions.keyframe_ids)
    episodes = lying_episodes(k for k in real_data.keyframes if k.keyframe_id in evaluated)
    falls = e2e["fall_alerts"]
    assert [r["min_duration_s"] for r in falls] == [0.0, 1.0, 2.0, 5.0, 10.0]
    assert {r["episodes"] for r in falls} == {len(episodes)} and len(episodes) >= 5
    assert 0.03 < falls[0]["sensor_hours"] < 0.2
    alerts = [r["alerts"] for r in falls]
    assert alerts == sorted(alerts, reverse=True)  # a longer rule raises no more alerts
    assert all(r["alerted_in_time"] + len(r["missed"]) == len(episodes) for r in falls)
    # judged in annotated time: no more false alerts, in the hours between the evaluated keyframes
    assert all(r["false_alerts_annotated"] <= r["false_alerts"] for r in falls)
    spans = annotated_spans(k for k in real_data.keyframes if k.keyframe_id in evaluated)
    annotated_hours = sum(hi - lo for lo, hi in spans.values()) / 3.6e6
    assert falls[0]["annotated_hours"] == pytest.approx(annotated_hours)
    assert falls[0]["annotated_hours"] < 0.8 * falls[0]["sensor_hours"]
    assert "Fall alerts" in (tmp_path / "e" / "report.md").read_text()
    lines = outcome_lines(outcome)  # what the command prints: the score formatted, below the header
    assert lines[0].startswith("evaluated ") and lines[1].startswith("frame-mAP@0.5 ")
    assert lines[2] == (
        f"end-to-end frame-mAP@0.5 {e2e['frame_map']:.3f} on the detector's boxes "
        f"({e2e['num_person_detections']} person detections of {det_ckpt})"
    )
    m = e2e["matched_boxes"]
    assert m["num_persons"] == len(outcome.predictions) and 0 <= m["found"] <= m["num_persons"]
    assert lines[3] == (
        f"  of which found {m['found']} of {m['num_persons']} persons: top-1 {format_number(m['accuracy'])}, "
        f"frame-mAP@0.5 {format_number(m['frame_map'])} without the boxes that found no one"
    )
    assert (
        f"The detector found {m['found']} of the {m['num_persons']} annotated persons"
        in (tmp_path / "e" / "report.md").read_text()
    )
    plain = run_evaluation(load_options(str(action_ckpt), [f"out={tmp_path / 'p'}"]))
    assert plain.end_to_end is None and "end_to_end" not in plain.report
