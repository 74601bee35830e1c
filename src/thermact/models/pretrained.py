"""Load published SlowFast weights (RGB, Kinetics / AVA) into :class:`~thermact.models.slowfast.SlowFast`.

Supported formats (``source``):

* ``"alphaction"`` - AlphAction ``.pth``: ``{"model": state_dict, ...}`` (or a bare state dict) with
  keys ``[module.][backbone.]{slow,fast}.*`` and, for AVA models, ``roi_heads.*`` head keys.
* ``"pyslowfast"`` - PySlowFast ``.pyth``: ``{"model_state": state_dict, "cfg": ..., ...}``, keys
  ``s1.pathway0_stem.conv.weight`` ... (identical to ours), head ``head.*``.
* ``"pyslowfast_caffe2"`` - PySlowFast model-zoo Caffe2 ``.pkl``: a plain pickle ``{"blobs": {name:
  numpy array}}`` with names such as ``res2_0_branch2a_w``, ``t_res_conv1_bn_s``; head ``pred_*``.
  A plain pickle can run arbitrary code while it is read, so it is only read with
  ``trust_checkpoint=True``.
* ``"pytorchvideo"`` - PyTorchVideo ``slowfast_r50`` / ``slowfast_r101`` (``blocks.*``) and
  ``slowfast_r50_detection`` (``model.blocks.*``) state dicts, usually inside ``{"model_state": ...}``;
  heads ``blocks.6.proj.*`` / ``detection_head.proj.*``.

The name maps are listed in :mod:`thermact.models.slowfast`; the exact key -> shape layouts of
published checkpoints are written down as data in ``thermact/models/layouts/*.json``
(:func:`read_layout`).

Loading runs as small pure steps, each usable on its own:

1. :func:`read_checkpoint` - ``torch.load(weights_only=True)``; pickles only when trusted.
2. :func:`unwrap_state_dict` - take ``model`` / ``model_state`` / ``state_dict`` / ``blobs``.
3. :func:`detect_source` - format from the file extension and key names.
4. :func:`remap_state_dict` - source names -> our names; head keys set apart.
5. :func:`adapt_input_channels` - RGB stem kernels summed over the colour axis for a 1-channel
   model (feeding grey ``x`` to the summed kernel equals feeding ``(x, x, x)`` to the RGB one).
6. :func:`pad_temporal_kernels` - shorter odd temporal kernels zero-padded to ours (exact, because
   every temporal convolution pads by ``k // 2``).
7. :func:`match_state_dict` - compare with the model, producing a :class:`LoadReport`.

:func:`load_pretrained` chains them and loads into the model's SlowFast backbone (the model itself
or its only :class:`SlowFast` submodule), raising :class:`~thermact.errors.CheckpointError` with
the report when the file does not fit; nothing is loaded then.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thermact.errors import CheckpointError
from thermact.models.slowfast import SlowFast

Source = Literal["alphaction", "pyslowfast", "pyslowfast_caffe2", "pytorchvideo"]
SourceArg = Literal["auto", "alphaction", "pyslowfast", "pyslowfast_caffe2", "pytorchvideo"]
SOURCES: tuple[Source, ...] = ("alphaction", "pyslowfast", "pyslowfast_caffe2", "pytorchvideo")

#: Below this fraction of loaded backbone tensors a non-strict load still fails.
MIN_LOADED_FRACTION = 0.5

_CONTAINER_KEYS = ("model_state", "model", "state_dict", "blobs")
_CAFFE2_BOOKKEEPING = frozenset({"lr", "model_iter", "iter"})
_BN_C2 = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}
_ABC = {"1": "a", "2": "b", "3": "c"}
_PATHWAY = {"slow": "0", "fast": "1"}


@dataclass
class LoadReport:
    """What happened to every tensor of a checkpoint.

    ``loaded``, ``missing`` and ``shape_mismatched`` name our parameters; ``unexpected`` and
    ``dropped`` name the checkpoint's keys. ``adapted`` describes tensors changed on the way
    (summed input channels, zero-padded temporal kernels).
    """

    path: str
    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatched: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every backbone tensor loaded and nothing was left over or mismatched."""
        return not (self.missing or self.unexpected or self.shape_mismatched)

    def __str__(self) -> str:
        lines = [
            f"checkpoint {self.path} (format {self.source}): {len(self.loaded)} tensors loaded, "
            f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
            f"{len(self.shape_mismatched)} with mismatched shape, {len(self.adapted)} adapted, "
            f"{len(self.dropped)} head tensors dropped"
        ]
        for title, items in (
            ("missing (model tensors not in the checkpoint)", self.missing),
            ("unexpected (checkpoint tensors with no place in the model)", self.unexpected),
            ("shape mismatched", self.shape_mismatched),
            ("adapted", self.adapted),
            ("dropped", self.dropped),
        ):
            if items:
                shown = items[:8]
                more = f" ... and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
                lines.append(f"  {title}: " + ", ".join(shown) + more)
        return "\n".join(lines)


