from __future__ import annotations

import json
from pathlib import Path

import pytest

from thermact.cli import main
from thermact.commands.cv import mean_std


def test_mean_std_hand_values() -> None:
    assert mean_std([1.0, 3.0]) == (2.0, 1.0)
    assert mean_std([0.5]) == (0.5, 0.0)


def test_session_cv_trains_both_directions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "cv", "protocol=session", f"run_dir={tmp_path}", "model.num_frames=8", "model.head.mlp_dim=32",
        "optim.epochs=1", "optim.batch_size=16", "augment.enabled=false",
    ]  # fmt: skip
    assert main(args) == 0
    report = json.loads((tmp_path / "session" / "cv_report.json").read_text())
    assert [f["name"] for f in report["folds"]] == ["SL18->SL14", "SL14->SL18"]
    values = [f["last"]["balanced_accuracy"] for f in report["folds"]]
    agg = report["last_epoch"]["balanced_accuracy"]
    assert agg["mean"] == pytest.approx(sum(values) / 2)
    assert agg["std"] == pytest.approx(abs(values[0] - values[1]) / 2)
    for fold in report["folds"]:
        log = (Path(fold["run_dir"]) / "metrics.jsonl").read_text().splitlines()
        assert json.loads(log[-1])["val"] == fold["last"]
    md = (tmp_path / "session" / "cv_report.md").read_text()
    assert "last epoch" in md and "SL14->SL18" in md
    assert "cv_report.json" in capsys.readouterr().out


def test_unknown_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cv", "protocol=sessions"]) == 2
    assert "protocol" in capsys.readouterr().err
