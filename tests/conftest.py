"""Shared fixtures: the bundled real datasets and writable copies of one to break on purpose; small
models and checkpoints (export, inference, commands); fake models that record what they are given."""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from thermact.config import build_config, config_to_dict
from thermact.data.clips import ClipConfig
from thermact.data.recording import INVALID_SENTINEL_C
from thermact.data.source import BUNDLED_DATASET, ThermalData, bundled_datasets, load_dataset
from thermact.data.transforms import NormStats, compute_norm_stats
from thermact.engine.checkpoint import save_checkpoint
from thermact.engine.config import load_config
from thermact.engine.run import train
from thermact.logs import LOGGER
from thermact.models.action import ActionModel
from thermact.models.factory import HeadConfig, ModelConfig, build_model
from thermact.models.postprocess import Detections
from thermact.tasks.action import ActionRunConfig
from thermact.tasks.person import PERSON, DetectorRunConfig


def pytest_configure(config: pytest.Config) -> None:
    """The suite runs on the CPU, as CI does, on a machine with a GPU too: ``device=auto`` would
    pick the GPU and change what the tests assert (devices named in logs, exact resumes, float
    tolerances). ``THERMACT_TEST_CUDA=1`` leaves the GPU visible for the tests marked ``cuda``
    (``THERMACT_TEST_CUDA=1 pytest -m cuda``); CUDA is not initialised before this hook."""
    if os.environ.get("THERMACT_TEST_CUDA") != "1":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: THERMACT_TEST_CUDA=1 pytest -m cuda")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def bundled_root() -> Path:
    return BUNDLED_DATASET


@pytest.fixture(scope="session")
def real_data() -> ThermalData:
    """The bundled dataset, loaded once per test session (read-only use)."""
    return load_dataset(BUNDLED_DATASET)


@pytest.fixture(scope="session")
def real_data_v2() -> ThermalData:
    """The bundled ``thermal_v2`` (19 recordings, 3 sessions), loaded once per test session."""
    return load_dataset(bundled_datasets()["thermal_v2"])


@pytest.fixture()
def dataset_copy(tmp_path: Path) -> Path:
    """A writable copy of the bundled dataset (without generated split files)."""
    dest = tmp_path / "thermal_copy"
    shutil.copytree(BUNDLED_DATASET, dest, ignore=shutil.ignore_patterns("splits", "*.md"))
    return dest


# ---------------------------------------------------------------------------------------------
# A small ThermalNet-S with informative random weights, and its checkpoint (export, commands)

EXPORT_T = 16
EXPORT_CLIP = ClipConfig(2.7, EXPORT_T, "center")