# --------------------------------------------------------------------------- step 1: read


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


# --------------------------------------------------------------------------- step 2: unwrap


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


# --------------------------------------------------------------------------- step 3: detect


def detect_source(path: str | Path, state: Mapping[str, Tensor]) -> Source:
    """Guess the checkpoint format from the key names (and ``.pkl`` -> Caffe2)."""
    keys = [_strip(k, ("module.",)) for k in state]
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


# --------------------------------------------------------------------------- step 4: remap


def _strip(key: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key


_Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]


def _rules(*pairs: tuple[str, Callable[[re.Match[str]], str]]) -> list[_Rule]:
    return [(re.compile(pattern), fn) for pattern, fn in pairs]


def _c2p(m: re.Match[str]) -> str:
    return "1" if m.group(1) else "0"


_ALPHACTION_RULES = _rules(
    (r"^(slow|fast)\.conv1\.weight$", lambda m: f"s1.pathway{_PATHWAY[m[1]]}_stem.conv.weight"),
    (r"^(slow|fast)\.bn1\.(\w+)$", lambda m: f"s1.pathway{_PATHWAY[m[1]]}_stem.bn.{m[2]}"),
    (
        r"^(slow|fast)\.res_nl(\d)\.res_(\d+)\.btnk\.conv([123])\.conv\.weight$",
        lambda m: f"s{int(m[2]) + 1}.pathway{_PATHWAY[m[1]]}_res{m[3]}.branch2.{_ABC[m[4]]}.weight",
    ),
    (
        r"^(slow|fast)\.res_nl(\d)\.res_(\d+)\.btnk\.conv([123])\.bn\.(\w+)$",
        lambda m: f"s{int(m[2]) + 1}.pathway{_PATHWAY[m[1]]}_res{m[3]}.branch2.{_ABC[m[4]]}_bn.{m[5]}",
    ),
    (
        r"^(slow|fast)\.res_nl(\d)\.res_(\d+)\.shortcut\.conv\.weight$",
        lambda m: f"s{int(m[2]) + 1}.pathway{_PATHWAY[m[1]]}_res{m[3]}.branch1.weight",
    ),
    (
        r"^(slow|fast)\.res_nl(\d)\.res_(\d+)\.shortcut\.bn\.(\w+)$",
        lambda m: f"s{int(m[2]) + 1}.pathway{_PATHWAY[m[1]]}_res{m[3]}.branch1_bn.{m[4]}",
    ),
    (r"^fast\.Tconv(\d)\.conv\.(weight|bias)$", lambda m: f"s{m[1]}_fuse.conv_f2s.{m[2]}"),
)

