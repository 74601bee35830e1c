"""``thermact baseline``: the prior and box-cue baselines on every fold, reported as ``thermact cv``."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

import pytest

from thermact.cli import main


def test_prior_baseline_reports_like_cv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["baseline", "kind=prior", f"run_dir={tmp_path}"]) == 0
    report = json.loads((tmp_path / "session" / "baseline_prior.json").read_text())
    assert [f["name"] for f in report["folds"]] == ["SL18->SL14", "SL14->SL18"]  # as thermact cv
    assert report["metrics"] == ["frame_map", "accuracy", "balanced_accuracy", "macro_f1"]
    assert [f["last"]["frame_map"] for f in report["folds"]] == pytest.approx([0.156, 0.179], abs=0.002)
    agg = report["last_epoch"]["frame_map"]
    assert agg["mean"] == pytest.approx((0.156 + 0.179) / 2, abs=0.002)
    assert agg["std"] == pytest.approx((0.179 - 0.156) / 2, abs=0.002)
    assert report["best_epoch_optimistic"] is None and report["model"] == "baseline prior"
    md = (tmp_path / "session" / "baseline_prior.md").read_text()
    assert "| frame_map | 0.167 ± 0.011 |" in md and "SL14->SL18" in md and "best epoch" not in md
    assert md in capsys.readouterr().out


def test_box_gbm_baseline_on_leave_one_recording_out(tmp_path: Path) -> None:
    assert main(["baseline", "box_gbm", "protocol=recording", f"run_dir={tmp_path}"]) == 0
    gbm = json.loads((tmp_path / "recording" / "baseline_box_gbm.json").read_text())
    assert main(["baseline", "prior", "protocol=recording", f"run_dir={tmp_path}"]) == 0
    prior = json.loads((tmp_path / "recording" / "baseline_prior.json").read_text())
    assert len(gbm["folds"]) == len(prior["folds"]) == 8  # one per V1 recording
    assert [f["name"] for f in gbm["folds"]] == [f["name"] for f in prior["folds"]]
    assert gbm["last_epoch"]["frame_map"]["mean"] > prior["last_epoch"]["frame_map"]["mean"] + 0.05
    assert gbm["model"] == "baseline box_gbm (cues: all)"
    assert main(["baseline", "box_gbm", "protocol=recording", "cues=network", f"run_dir={tmp_path}"]) == 0
    network = json.loads((tmp_path / "recording" / "baseline_box_gbm_network.json").read_text())
    assert network["model"] == "baseline box_gbm (cues: network)"
    assert [f["name"] for f in network["folds"]] == [f["name"] for f in gbm["folds"]]
    assert network["last_epoch"]["frame_map"]["mean"] != gbm["last_epoch"]["frame_map"]["mean"]


def test_box_gbm_without_scikit_learn_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = importlib.import_module

    def no_sklearn(name: str, package: str | None = None) -> ModuleType:
        if name.startswith("sklearn"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", no_sklearn)
    assert main(["baseline", "kind=box_gbm", f"run_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "pip install 'thermact[baselines]'" in err[0]
    assert not (tmp_path / "session").exists()
    assert main(["baseline", "kind=prior", f"run_dir={tmp_path}"]) == 0  # the prior needs no extra


def test_bad_options_are_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("")
    for arg, words in (
        ("kind=svm", ("'kind'", "prior")),
        ("protocol=sessions", ("'protocol'", "session")),
        ("cues=radius", ("'cues'", "radial")),
        ("data.window_s=0", ("'data.window_s'",)),
        ("data.root=no_such_dataset", ("no_such_dataset",)),
        (f"run_dir={tmp_path / 'file'}/x", ("run_dir",)),
    ):
        assert main(["baseline", arg]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and all(w in err[0] for w in words), err


def test_help_lists_every_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["baseline", "--help"]) == 0
    out = capsys.readouterr().out
    for key in (
        "kind",
        "protocol",
        "run_dir",
        "seed",
        "cues",
        "data.root",
        "data.window_s",
        "data.num_frames",
    ):
        assert f"\n  {key} " in out
    assert "gradient boosting on box cues" in out
