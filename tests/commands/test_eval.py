"""``thermact eval`` end to end on a tiny checkpoint trained once per test session."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from thermact.commands.eval import EvalOptions, EvalOutcome, check_class_list, load_options, run_evaluation
from thermact.commands.eval import main as main_eval
from thermact.config import build_config
from thermact.data.ava import read_ava_csv, read_label_map
from thermact.data.clips import ClipConfig
from thermact.data.dataset import ClipDataset, collate_clips
from thermact.data.source import ThermalData
from thermact.data.splits import Fold, SplitDefinition, save_split
from thermact.engine.checkpoint import load_checkpoint, save_checkpoint
from thermact.engine.run import train
from thermact.errors import CheckpointError, ConfigError, DataError
from thermact.evaluation.evaluate import predict, score_predictions
from thermact.evaluation.smoothing import smooth_track_scores
from thermact.tasks.action import ACTION, ActionRunConfig, class_counts, restore_model

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "thermal_net_s.yaml"
CLIP = ClipConfig(2.7, 8, "center")
PNGS = ("pr_curves.png", "confusion_matrix.png", "training_curves.png")


@dataclasses.dataclass
class Run:
    checkpoint: Path
    split: Path
    train_ids: list[str]
    test_ids: list[str]
    leaky_ids: list[str]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, real_data: ThermalData) -> Run:
    """1 epoch of a small ThermalNet-S (8 frames, MLP 64) on a small custom split.

    Split ``tiny.json``: fold 0 trains on every 10th SL18 keyframe and tests on every 8th SL14
    one; fold 1 tests on some of fold 0's training keyframes.
    """
    root = tmp_path_factory.mktemp("eval_run")
    sl18 = [k.keyframe_id for k in real_data.keyframes if k.recording_id.startswith("SL18")]
    sl14 = [k.keyframe_id for k in real_data.keyframes if k.recording_id.startswith("SL14")]
    train_ids, test_ids = sl18[::10], sl14[::8]
    leaky = train_ids[:6]
    folds = [
        Fold("SL18->SL14", train_ids, test_ids),
        Fold("leaky", train_ids[6:], leaky),
    ]
    split_path = root / "tiny.json"
    save_split(SplitDefinition("tiny", "group", False, CLIP, folds), split_path)
    run_dir = root / "run"
    overrides = [
        f"run_dir={run_dir}",
        f"data.split={split_path}",
        "data.fold=0",
        "optim.epochs=1",
        "optim.batch_size=8",
        "model.num_frames=8",
        "model.head.mlp_dim=64",
        "log_every=1",
        "device=cpu",
    ]
    torch.manual_seed(0)
    result = train(ACTION, build_config(ActionRunConfig, CONFIG, overrides))
    return Run(result.best_checkpoint, split_path, train_ids, test_ids, leaky)


@pytest.fixture(scope="module")
def evaluated(tiny_run: Run, tmp_path_factory: pytest.TempPathFactory) -> EvalOutcome:
    out = tmp_path_factory.mktemp("eval_out") / "report"
    opts = build_config(EvalOptions, None, [f"checkpoint={tiny_run.checkpoint}", f"out={out}", "device=cpu"])
    return run_evaluation(opts)


def test_writes_every_file(evaluated: EvalOutcome) -> None:
    names = {p.name for p in evaluated.out_dir.iterdir()}
    assert names == {
        "report.json",
        "report.md",
        "detections.csv",
        "groundtruth.csv",
        "label_map.pbtxt",
        *PNGS,
    }
    assert {p.name for p in evaluated.files.values()} == names


def test_report_numbers_equal_an_independent_evaluation(
    evaluated: EvalOutcome, tiny_run: Run, real_data: ThermalData
) -> None:
    trained = restore_model(tiny_run.checkpoint)
    index = {k.keyframe_id: k for k in real_data.keyframes}
    ds = ClipDataset.from_data(real_data, [index[i] for i in tiny_run.test_ids], CLIP, norm=trained.norm)
    loader = DataLoader(ds, batch_size=16, collate_fn=collate_clips)
    preds = predict(trained.model, loader, torch.device("cpu"))
    expected = score_predictions(preds, len(real_data.classes))
    report = json.loads((evaluated.out_dir / "report.json").read_text())
    names = list(real_data.classes.names)
    assert report["num_boxes"] == expected.num_boxes == sum(len(index[i].persons) for i in tiny_run.test_ids)
    assert report["num_keyframes"] == len(tiny_run.test_ids)
    for key, value in expected.summary().items():
        assert report["summary"][key] == pytest.approx(value, abs=1e-6), key
    assert report["classification"]["confusion"] == expected.classification.confusion
    for c in expected.frame_map.per_class:
        got = report["frame_map"]["per_class"][names[c.label]]["ap"]
        assert got == (None if c.ap is None else pytest.approx(c.ap, abs=1e-6))
    np.testing.assert_allclose(evaluated.predictions.scores, preds.scores, atol=1e-5)


def test_report_metadata_and_class_flags(
    evaluated: EvalOutcome, tiny_run: Run, real_data: ThermalData
) -> None:
    report = json.loads((evaluated.out_dir / "report.json").read_text())
    meta = report["metadata"]
    assert meta["checkpoint"] == str(tiny_run.checkpoint)
    assert (meta["split"], meta["fold"], meta["fold_index"]) == (str(tiny_run.split), "SL18->SL14", 0)
    assert meta["dataset"] == str(real_data.root)
    assert meta["leaked_keyframes"] == 0  # other session, other device
    index = {k.keyframe_id: k for k in real_data.keyframes}
    names = list(real_data.classes.names)
    test_counts = class_counts([index[i] for i in tiny_run.test_ids], len(names))
    train_counts = class_counts([index[i] for i in tiny_run.train_ids], len(names))
    assert report["class_counts"]["test"] == dict(zip(names, test_counts, strict=True))
    assert report["class_counts"]["train"] == dict(zip(names, train_counts, strict=True))
    no_gt = [n for n, c in zip(names, test_counts, strict=True) if c == 0]
    unseen = [n for n, a, b in zip(names, test_counts, train_counts, strict=True) if a and not b]
    assert no_gt and report["classes_without_gt"] == no_gt
    assert report["classes_unseen_in_training"] == unseen
    for name in no_gt:
        assert report["frame_map"]["per_class"][name]["ap"] is None


def test_markdown_lists_every_class_with_na(evaluated: EvalOutcome, real_data: ThermalData) -> None:
    text = (evaluated.out_dir / "report.md").read_text()
    report = evaluated.report
    for i, name in enumerate(real_data.classes.names):
        rows = [line for line in text.splitlines() if line.startswith(f"| {i} | {name}")]
        assert len(rows) == 1, name
        cells = [c.strip() for c in rows[0].strip("|").split(" | ")]
        ap, recall, support = cells[2], cells[4], cells[6]
        if name in report["classes_without_gt"]:
            assert (ap, recall, support) == ("N/A", "N/A", "0")
        else:
            assert ap != "N/A" and int(support) > 0
    for png in PNGS:
        assert f"]({png})" in text


def test_pngs_are_valid(evaluated: EvalOutcome) -> None:
    for name in PNGS:
        data = (evaluated.out_dir / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert len(data) > 10_000, name


def test_ava_files_parse_back(evaluated: EvalOutcome, real_data: ThermalData) -> None:
    num_classes = len(real_data.classes)
    preds = evaluated.predictions
    dets = read_ava_csv(evaluated.out_dir / "detections.csv", "detections", num_classes)
    gts = read_ava_csv(evaluated.out_dir / "groundtruth.csv", "groundtruth", num_classes)
    assert len(dets) == len(preds) * num_classes
    assert len(gts) == len(preds)
    assert [g.class_id for g in gts] == preds.labels.tolist()
    assert [g.person_id for g in gts] == preds.track_ids.tolist()
    scores = np.array([d.score for d in dets], dtype=np.float64).reshape(len(preds), num_classes)
    np.testing.assert_array_equal(scores, preds.scores.astype(np.float64))
    assert [d.class_id for d in dets[:num_classes]] == list(range(num_classes))
    for d, g in zip(dets[::num_classes], gts, strict=True):  # same boxes, same keys
        assert (d.recording_id, d.timestamp_ms) == (g.recording_id, g.timestamp_ms)
        np.testing.assert_allclose(d.box, g.box, atol=1e-6)
    assert read_label_map(evaluated.out_dir / "label_map.pbtxt") == real_data.classes


def test_ava_files_read_in_the_official_readers(evaluated: EvalOutcome, official_ava: Any) -> None:
    """Keyed ``video_id,int(timestamp)`` as the official evaluator does: every row read, one key
    per evaluated keyframe (none merged), ground truth and detections under the same keys."""
    preds = evaluated.predictions
    gt = official_ava(evaluated.out_dir / "groundtruth.csv")
    det = official_ava(evaluated.out_dir / "detections.csv")
    num_classes = preds.scores.shape[1]
    assert gt.rows == len(preds) and det.rows == len(preds) * num_classes
    keyframes = {f"{r},{t:04d}" for r, t in zip(preds.recording_ids, preds.keyframe_ms.tolist(), strict=True)}
    assert gt.keys == det.keys == keyframes
    assert len(keyframes) == len(set(preds.keyframe_ids))


def test_leaky_fold_default_out_and_overwrite(tiny_run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    """Fold 1 tests on training keyframes of the checkpoint: reported, default out dir used."""
    assert main_eval(str(tiny_run.checkpoint), ["fold=1", "device=cpu"], False) == 0
    out = tiny_run.checkpoint.parent / "eval_tiny_1"
    printed = capsys.readouterr().out
    assert f"on split {tiny_run.split} fold 1 (leaky)" in printed
    assert f"{len(tiny_run.leaky_ids)} of {len(tiny_run.leaky_ids)} evaluated keyframes share" in printed
    assert str(out) in printed
    report = json.loads((out / "report.json").read_text())
    assert report["metadata"]["leaked_keyframes"] == len(tiny_run.leaky_ids)
    assert report["metadata"]["leaked_overlap_s"] > 0
    assert "**Warning:**" in (out / "report.md").read_text()

    with pytest.raises(ConfigError, match="exists and is not empty; pass exist_ok=true"):
        main_eval(str(tiny_run.checkpoint), ["fold=1", "device=cpu"], False)
    (out / "report.md").write_text("stale")
    assert main_eval(str(tiny_run.checkpoint), ["fold=1", "device=cpu", "exist_ok=true"], False) == 0
    assert (out / "report.md").read_text().startswith("# Evaluation of thermal_net_s")


def test_empty_test_side_is_a_data_error(tiny_run: Run, tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"  # only the 'all' split may have an empty test side
    save_split(SplitDefinition("empty", "group", False, CLIP, [Fold("empty", tiny_run.train_ids, [])]), empty)
    with pytest.raises(DataError, match="fold 'empty' has no test keyframe"):
        main_eval(str(tiny_run.checkpoint), [f"split={empty}", f"out={tmp_path / 'o'}"], False)
    with pytest.raises(ConfigError, match="fold 2 out of range for split 'tiny'"):
        main_eval(str(tiny_run.checkpoint), ["fold=2", f"out={tmp_path / 'o'}"], False)
    assert not (tmp_path / "o").exists()


def test_options() -> None:
    with pytest.raises(ConfigError, match="'checkpoint' is required"):
        load_options(None, [])
    with pytest.raises(ConfigError, match="two values for .checkpoint. given"):
        load_options("a.pt", ["checkpoint=b.pt"])
    with pytest.raises(ConfigError, match="batch_size"):
        load_options("a.pt", ["batch_size=0"])
    with pytest.raises(ConfigError, match="did you mean 'split'"):
        load_options("a.pt", ["splt=given"])
    opts = load_options("1e5", ["fold=1", "exist_ok=true"])
    assert (opts.checkpoint, opts.fold, opts.exist_ok, opts.split, opts.batch_size) == (
        "1e5",
        1,
        True,
        None,
        16,
    )


def test_missing_and_garbage_checkpoints(tmp_path: Path) -> None:
    out = f"out={tmp_path / 'o'}"
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        main_eval(str(tmp_path / "nope.pt"), [out], False)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="garbage.pt: cannot be loaded"):
        main_eval(str(garbage), [out], False)
    other = tmp_path / "other.pt"
    torch.save({"model": {}, "weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a thermact checkpoint"):
        main_eval(str(other), [out], False)


def _edited(tiny_run: Run, tmp_path: Path, name: str, edit: dict[str, object]) -> Path:
    ckpt = load_checkpoint(tiny_run.checkpoint)
    ckpt.update(edit)
    path = tmp_path / name
    save_checkpoint(path, ckpt)
    return path


def test_checkpoint_with_other_classes(tiny_run: Run, tmp_path: Path, real_data: ThermalData) -> None:
    classes = list(real_data.classes.names)
    renamed = [*classes[:3], "dancing", *classes[4:]]
    path = _edited(tiny_run, tmp_path, "renamed.pt", {"classes": renamed})
    with pytest.raises(
        CheckpointError,
        match=r"renamed.pt: trained on other classes .* first difference at id 3: "
        r"'dancing' \(checkpoint\) vs '" + classes[3],
    ):
        main_eval(str(path), [f"out={tmp_path / 'o'}"], False)
    shorter = _edited(tiny_run, tmp_path, "shorter.pt", {"classes": classes[:-1]})
    with pytest.raises(CheckpointError, match="num_classes=14 but the checkpoint lists 13 classes"):
        main_eval(str(shorter), [f"out={tmp_path / 'o'}"], False)
    assert not (tmp_path / "o").exists()


def test_check_class_list_lengths() -> None:
    check_class_list(["a", "b"], ["a", "b"], "c.pt", "d")
    with pytest.raises(
        CheckpointError,
        match="3 classes in the checkpoint, 2 in the dataset; the checkpoint has extra class 'c'",
    ):
        check_class_list(["a", "b", "c"], ["a", "b"], "c.pt", "d")
    with pytest.raises(
        CheckpointError, match="1 classes in the checkpoint, 2 in the dataset; the dataset has extra"
    ):
        check_class_list(["a"], ["a", "b"], "c.pt", "d")


def test_checkpoint_of_another_model(tiny_run: Run, tmp_path: Path) -> None:
    ckpt = load_checkpoint(tiny_run.checkpoint)
    config = json.loads(json.dumps(ckpt["config"]))
    config["model"]["head"]["mlp_dim"] = 32  # the stored weights have 64
    path = _edited(tiny_run, tmp_path, "wider.pt", {"config": config})
    with pytest.raises(
        CheckpointError, match="wider.pt: weights do not fit the thermal_net_s model of its own config"
    ):
        main_eval(str(path), [f"out={tmp_path / 'o'}"], False)
    config["model"]["name"] = "no_such_net"
    path = _edited(tiny_run, tmp_path, "unknown.pt", {"config": config})
    with pytest.raises(CheckpointError, match="unknown.pt: the config stored in the checkpoint is invalid"):
        main_eval(str(path), [f"out={tmp_path / 'o'}"], False)


def test_smoothed_scores_are_those_of_the_smoothing_function(
    evaluated: EvalOutcome, tiny_run: Run, tmp_path: Path
) -> None:
    out = tmp_path / "smoothed"
    opts = load_options(
        str(tiny_run.checkpoint), [f"out={out}", "device=cpu", "smooth_s=3", "smooth=offline"]
    )
    smoothed = run_evaluation(opts)
    expected = smooth_track_scores(evaluated.predictions, 3.0, "offline")
    np.testing.assert_allclose(smoothed.predictions.scores, expected.scores, rtol=0, atol=2e-6)
    # this 1-epoch model's scores are nearly uniform, so smoothing moves them by ~1e-4 only
    assert np.abs(smoothed.predictions.scores - evaluated.predictions.scores).max() > 2e-5
    report = json.loads((out / "report.json").read_text())
    assert report["smoothing"] == {"mode": "offline", "tau_s": 3.0}
    assert report["summary"]["frame_map"] == pytest.approx(smoothed.result.frame_map.map, abs=1e-9)
    with pytest.raises(ConfigError, match="smooth_s"):
        load_options("a.pt", ["smooth_s=-1"])
    with pytest.raises(ConfigError, match="smooth"):
        load_options("a.pt", ["smooth=both"])


def test_flip_averaged_evaluation(evaluated: EvalOutcome, tiny_run: Run, tmp_path: Path) -> None:
    out = tmp_path / "tta"
    flipped = run_evaluation(
        load_options(str(tiny_run.checkpoint), [f"out={out}", "device=cpu", "tta=flips"])
    )
    assert len(flipped.predictions) == len(evaluated.predictions)
    np.testing.assert_array_equal(flipped.predictions.labels, evaluated.predictions.labels)
    np.testing.assert_allclose(flipped.predictions.scores.sum(1), 1.0, atol=1e-5)
    # this 1-epoch model's scores are nearly uniform, so the four views move them by ~1e-4 only
    assert np.abs(flipped.predictions.scores - evaluated.predictions.scores).max() > 2e-5
    report = json.loads((out / "report.json").read_text())
    assert report["tta"] == "flips" and "tta=flips" in (out / "report.md").read_text()
    assert report["summary"]["frame_map"] == pytest.approx(flipped.result.frame_map.map, abs=1e-9)
    assert "tta" not in json.loads((evaluated.out_dir / "report.json").read_text())
    with pytest.raises(ConfigError, match="tta"):
        load_options("a.pt", ["tta=rot90"])