_CAFFE2_RULES = _rules(
    (r"^(t_)?conv1_w$", lambda m: f"s1.pathway{_c2p(m)}_stem.conv.weight"),
    (r"^(t_)?res_conv1_bn_(s|b|rm|riv)$", lambda m: f"s1.pathway{_c2p(m)}_stem.bn.{_BN_C2[m[2]]}"),
    (r"^t_pool1_subsample_w$", lambda m: "s1_fuse.conv_f2s.weight"),
    (r"^t_pool1_subsample_bn_(s|b|rm|riv)$", lambda m: f"s1_fuse.bn.{_BN_C2[m[1]]}"),
    (r"^t_res(\d)_\d+_branch2c_bn_subsample_w$", lambda m: f"s{m[1]}_fuse.conv_f2s.weight"),
    (
        r"^t_res(\d)_\d+_branch2c_bn_subsample_bn_(s|b|rm|riv)$",
        lambda m: f"s{m[1]}_fuse.bn.{_BN_C2[m[2]]}",
    ),
    (r"^(t_)?res(\d)_(\d+)_branch1_w$", lambda m: f"s{m[2]}.pathway{_c2p(m)}_res{m[3]}.branch1.weight"),
    (
        r"^(t_)?res(\d)_(\d+)_branch1_bn_(s|b|rm|riv)$",
        lambda m: f"s{m[2]}.pathway{_c2p(m)}_res{m[3]}.branch1_bn.{_BN_C2[m[4]]}",
    ),
    (
        r"^(t_)?res(\d)_(\d+)_branch2([abc])_w$",
        lambda m: f"s{m[2]}.pathway{_c2p(m)}_res{m[3]}.branch2.{m[4]}.weight",
    ),
    (
        r"^(t_)?res(\d)_(\d+)_branch2([abc])_bn_(s|b|rm|riv)$",
        lambda m: f"s{m[2]}.pathway{_c2p(m)}_res{m[3]}.branch2.{m[4]}_bn.{_BN_C2[m[5]]}",
    ),
)

_PTV_BLOCK = r"^blocks\.([1-4])\.multipathway_blocks\.([01])\.res_blocks\.(\d+)\."
_PYTORCHVIDEO_RULES = _rules(
    (
        r"^blocks\.0\.multipathway_blocks\.([01])\.conv\.weight$",
        lambda m: f"s1.pathway{m[1]}_stem.conv.weight",
    ),
    (r"^blocks\.0\.multipathway_blocks\.([01])\.norm\.(\w+)$", lambda m: f"s1.pathway{m[1]}_stem.bn.{m[2]}"),
    (
        _PTV_BLOCK + r"branch1_conv\.weight$",
        lambda m: f"s{int(m[1]) + 1}.pathway{m[2]}_res{m[3]}.branch1.weight",
    ),
    (
        _PTV_BLOCK + r"branch1_norm\.(\w+)$",
        lambda m: f"s{int(m[1]) + 1}.pathway{m[2]}_res{m[3]}.branch1_bn.{m[4]}",
    ),
    (
        _PTV_BLOCK + r"branch2\.conv_([abc])\.weight$",
        lambda m: f"s{int(m[1]) + 1}.pathway{m[2]}_res{m[3]}.branch2.{m[4]}.weight",
    ),
    (
        _PTV_BLOCK + r"branch2\.norm_([abc])\.(\w+)$",
        lambda m: f"s{int(m[1]) + 1}.pathway{m[2]}_res{m[3]}.branch2.{m[4]}_bn.{m[5]}",
    ),
    (
        r"^blocks\.([0-3])\.multipathway_fusion\.conv_fast_to_slow\.weight$",
        lambda m: f"s{int(m[1]) + 1}_fuse.conv_f2s.weight",
    ),
    (r"^blocks\.([0-3])\.multipathway_fusion\.norm\.(\w+)$", lambda m: f"s{int(m[1]) + 1}_fuse.bn.{m[2]}"),
)


def _apply_rules(rules: list[_Rule], key: str) -> str | None:
    for pattern, fn in rules:
        m = pattern.match(key)
        if m is not None:
            return fn(m)
    return None


def remap_key(source: Source, key: str) -> tuple[Literal["backbone", "head", "unknown"], str]:
    """Map one checkpoint key to ``("backbone", our_key)``, ``("head", key)`` or ``("unknown", key)``."""
    if source == "alphaction":
        k = _strip(key, ("module.", "backbone."))
        if k.startswith("roi_heads."):
            return "head", key
        ours = _apply_rules(_ALPHACTION_RULES, k)
    elif source == "pyslowfast":
        k = _strip(key, ("module.",))
        if k.startswith("head."):
            return "head", key
        ours = k if re.match(r"^s\d(_fuse)?\.", k) else None
    elif source == "pyslowfast_caffe2":
        if key.startswith("pred_"):
            return "head", key
        ours = _apply_rules(_CAFFE2_RULES, key)
    elif source == "pytorchvideo":
        k = _strip(key, ("module.", "model."))
        if k.startswith("detection_head.") or re.match(r"^blocks\.\d+\.proj\.", k):
            return "head", key
        ours = _apply_rules(_PYTORCHVIDEO_RULES, k)
    else:
        raise ValueError(f"unknown checkpoint source {source!r}")
    return ("unknown", key) if ours is None else ("backbone", ours)


