"""Tests for thermact.tasks.pretrain and ``thermact pretrain``: which frames are used, a pretrain →
fine-tune hand-over, exact resume and refused input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from thermact.cli import main
from thermact.data.clips import ClipConfig, clip_window
from thermact.data.source import ThermalData
from thermact.data.split_file import PurgedInterval
from thermact.data.splits import resolve_split
from thermact.engine.checkpoint import load_checkpoint
from thermact.models.factory import ModelConfig, build_model
from thermact.tasks.pretrain import PRETRAIN, unlabelled_keyframes

CLIP = ClipConfig(2.7, 8, "causal")


def test_unlabelled_frames_come_from_the_training_recordings_only(real_data_v2: ThermalData) -> None:
    split = resolve_split(real_data_v2, "session", CLIP)
    by_id = {k.keyframe_id: k for k in real_data_v2.keyframes}
    assert len(split.folds) == 3
    for fold in split.folds:
        frames = unlabelled_keyframes(real_data_v2, fold, CLIP, frame_stride=1)
        recs = {k.recording_id for k in frames}
        assert recs == {by_id[i].recording_id for i in fold.train}
        assert not recs & set(fold.test_recordings) and fold.test_recordings
        assert len(frames) == sum(real_data_v2.recordings[r].num_frames for r in recs)  # nothing purged
        assert all(not k.persons for k in frames)
        assert abs(
            len(unlabelled_keyframes(real_data_v2, fold, CLIP, frame_stride=4)) - len(frames) / 4
        ) <= len(recs)


def test_frames_near_purged_or_test_time_are_left_out(real_data: ThermalData) -> None:
    fold = resolve_split(real_data, "session", CLIP).folds[0]
    rid = sorted({k.recording_id for k in unlabelled_keyframes(real_data, fold, CLIP, 1)})[0]
    ts = real_data.recordings[rid].timestamps
    start, end = int(ts[100]), int(ts[200])
    purged = dataclasses.replace(fold, purged_intervals={rid: [PurgedInterval(start, end, 101)]})
    kept = [k.timestamp_ms for k in unlabelled_keyframes(real_data, purged, CLIP, 1) if k.recording_id == rid]
    assert len(kept) < len(ts) - 101
    assert all(clip_window(t, CLIP)[1] < start or clip_window(t, CLIP)[0] > end for t in kept)
    # the given split tests inside the training recordings: no frame near a test keyframe is used
    given = resolve_split(real_data, "given", CLIP).folds[0]
    tests = [k for k in real_data.keyframes if k.keyframe_id in set(given.test)]
    frames = unlabelled_keyframes(real_data, given, CLIP, 1)
    assert 0 < len(frames) < sum(r.num_frames for r in real_data.recordings.values())
    windows = {(k.recording_id, *clip_window(k.timestamp_ms, CLIP)) for k in tests}
    for f in frames[::50]:
        s, e = clip_window(f.timestamp_ms, CLIP)
        assert not any(r == f.recording_id and s <= te and ts_ <= e for r, ts_, te in windows)


def test_pretrain_then_fine_tune_from_its_backbone(tmp_path: Path, one_thread: None) -> None:
    pre = tmp_path / "pre"
    args = [
        "pretrain", "config=thermal_net_live", f"run_dir={pre}", "optim.epochs=1", "optim.batch_size=8",
        "pretrain.frame_stride=60", "augment.frame_drop=0.3", "augment.dead_pixels=0.01",
    ]  # fmt: skip
    assert main(args) == 0
    ckpt = load_checkpoint(pre / "last.pt")
    assert ckpt["config"]["task"] == "pretrain" and {"decoder.weight", "decoder.bias"} <= set(ckpt["model"])
    assert ckpt["norm"]["mean_c"] > 15.0 and ckpt["classes"] == []
    assert not (pre / "best.pt").exists()  # no validation: the test fold is never looked at
    trained = PRETRAIN.restore(pre / "last.pt")
    cfg = ModelConfig(name="thermal_net_t", num_frames=8, pretrained=str(pre / "last.pt"))
    model = build_model(cfg, verbose=False)
    for key, value in model.backbone.state_dict().items():
        torch.testing.assert_close(value, ckpt["model"][f"backbone.{key}"])
        torch.testing.assert_close(value, trained.model.backbone.state_dict()[key])
    # resume continues the same run exactly: one more epoch from last.pt equals a 2-epoch run
    assert main(["pretrain", f"resume={pre / 'last.pt'}", "optim.epochs=2"]) == 0
    assert main([*args[:2], f"run_dir={tmp_path / 'two'}", "optim.epochs=2", *args[4:]]) == 0
    resumed, straight = load_checkpoint(pre / "last.pt"), load_checkpoint(tmp_path / "two" / "last.pt")
    for key, value in straight["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["model.name=slowfast_r50_4x16", "model.num_frames=32", "model.backbone_dropout=0"],
            "needs a ThermalNet",
        ),
        (["pretrain.mask_ratio=1"], "pretrain.mask_ratio"),
        (["pretrain.frame_stride=0"], "pretrain.frame_stride"),
        (["model.num_frames=7"], "model.num_frames"),
        (["model.members=2"], "config key 'model.members': 2"),
        (["config=person_detector"], "detector config"),
    ],
)
def test_bad_input_is_one_error_line_and_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["pretrain", f"run_dir={tmp_path / 'bad'}", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not (tmp_path / "bad").exists()
