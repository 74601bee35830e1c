"""The Python API (thermact.api and the lazy top-level names): same validation and outputs as the CLI."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import thermact
from thermact.api import as_overrides
from thermact.commands.detect import main as main_detect
from thermact.config import parse_overrides
from thermact.errors import ConfigError
from thermact.shipped import resolve_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def test_import_is_light_and_names_are_lazy() -> None:
    code = "import sys, thermact; print('torch' in sys.modules, thermact.StreamingPredictor.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "StreamingPredictor"]
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        thermact.trian  # noqa: B018
    assert set(thermact.__all__) >= {"train", "evaluate", "detect", "StreamingPredictor", "load_dataset"}


def test_options_are_written_as_the_command_line_reads_them() -> None:
    options = {
        "optim.epochs": 3,
        "augment.gain": [0.9, 1.1],
        "model.input_size": None,
        "data.root": "thermal_v2",
    }
    args = as_overrides(options, seed=2, exist_ok=True, run_dir=Path("runs/x"))
    assert parse_overrides(args) == {
        "optim": {"epochs": 3},
        "augment": {"gain": [0.9, 1.1]},
        "model": {"input_size": None},
        "data": {"root": "thermal_v2"},
        "seed": 2,
        "exist_ok": True,
        "run_dir": "runs/x",
    }


def test_train_validates_like_the_command_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="optim.lr"):
        thermact.train("thermal_net_live", {"optim.lr": -1.0}, run_dir=tmp_path / "r")
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        thermact.train("thermal_net_live", {"optim.epoch": 3}, run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_ensemble_writes_what_the_command_writes(tmp_path: Path) -> None:
    from thermact.models.ensemble import ActionEnsemble
    from thermact.tasks.action import restore_model

    copy = tmp_path / "copy.pt"
    copy.write_bytes(resolve_checkpoint("thermal_net_live").read_bytes())
    out = thermact.ensemble(["thermal_net_live", copy], tmp_path / "x2.pt")
    model = restore_model(out).model
    assert out == tmp_path / "x2.pt" and isinstance(model, ActionEnsemble) and len(model.members) == 2
    with pytest.raises(ConfigError, match="exists; pass exist_ok=true"):
        thermact.ensemble(["thermal_net_live", copy], out)
    with pytest.raises(ConfigError, match="at least two"):
        thermact.ensemble([copy], tmp_path / "one.pt")
    assert not (tmp_path / "one.pt").exists()


def test_detect_writes_what_the_command_writes(
    action_ckpt: Path, detector_ckpt: Path, short_recordings: Path, tmp_path: Path
) -> None:
    args = {"checkpoint": action_ckpt, "detector": detector_ckpt, "animation": "none"}
    outcomes, events = thermact.detect(short_recordings, args, out=tmp_path / "api")
    cli = [f"{k}={v}" for k, v in args.items()]
    assert main_detect(str(short_recordings), [*cli, f"out={tmp_path / 'cli'}"], False) == 0
    assert [o.recording_id for o in outcomes] == sorted(p.stem for p in short_recordings.glob("*.h5"))
    for outcome in outcomes:
        api_lines = (tmp_path / "api" / f"{outcome.recording_id}.jsonl").read_text().splitlines()
        cli_lines = (tmp_path / "cli" / f"{outcome.recording_id}.jsonl").read_text().splitlines()
        assert len(api_lines) == outcome.frames > 0
        assert [json.loads(x)["persons"] for x in api_lines] == [json.loads(x)["persons"] for x in cli_lines]
    assert isinstance(events, list)


def test_evaluate_returns_the_report_it_writes(action_ckpt: Path, tmp_path: Path) -> None:
    outcome = thermact.evaluate(action_ckpt, out=tmp_path / "ev", split="session", fold=1)
    written = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert written["summary"] == outcome.result.summary()
    assert written["num_keyframes"] == outcome.result.num_keyframes == 216  # SL18, fold 1 of V1
    assert 0.0 < outcome.result.frame_map.map < 1.0


def test_predict_a_recording_or_its_frames(
    action_ckpt: Path, detector_ckpt: Path, short_recordings: Path
) -> None:
    from thermact.data.recording import Recording
    from thermact.errors import DataError
    from thermact.inference.sensor import raw_frames

    path = short_recordings / "SL18_R2.h5"
    models = {"checkpoint": action_ckpt, "detector": detector_ckpt}
    persons = thermact.predict(path, **models)
    assert persons and all(p.fresh and p.sensor_id == "SL18_R2" for p in persons)
    times = [p.timestamp_ms for p in persons]
    assert times == sorted(times)
    # one classification per track and cadence (1 s), on the frame grid: gaps of about a second
    gaps = [
        b - a
        for p_track in {p.track_id for p in persons}
        for a, b in itertools.pairwise([p.timestamp_ms for p in persons if p.track_id == p_track])
    ]
    assert gaps and 900 <= float(np.median(gaps)) <= 1400
    rec = Recording(path)
    same = thermact.predict(raw_frames(rec.frames, rec.valid), rec.timestamps, **models)
    assert [(p.track_id, p.timestamp_ms, p.top_label) for p in same] == [
        (p.track_id, p.timestamp_ms, p.top_label) for p in persons
    ]
    with pytest.raises(DataError, match=r"\[T, H, W\]"):
        thermact.predict(rec.frames[0], [1], **models)
    with pytest.raises(DataError, match="strictly increasing"):
        thermact.predict(rec.frames[:3], [3, 2, 1], **models)