@dataclass
class Remapped:
    """Result of :func:`remap_state_dict`: backbone tensors under our names (with their origin)."""

    tensors: dict[str, Tensor]
    origin: dict[str, str]
    head: list[str]
    unknown: list[str]


def remap_state_dict(state: Mapping[str, Tensor], source: Source) -> Remapped:
    """Rename a checkpoint's backbone tensors to ours; set head and unrecognised keys apart.

    ``num_batches_tracked`` counters are dropped (not weights; absent from frozen-BN models).
    A second checkpoint key mapping to an already taken name counts as unknown.
    """
    out = Remapped({}, {}, [], [])
    for key, value in state.items():
        kind, name = remap_key(source, key)
        if name.endswith("num_batches_tracked"):
            continue
        if kind == "head":
            out.head.append(key)
        elif kind == "unknown" or name in out.tensors:
            out.unknown.append(key)
        else:
            out.tensors[name] = value
            out.origin[name] = key
    return out


# --------------------------------------------------------------------------- steps 5-6: adapt


def adapt_input_channels(
    tensors: Mapping[str, Tensor], model_shapes: Mapping[str, torch.Size]
) -> tuple[dict[str, Tensor], list[str]]:
    """Sum RGB stem kernels over the input-channel axis where the model has one input channel.

    A kernel ``w [C_out, 3, t, kh, kw]`` becomes ``w.sum(1, keepdim=True)``: the 1-channel conv of
    ``x`` equals the RGB conv of ``(x, x, x)``. Other tensors pass through unchanged.
    """
    out = dict(tensors)
    notes: list[str] = []
    for name, value in tensors.items():
        target = model_shapes.get(name)
        if (
            target is not None
            and re.match(r"^s1\.pathway\d_stem\.conv\.weight$", name)
            and value.dim() == 5
            and len(target) == 5
            and target[1] == 1
            and value.shape[1] != 1
            and value.shape[0] == target[0]
            and value.shape[2:] == target[2:]
        ):
            out[name] = value.sum(dim=1, keepdim=True)
            notes.append(f"{name}: summed {value.shape[1]} input channels to 1")
    return out, notes


def pad_temporal_kernels(
    tensors: Mapping[str, Tensor], model_shapes: Mapping[str, torch.Size]
) -> tuple[dict[str, Tensor], list[str]]:
    """Zero-pad odd temporal kernels ``[.., t, 1, 1]`` that are shorter than the model's.

    Both convolutions pad by ``k // 2``, so a kernel of ``t`` taps centred in ``T > t`` taps gives
    the same output (e.g. AlphAction's 5-tap lateral convs in a 7-tap model, the 1-tap res4
    blocks of "R101_50_50" checkpoints in a 3-tap model).
    """
    out = dict(tensors)
    notes: list[str] = []
    for name, value in tensors.items():
        target = model_shapes.get(name)
        if target is None or value.dim() != 5 or len(target) != 5:
            continue
        t_src, t_dst = value.shape[2], target[2]
        same_rest = value.shape[:2] == target[:2] and value.shape[3:] == target[3:]
        if same_rest and t_src < t_dst and t_src % 2 == 1 and t_dst % 2 == 1:
            half = (t_dst - t_src) // 2
            out[name] = F.pad(value, (0, 0, 0, 0, half, half))
            notes.append(f"{name}: temporal kernel {t_src} zero-padded to {t_dst}")
    return out, notes


# --------------------------------------------------------------------------- step 7: match


def match_state_dict(
    remapped: Remapped,
    model_state: Mapping[str, Tensor],
    path: str | Path,
    source: str,
    no_head: bool = True,
) -> LoadReport:
    """Compare remapped tensors with ``model_state`` (our backbone's ``state_dict()``)."""
    report = LoadReport(path=str(path), source=source)
    for name, value in remapped.tensors.items():
        target = model_state.get(name)
        origin = remapped.origin[name]
        if target is None:
            report.unexpected.append(origin if origin == name else f"{origin} (as {name})")
        elif value.shape != target.shape:
            report.shape_mismatched.append(
                f"{name} <- {origin}: checkpoint {list(value.shape)}, model {list(target.shape)}"
            )
        else:
            report.loaded.append(name)
    for name in model_state:
        if name not in remapped.tensors and not name.endswith("num_batches_tracked"):
            report.missing.append(name)
    report.unexpected.extend(remapped.unknown)
    if no_head:
        report.dropped.extend(remapped.head)
    else:
        report.unexpected.extend(remapped.head)
    return report


