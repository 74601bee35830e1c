"""Detected boxes for training clips: the cross-fitting rule, the matching, a real detector."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from thermact.cli import main
from thermact.config import build_config
from thermact.data.annotations import Box, Keyframe, boxes_array
from thermact.data.clips import ClipConfig
from thermact.data.sessions import find_sessions, session_groups
from thermact.data.source import ThermalData, fingerprint_dataset
from thermact.data.split_file import Fold
from thermact.data.splits import save_split, session_split
from thermact.engine.distributed import DistContext
from thermact.engine.run import train
from thermact.errors import ConfigError
from thermact.evaluation.frame_map import iou_matrix
from thermact.models.postprocess import Detections
from thermact.tasks.action import ACTION, ActionRunConfig, restore_model
from thermact.tasks.detected_boxes import (
    TrainBoxesSection,
    assign_detectors,
    detected_training_boxes,
    detector_sessions,
    match_detected,
)
from thermact.tasks.person import restore_detector

CPU = torch.device("cpu")


def test_each_session_takes_a_detector_that_saw_neither_it_nor_the_test_session() -> None:
    single = [{"A"}, {"B"}, {"C"}]  # one detector per session, as for leave-one-session-out
    assert assign_detectors(single, {"B", "C"}, {"A"}) == {"B": 2, "C": 1}
    assert assign_detectors(single, {"A", "B"}, {"C"}) == {"A": 1, "B": 0}
    assert assign_detectors([{"B", "C"}, {"A", "C"}], {"A", "B"}, set()) == {"A": 0, "B": 1}
    assert assign_detectors([{"A", "B", "C"}], {"A", "B"}, {"C"}) == {}  # trained on everything
    assert assign_detectors([{"C"}, {"B"}], {"A"}, {"C"}) == {"A": 1}  # the first saw the test session


def _keyframe(boxes: list[tuple[float, float, float, float]]) -> Keyframe:
    persons = tuple(Box(b, "person", i, "standing", 0) for i, b in enumerate(boxes))
    return Keyframe("k", "rec", 0, None, persons, ())


def test_detections_are_matched_greedily_by_score_above_the_iou_and_score_floors() -> None:
    kf = _keyframe([(10, 10, 20, 30), (40, 5, 50, 15)])
    dets = Detections(
        torch.tensor(
            [[10, 11, 20, 29], [11, 10, 21, 30], [41, 5, 51, 15], [0, 0, 5, 5]], dtype=torch.float32
        ),
        torch.tensor([0.5, 0.9, 0.2, 0.8]),
        torch.tensor([0, 0, 0, 0]),
    )
    out = match_detected(kf, dets, min_iou=0.5, min_score=0.3)
    np.testing.assert_array_equal(out[0], [11, 10, 21, 30])  # the higher score wins the person
    assert np.isnan(out[1]).all()  # its only detection scores below 0.3
    low = match_detected(kf, dets, min_iou=0.5, min_score=0.1)
    np.testing.assert_array_equal(low[1], [41, 5, 51, 15])
    assert np.isnan(match_detected(kf, dets, min_iou=0.95, min_score=0.0)).all()
    assert match_detected(_keyframe([]), dets, 0.5, 0.3).shape == (0, 4)


def test_a_real_detector_gives_unseen_boxes_and_refuses_its_own_sessions(
    detector_ckpt: Path, real_data: ThermalData
) -> None:
    """The fixture detector was trained on V1's SL18: it may serve SL14 unless SL18 is validated on."""
    groups = session_groups(find_sessions(real_data.recordings))
    digest = fingerprint_dataset(real_data).digest
    assert detector_sessions(restore_detector(detector_ckpt), real_data, groups, digest) == {"SL18"}
    sl14 = [k for k in real_data.keyframes if groups[k.recording_id] == "SL14" and k.persons]
    sl18 = [k for k in real_data.keyframes if groups[k.recording_id] == "SL18"]
    section = TrainBoxesSection(detectors=(str(detector_ckpt),))
    boxes = detected_training_boxes(section, real_data, sl14[::2], sl14[1::2], CPU)
    assert set(boxes) == {k.keyframe_id for k in sl14[::2]}
    found = total = 0
    for k in sl14[::2]:
        rows = np.isfinite(boxes[k.keyframe_id]).all(axis=1)
        found, total = found + int(rows.sum()), total + len(k.persons)
        ious = np.diag(iou_matrix(boxes[k.keyframe_id], boxes_array(k.persons)))
        assert (ious[rows] >= 0.5).all()
    assert found > total / 2, f"the detector found {found} of {total} persons"
    with pytest.raises(ConfigError, match="train_boxes.detectors"):
        detected_training_boxes(section, real_data, sl14, sl18, CPU)  # it saw the validation session
    assert detected_training_boxes(TrainBoxesSection(), real_data, sl14, sl18, CPU) == {}


