"""``thermact data inspect`` and ``thermact data split``: reports, exit status, options."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from thermact.commands.data import SplitOptions
from thermact.commands.data import main_inspect as main_data_inspect
from thermact.commands.data import main_split as main_data_split
from thermact.config import build_config
from thermact.data.source import BUNDLED_DATASET
from thermact.data.splits import load_split, read_groups
from thermact.errors import ConfigError, DataError


def test_main_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert main_data_inspect(None, [f"out={out}", "window_s=1.0"], lenient=False) == 0
    written = json.loads(out.read_text())
    assert written["clip"]["window_s"] == 1.0
    assert written["invalid_pixels"]["clips_with_invalid_frames"] == 75
    assert f"wrote {out}" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="did you mean 'num_frames'"):
        main_data_inspect(None, ["numframes=8"], lenient=False)


def test_lists_every_problem_of_a_bad_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "ds"
    (root / "annotations").mkdir(parents=True)
    (root / "frames").symlink_to(BUNDLED_DATASET / "frames")
    (root / "raw_annotations").symlink_to(BUNDLED_DATASET / "raw_annotations")
    shutil.copy(BUNDLED_DATASET / "annotations" / "class_mapping.json", root / "annotations")
    shutil.copy(BUNDLED_DATASET / "annotations" / "val.json", root / "annotations")
    train = json.loads((BUNDLED_DATASET / "annotations" / "train.json").read_text())
    train["annotations"][0]["category_id"] = 99
    train["annotations"][1]["bbox"] = [0.5, 0.5, 0.0, 0.2]
    (root / "annotations" / "train.json").write_text(json.dumps(train))
    out = tmp_path / "r.json"
    assert main_data_inspect(str(root), [f"out={out}"], lenient=False) == 1  # report written, exit 1
    assert main_data_inspect(str(root), [f"out={out}"], lenient=True) == 0
    loader = json.loads(out.read_text())["problems"]["loader"]
    assert any("unknown class id 99" in m for m in loader)
    assert any("zero or negative area" in m for m in loader)
    assert "unknown class id 99" in capsys.readouterr().out
    # Missing files still fail.
    (root / "annotations" / "val.json").unlink()
    with pytest.raises(DataError, match="val.json"):
        main_data_inspect(str(root), [f"out={out}"], lenient=False)


def test_split_options_validation() -> None:
    with pytest.raises(ConfigError, match="did you mean 'window_s'"):
        build_config(SplitOptions, None, ["windows=3"])
    with pytest.raises(ConfigError, match="clip options"):
        build_config(SplitOptions, None, ["num_frames=0"]).clip()


def test_main_data_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    groups = tmp_path / "groups.yaml"
    groups.write_text(
        "groups:\n"
        + "".join(f"  SL1{s}_R{i}: {'a' if i < 3 else 'b'}\n" for s in (4, 8) for i in range(1, 5))
    )
    assert read_groups(groups)["SL18_R3"] == "b"
    out = tmp_path / "splits"
    assert main_data_split(None, [f"out={out}", f"groups={groups}"], lenient=False) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "custom.json",
        "given.json",
        "lorecording.json",
        "session.json",
    ]
    assert load_split(out / "custom.json").groups["SL14_R2"] == "a"
    text = capsys.readouterr().out
    assert "given is LEAKY" in text and "SL14->SL18" in text
    bad = tmp_path / "bad.json"
    bad.write_text('["SL14_R1"]')
    with pytest.raises(DataError, match="bad.json: expected a mapping"):
        main_data_split(None, [f"out={out}", f"groups={bad}"], lenient=False)
