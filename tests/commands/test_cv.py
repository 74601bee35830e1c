from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

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


def test_session_cv_pretrains_each_fold_on_its_own_training_recordings(tmp_path: Path) -> None:
    args = [
        "cv", "config=thermal_net_live", "protocol=session", f"run_dir={tmp_path}", "optim.epochs=1",
        "optim.batch_size=16", "pretrain.epochs=1", "pretrain.frame_stride=25",
    ]  # fmt: skip
    assert main(args) == 0
    base = tmp_path / "session"
    report = json.loads((base / "cv_report.json").read_text())
    assert report["pretrain"] == {"epochs": 1, "mask_ratio": 0.5, "frame_stride": 25}
    for index in (0, 1):
        pre_cfg = yaml.safe_load((base / f"pretrain{index}" / "config.yaml").read_text())
        assert pre_cfg["task"] == "pretrain" and pre_cfg["data"]["fold"] == index
        assert pre_cfg["optim"]["epochs"] == 1 and pre_cfg["pretrain"]["frame_stride"] == 25
        fold_cfg = yaml.safe_load((base / f"fold{index}" / "config.yaml").read_text())
        assert fold_cfg["model"]["pretrained"] == str(base / f"pretrain{index}" / "last.pt")
        assert fold_cfg["optim"]["epochs"] == 1 and fold_cfg["data"]["fold"] == index
    # the fine-tuning started from the pretrained backbone: one epoch moves it only a little
    pre = torch.load(base / "pretrain0" / "last.pt", weights_only=True)["model"]
    fine = torch.load(base / "fold0" / "last.pt", weights_only=True)["model"]
    name = "backbone.stem.0.weight"
    init = torch.nn.init.kaiming_normal_(torch.empty_like(pre[name]))
    assert (fine[name] - pre[name]).norm() < 0.5 * (init - pre[name]).norm()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pretrain.epochs=-1"], "epochs"),
        (["pretrain.mask_ratio=1.5"], "mask_ratio"),
        (["config=person_detector_live", "pretrain.epochs=1"], "only action models"),
        (["pretrain.epochs=1", "model.pretrained=x.pt"], "model.pretrained is set"),
    ],
)
def test_bad_pretrain_keys(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cv", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and len(err.strip().splitlines()) == 1
