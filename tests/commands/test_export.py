"""``thermact export``: export, verification on real clips, output paths and exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thermact.commands.export import load_export_options, run_export
from thermact.commands.export import main as main_export
from thermact.data.clips import ClipConfig
from thermact.data.transforms import NormStats
from thermact.errors import CheckpointError, ConfigError, DataError
from thermact.export.runtime import OnnxActionModel
from thermact.export.verify import VerifyReport

CLIP = ClipConfig(2.7, 16, "center")


def test_main_export_writes_and_verifies(
    checkpoint: Path, norm: NormStats, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sub" / "model.onnx"
    assert main_export(str(checkpoint), [f"out={out}", "num_clips=3", "threads=2"], False) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "max |diff|" in text and "OK" in text
    runner = OnnxActionModel(out)
    assert runner.classes == [f"class_{i}" for i in range(14)]
    assert runner.norm == norm
    assert runner.clip_config == CLIP
    assert runner.score_mode == "softmax"
    assert json.loads(runner.runner.metadata["thermact.epoch"]) == 3
    assert not list(out.parent.glob(".*tmp"))  # atomic write left nothing behind


def test_run_export_default_path_without_verification(checkpoint: Path) -> None:
    outcome = run_export(load_export_options(None, [f"checkpoint={checkpoint}", "verify=false"]))
    assert outcome.path == checkpoint.with_suffix(".onnx") and outcome.path.is_file()
    assert outcome.report is None


def test_missing_checkpoint_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        run_export(load_export_options(str(tmp_path / "nope.pt"), [f"out={tmp_path / 'x.onnx'}"]))


def test_bad_output_paths_are_config_errors(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\.onnx"):
        run_export(load_export_options(str(checkpoint), [f"out={tmp_path / 'model.txt'}"]))
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        run_export(load_export_options(str(checkpoint), [f"out={tmp_path / 'dir.onnx'}"]))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        run_export(load_export_options(str(checkpoint), [f"out={tmp_path / 'file' / 'm.onnx'}"]))
    with pytest.raises(ConfigError, match="checkpoint"):
        load_export_options(None, ["verify=true"])
    with pytest.raises(ConfigError, match="two values for .checkpoint. given"):
        load_export_options("a.pt", ["checkpoint=b.pt"])
    with pytest.raises(ConfigError, match="tolerance"):
        load_export_options("a.pt", ["tolerance=0"])


def test_frame_size_mismatch_fails_before_writing(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    with pytest.raises(DataError, match=r"exported for \[32, 48\]"):
        run_export(load_export_options(str(checkpoint), [f"out={out}", "frame_size=[32,48]"]))
    assert not out.exists()


def test_main_export_exits_1_when_verification_fails(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import thermact.commands.export as export_command

    failing = VerifyReport(0.5, 0.1, 0.2, 3.0, 0.75, 2, 4, 1e-4, 1.0, 1.0)
    monkeypatch.setattr(export_command, "verify_onnx", lambda *args, **kwargs: failing)
    assert main_export(str(checkpoint), [f"out={tmp_path / 'm.onnx'}", "num_clips=1"], False) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "error:" in captured.err and "0.5 > threshold 0.0003" in captured.err


def test_thermact_export_of_a_detector_checkpoint(
    detector_ckpt: Path, action_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from thermact.cli import main
    from thermact.errors import CheckpointError
    from thermact.tasks.action import restore_model

    out = tmp_path / "det.onnx"
    assert main(["export", f"checkpoint={detector_ckpt}", f"out={out}", "num_clips=4"]) == 0
    printed = capsys.readouterr().out
    assert "person_detector" in printed and "top-1 agreement 100.0%" in printed
    assert out.is_file()
    with pytest.raises(CheckpointError, match="not an action model"):
        restore_model(detector_ckpt)


def test_weights_format_drops_the_training_state(detector_ckpt: Path, tmp_path: Path) -> None:
    import torch

    from thermact.engine.checkpoint import TRAINING_STATE_KEYS, load_checkpoint
    from thermact.tasks.person import restore_detector

    full = load_checkpoint(detector_ckpt)
    trained = TRAINING_STATE_KEYS - {"raw_model"}  # a trainer's checkpoint (no weight average)
    assert set(full) >= trained and "raw_model" not in full
    out = tmp_path / "det.weights.pt"
    outcome = run_export(load_export_options(str(detector_ckpt), ["format=weights", f"out={out}"]))
    assert outcome.path == out and outcome.report is None and outcome.kind == "person_detector"
    slim = load_checkpoint(out)
    assert not TRAINING_STATE_KEYS & set(slim)
    assert set(full) - set(slim) == trained
    assert out.stat().st_size < 0.6 * detector_ckpt.stat().st_size  # AdamW's two moments are gone
    a, b = restore_detector(detector_ckpt, "cpu"), restore_detector(out, "cpu")
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key])
    assert (a.norm, a.clip, a.classes) == (b.norm, b.clip, b.classes)
    with pytest.raises(ConfigError, match=r"must end in \.pt"):
        run_export(load_export_options(str(detector_ckpt), ["format=weights", f"out={tmp_path / 'x.onnx'}"]))
    with pytest.raises(ConfigError, match="is the checkpoint itself"):
        run_export(load_export_options(str(out), ["format=weights", f"out={out}"]))


def test_an_existing_output_is_refused_unless_exist_ok(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    out.write_bytes(b"a model of another run")
    with pytest.raises(ConfigError, match="exists; pass exist_ok=true"):
        run_export(load_export_options(str(checkpoint), [f"out={out}", "verify=false"]))
    assert out.read_bytes() == b"a model of another run"
    run_export(load_export_options(str(checkpoint), [f"out={out}", "verify=false", "exist_ok=true"]))
    assert out.read_bytes()[:4] != b"a mo"
