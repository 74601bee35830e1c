"""The Python API: the commands of the command line as functions, with the same validation.

Options are keyword arguments named as on the command line; nested keys take their dotted name
through a mapping (``train("thermal_net_live", {"optim.epochs": 3}, seed=1)``). Values are
checked exactly as ``key=value`` arguments are (a bad key or value raises
:class:`~thermact.errors.ConfigError` naming it, with a did-you-mean)::

    import thermact

    result = thermact.train("thermal_net_live", {"data.root": "thermal_v2", "optim.epochs": 30})
    report = thermact.evaluate(result.last_checkpoint, split="session", fold=1)
    thermact.ensemble([result.last_checkpoint, "runs/other_seed/last.pt"], out="runs/x2.pt")
    outcomes, events = thermact.detect("recording.h5", out="runs/detect")
    persons = thermact.predict("recording.h5")  # or predict(frames [T, H, W], timestamps_ms [T])
    predictor = thermact.StreamingPredictor()  # the shipped live models

Every function writes what its command writes, where its command writes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from thermact.commands._common import load_task_config
from thermact.commands.detect import RecordingOutcome, load_detect_options, run_detect
from thermact.commands.eval import EvalOutcome, load_options, run_evaluation
from thermact.commands.model import EnsembleOptions, run_ensemble
from thermact.config import build_options
from thermact.data.recording import Recording
from thermact.engine.loop import TrainResult
from thermact.engine.run import train as train_task
from thermact.errors import DataError
from thermact.inference.events import Event
from thermact.inference.pipeline import PersonResult
from thermact.inference.sensor import raw_frames
from thermact.inference.streaming import StreamingPredictor
from thermact.shipped import DEFAULT_ACTION_MODEL, DEFAULT_DETECTOR

__all__ = ["detect", "evaluate", "predict", "train"]


def as_overrides(options: Mapping[str, Any] | None = None, **kwargs: Any) -> list[str]:
    """``key=value`` strings of ``options`` and ``kwargs`` (values written as YAML flow scalars,
    so that they are parsed back to the same values)."""
    merged = {**(options or {}), **kwargs}
    out = []
    for key, value in merged.items():
        text = str(value) if isinstance(value, Path) else yaml.safe_dump(value, default_flow_style=True)
        out.append(f"{key}={text.strip().removesuffix('...').strip()}")
    return out


def train(
    config: str | Path | None = None, options: Mapping[str, Any] | None = None, **kwargs: Any
) -> TrainResult:
    """``thermact train config=CONFIG key=value ...``: a preset name or YAML file (None: the
    default preset), options as on the command line; returns where the run went."""
    task, cfg = load_task_config(
        None if config is None else str(config), as_overrides(options, **kwargs), False
    )
    return train_task(task, cfg)


def evaluate(checkpoint: str | Path, options: Mapping[str, Any] | None = None, **kwargs: Any) -> EvalOutcome:
    """``thermact eval checkpoint=CHECKPOINT key=value ...`` of an action model; returns the
    metrics, predictions and written files."""
    return run_evaluation(load_options(str(checkpoint), as_overrides(options, **kwargs)))


def ensemble(members: Sequence[str | Path], out: str | Path, exist_ok: bool = False) -> Path:
    """``thermact model ensemble members=[..] out=OUT``: one checkpoint averaging the action
    models ``members`` (paths or shipped names); returns where it was written."""
    opts = build_options(
        EnsembleOptions,
        "out",
        None,
        as_overrides(members=[str(m) for m in members], out=out, exist_ok=exist_ok),
    )
    return run_ensemble(opts)


def detect(
    source: str | Path, options: Mapping[str, Any] | None = None, progress: bool = False, **kwargs: Any
) -> tuple[list[RecordingOutcome], list[Event]]:
    """``thermact detect SOURCE key=value ...`` (a recording ``.h5`` or a directory of them; the
    shipped live models unless ``checkpoint=`` / ``detector=`` say otherwise)."""
    opts = load_detect_options(as_overrides(options, **kwargs))
    return run_detect(str(source), opts, progress=progress)


def _frames_of(
    source: str | Path | npt.ArrayLike, timestamps_ms: Sequence[int] | npt.ArrayLike | None
) -> tuple[str, npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """(sensor id, timestamps [T], raw frames [T, H, W]) of a recording path or of arrays."""
    if isinstance(source, (str, Path)):
        rec = Recording(source)
        return rec.recording_id, rec.timestamps, raw_frames(rec.frames, rec.valid)
    frames = np.asarray(source, dtype=np.float32)
    if frames.ndim != 3:
        raise DataError(f"frames must be [T, H, W] in °C, got shape {list(frames.shape)}")
    if timestamps_ms is None:
        raise DataError("frames given as an array need timestamps_ms [T] (integer milliseconds)")
    stamps = np.asarray(timestamps_ms, dtype=np.int64)
    if stamps.shape != frames.shape[:1] or (np.diff(stamps) <= 0).any():
        raise DataError(f"timestamps_ms must be [{frames.shape[0]}] strictly increasing milliseconds")
    return "sensor", stamps, frames


def predict(
    source: str | Path | npt.ArrayLike,
    timestamps_ms: Sequence[int] | npt.ArrayLike | None = None,
    checkpoint: str | Path = DEFAULT_ACTION_MODEL,
    detector: str | Path = DEFAULT_DETECTOR,
    **options: Any,
) -> list[PersonResult]:
    """Per-person actions of one recording, as the live pipeline gives them.

    Args:
        source: an ``.h5`` recording, or raw frames ``[T, H, W]`` in °C (NaN where invalid).
        timestamps_ms: ``[T]`` integer milliseconds, strictly increasing (arrays only).
        checkpoint, detector: action model and person detector (paths or shipped names).
        options: further :class:`~thermact.inference.streaming.StreamingPredictor` arguments
            (``cadence_s``, ``tracker_config``, ``score_threshold``, ``precision``, ...).

    Returns:
        every fresh classification (one per tracked person and ``cadence_s``), in time order:
        ``sensor_id``, ``track_id``, ``timestamp_ms``, ``box`` (pixel XYXY), class ``scores``,
        ``top_label``, ``top_score``.
    """
    sensor, stamps, frames = _frames_of(source, timestamps_ms)
    height, width = frames.shape[1:]
    predictor = StreamingPredictor(
        str(checkpoint), str(detector), max_sensors=1, frame_size=(int(height), int(width)), **options
    )
    return predictor.replay(sensor, stamps, frames)
