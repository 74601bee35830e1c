"""The command line end to end: exit codes and messages on good and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from thermact.cli import main


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_and_unknown_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["--help"], capsys)
    assert code == 0 and "thermact data inspect" in out
    code, _, err = _run(["data", "inspekt"], capsys)
    assert code == 2 and "did you mean 'inspect'" in err
    code, _, err = _run(["dta", "inspect"], capsys)
    assert code == 2 and "did you mean 'data'" in err
    code, _, err = _run(["trian"], capsys)
    assert code == 2 and "did you mean 'train'" in err
    code, _, err = _run(["data", "inspect", "--lenent"], capsys)
    assert code == 2 and "did you mean '--lenient'" in err
    code, _, err = _run(["data", "inspect", "--quite"], capsys)
    assert code == 2 and "did you mean '--quiet'" in err
    code, _, err = _run(["model", "info", "-q", "-v"], capsys)
    assert code == 2 and err == "error: options -q/--quiet and -v/--verbose contradict each other; pass one\n"
    code, out, _ = _run(["--help"], capsys)
    assert "-q/--quiet  warnings and errors only;  -v/--verbose  debug messages too" in out
    code, out, _ = _run(["eval", "--help"], capsys)
    assert "-q/--quiet (warnings and errors only)" in out and "-v/--verbose (debug messages too)" in out


def test_inspect_on_bundled_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "report.json"
    code, out, _ = _run(["data", "inspect", f"out={out_json}"], capsys)
    assert code == 0
    assert "LEAKY" in out
    report = json.loads(out_json.read_text())
    assert report["dataset"]["keyframes"] == 387 and report["dataset"]["person_boxes"] == 500
    assert report["invalid_pixels"]["frames"] == 208
    assert report["invalid_pixels"]["clips_with_invalid_frames"] == 112


def test_wrong_config_key_fails_before_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["data", "inspect", "windw_s=2"], capsys)
    assert code == 2 and "did you mean 'window_s'" in err


def test_missing_dataset_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["data", "inspect", str(tmp_path / "nope"), f"out={tmp_path / 'r.json'}"], capsys)
    assert code == 2
    assert f"error: {tmp_path / 'nope'}: dataset directory not found" in err
    assert not (tmp_path / "r.json").exists()


def test_corrupt_hdf5_names_the_file(
    dataset_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = dataset_copy / "frames" / "SL18_R2.h5"
    target.write_bytes(target.read_bytes()[:4000])
    code, _, err = _run(["data", "split", str(dataset_copy), f"out={tmp_path / 's'}"], capsys)
    assert code == 2 and "SL18_R2.h5" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()
    # inspect lists it among the problems of its (complete) report, then fails naming it
    code, _, err = _run(["data", "inspect", str(dataset_copy), f"out={tmp_path / 'r.json'}"], capsys)
    assert code == 2 and err.count("error:") == 1 and "SL18_R2.h5" in err and "Traceback" not in err
    assert "SL18_R2.h5" in json.loads((tmp_path / "r.json").read_text())["problems"]["loader"][0]


def test_nan_frame_strict_and_lenient(
    dataset_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = dataset_copy / "frames" / "SL18_R1.h5"
    with h5py.File(path, "r+") as f:
        frames = f["frames"][()]
        frames[3] = np.nan
        f["frames"][...] = frames
    code, _, err = _run(["data", "split", str(dataset_copy), f"out={tmp_path / 's'}"], capsys)
    assert code == 2 and "SL18_R1.h5: frame 3" in err and "no valid pixel" in err
    assert not (tmp_path / "s").exists()
    code, out, err = _run(["data", "split", str(dataset_copy), f"out={tmp_path / 's'}", "--lenient"], capsys)
    assert code == 0 and "warning:" in err and "1 record(s) skipped" in out


def test_malformed_json_line_exits_non_zero_unless_lenient(
    dataset_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = dataset_copy / "raw_annotations" / "SL18_R4_annotation.json"
    raw.write_text(raw.read_text().rstrip("\n") + "\n{broken\n")
    code, out, err = _run(["data", "inspect", str(dataset_copy), f"out={tmp_path / 'r.json'}"], capsys)
    assert code == 2
    assert "SL18_R4_annotation.json:55: malformed JSON line" in out
    assert err.startswith("error: ") and "SL18_R4_annotation.json:55: malformed JSON line" in err
    code, out, _ = _run(
        ["data", "inspect", str(dataset_copy), f"out={tmp_path / 'r.json'}", "--lenient"], capsys
    )
    assert code == 0 and "1 record(s) skipped" in out


def test_unknown_class_and_off_frame_box(
    dataset_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = dataset_copy / "annotations" / "val.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 42
    data["annotations"][1]["bbox"] = [1.2, 0.5, 0.1, 0.1]
    path.write_text(json.dumps(data))
    code, _, err = _run(["data", "split", str(dataset_copy), f"out={tmp_path / 's'}"], capsys)
    assert code == 2 and "val.json: annotations[0]" in err and "unknown class id 42" in err
    code, out, err = _run(["data", "split", str(dataset_copy), f"out={tmp_path / 's'}", "--lenient"], capsys)
    assert code == 0
    assert "lies off the 60x40 frame" in err
    # dropping the two boxes also makes the COCO file disagree with the raw file: reported too
    assert "0 person box(es) in the COCO file but 2 in the raw annotations" in err
    assert err.count("warning:") == 3 and "3 record(s) skipped" in out


def test_console_script_module_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "thermact", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "0.1.0"


def test_model_info_of_shipped_config(capsys: pytest.CaptureFixture[str]) -> None:
    config = Path(__file__).resolve().parents[1] / "configs" / "thermal_net_s.yaml"
    code, out, err = _run(["model", "info", str(config), "-q"], capsys)
    assert code == 0 and err == ""  # the result stays on stdout with -q
    assert "thermal_net_s" in out and "spatial stride   4" in out
    assert "27 frames = 4.56 s (0.169 s per clip frame; the clip: 16 frames = 2.70 s)" in out
    code, _, err = _run(["model", "info", str(config), "model.nam=x"], capsys)
    assert code == 2 and "did you mean 'name'" in err


@pytest.mark.parametrize(
    ("args", "keys"),
    [
        (["train"], ["optim.lr", "data.split", "model.name", "run_dir"]),
        (["cv"], ["optim.epochs", "data.root"]),
        (["cfg"], ["augment.p_hflip"]),
        (["eval"], ["checkpoint", "time_unit", "detector"]),
        (["export"], ["checkpoint", "out", "verify"]),
        (["detect"], ["checkpoint", "cadence_s", "tracker.max_age_s"]),
        (["stream"], ["speed", "tracker.min_hits"]),
        (["data", "inspect"], ["window_s", "session_gap_s"]),
        (["data", "split"], ["out"]),
        (["model", "info"], ["model.name", "model.num_frames"]),
        (["model", "ensemble"], ["members", "out", "exist_ok"]),
    ],
)
def test_every_command_has_help(args: list[str], keys: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--help", "-h"):
        code, out, err = _run([*args, flag], capsys)
        assert code == 0 and err == ""
        assert out.startswith(f"usage: thermact {' '.join(args)} ")
        listed = {line.split()[0] for line in out.splitlines() if line.startswith("  ")}
        assert set(keys) <= listed, set(keys) - listed


def test_training_help_shows_the_selected_preset(capsys: pytest.CaptureFixture[str]) -> None:
    def row(out: str, key: str) -> list[str]:
        return next(line.split() for line in out.splitlines() if line.split()[:1] == [key])

    _, default, _ = _run(["train", "--help"], capsys)
    assert row(default, "data.keyframe_position")[2] == "center"  # thermal_net_s
    _, live, _ = _run(["train", "config=thermal_net_live", "--help"], capsys)
    assert row(live, "data.keyframe_position")[2] == "causal"
    assert row(live, "model.name")[2] == "thermal_net_t"
    _, det, _ = _run(["train", "task=detector", "--help"], capsys)
    assert "person_detector_s" in det and "model.head.interaction.memory_window_s" not in det


def test_cfg_prints_the_config_train_would_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from thermact.commands._common import load_task_config

    monkeypatch.chdir(tmp_path)  # presets are found by name from any directory
    code, out, _ = _run(["cfg", "config=thermal_net_live", "optim.epochs=7", "seed=3"], capsys)
    assert code == 0
    tree = yaml.safe_load(out)
    assert tree["task"] == "action" and tree["optim"]["epochs"] == 7 and tree["seed"] == 3
    assert tree["model"]["name"] == "thermal_net_t" and tree["data"]["keyframe_position"] == "causal"
    (tmp_path / "mine.yaml").write_text(out)
    _, from_file = load_task_config(str(tmp_path / "mine.yaml"), [], False)
    _, from_preset = load_task_config("thermal_net_live", ["optim.epochs=7", "seed=3"], False)
    assert from_file == from_preset
    code, _, err = _run(["cfg", "config=thermal_net_lve"], capsys)
    assert code == 2 and "did you mean 'thermal_net_live'" in err
    code, _, err = _run(["cfg", "optim.lr=-1"], capsys)
    assert code == 2 and "optim.lr" in err


def test_presets_ship_inside_the_package() -> None:
    import tomllib

    import thermact
    from thermact.config import PRESETS_DIR, preset_names

    assert PRESETS_DIR.parent == Path(thermact.__file__).parent
    assert {"thermal_net_s", "thermal_net_live", "person_detector", "slowfast_r50_4x16"} <= set(
        preset_names()
    )
    pyproject = Path(__file__).parents[1] / "pyproject.toml"
    package_data = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["thermact"]
    assert "configs/*.yaml" in package_data