def _hints(report: LoadReport, backbone: SlowFast) -> str:
    hints = []
    fuse_bn_missing = any(re.match(r"^s\d_fuse\.bn\.", k) for k in report.missing)
    fuse_bias_missing = any(k.endswith("_fuse.conv_f2s.bias") for k in report.missing)
    if fuse_bn_missing or fuse_bias_missing:
        other = "conv_bias" if backbone.fusion_style == "conv_bn_relu" else "conv_bn_relu"
        hints.append(
            f"the checkpoint's lateral connections do not match fusion_style={backbone.fusion_style!r}; "
            f"build the model with fusion_style={other!r}"
        )
    if any("_res" in k and "_stem" not in k for k in report.unexpected) and backbone.depth == 50:
        hints.append("the checkpoint may be a ResNet-101 SlowFast (extra res4 blocks); build depth=101")
    if any(re.match(r"^s4\.pathway\d_res(6|7|8|9|\d\d)\.", k) for k in report.missing):
        hints.append("the checkpoint may be a ResNet-50 SlowFast; build depth=50")
    return "".join(f"\n  hint: {h}" for h in hints)


def find_backbone(model: nn.Module) -> tuple[str, SlowFast]:
    """Return ``(prefix, module)`` of the :class:`SlowFast` inside ``model`` (``""`` if it is one)."""
    if isinstance(model, SlowFast):
        return "", model
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, SlowFast)]
    if len(found) != 1:
        raise CheckpointError(
            f"{type(model).__name__} has {len(found)} SlowFast submodules; pretrained SlowFast weights "
            "need exactly one"
        )
    return found[0][0] + ".", found[0][1]


def load_pretrained(
    model: nn.Module,
    path: str | Path,
    source: SourceArg = "auto",
    trust_checkpoint: bool = False,
    strict: bool = True,
    no_head: bool = True,
) -> LoadReport:
    """Load a published SlowFast checkpoint into ``model``'s SlowFast backbone.

    Args:
        model: a :class:`SlowFast` or a module containing exactly one.
        path: checkpoint file (``.pth``, ``.pyth``, ``.pt``; ``.pkl`` for Caffe2).
        source: checkpoint format, or ``"auto"`` to detect it from the extension and key names.
        trust_checkpoint: allow full unpickling (Caffe2 ``.pkl``, files with arbitrary objects).
        strict: fail unless every backbone tensor loads and no checkpoint tensor is left over
            (head tensors excepted when ``no_head``).
        no_head: drop the checkpoint's classification / detection head tensors (the head of the
            source task does not fit ours). With ``no_head=False`` they count as unexpected.

    Returns:
        A :class:`LoadReport`. Raises :class:`CheckpointError` (with the report) when the file
        cannot be read, when ``strict`` and the report is not complete, or when fewer than
        ``MIN_LOADED_FRACTION`` of the backbone tensors load; the model is unchanged then.
    """
    if source != "auto" and source not in SOURCES:
        raise CheckpointError(f"unknown checkpoint source {source!r}; expected 'auto' or one of {SOURCES}")
    prefix, backbone = find_backbone(model)
    is_pickle = source == "pyslowfast_caffe2" or (source == "auto" and Path(path).suffix == ".pkl")
    raw = read_checkpoint(path, pickle_format=is_pickle, trust_checkpoint=trust_checkpoint)
    state = unwrap_state_dict(raw, path)
    src: Source = detect_source(path, state) if source == "auto" else source
    remapped = remap_state_dict(state, src)
    model_state = backbone.state_dict()
    shapes = {k: v.shape for k, v in model_state.items()}
    tensors = {  # to the model's dtype first, so the RGB sum is done at the model's precision
        k: v.to(model_state[k].dtype) if k in model_state and v.is_floating_point() else v
        for k, v in remapped.tensors.items()
    }
    tensors, notes_in = adapt_input_channels(tensors, shapes)
    tensors, notes_t = pad_temporal_kernels(tensors, shapes)
    remapped = Remapped(tensors, remapped.origin, remapped.head, remapped.unknown)
    report = match_state_dict(remapped, model_state, path, src, no_head=no_head)
    report.adapted = notes_in + notes_t

    expected = sum(1 for k in model_state if not k.endswith("num_batches_tracked"))
    if len(report.loaded) < MIN_LOADED_FRACTION * expected:
        raise CheckpointError(
            f"checkpoint does not fit the model ({len(report.loaded)} of {expected} backbone tensors "
            f"load):\n{report}{_hints(report, backbone)}"
        )
    if strict and not report.complete:
        raise CheckpointError(
            f"checkpoint does not fully fit the model (strict=True):\n{report}{_hints(report, backbone)}"
        )
    new_state = dict(model_state)
    for name in report.loaded:
        new_state[name] = tensors[name]
    backbone.load_state_dict(new_state, strict=True)
    if prefix:
        report.loaded = [prefix + k for k in report.loaded]
        report.missing = [prefix + k for k in report.missing]
    return report


