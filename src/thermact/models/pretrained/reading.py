"""Steps 1-3 of loading a checkpoint: read the file, unwrap its state dict, tell its source format.

Source formats (``Source``):

* ``"alphaction"`` - AlphAction ``.pth``: ``{"model": state_dict, ...}`` (or a bare state dict) with
  keys ``[module.][backbone.]{slow,fast}.*`` and, for AVA models, ``roi_heads.*`` head keys.
* ``"pyslowfast"`` - PySlowFast ``.pyth``: ``{"model_state": state_dict, "cfg": ..., ...}``, keys
  ``s1.pathway0_stem.conv.weight`` ... (identical to ours), head ``head.*``.
* ``"pyslowfast_caffe2"`` - PySlowFast model-zoo Caffe2 ``.pkl``: a plain pickle ``{"blobs": {name:
  numpy array}}`` with names such as ``res2_0_branch2a_w``, ``t_res_conv1_bn_s``; head ``pred_*``.
  A plain pickle can run arbitrary code while it is read, so it is only read when trusted.
* ``"pytorchvideo"`` - PyTorchVideo ``slowfast_r50`` / ``slowfast_r101`` (``blocks.*``) and
  ``slowfast_r50_detection`` (``model.blocks.*``) state dicts, usually inside ``{"model_state": ...}``;
  heads ``blocks.6.proj.*`` / ``detection_head.proj.*``.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from thermact.errors import CheckpointError

__all__ = [
    "SOURCES",
    "Source",
    "SourceArg",
    "detect_source",
    "read_checkpoint",
    "read_state_dict",
    "strip_prefixes",
    "unwrap_state_dict",
]

Source = Literal["alphaction", "pyslowfast", "pyslowfast_caffe2", "pytorchvideo"]
SourceArg = Literal["auto", "alphaction", "pyslowfast", "pyslowfast_caffe2", "pytorchvideo"]
SOURCES: tuple[Source, ...] = ("alphaction", "pyslowfast", "pyslowfast_caffe2", "pytorchvideo")

_CONTAINER_KEYS = ("model_state", "model", "state_dict", "blobs")
_CAFFE2_BOOKKEEPING = frozenset({"lr", "model_iter", "iter"})


def strip_prefixes(key: str, prefixes: tuple[str, ...]) -> str:
    """``key`` without each of ``prefixes`` in turn (``module.backbone.x`` -> ``x``)."""
    for prefix in prefixes:
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def read_checkpoint(path: str | Path, pickle_format: bool = False, trust_checkpoint: bool = False) -> Any:
    """Read a checkpoint file without executing code from it unless ``trust_checkpoint``.

    ``pickle_format``: the file is a plain pickle (Caffe2 ``.pkl``), read with ``pickle`` (latin-1
    strings) and only when trusted. Otherwise ``torch.load(map_location="cpu", weights_only=True)``;
    a file that needs full unpickling (it holds objects other than tensors, numbers, strings and
    containers) is refused unless trusted.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist or is not a file")
    refuse = (
        "unpickling it can run arbitrary code; pass trust_checkpoint=True (CLI: model.trust_checkpoint=true) "
        "only for a file from a source you trust"
    )
    if pickle_format:
        if not trust_checkpoint:
            raise CheckpointError(f"checkpoint {p} is a plain pickle (Caffe2 .pkl format): {refuse}")
        try:
            with p.open("rb") as handle:
                return pickle.load(handle, encoding="latin1")
        except Exception as exc:
            raise CheckpointError(f"cannot unpickle checkpoint {p}: {exc}") from exc
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust_checkpoint:
            detail = next((ln.strip() for ln in str(exc).splitlines() if "Unsupported global" in ln), "")
            raise CheckpointError(
                f"checkpoint {p} holds objects other than tensors, numbers, strings and plain containers"
                f"{f' ({detail})' if detail else ''}; {refuse}"
            ) from exc
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {p}: {exc}") from exc
    try:
        return torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {p}: {exc}") from exc


def unwrap_state_dict(obj: Any, path: str | Path = "<checkpoint>") -> dict[str, Tensor]:
    """Return the tensors of a checkpoint object as ``{name: tensor}``.

    Descends into ``model_state`` / ``model`` / ``state_dict`` / ``blobs`` (twice at most);
    numpy arrays become tensors; non-tensor entries and Caffe2's optimizer blobs (``lr``,
    ``model_iter``, ``*_momentum``) are skipped.
    """
    for _ in range(3):
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in _CONTAINER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path} is not a state dict (found {type(obj).__name__})")
    out: dict[str, Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or key.endswith("_momentum") or key in _CAFFE2_BOOKKEEPING:
            continue
        if isinstance(value, Tensor):
            out[key] = value
        elif isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
            out[key] = torch.from_numpy(np.array(value, copy=True))
    if not out:
        raise CheckpointError(f"checkpoint {path} contains no tensors")
    return out


def detect_source(path: str | Path, state: Mapping[str, Tensor]) -> Source:
    """Guess the checkpoint format from the key names (and ``.pkl`` -> Caffe2)."""
    keys = [strip_prefixes(k, ("module.",)) for k in state]
    if any(re.match(r"^(model\.)?blocks\.\d+\.multipathway_", k) for k in keys):
        return "pytorchvideo"
    if any(re.match(r"^s\d(_fuse)?\.", k) for k in keys):
        return "pyslowfast"
    if any(re.match(r"^(backbone\.)?(slow|fast)\.(conv1|bn1|res_nl\d)\.", k) for k in keys):
        return "alphaction"
    if any(re.match(r"^(t_)?(conv1_w|res_conv1_bn_|res\d_\d+_branch)", k) for k in keys):
        return "pyslowfast_caffe2"
    if Path(path).suffix == ".pkl":
        return "pyslowfast_caffe2"
    sample = ", ".join(sorted(state)[:5])
    raise CheckpointError(
        f"cannot tell the format of checkpoint {path} from its keys ({sample}, ...); "
        f"pass source= one of {', '.join(SOURCES)}"
    )


def read_state_dict(
    path: str | Path, source: SourceArg = "auto", trust_checkpoint: bool = False
) -> tuple[dict[str, Tensor], Source]:
    """Steps 1-3 together: the file's tensors and its source format.

    A ``.pkl`` file (or ``source="pyslowfast_caffe2"``) is read as a plain pickle, only when
    ``trust_checkpoint``.
    """
    if source != "auto" and source not in SOURCES:
        raise CheckpointError(f"unknown checkpoint source {source!r}; expected 'auto' or one of {SOURCES}")
    is_pickle = source == "pyslowfast_caffe2" or (source == "auto" and Path(path).suffix == ".pkl")
    raw = read_checkpoint(path, pickle_format=is_pickle, trust_checkpoint=trust_checkpoint)
    state = unwrap_state_dict(raw, path)
    return state, (detect_source(path, state) if source == "auto" else source)
