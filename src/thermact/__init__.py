"""thermact: per-person action detection on low-resolution ceiling thermal sensors.

The top-level names load lazily (``import thermact`` stays light)::

    thermact.train, thermact.evaluate, thermact.detect   # the commands as functions (thermact.api)
    thermact.ensemble                                    # one checkpoint averaging action models
    thermact.predict                                     # per-person actions of a recording or frames
    thermact.StreamingPredictor                          # frames in, per-person actions out
    thermact.load_dataset                                # a dataset by name or directory
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "train": "thermact.api",
    "evaluate": "thermact.api",
    "ensemble": "thermact.api",
    "detect": "thermact.api",
    "predict": "thermact.api",
    "StreamingPredictor": "thermact.inference.streaming",
    "load_dataset": "thermact.data.source",
}

__all__ = [
    "StreamingPredictor",
    "__version__",
    "detect",
    "ensemble",
    "evaluate",
    "load_dataset",
    "predict",
    "train",
]

if TYPE_CHECKING:
    from thermact.api import detect, ensemble, evaluate, predict, train
    from thermact.data.source import load_dataset
    from thermact.inference.streaming import StreamingPredictor


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'thermact' has no attribute {name!r}")