# --------------------------------------------------------------------------- layouts


def available_layouts() -> list[str]:
    """Names of the documented checkpoint layouts (``thermact/models/layouts/*.json``)."""
    folder = resources.files("thermact.models").joinpath("layouts")
    return sorted(entry.name[: -len(".json")] for entry in folder.iterdir() if entry.name.endswith(".json"))


def read_layout(name: str) -> dict[str, Any]:
    """One documented checkpoint layout: metadata plus ``backbone`` and ``head`` ``{key: shape}``.

    Metadata: ``source``, ``depth``, ``alpha``, ``fusion_kernel``, ``fusion_style``, ``checkpoint``
    (which published file), ``container`` (wrapping dict key), ``derived_from`` (source files).
    """
    entry = resources.files("thermact.models").joinpath("layouts", f"{name}.json")
    if not entry.is_file():
        raise CheckpointError(f"unknown checkpoint layout {name!r}; known: {', '.join(available_layouts())}")
    layout: dict[str, Any] = json.loads(entry.read_text(encoding="utf-8"))
    return layout


# --------------------------------------------------------------------------- AlphAction IA structure
#
# AlphAction's IA models keep the interaction structure and the head MLP under
# ``roi_heads.action.feature_extractor.`` (``ia_structure.*``, ``fc1.*``, ``fc2.*``), the classifier
# under ``roi_heads.action.predictor.cls_score.*``. The blocks are 1x1x1 Conv3d on ``[K, C, 1, 1, 1]``
# features (here ``Linear``); the temporal-position embeddings are ``[L, 1, C, 1, 1, 1]`` and the
# dense-serial mixing weights ``[i, C, 1, 1, 1]``. The exact layout of the published
# resnet101_8x8f_denseserial model is ``layouts/alphaction_ia_dense_serial_r101_8x8.json``.

_IA_HEAD = r"^roi_heads\.action\.feature_extractor\."
_IA = _IA_HEAD + r"ia_structure\."
IA_BLOCK_NAME = re.compile(
    r"^(?:module\.)?roi_heads\.action\.feature_extractor\.ia_structure\.([POM]_block_\d+)\."
)

_IA_RULES = _rules(
    (
        _IA + r"(person_dim_reduce|mem_dim_reduce|person_key_dim_reduce)\.(weight|bias)$",
        lambda m: f"interaction.{m[1]}.{m[2]}",
    ),
    (
        _IA + r"([PM]_block_\d+)\.(query|key|value|out|shortcut)\.(weight|bias)$",
        lambda m: f"interaction.blocks.{m[1]}.{m[2]}.{m[3]}",
    ),
    (
        _IA + r"([PM]_block_\d+)\.temporal_position_([kv])$",
        lambda m: f"interaction.blocks.{m[1]}.temporal_position_{m[2]}",
    ),
    (_IA + r"dense_params\.(\d+)$", lambda m: f"interaction.dense_params.{m[1]}"),
    (_IA_HEAD + r"fc1\.(weight|bias)$", lambda m: f"head.mlp.0.{m[1]}"),
    (_IA_HEAD + r"fc2\.(weight|bias)$", lambda m: f"head.mlp.3.{m[1]}"),
)
_IA_DROPPED = re.compile(_IA + r"(O_block_\d+\.|object_dim_reduce\.)|^roi_heads\.action\.predictor\.")