def test_a_detector_of_another_dataset_is_refused(detector_ckpt: Path, real_data_v2: ThermalData) -> None:
    section = TrainBoxesSection(detectors=(str(detector_ckpt),))
    kfs = real_data_v2.keyframes[:4]
    with pytest.raises(ConfigError, match="another dataset"):
        detected_training_boxes(section, real_data_v2, kfs, [], CPU)


def test_keys_are_validated() -> None:
    cfg = build_config(
        ActionRunConfig, None, ["train_boxes.detectors=[a.pt,b.pt]", "train_boxes.p_detected=1"]
    )
    assert cfg.train_boxes.detectors == ("a.pt", "b.pt") and cfg.train_boxes.p_detected == 1.0
    for bad in ("train_boxes.p_detected=1.5", "train_boxes.min_iou=0", "train_boxes.min_score=-1"):
        with pytest.raises(ConfigError, match=bad.split("=")[0].split(".")[1]):
            build_config(ActionRunConfig, None, [bad])


@pytest.fixture(scope="module")
def sl14_split(real_data: ThermalData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 training and 12 validation keyframes, all of V1's SL14 (a session the fixture detector never saw)."""
    ids = [k.keyframe_id for k in real_data.keyframes if k.recording_id.startswith("SL14") and k.persons]
    full = session_split(real_data, ClipConfig(window_s=2.7, num_frames=8))
    small = dataclasses.replace(
        full, name="sl14", folds=[Fold("SL14->SL14", ids[0::7][:24], ids[1::7][-12:])]
    )
    path = tmp_path_factory.mktemp("split") / "sl14.json"
    save_split(small, path)
    return path


def test_a_run_trains_on_the_detected_boxes(detector_ckpt: Path, sl14_split: Path, tmp_path: Path) -> None:
    keys = [
        "model.num_frames=8", "model.head.mlp_dim=32", "optim.epochs=1", "augment.enabled=false",
        f"data.split={sl14_split}", f"run_dir={tmp_path}", f"train_boxes.detectors=[{detector_ckpt}]",
        "train_boxes.p_detected=1.0",
    ]  # fmt: skip
    run = ACTION.build(build_config(ActionRunConfig, None, keys), DistContext(), CPU, None)
    swapped = 0
    for i, kf in enumerate(run.train_set.keyframes):
        detected = run.train_set.detected_boxes[kf.keyframe_id]
        found = np.isfinite(detected).all(axis=1)
        expected = np.where(found[:, None], detected, boxes_array(kf.persons))
        np.testing.assert_array_equal(run.train_set[i].boxes.numpy(), expected)
        swapped += int(found.sum())
    assert swapped >= len(run.train_set) // 2
    result = train(ACTION, build_config(ActionRunConfig, None, keys))
    assert restore_model(result.last_checkpoint).config.train_boxes.detectors == (str(detector_ckpt),)


def test_the_cli_refuses_a_detector_that_saw_the_validation_session(
    detector_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["train", "optim.epochs=1", f"run_dir={tmp_path / 'run'}", f"train_boxes.detectors=[{detector_ckpt}]"]
    )
    err = capsys.readouterr().err
    assert (
        code == 2 and err.count("error:") == 1 and "train_boxes.detectors" in err and "Traceback" not in err
    )
    assert not (tmp_path / "run" / "last.pt").exists()