def _make_informative(model: nn.Module, seed: int) -> None:
    """Random BN statistics and an O(1) classifier, so that a wrong graph gives visibly wrong logits."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d | nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
        if isinstance(model, ActionModel):
            nn.init.normal_(model.head.classifier.weight, std=1.0, generator=gen)


@pytest.fixture(scope="session")
def make_informative() -> Callable[[nn.Module, int], None]:
    """:func:`_make_informative` (test modules cannot import conftest)."""
    return _make_informative


@pytest.fixture(scope="session")
def norm(real_data: ThermalData) -> NormStats:
    return compute_norm_stats(real_data.recordings, real_data.keyframes[::20], EXPORT_CLIP)


@pytest.fixture(scope="session")
def thermal() -> ActionModel:
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_frames=EXPORT_T, head=HeadConfig(mlp_dim=32)), verbose=False)
    _make_informative(model, 1)
    return model.eval()


@pytest.fixture(scope="session")
def checkpoint(thermal: ActionModel, norm: NormStats, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = ActionRunConfig(model=ModelConfig(num_frames=EXPORT_T, head=HeadConfig(mlp_dim=32)))
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    classes = [f"class_{i}" for i in range(14)]
    save_checkpoint(
        path,
        {
            "model": thermal.state_dict(),
            "config": config_to_dict(cfg),
            "classes": classes,
            "norm": norm.to_dict(),
            "epoch": 3,
        },
    )
    return path


# ---------------------------------------------------------------------------------------------
# Inference: tiny real checkpoints, a short recording with dead pixels, fake models

H, W = 40, 60
FloatArray = np.ndarray
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """Run the test single-threaded (tensors this small gain nothing from intra-op threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def classes(real_data: ThermalData) -> list[str]:
    return list(real_data.classes.names)


DETECTOR_EPOCHS = 10
"""Epochs of the :func:`detector_ckpt` fixture: with margin, so that it finds people whatever the CPU's
kernels (measured: person AP 0.79 and 0.70, recall 0.81 and 0.75, with oneDNN's default ISA and with AVX2 on an Intel Xeon; one epoch found nobody on an AMD CPU). Its validation grows the boxes to the
body heat (models.heat_boxes, on by default): 0.826 → 0.852 in one run with the default ISA."""


@pytest.fixture(scope="session")
def detector_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A person detector trained on the session fold SL18 -> SL14 until it finds people, checked on
    its validation keyframes (person AP and recall at its operating threshold); ≈1 min on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("det")
        overrides = [
            f"optim.epochs={DETECTOR_EPOCHS}", "optim.batch_size=8", f"eval.every_epochs={DETECTOR_EPOCHS}",
            f"run_dir={root / 'run'}", "log_every=1000",
        ]  # fmt: skip
        result = train(
            PERSON, load_config(DetectorRunConfig, str(CONFIGS / "person_detector.yaml"), overrides)
        )
    finally:
        torch.set_num_threads(before)
    metrics = result.best_metrics
    assert metrics["person_ap"] > 0.5 and metrics["recall"] > 0.5, (
        f"the detector fixture did not learn: {metrics}"
    )
    return result.last_checkpoint


@pytest.fixture(scope="session")
def action_ckpt(tmp_path_factory: pytest.TempPathFactory, classes: list[str], real_data: ThermalData) -> Path:
    """A tiny ThermalNet-S (8 frames, MLP 32) with random weights whose classifier is calibrated on
    real clips (features centred and scaled), so that different people get different top classes
    (a plain random head gives every box the same class); saved in the trainer's checkpoint layout."""
    from thermact.data.dataset import real_clips
    from thermact.models.factory import build_model

    norm = NormStats(17.24, 1.39)
    torch.manual_seed(0)
    cfg = build_config(
        ActionRunConfig,
        None,
        ["model.num_frames=8", "model.head.mlp_dim=32", "data.keyframe_position=causal"],
    )
    model = build_model(cfg.model, cfg.clip, verbose=False).eval()
    clips, rois = real_clips(real_data, ClipConfig(2.7, 8, "causal"), norm, num_clips=24, batch_size=24)
    feats: list[torch.Tensor] = []
    hook = model.head.classifier.register_forward_hook(lambda m, i, o: feats.append(i[0]))
    classifier = model.head.classifier
    with torch.no_grad():
        model(clips[0], rois[0])
        hook.remove()
        mean, std = feats[0].mean(0), feats[0].std(0) + 1e-2
        weight = torch.randn(classifier.weight.shape, generator=torch.Generator().manual_seed(1)) / std
        classifier.weight.copy_(weight)
        classifier.bias.copy_(-(weight @ mean))
    path = tmp_path_factory.mktemp("act") / "action.pt"
    save_checkpoint(
        path,
        {
            "model": model.state_dict(),
            "config": config_to_dict(cfg),
            "classes": classes,
            "norm": norm.to_dict(),
            "epoch": 1,
            "metrics": {},
        },
    )
    return path


def write_recording(path: Path, frames: np.ndarray, timestamps: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=frames.astype(np.float32))
        f.create_dataset("timestamps", data=timestamps.astype(np.int64))
        f.attrs["sensor_id"] = path.stem
    return path


@pytest.fixture(scope="session")
def short_recordings(real_data: ThermalData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the first 20 s (≈120 frames) of SL14_R1 and SL18_R2, dead rows
    (-273.2 °C) and a NaN written into some SL14 frames as the sensor does."""
    root = tmp_path_factory.mktemp("recs")
    for rid in ("SL14_R1", "SL18_R2"):
        rec = real_data.recording(rid)
        ts = rec.timestamps
        n = int(np.searchsorted(ts, ts[0] + 20_000))
        frames = np.where(rec.valid[:n], rec.frames[:n], np.float32(INVALID_SENTINEL_C)).astype(np.float32)
        if rid == "SL14_R1":
            frames[30:40, 30:] = INVALID_SENTINEL_C  # 10 frames with 10 dead rows
            frames[50, 5, 7] = np.nan
        write_recording(root / f"{rid}.h5", frames, ts[:n])
    return root


class FakeDetector:
    """A :class:`~thermact.inference.pipeline.DetectorLike` that reports ``box`` (a person) in every
    frame for which ``present(frame)`` holds, and records every batch it is given."""

    def __init__(
        self,
        box: tuple[float, float, float, float] = (10.0, 10.0, 22.0, 24.0),
        present: Callable[[FloatArray], bool] | None = None,
        window_s: float = 0.5,
        num_frames: int = 3,
    ) -> None:
        self.box = box
        self.present = present
        self._clip = ClipConfig(window_s, num_frames, "causal")
        self.calls = 0
        self.batch_sizes: list[int] = []
        self.min_value = np.inf

    @property
    def clip(self) -> ClipConfig:
        return self._clip

    def detect(self, clips: FloatArray, score_threshold: float) -> list[Detections]:
        self.calls += 1
        self.batch_sizes.append(int(clips.shape[0]))
        self.min_value = min(self.min_value, float(np.min(clips)))
        assert np.isfinite(clips).all()
        out = []
        for c in clips:
            if self.present is None or self.present(c[-1]):
                out.append(
                    Detections(
                        torch.tensor([self.box]), torch.tensor([0.9]), torch.zeros(1, dtype=torch.int64)
                    )
                )
            else:
                out.append(Detections.empty())
        return out


class FakeAction:
    """An :class:`~thermact.inference.pipeline.ActionModelLike` whose scores come from
    ``logits(clips, rois)`` (default: class = round(last frame's mean) mod C); records its calls."""

    def __init__(
        self,
        classes: list[str],
        logits: Callable[[FloatArray, FloatArray], FloatArray] | None = None,
        window_s: float = 2.7,
        num_frames: int = 8,
    ) -> None:
        self._classes = classes
        self._clip = ClipConfig(window_s, num_frames, "causal")
        self.logits = logits
        self.calls = 0
        self.clip_batches: list[int] = []
        self.box_batches: list[int] = []
        self.clips_seen: list[FloatArray] = []
        self.min_value = np.inf

    @property
    def classes(self) -> list[str]:
        return self._classes

    @property
    def clip(self) -> ClipConfig:
        return self._clip

    def scores(self, clips: FloatArray, rois: FloatArray) -> FloatArray:
        self.calls += 1
        self.clip_batches.append(int(clips.shape[0]))
        self.box_batches.append(int(rois.shape[0]))
        self.min_value = min(self.min_value, float(np.min(clips)))
        assert np.isfinite(clips).all()
        self.clips_seen.append(clips.copy())
        if self.logits is not None:
            z = np.asarray(self.logits(clips, rois), dtype=np.float64)
        else:
            z = np.zeros((rois.shape[0], len(self._classes)))
            for k, r in enumerate(rois):
                z[k, round(float(clips[int(r[0]), -1].mean())) % len(self._classes)] = 5.0
        e = np.exp(z - z.max(axis=1, keepdims=True))
        out: FloatArray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return out


@pytest.fixture(scope="session")
def fake_detector() -> type[FakeDetector]:
    """The :class:`FakeDetector` class (test modules cannot import conftest)."""
    return FakeDetector


@pytest.fixture(scope="session")
def fake_action() -> type[FakeAction]:
    """The :class:`FakeAction` class."""
    return FakeAction


# ---------------------------------------------------------------------------------------------
# AVA files as the other tools read them


@dataclasses.dataclass
class OfficialAvaFile:
    """An AVA CSV as the official ActivityNet evaluator (``get_ava_performance.read_csv``) and
    PySlowFast (``ava_eval_helper.read_csv``) read it: rows of 7 or 8 columns ``video_id,
    timestamp, x1, y1, x2, y2, action_id[, score]``, each keyed ``"%s,%04d" % (video_id,
    int(timestamp))``; the boxes are floats, the action id an int, the 8th column a float (a score
    for detections, a person id in ground truth). Written from their documented format; a row those
    readers would reject raises here as there."""

    entries: dict[str, list[tuple[int, float, float, float, float, float]]]
    """Per image key: (action_id, x1, y1, x2, y2, 8th column or 1.0)."""
    rows: int

    @property
    def keys(self) -> set[str]:
        return set(self.entries)


def read_official_ava(path: Path) -> OfficialAvaFile:
    entries: dict[str, list[tuple[int, float, float, float, float, float]]] = {}
    rows = 0
    with path.open(newline="") as handle:
        for row in csv.reader(handle):
            if len(row) not in (7, 8):
                raise AssertionError(f"{path}: wrong number of columns: {row}")
            key = "%s,%04d" % (row[0], int(row[1]))  # noqa: UP031 - the evaluator's own key format
            x1, y1, x2, y2 = (float(v) for v in row[2:6])
            last = float(row[7]) if len(row) == 8 else 1.0
            entries.setdefault(key, []).append((int(row[6]), x1, y1, x2, y2, last))
            rows += 1
    return OfficialAvaFile(entries, rows)


@pytest.fixture(scope="session")
def official_ava() -> Callable[[Path], OfficialAvaFile]:
    """:func:`read_official_ava`: read an AVA CSV the way the official evaluator does."""
    return read_official_ava


@pytest.fixture(autouse=True)
def _restore_thermact_logger() -> Iterator[None]:
    """A command line run configures the ``thermact`` logger's console (``-q``/``-v``): undo it
    after each test, so that no test sees the level another one chose."""
    logger = logging.getLogger(LOGGER)
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate
