"""Step 7 and the chain: compare with the model, report every tensor, load into the SlowFast backbone."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor, nn

from thermact.errors import CheckpointError
from thermact.models.pretrained.adapt import adapt_input_channels, pad_temporal_kernels
from thermact.models.pretrained.architecture import (
    Architecture,
    Mismatch,
    architecture_mismatches,
    identify_architecture,
    res5_note,
)
from thermact.models.pretrained.keymaps import Remapped, remap_state_dict
from thermact.models.pretrained.reading import Source, SourceArg, read_state_dict
from thermact.models.slowfast import SlowFast

__all__ = [
    "MIN_LOADED_FRACTION",
    "LoadReport",
    "OpenedCheckpoint",
    "find_backbone",
    "load_pretrained",
    "load_tensors",
    "match_state_dict",
    "open_checkpoint",
]

#: Below this fraction of loaded backbone tensors a non-strict load still fails.
MIN_LOADED_FRACTION = 0.5


@dataclass
class LoadReport:
    """What happened to every tensor of a checkpoint.

    ``loaded``, ``missing`` and ``shape_mismatched`` name our parameters; ``unexpected`` and
    ``dropped`` name the checkpoint's keys. ``adapted`` describes tensors changed on the way
    (summed input channels, zero-padded temporal kernels); ``architecture`` what the checkpoint's
    source computes (:meth:`Architecture.describe`); ``notes`` known, deliberate differences.
    """

    path: str
    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatched: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    architecture: str = ""
    notes: list[str] = field(default_factory=list)

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
        if self.architecture:
            lines.append(f"  architecture: {self.architecture}")
        lines.extend(f"  note: {note}" for note in self.notes)
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


def _depth_hints(report: LoadReport, backbone: SlowFast) -> str:
    hints = []
    if any("_res" in k and "_stem" not in k for k in report.unexpected) and backbone.depth == 50:
        hints.append("the checkpoint may be a ResNet-101 SlowFast (extra res4 blocks); build depth=101")
    if any(re.match(r"^s4\.pathway\d_res(6|7|8|9|\d\d)\.", k) for k in report.missing):
        hints.append("the checkpoint may be a ResNet-50 SlowFast; build depth=50")
    return "".join(f"\n  hint: {h}" for h in hints)


_FIXES = {
    "stem_pool_padding": "config key model.stem_pool_padding (auto takes the checkpoint's)",
    "fusion_style": "config key model.fusion_style (auto takes the checkpoint's)",
    "depth": "config key model.name (a variant of that depth)",
    "alpha": "config key model.name (a variant with that alpha)",
}


def _mismatch_error(path: str, arch: Architecture, mismatches: list[Mismatch]) -> CheckpointError:
    lines = [f"checkpoint {path} would compute a different function in this model ({arch.describe()}):"]
    for m in mismatches:
        lines.append(f"  {m}; build SlowFast({m.argument}={m.checkpoint!r}) - {_FIXES[m.argument]}")
    return CheckpointError("\n".join(lines))


def load_tensors(module: nn.Module, tensors: Mapping[str, Tensor], names: list[str]) -> None:
    """Copy ``tensors[name]`` for each of ``names`` into ``module`` (a strict load of its state dict)."""
    state = module.state_dict()
    for name in names:
        state[name] = tensors[name]
    module.load_state_dict(state, strict=True)


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


@dataclass(frozen=True)
class OpenedCheckpoint:
    """A checkpoint read, unwrapped and identified (steps 1-3 and its :class:`Architecture`)."""

    path: str
    source: Source
    state: dict[str, Tensor]
    architecture: Architecture


def open_checkpoint(
    path: str | Path, source: SourceArg = "auto", trust_checkpoint: bool = False
) -> OpenedCheckpoint:
    """Read ``path`` (:func:`read_state_dict`) and identify what its network computes."""
    state, src = read_state_dict(path, source, trust_checkpoint)
    return OpenedCheckpoint(str(path), src, state, identify_architecture(state, src))


def _fit(backbone: SlowFast, ckpt: OpenedCheckpoint, no_head: bool) -> tuple[dict[str, Tensor], LoadReport]:
    """Steps 4-7: remap, adapt (at the model's dtype) and match; the tensors to load and the report."""
    remapped = remap_state_dict(ckpt.state, ckpt.source)
    model_state = backbone.state_dict()
    shapes = {k: v.shape for k, v in model_state.items()}
    tensors = {  # to the model's dtype first, so the RGB sum is done at the model's precision
        k: v.to(model_state[k].dtype) if k in model_state and v.is_floating_point() else v
        for k, v in remapped.tensors.items()
    }
    tensors, notes_in = adapt_input_channels(tensors, shapes)
    tensors, notes_t = pad_temporal_kernels(tensors, shapes)
    remapped = Remapped(tensors, remapped.origin, remapped.head, remapped.unknown)
    report = match_state_dict(remapped, model_state, ckpt.path, ckpt.source, no_head=no_head)
    report.adapted = notes_in + notes_t
    report.architecture = ckpt.architecture.describe()
    note = res5_note(backbone, ckpt.architecture)
    report.notes = [note] if note else []
    return tensors, report


def load_pretrained(
    model: nn.Module,
    checkpoint: str | Path | OpenedCheckpoint,
    source: SourceArg = "auto",
    trust_checkpoint: bool = False,
    strict: bool = True,
    no_head: bool = True,
) -> LoadReport:
    """Load a published SlowFast checkpoint into ``model``'s SlowFast backbone.

    Args:
        model: a :class:`SlowFast` or a module containing exactly one.
        checkpoint: checkpoint file (``.pth``, ``.pyth``, ``.pt``; ``.pkl`` for Caffe2), or one
            already read by :func:`open_checkpoint` (``source`` and ``trust_checkpoint`` unused then).
        source: checkpoint format, or ``"auto"`` to detect it from the extension and key names.
        trust_checkpoint: allow full unpickling (Caffe2 ``.pkl``, files with arbitrary objects).
        strict: fail unless every backbone tensor loads and no checkpoint tensor is left over
            (head tensors excepted when ``no_head``).
        no_head: drop the checkpoint's classification / detection head tensors (the head of the
            source task does not fit ours). With ``no_head=False`` they count as unexpected.

    Returns:
        A :class:`LoadReport`. Raises :class:`CheckpointError` when the file cannot be read, when
        the backbone differs from the checkpoint's source in an architecture fact
        (:func:`architecture_mismatches`: the same weights would compute something else), when
        ``strict`` and the report is not complete, or when fewer than ``MIN_LOADED_FRACTION`` of
        the backbone tensors load; the model is unchanged then.
    """
    prefix, backbone = find_backbone(model)
    ckpt = (
        checkpoint
        if isinstance(checkpoint, OpenedCheckpoint)
        else open_checkpoint(checkpoint, source, trust_checkpoint)
    )
    mismatches = architecture_mismatches(backbone, ckpt.architecture)
    if mismatches:
        raise _mismatch_error(ckpt.path, ckpt.architecture, mismatches)
    tensors, report = _fit(backbone, ckpt, no_head)
    expected = sum(1 for k in backbone.state_dict() if not k.endswith("num_batches_tracked"))
    if len(report.loaded) < MIN_LOADED_FRACTION * expected:
        raise CheckpointError(
            f"checkpoint does not fit the model ({len(report.loaded)} of {expected} backbone tensors "
            f"load):\n{report}{_depth_hints(report, backbone)}"
        )
    if strict and not report.complete:
        raise CheckpointError(
            f"checkpoint does not fully fit the model (strict=True):\n{report}{_depth_hints(report, backbone)}"
        )
    load_tensors(backbone, tensors, report.loaded)
    if prefix:
        report.loaded = [prefix + k for k in report.loaded]
        report.missing = [prefix + k for k in report.missing]
    return report
