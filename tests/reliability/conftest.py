"""Helpers of the reliability suite: run the real CLI, judge its failure, build small inputs to break.

* ``cli`` (a :class:`Cli`): ``cli.run(ARGS)`` runs ``thermact ARGS`` through
  :func:`thermact.cli.main` in this process (the console script's own entry point) and returns a
  :class:`CliResult` (exit status, stdout, stderr); an exception that escapes ``main`` comes back
  as a Python traceback on stderr with status 1, as it would from the console script.
  ``cli.assert_clean_error(result, names, outputs)`` checks the project's promise for bad input:
  exit status 2, exactly one ``error:`` line on stderr naming what is at fault, no traceback, and
  the given outputs not written (no leftover temporary files either).
* ``mini_root``: a 3-recording cut of the bundled dataset (SL14_R1, SL18_R1, SL18_R2, the first
  30 s of each, their keyframes and raw annotations, and ``splits/`` written by ``thermact data
  split``), small enough that the whole suite runs in about a minute; ``broken`` gives a fresh
  writable copy to break.
* ``untrained_action_ckpt`` / ``untrained_detector_ckpt``: tiny untrained models in the trainers' checkpoint layout,
  for the commands that need one (eval, detect); the suite tests input handling, not accuracy.

To extend the suite, add a :class:`Case` to a table in ``test_bad_input.py``: a name, a function
that breaks a copy of the dataset, and the strings the one error line must contain.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from thermact.cli import main
from thermact.config import build_config, config_to_dict
from thermact.data.source import BUNDLED_DATASET
from thermact.data.transforms import NormStats
from thermact.engine.checkpoint import save_checkpoint
from thermact.models.factory import build_model
from thermact.models.person_detector import build_detector
from thermact.tasks.action import ActionRunConfig
from thermact.tasks.person import DETECTOR_CLASSES, DetectorRunConfig

MINI_RECORDINGS = ("SL14_R1", "SL18_R1", "SL18_R2")
MINI_SECONDS = 30.0
CLIP_ARGS = ("window_s=2.7", "num_frames=8")
"""The clip of the mini dataset's split files (and of TINY_TRAIN's model)."""
TINY_TRAIN = (
    "model.num_frames=8",
    "model.head.mlp_dim=32",
    "data.window_s=2.7",
    "optim.epochs=1",
    "optim.batch_size=16",
    "optim.warmup_epochs=0.5",
    "log_every=1000",
    "augment.enabled=false",
)


@dataclasses.dataclass(frozen=True)
class CliResult:
    rc: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def run_cli(args: Sequence[str | Path], env: dict[str, str] | None = None) -> CliResult:
    """``thermact ARGS`` in this process: exit status, stdout, stderr (see the module docstring)."""
    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main([str(a) for a in args])
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else 1
            except Exception:
                traceback.print_exc()
                rc = 1
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return CliResult(rc, out.getvalue(), err.getvalue())


def assert_clean_error(result: CliResult, names: Iterable[str], outputs: Iterable[Path] = ()) -> str:
    """Exit 2, one ``error:`` line containing every string of ``names``, no traceback, ``outputs``
    absent (files, or the run directory of a training that could not start).

    Returns the error line. Also fails when a temporary file (``*.tmp``) is left next to an output.
    """
    assert "Traceback" not in result.stderr, result.stderr
    assert result.rc == 2, (
        f"exit status {result.rc}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr}"
    )
    lines = result.error_lines
    assert len(lines) == 1, f"expected exactly one error line, got {lines}"
    for name in names:
        assert name in lines[0], f"{name!r} not named in {lines[0]!r}"
    for path in outputs:
        assert not path.exists(), f"{path} was written although the command failed"
        parent = path.parent
        if parent.is_dir():
            assert not list(parent.glob("*.tmp")), f"temporary files left in {parent}"
    return lines[0]


class Cli:
    """The helpers above, handed to tests by the ``cli`` fixture."""

    run = staticmethod(run_cli)
    assert_clean_error = staticmethod(assert_clean_error)
    tiny_train = TINY_TRAIN


@pytest.fixture(scope="session")
def cli() -> Cli:
    return Cli()


# ---------------------------------------------------------------------------------------------
# The mini dataset


def _cut_recording(src: Path, dest: Path, seconds: float) -> tuple[int, int]:
    with h5py.File(src, "r") as f:
        ts = f["timestamps"][()]
        n = int(np.searchsorted(ts, ts[0] + seconds * 1000))
        with h5py.File(dest, "w") as g:
            for name in ("frames", "timestamps", "frame_seqs"):
                g.create_dataset(name, data=f[name][:n])
            for key, value in f.attrs.items():
                g.attrs[key] = value
            g.attrs["total_frames"] = n
            g.attrs["max_timestamp"] = int(ts[n - 1])
    return int(ts[0]), int(ts[n - 1])


def build_mini_dataset(dest: Path) -> Path:
    """A cut of the bundled dataset (see the module docstring); returns ``dest``."""
    (dest / "frames").mkdir(parents=True)
    (dest / "annotations").mkdir()
    (dest / "raw_annotations").mkdir()
    spans = {
        rid: _cut_recording(
            BUNDLED_DATASET / "frames" / f"{rid}.h5", dest / "frames" / f"{rid}.h5", MINI_SECONDS
        )
        for rid in MINI_RECORDINGS
    }

    def inside(rid: str, t: int) -> bool:
        return rid in spans and spans[rid][0] <= t <= spans[rid][1]

    shutil.copy(BUNDLED_DATASET / "annotations" / "class_mapping.json", dest / "annotations")
    for name in ("train", "val"):
        coco = json.loads((BUNDLED_DATASET / "annotations" / f"{name}.json").read_text())
        coco["images"] = [i for i in coco["images"] if inside(i["sensor_id"], i["timestamp"])]
        ids = {i["id"] for i in coco["images"]}
        coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
        (dest / "annotations" / f"{name}.json").write_text(json.dumps(coco))
    for rid in MINI_RECORDINGS:
        lines = (BUNDLED_DATASET / "raw_annotations" / f"{rid}_annotation.json").read_text().splitlines()
        kept = [line for line in lines if line.strip() and inside(rid, json.loads(line)["data_time"])]
        (dest / "raw_annotations" / f"{rid}_annotation.json").write_text("\n".join(kept) + "\n")
    result = run_cli(["data", "split", dest, f"out={dest / 'splits'}", *CLIP_ARGS])
    assert result.rc == 0, result.stderr
    return dest


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mini_dataset(tmp_path_factory.mktemp("mini") / "mini")


@pytest.fixture()
def broken(mini_root: Path, tmp_path: Path) -> Path:
    """A fresh writable copy of the mini dataset, to break."""
    return Path(shutil.copytree(mini_root, tmp_path / "data"))


# ---------------------------------------------------------------------------------------------
# Tiny checkpoints


@pytest.fixture(scope="session")
def untrained_action_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained causal ThermalNet-S (8 frames, MLP 32) in the trainer's checkpoint layout."""
    cfg = build_config(
        ActionRunConfig,
        None,
        ["model.num_frames=8", "model.head.mlp_dim=32", "data.keyframe_position=causal"],
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.clip, verbose=False)
    classes = json.loads((BUNDLED_DATASET / "annotations" / "class_mapping.json").read_text())["classes"]
    path = tmp_path_factory.mktemp("ckpt") / "action.pt"
    payload = {"model": model.state_dict(), "config": config_to_dict(cfg), "classes": classes}
    save_checkpoint(path, {**payload, "norm": NormStats(17.24, 1.39).to_dict(), "epoch": 1, "metrics": {}})
    return path


@pytest.fixture(scope="session")
def untrained_detector_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained person detector in the detector trainer's checkpoint layout."""
    cfg = DetectorRunConfig()
    torch.manual_seed(0)
    model = build_detector(cfg.model)
    path = tmp_path_factory.mktemp("ckpt") / "detector.pt"
    payload = {"model": model.state_dict(), "config": config_to_dict(cfg), "classes": list(DETECTOR_CLASSES)}
    save_checkpoint(path, {**payload, "norm": NormStats(17.24, 1.39).to_dict(), "epoch": 1, "metrics": {}})
    return path
