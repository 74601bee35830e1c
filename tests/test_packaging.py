"""The wheel holds what a user needs outside the repository: presets, shipped models, datasets."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_presets_models_and_data(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", str(ROOT), "--no-deps", "--no-build-isolation"]
    subprocess.run([*cmd, "-w", str(tmp_path)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("thermact-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    presets = {f"thermact/configs/{p.name}" for p in (ROOT / "src/thermact/configs").glob("*.yaml")}
    assert len(presets) >= 8 and presets <= names
    for required in (
        "thermact/weights/thermal_net_live.pt",
        "thermact/weights/thermal_net_live_ens3.pt",
        "thermact/weights/person_detector_live.pt",
        "thermact/weights/MODEL_CARD.md",
        "thermact/datasets/thermal_v1/frames/SL14_R1.h5",
        "thermact/datasets/thermal_v2/annotations/class_mapping.json",
        "thermact/py.typed",
    ):
        assert required in names, required