def remap_alphaction_interaction_key(key: str) -> tuple[Literal["ours", "dropped", "other", "unknown"], str]:
    """Map one AlphAction IA-model key to ``("ours", our_key)``; ``"dropped"``: object blocks and the
    AVA classifier (no place here); ``"other"``: not a head key (the backbone's loader reads those);
    ``"unknown"``: a head key with no rule."""
    k = _strip(key, ("module.",))
    if not k.startswith("roi_heads."):
        return "other", key
    if _IA_DROPPED.match(k):
        return "dropped", key
    ours = _apply_rules(_IA_RULES, k)
    return ("unknown", key) if ours is None else ("ours", ours)


def remap_alphaction_interaction(state: Mapping[str, Tensor]) -> Remapped:
    """Rename an AlphAction IA checkpoint's head tensors to ours (``interaction.*``, ``head.mlp.*``).

    ``Remapped.head`` collects the dropped keys (object blocks, classifier); backbone keys are
    left out altogether.
    """
    out = Remapped({}, {}, [], [])
    for key, value in state.items():
        kind, name = remap_alphaction_interaction_key(key)
        if kind == "dropped":
            out.head.append(key)
        elif kind == "unknown" or (kind == "ours" and name in out.tensors):
            out.unknown.append(key)
        elif kind == "ours":
            out.tensors[name] = value
            out.origin[name] = key
    return out


def alphaction_block_order(state: Mapping[str, Tensor]) -> list[str]:
    """AlphAction's block names in ``I_BLOCK_LIST`` order (the order the checkpoint stores them)."""
    order: list[str] = []
    for key in state:
        m = IA_BLOCK_NAME.match(key)
        if m is not None and m[1] not in order:
            order.append(m[1])
    return order


