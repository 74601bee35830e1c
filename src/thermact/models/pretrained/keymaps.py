"""Step 4: each source's key names -> ours (the tables), head keys set apart.

The correspondences are listed in :mod:`thermact.models.slowfast`; PySlowFast ``.pyth`` names are
ours already. Each table is a list of ``(pattern, name builder)`` rules tried in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from thermact.models.pretrained.reading import Source, strip_prefixes

__all__ = ["KeyKind", "Remapped", "remap_key", "remap_state_dict"]

KeyKind = Literal["backbone", "head", "unknown"]
Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]

_BN_CAFFE2 = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}
_ABC = {"1": "a", "2": "b", "3": "c"}
_PATHWAY = {"slow": "0", "fast": "1"}


def rules(*pairs: tuple[str, Callable[[re.Match[str]], str]]) -> list[Rule]:
    """Compile ``(pattern, builder)`` pairs into a rule table."""
    return [(re.compile(pattern), fn) for pattern, fn in pairs]


def apply_rules(table: list[Rule], key: str) -> str | None:
    """Our name for ``key`` from the first matching rule, or None."""
    for pattern, fn in table:
        m = pattern.match(key)
        if m is not None:
            return fn(m)
    return None


def _caffe2_pathway(m: re.Match[str]) -> str:
    """Caffe2 blob names of the fast pathway start with ``t_`` (group 1): pathway 1, else 0."""
    return "1" if m.group(1) else "0"


_ALPHACTION_RULES = rules(
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

_CAFFE2_RULES = rules(
    (r"^(t_)?conv1_w$", lambda m: f"s1.pathway{_caffe2_pathway(m)}_stem.conv.weight"),
    (
        r"^(t_)?res_conv1_bn_(s|b|rm|riv)$",
        lambda m: f"s1.pathway{_caffe2_pathway(m)}_stem.bn.{_BN_CAFFE2[m[2]]}",
    ),
    (r"^t_pool1_subsample_w$", lambda m: "s1_fuse.conv_f2s.weight"),
    (r"^t_pool1_subsample_bn_(s|b|rm|riv)$", lambda m: f"s1_fuse.bn.{_BN_CAFFE2[m[1]]}"),
    (r"^t_res(\d)_\d+_branch2c_bn_subsample_w$", lambda m: f"s{m[1]}_fuse.conv_f2s.weight"),
    (
        r"^t_res(\d)_\d+_branch2c_bn_subsample_bn_(s|b|rm|riv)$",
        lambda m: f"s{m[1]}_fuse.bn.{_BN_CAFFE2[m[2]]}",
    ),
    (
        r"^(t_)?res(\d)_(\d+)_branch1_w$",
        lambda m: f"s{m[2]}.pathway{_caffe2_pathway(m)}_res{m[3]}.branch1.weight",
    ),
    (
        r"^(t_)?res(\d)_(\d+)_branch1_bn_(s|b|rm|riv)$",
        lambda m: f"s{m[2]}.pathway{_caffe2_pathway(m)}_res{m[3]}.branch1_bn.{_BN_CAFFE2[m[4]]}",
    ),
    (
        r"^(t_)?res(\d)_(\d+)_branch2([abc])_w$",
        lambda m: f"s{m[2]}.pathway{_caffe2_pathway(m)}_res{m[3]}.branch2.{m[4]}.weight",
    ),
    (
        r"^(t_)?res(\d)_(\d+)_branch2([abc])_bn_(s|b|rm|riv)$",
        lambda m: f"s{m[2]}.pathway{_caffe2_pathway(m)}_res{m[3]}.branch2.{m[4]}_bn.{_BN_CAFFE2[m[5]]}",
    ),
)

_PTV_BLOCK = r"^blocks\.([1-4])\.multipathway_blocks\.([01])\.res_blocks\.(\d+)\."
_PYTORCHVIDEO_RULES = rules(
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


def remap_key(source: Source, key: str) -> tuple[KeyKind, str]:
    """Map one checkpoint key to ``("backbone", our_key)``, ``("head", key)`` or ``("unknown", key)``."""
    if source == "alphaction":
        k = strip_prefixes(key, ("module.", "backbone."))
        if k.startswith("roi_heads."):
            return "head", key
        ours = apply_rules(_ALPHACTION_RULES, k)
    elif source == "pyslowfast":
        k = strip_prefixes(key, ("module.",))
        if k.startswith("head."):
            return "head", key
        ours = k if re.match(r"^s\d(_fuse)?\.", k) else None
    elif source == "pyslowfast_caffe2":
        if key.startswith("pred_"):
            return "head", key
        ours = apply_rules(_CAFFE2_RULES, key)
    elif source == "pytorchvideo":
        k = strip_prefixes(key, ("module.", "model."))
        if k.startswith("detection_head.") or re.match(r"^blocks\.\d+\.proj\.", k):
            return "head", key
        ours = apply_rules(_PYTORCHVIDEO_RULES, k)
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
