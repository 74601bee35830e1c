"""Trained models that ship inside the package, usable by name wherever a checkpoint is asked for.

=========================  ========  ===========================================================
name                       task      model
=========================  ========  ===========================================================
``thermal_net_live_ens3``  action    three runs of the live action recipe (seeds 0, 1, 2) averaged
``thermal_net_live``       action    ThermalNet-T with box cues and radial cues on causal 8-frame
                                     clips (2.7 s), distilled from ``thermal_net_live_ens3``
``person_detector_live``   detector  PersonDetector-T on causal 3-frame clips (0.5 s)
=========================  ========  ===========================================================

All are trained on every keyframe of the 19 recordings of ``thermal_v2`` (``data.split=all``) and
stored as inference checkpoints (``thermact export format=weights``: weights, config, classes and
normalisation, no optimiser state; the ensemble by ``thermact model ensemble``);
``weights/MODEL_CARD.md`` holds their training data, recipe, leave-one-session-out numbers and
known failure modes. When no checkpoint is given, ``thermact detect`` and :func:`thermact.predict`
use the ensemble (:data:`DEFAULT_ACTION_MODEL`), ``thermact stream`` and
:class:`~thermact.inference.streaming.StreamingPredictor` the single ``thermal_net_live``, a third
of its compute (:data:`DEFAULT_STREAM_ACTION_MODEL`), and all of them the detector;
``make models`` retrains them from the bundled data.

:func:`resolve_checkpoint` turns a name or a path into a file: an existing file wins, then a
shipped name; anything else is an error with a did-you-mean.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path
from typing import Literal

from thermact.errors import CheckpointError

__all__ = [
    "DEFAULT_ACTION_MODEL",
    "DEFAULT_DETECTOR",
    "DEFAULT_STREAM_ACTION_MODEL",
    "SHIPPED_MODELS",
    "WEIGHTS_DIR",
    "ShippedModel",
    "resolve_checkpoint",
]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""Where the shipped checkpoints and their model card live (package data)."""


@dataclasses.dataclass(frozen=True)
class ShippedModel:
    """One shipped checkpoint: its name, task and file in :data:`WEIGHTS_DIR`."""

    name: str
    task: Literal["action", "detector"]
    file: str
    summary: str

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.file


SHIPPED_MODELS: dict[str, ShippedModel] = {
    m.name: m
    for m in (
        ShippedModel(
            "thermal_net_live_ens3",
            "action",
            "thermal_net_live_ens3.pt",
            "three runs of the live action recipe (ThermalNet-T + box and radial cues; seeds 0, 1, 2) "
            "averaged: the default of offline analysis",
        ),
        ShippedModel(
            "thermal_net_live",
            "action",
            "thermal_net_live.pt",
            "ThermalNet-T + box and radial cues, causal 8-frame clips (2.7 s), 14 classes, trained on thermal_v2 "
            "and distilled from thermal_net_live_ens3: the default of live streams",
        ),
        ShippedModel(
            "person_detector_live",
            "detector",
            "person_detector_live.pt",
            "PersonDetector-T, causal 3-frame clips (0.5 s), trained on thermal_v2",
        ),
    )
}

DEFAULT_ACTION_MODEL = "thermal_net_live_ens3"
"""The action model of recordings analysed offline when none is given (``thermact detect``,
:func:`thermact.predict`): the ensemble, the most accurate."""
DEFAULT_STREAM_ACTION_MODEL = "thermal_net_live"
"""The action model of live streams when none is given (``thermact stream``,
:class:`~thermact.inference.streaming.StreamingPredictor`): one network, a third of the
ensemble's compute, for the many-sensors-per-core budget."""
DEFAULT_DETECTOR = "person_detector_live"
"""The person detector used when none is given."""


def resolve_checkpoint(spec: str | os.PathLike[str]) -> Path:
    """The file of a checkpoint given as a path or as the name of a shipped model.

    Raises:
        CheckpointError: neither an existing file nor a shipped name (with a did-you-mean), or a
            shipped model whose file is missing from this installation.
    """
    path = Path(spec)
    if path.is_file():
        return path
    name = str(spec)
    if name in SHIPPED_MODELS:
        shipped = SHIPPED_MODELS[name].path
        if not shipped.is_file():
            raise CheckpointError(
                f"shipped model {name!r} is not installed ({shipped} is missing); `make models` retrains it"
            )
        return shipped
    looks_like_a_path = path.suffix != "" or os.sep in name or path.exists()
    if looks_like_a_path:
        raise CheckpointError(f"{path}: checkpoint not found")
    close = difflib.get_close_matches(name, list(SHIPPED_MODELS), n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}?" if close else f"shipped models: {', '.join(SHIPPED_MODELS)}"
    raise CheckpointError(f"checkpoint {name!r} is neither a file nor a shipped model; {hint}")