def conv1x1_to_linear(tensors: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """1x1x1 conv weights ``[o, i, 1, 1, 1]`` -> ``[o, i]``; temporal positions ``[L, 1, C, 1, 1, 1]``
    -> ``[L, C]``; dense mixing weights ``[n, C, 1, 1, 1]`` -> ``[n, C]`` (``interaction.*`` only)."""
    out = dict(tensors)
    notes: list[str] = []
    for name, value in tensors.items():
        if not name.startswith("interaction.") or value.dim() <= 2:
            continue
        if any(int(d) != 1 for d in value.shape[2:]) and not name.split(".")[-1].startswith(
            "temporal_position"
        ):
            continue
        out[name] = value.reshape(int(value.shape[0]), -1)
        notes.append(f"{name}: {list(value.shape)} reshaped to {list(out[name].shape)}")
    return out, notes


def select_dense_params(
    tensors: Mapping[str, Tensor], their_blocks: list[str], our_blocks: list[str]
) -> tuple[dict[str, Tensor], list[str]]:
    """Re-index dense-serial mixing weights from AlphAction's block list to ours.

    AlphAction's ``dense_params[j]`` ``[j, C]`` weights the outputs of its blocks ``0..j-1`` for its
    block ``j``. Our block ``i`` (same name) keeps the rows of the blocks we also have (object
    blocks are dropped: their outputs do not exist here; the softmax renormalises over the rest).
    A block whose earlier blocks are not all among AlphAction's earlier blocks is left unmapped.
    """
    out = {k: v for k, v in tensors.items() if not k.startswith("interaction.dense_params.")}
    notes: list[str] = []
    for i in range(2, len(our_blocks)):
        name = our_blocks[i]
        if name not in their_blocks:
            continue
        j = their_blocks.index(name)
        source = tensors.get(f"interaction.dense_params.{j}")
        rows = [their_blocks.index(n) if n in their_blocks[:j] else -1 for n in our_blocks[:i]]
        if source is None or -1 in rows:
            continue
        out[f"interaction.dense_params.{i}"] = source[rows]
        if rows != list(range(j)):
            notes.append(f"interaction.dense_params.{i} <- dense_params.{j} rows {rows} (block {name})")
    return out, notes


def crop_temporal_positions(
    tensors: Mapping[str, Tensor], model_shapes: Mapping[str, torch.Size]
) -> tuple[dict[str, Tensor], list[str]]:
    """Keep the central ``L`` of a longer (odd) list of temporal-position embeddings.

    AlphAction's slots are 1 s wide and centred on the keyframe (``LENGTH: (30, 30)`` -> 61); a
    model with ``memory_slot_s: 1`` and a shorter window uses the middle ones.
    """
    out = dict(tensors)
    notes: list[str] = []
    for name, value in tensors.items():
        target = model_shapes.get(name)
        if target is None or "temporal_position" not in name or value.dim() != 2 or len(target) != 2:
            continue
        L_src, L_dst = int(value.shape[0]), int(target[0])
        if L_src > L_dst and L_src % 2 == 1 and L_dst % 2 == 1 and value.shape[1] == target[1]:
            start = (L_src - L_dst) // 2
            out[name] = value[start : start + L_dst]
            notes.append(f"{name}: central {L_dst} of {L_src} temporal positions")
    return out, notes


def load_alphaction_interaction(
    model: nn.Module, path: str | Path, trust_checkpoint: bool = False, strict: bool = True
) -> LoadReport:
    """Load the IA structure and head MLP of an AlphAction IA checkpoint into ``model``.

    ``model`` is an :class:`~thermact.models.action.ActionModel` with an ``interaction``
    head. Steps: :func:`read_checkpoint`, :func:`unwrap_state_dict`,
    :func:`remap_alphaction_interaction`, :func:`conv1x1_to_linear`, :func:`select_dense_params`,
    :func:`crop_temporal_positions`, :func:`match_state_dict` over our ``interaction.*`` and
    ``head.mlp.*`` tensors. Object blocks and the AVA classifier are dropped (reported); backbone
    tensors are ignored (see :func:`load_pretrained`). With ``strict``, every one of our
    interaction/MLP tensors must load; otherwise :class:`CheckpointError` with the report and the
    model is unchanged.
    """
    interaction = getattr(model, "interaction", None)
    if not isinstance(interaction, nn.Module):
        raise CheckpointError(f"checkpoint {path}: the model has no interaction head to load IA weights into")
    state = unwrap_state_dict(read_checkpoint(path, trust_checkpoint=trust_checkpoint), path)
    their_blocks = alphaction_block_order(state)
    if not their_blocks:
        raise CheckpointError(
            f"checkpoint {path} holds no AlphAction IA structure (no roi_heads.action.feature_extractor."
            "ia_structure.*_block_* keys)"
        )
    remapped = remap_alphaction_interaction(state)
    model_state = {k: v for k, v in model.state_dict().items() if k.startswith(("interaction.", "head.mlp."))}
    shapes = {k: v.shape for k, v in model_state.items()}
    tensors, notes_conv = conv1x1_to_linear(remapped.tensors)
    our_blocks = [str(n) for n in getattr(interaction, "names", ())]
    tensors, notes_dense = select_dense_params(tensors, their_blocks, our_blocks)
    tensors, notes_pos = crop_temporal_positions(tensors, shapes)
    tensors = {k: v.to(model_state[k].dtype) if k in model_state else v for k, v in tensors.items()}
    origin = {k: remapped.origin.get(k, k) for k in tensors}
    for k in tensors:  # renamed dense params: name their source
        if k.startswith("interaction.dense_params.") and k not in remapped.origin:
            origin[k] = "roi_heads.action.feature_extractor.ia_structure.dense_params.*"
    report = match_state_dict(
        Remapped(tensors, origin, remapped.head, remapped.unknown), model_state, path, "alphaction"
    )
    report.adapted = [n for n in notes_dense + notes_pos]
    report.adapted.append(f"{len(notes_conv)} 1x1x1 conv / embedding tensors reshaped to linear layout")
    if strict and not report.complete:
        raise CheckpointError(
            f"AlphAction IA checkpoint does not fit the interaction head (strict=True):\n{report}"
        )
    if not report.loaded:
        raise CheckpointError(
            f"AlphAction IA checkpoint loads no tensor into the interaction head:\n{report}"
        )
    new_state = model.state_dict()
    for name in report.loaded:
        new_state[name] = tensors[name]
    model.load_state_dict(new_state, strict=True)
    return report
