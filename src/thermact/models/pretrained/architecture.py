"""What a checkpoint's network computes beyond its tensors' shapes: the weights table of each source.

The same tensors give different features when the model around them differs in something no
shape records. Each source's facts are written down here, from the source's own code:

========================  =================  ==============  ======================================
source                    stem max pool pad  lateral          where
========================  =================  ==============  ======================================
``alphaction``            0 (none)           ``conv_bias``    ``modeling/backbone/slowfast.py``:
                                                              ``MaxPool3d((1, 3, 3), stride=(1, 2, 2))``,
                                                              ``LateralBlock`` conv with bias only
``pyslowfast``            1                  ``conv_bn_relu`` ``slowfast/models/stem_helper.py``
                                                              (``padding=[0, 1, 1]``), ``FuseFastToSlow``
``pyslowfast_caffe2``     1                  ``conv_bn_relu`` as PySlowFast (its converted models)
``pytorchvideo``          1                  ``conv_bn_relu`` ``models/slowfast.py``: pool padding
                                                              ``k // 2``, ``FastToSlowFusionBuilder``
========================  =================  ==============  ======================================

Per published file (``layouts/*.json``, :func:`read_layout`): ``depth``, ``alpha`` (the lateral
convs' temporal stride and the slow pathway's frame step; not visible in any tensor),
``fusion_kernel``, ``res5_stride`` / ``res5_dilation`` (2 / 1 for Kinetics classification models,
1 / 2 for detection models). A checkpoint whose tensors (names after remapping, shapes) are those
of published layouts gets their facts (:func:`identify_architecture`);
:func:`architecture_mismatches` lists what a model would compute differently.

Every source uses BatchNorm eps 1e-5 and, as here, puts the spatial stride on the bottleneck's
3x3 conv; those need no entry.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from torch import Tensor

from thermact.errors import CheckpointError
from thermact.models.pretrained.keymaps import remap_key
from thermact.models.pretrained.reading import Source, strip_prefixes
from thermact.models.slowfast import FusionStyle, SlowFast, StemPoolPadding

__all__ = [
    "SOURCE_FACTS",
    "Architecture",
    "Mismatch",
    "SourceFacts",
    "architecture_mismatches",
    "available_layouts",
    "identify_architecture",
    "read_layout",
    "res5_note",
]


@dataclass(frozen=True)
class SourceFacts:
    """Architecture facts shared by every SlowFast checkpoint of one source."""

    name: str
    stem_pool_padding: StemPoolPadding
    fusion_style: FusionStyle
    evidence: str


SOURCE_FACTS: dict[Source, SourceFacts] = {
    "alphaction": SourceFacts(
        "AlphAction",
        0,
        "conv_bias",
        "stem MaxPool3d((1, 3, 3), stride=(1, 2, 2)) without padding; lateral 5x1x1 conv with bias, "
        "no BN/ReLU (alphaction/modeling/backbone/slowfast.py)",
    ),
    "pyslowfast": SourceFacts(
        "PySlowFast",
        1,
        "conv_bn_relu",
        "stem MaxPool3d([1, 3, 3], [1, 2, 2], padding=[0, 1, 1]) (slowfast/models/stem_helper.py); "
        "lateral conv + BN + ReLU (FuseFastToSlow)",
    ),
    "pyslowfast_caffe2": SourceFacts(
        "PySlowFast (Caffe2 model zoo)",
        1,
        "conv_bn_relu",
        "run by PySlowFast's own SlowFast after its Caffe2 name conversion (as pyslowfast)",
    ),
    "pytorchvideo": SourceFacts(
        "PyTorchVideo",
        1,
        "conv_bn_relu",
        "stem pool padding k // 2 = (0, 1, 1) (pytorchvideo/models/slowfast.py create_slowfast); "
        "lateral conv + norm + activation (FastToSlowFusionBuilder)",
    ),
}


def available_layouts() -> list[str]:
    """Names of the documented checkpoint layouts (``thermact/models/layouts/*.json``)."""
    folder = resources.files("thermact.models").joinpath("layouts")
    return sorted(entry.name[: -len(".json")] for entry in folder.iterdir() if entry.name.endswith(".json"))


def read_layout(name: str) -> dict[str, Any]:
    """One documented checkpoint layout: metadata plus ``backbone`` and ``head`` ``{key: shape}``.

    Metadata: ``source``, ``depth``, ``alpha``, ``fusion_kernel``, ``fusion_style``, ``res5_stride``,
    ``res5_dilation`` (backbone layouts), ``checkpoint`` (which published file), ``container``
    (wrapping dict key), ``derived_from`` (source files).
    """
    entry = resources.files("thermact.models").joinpath("layouts", f"{name}.json")
    if not entry.is_file():
        raise CheckpointError(f"unknown checkpoint layout {name!r}; known: {', '.join(available_layouts())}")
    layout: dict[str, Any] = json.loads(entry.read_text(encoding="utf-8"))
    return layout


Signature = tuple[frozenset[tuple[str, tuple[int, ...]]], frozenset[str]]


def _signature(source: Source, shapes: Mapping[str, tuple[int, ...]]) -> Signature:
    """(our backbone names with shapes, head key names without ``module.``) of a key -> shape map."""
    backbone: set[tuple[str, tuple[int, ...]]] = set()
    head: set[str] = set()
    for key, shape in shapes.items():
        kind, name = remap_key(source, key)
        if name.endswith("num_batches_tracked"):
            continue
        if kind == "backbone":
            backbone.add((name, tuple(shape)))
        elif kind == "head":
            head.add(strip_prefixes(key, ("module.",)))
    return frozenset(backbone), frozenset(head)


@functools.cache
def _layout_signatures() -> dict[str, tuple[Source, Signature]]:
    out: dict[str, tuple[Source, Signature]] = {}
    for name in available_layouts():
        layout = read_layout(name)
        if layout["backbone"]:
            shapes = {k: tuple(v) for k, v in {**layout["backbone"], **layout["head"]}.items()}
            out[name] = (layout["source"], _signature(layout["source"], shapes))
    return out


@dataclass(frozen=True)
class Architecture:
    """What a checkpoint's SlowFast computes beyond its tensors' shapes.

    ``stem_pool_padding`` and ``fusion_style`` are its source's (:data:`SOURCE_FACTS`); ``layouts``
    are the published layouts with exactly its backbone tensors (narrowed by the head keys when
    several do); ``depth``, ``alpha``, ``res5_stride`` and ``res5_dilation`` are theirs when they all
    agree, else None (unknown).
    """

    source: Source
    stem_pool_padding: StemPoolPadding
    fusion_style: FusionStyle
    layouts: tuple[str, ...]
    depth: int | None
    alpha: int | None
    res5_stride: int | None
    res5_dilation: int | None

    def describe(self) -> str:
        facts = SOURCE_FACTS[self.source]
        known = ", ".join(
            f"{k} {v}"
            for k, v in (
                ("depth", self.depth),
                ("alpha", self.alpha),
                ("res5 stride", self.res5_stride),
                ("res5 dilation", self.res5_dilation),
            )
            if v is not None
        )
        where = (
            f"published layout {' / '.join(self.layouts)} ({known})"
            if self.layouts
            else "no published layout"
        )
        return (
            f"{facts.name}: stem max-pool padding {self.stem_pool_padding}, lateral {self.fusion_style}; "
            f"tensors match {where}"
        )


def _agreed(layouts: list[dict[str, Any]], key: str) -> int | None:
    values = {layout.get(key) for layout in layouts}
    value = values.pop() if len(values) == 1 else None
    return int(value) if value is not None else None


def identify_architecture(state: Mapping[str, Tensor], source: Source) -> Architecture:
    """The :class:`Architecture` of a checkpoint's tensors (``state``, as unwrapped) from ``source``."""
    facts = SOURCE_FACTS[source]
    backbone, head = _signature(source, {k: tuple(v.shape) for k, v in state.items()})
    same_source = {n: sig for n, (src, sig) in _layout_signatures().items() if src == source}
    matches = [n for n, sig in same_source.items() if sig[0] == backbone]
    if len(matches) > 1 and any(same_source[n][1] == head for n in matches):
        matches = [n for n in matches if same_source[n][1] == head]
    layouts = [read_layout(n) for n in matches]
    return Architecture(
        source=source,
        stem_pool_padding=facts.stem_pool_padding,
        fusion_style=facts.fusion_style,
        layouts=tuple(matches),
        depth=_agreed(layouts, "depth"),
        alpha=_agreed(layouts, "alpha"),
        res5_stride=_agreed(layouts, "res5_stride"),
        res5_dilation=_agreed(layouts, "res5_dilation"),
    )


@dataclass(frozen=True)
class Mismatch:
    """One architecture fact in which a model differs from a checkpoint's source.

    ``argument`` is the :class:`SlowFast` constructor argument (and ``model.`` config key where
    there is one) that fixes it.
    """

    argument: str
    model: object
    checkpoint: object

    def __str__(self) -> str:
        return f"{self.argument}: model {self.model!r}, checkpoint {self.checkpoint!r}"


def architecture_mismatches(backbone: SlowFast, arch: Architecture) -> list[Mismatch]:
    """Facts (stem pool padding, lateral style, depth, alpha) in which ``backbone`` differs from ``arch``.

    Unknown facts (None) are not compared. ``res5`` geometry is not a mismatch: see :func:`res5_note`.
    """
    pairs: list[tuple[str, object, object]] = [
        ("stem_pool_padding", backbone.stem_pool_padding, arch.stem_pool_padding),
        ("fusion_style", backbone.fusion_style, arch.fusion_style),
        ("depth", backbone.depth, arch.depth),
        ("alpha", backbone.alpha, arch.alpha),
    ]
    return [
        Mismatch(name, ours, theirs) for name, ours, theirs in pairs if theirs is not None and ours != theirs
    ]


def res5_note(backbone: SlowFast, arch: Architecture) -> str | None:
    """Why the outputs differ from the source's after res4 when only res5's geometry differs.

    A detection backbone (res5 stride 1, dilation 2) loaded from a classification checkpoint
    (stride 2) is the standard Kinetics -> AVA transfer (AlphAction and PySlowFast's AVA configs do
    exactly this); the res5 weights are the same, the feature map is twice as fine.
    """
    if arch.res5_stride is None or arch.res5_dilation is None:
        return None
    if (backbone.res5_stride, backbone.res5_dilation) == (arch.res5_stride, arch.res5_dilation):
        return None
    return (
        f"res5: the source computes stride {arch.res5_stride}, dilation {arch.res5_dilation}; this model "
        f"stride {backbone.res5_stride}, dilation {backbone.res5_dilation} (classification -> detection "
        "transfer as in AlphAction / PySlowFast AVA): outputs equal the source's up to res4"
    )
