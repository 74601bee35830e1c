"""Checkpoints: everything needed to rebuild a model and resume training exactly.

A checkpoint is a plain dict of tensors and plain Python types (loadable with
``torch.load(weights_only=True)``)::

    format          "thermact-checkpoint"
    version         1
    model           model state_dict
    optimizer       optimiser state_dict (optional)
    scaler          GradScaler state_dict (optional)
    rng             {"torch": ByteTensor, "numpy": {...}, "python": [...], "cuda": [ByteTensor, ...]}
    step, epoch     counters (the LR schedule is a pure function of the step)
    config          the resolved run config as a plain dict
    classes         list of class names, in id order
    norm            temperature normalisation statistics {mean_c, std_c}
    metrics         the validation metrics at save time (optional)
    progress, history  the loop's counters and loss/metric history (resume)
    raw_model       with ``optim.ema_decay``: the optimiser's own weights (resume), while ``model``
                    holds their moving average (:mod:`thermact.engine.ema`), what inference uses

An *inference checkpoint* (:func:`inference_state`, ``thermact export format=weights``) drops the
training state (optimizer, scaler, rng, progress, history, raw_model): what a deployed model needs.

Writing is atomic: the bytes go to a temporary file in the same directory, which is then renamed.
"""

from __future__ import annotations

import os
import random
import warnings
from typing import Any

import numpy as np
import torch

from thermact.errors import CheckpointError
from thermact.io import atomic_open
from thermact.shipped import resolve_checkpoint

FORMAT = "thermact-checkpoint"
VERSION = 1


def capture_rng_state() -> dict[str, Any]:
    """The state of every random generator a run uses, as tensors and plain types."""
    np_state = np.random.get_state()
    assert isinstance(np_state, tuple)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_lists(v) for v in value]
    return value


def _to_tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_to_tuples(v) for v in value)
    return value


def _load_failure(err: Exception) -> str:
    """One line saying why ``torch.load(weights_only=True)`` failed (torch's own text is a page)."""
    text = str(err)
    if "Weights only load failed" in text:
        return (
            "cannot be loaded: it holds Python objects that a safe (weights-only) load refuses, so it is "
            "not a thermact checkpoint (those hold only tensors and plain values)"
        )
    first = " ".join(text.strip().splitlines()[:1])[:160]
    detail = f"{type(err).__name__}: {first}" if any(c.isalpha() for c in first) else type(err).__name__
    return f"cannot be loaded: not a readable PyTorch checkpoint (truncated or corrupt; {detail})"


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format/version tags) to ``path`` atomically."""
    data = {"format": FORMAT, "version": VERSION, **payload}
    with atomic_open(path, "wb") as handle:
        torch.save(data, handle)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a thermact checkpoint safely (``weights_only=True``) and check its format; ``path`` may
    also name a shipped model (:func:`thermact.shipped.resolve_checkpoint`)."""
    p = resolve_checkpoint(path)
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p}: empty file (0 bytes), not a checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
            warnings.simplefilter("ignore")
            data = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many kinds on corrupt or unsafe files
        raise CheckpointError(f"{p}: {_load_failure(err)}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not a thermact checkpoint (no 'format': {FORMAT!r} entry)")
    if data.get("version") != VERSION:
        raise CheckpointError(
            f"{p}: checkpoint version {data.get('version')!r} is not supported (expected {VERSION})"
        )
    for key in ("model", "config", "classes"):
        if key not in data:
            raise CheckpointError(f"{p}: checkpoint lacks the {key!r} entry")
    return data


TRAINING_STATE_KEYS = frozenset({"optimizer", "scaler", "rng", "progress", "history", "raw_model"})
"""Checkpoint entries that only resuming a training run needs."""


def inference_state(ckpt: dict[str, Any]) -> dict[str, Any]:
    """``ckpt`` without its :data:`TRAINING_STATE_KEYS` (and without format tags, which
    :func:`save_checkpoint` writes): what an inference checkpoint holds."""
    return {k: v for k, v in ckpt.items() if k not in TRAINING_STATE_KEYS | {"format", "version"}}
