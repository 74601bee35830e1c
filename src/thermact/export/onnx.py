"""ONNX export of thermact models.

What gets exported:

* the action model (:class:`~thermact.models.action.ActionModel`) with inputs ``clip``
  ``float32 [B, 1, T, H, W]`` and ``rois`` ``float32 [K, 5]`` (rows ``(batch_index, x1, y1, x2,
  y2)``, pixel XYXY of the given clip, pixel ``i`` covering ``[i, i + 1)``) and output ``logits``
  ``float32 [K, C]``; ``B`` and ``K`` are dynamic, ``T``, ``H`` and ``W`` are fixed at export.
  Models with an interaction head (AlphAction's IA structure) are refused with a
  :class:`~thermact.errors.ConfigError`: their memory of neighbouring keyframes does not fit this
  signature, and dropping it would change their predictions;
* any other module (e.g. the person detector) through :func:`export_module`.

The eager RoIAlign (:func:`thermact.ops.roi_align.roi_align`) is not traceable: its number of
sampling points per bin (``ceil(roi_size / bins)``, adaptive) comes from ``.max().item()`` over the
boxes, and it loops in Python over the images that own boxes. A traced graph would bake both in and
be wrong for other boxes. While tracing, the RoI head therefore uses
:func:`thermact.ops.roi_align.roi_align_static`, which has the *same semantics* for every box but
only static shapes: each bin gets a fixed number of sample slots, enough to hold every
sample that can land on the feature map, starting at the first sample that can (computed per bin
from the box), and masked by the per-box adaptive count. It is exact (not an approximation with a
fixed sampling ratio), so onnxruntime matches eager PyTorch up to float rounding for any boxes.

A model exported from a checkpoint (:func:`export_action_onnx`, :func:`export_detector_onnx`)
carries what its runner needs as ONNX ``metadata_props``: classes, normalisation statistics, clip
and score mode (:func:`trained_metadata`), or the detector's normalisation, clip and decoding
settings. The onnxruntime runners are in :mod:`thermact.export.runtime`; the torch vs onnxruntime
comparison in :mod:`thermact.export.verify`.

``thermact export`` (:mod:`thermact.commands.export`) restores a checkpoint, exports it, verifies
it on real clips and prints the differences.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from thermact.errors import ConfigError
from thermact.io import atomic_open
from thermact.models.action import ActionModel
from thermact.models.ensemble import ActionEnsemble
from thermact.models.person_detector import PersonDetectorNet
from thermact.tasks.action import TrainedActionModel
from thermact.tasks.person import TrainedDetector

__all__ = [
    "DEFAULT_OPSET",
    "export_action_model",
    "export_action_onnx",
    "export_detector_onnx",
    "export_module",
    "export_person_detector",
    "trained_metadata",
]

DEFAULT_OPSET = 17
META_KIND = "thermact.kind"
"""``metadata_props`` key naming what was exported (``action_model`` / ``person_detector``)."""
META_CLASSES = "thermact.classes"
META_NORM = "thermact.norm"
META_CLIP = "thermact.clip"
META_SCORE_MODE = "thermact.score_mode"
META_DET_NORM = "thermact.norm"
META_DET_CLIP = "thermact.clip"
META_DET_DECODE = "thermact.decode"
"""``metadata_props`` keys of a person detector exported by :func:`export_detector_onnx`."""
FloatArray = npt.NDArray[np.float32]
_TRACER_WARNING: type[Warning] = torch.jit.TracerWarning  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Export


def training_modes(module: nn.Module) -> list[tuple[nn.Module, bool]]:
    """The training flag of every submodule (``module.train(flag)`` would overwrite them all)."""
    return [(m, m.training) for m in module.modules()]


def restore_modes(modes: Sequence[tuple[nn.Module, bool]]) -> None:
    for m, flag in modes:
        m.training = flag


def check_out_path(path: str | os.PathLike[str], suffix: str = ".onnx") -> Path:
    """``path`` as an output file: it ends in ``suffix``, is not a directory and its first existing
    parent is a writable directory (raises :class:`ConfigError` otherwise)."""
    out = Path(path)
    if out.suffix != suffix:
        raise ConfigError(f"output path {str(out)!r} must end in {suffix}")
    if out.exists() and out.is_dir():
        raise ConfigError(f"output path {str(out)!r} is a directory")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"output path {str(out)!r}: {str(parent)!r} is not a directory")
            if not os.access(parent, os.W_OK):
                raise ConfigError(f"output path {str(out)!r}: directory {str(parent)!r} is not writable")
            break
    return out


def export_module(
    module: nn.Module,
    example_inputs: tuple[Tensor, ...],
    path: str | os.PathLike[str],
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    opset: int = DEFAULT_OPSET,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Export ``module`` (in eval mode) to ONNX at ``path``, check it and write it atomically.

    Uses the TorchScript-tracing exporter (``torch.onnx.export(..., dynamo=False)``): the graph is
    recorded on ``example_inputs``; axes named in ``dynamic_axes`` (``{input_or_output_name: {axis:
    "name"}}``) stay symbolic, everything else is fixed. The module must return a tensor or a
    tuple of tensors (one per name in ``output_names``). ``metadata`` is stored as the model's
    ``metadata_props`` (read back with :attr:`OnnxRunner.metadata`). The file is written only after
    ``onnx.checker.check_model`` passes. Tracer warnings (Python values baked into the graph) are
    silenced: the modules exported here are written so that those values are static shapes.

    Raises:
        ConfigError: ``path`` does not end in ``.onnx`` or its directory cannot be written.
    """
    import onnx

    out = check_out_path(path)
    modes = training_modes(module)
    module.eval()
    try:
        with tempfile.TemporaryDirectory(prefix="thermact-onnx-") as tmp:
            raw = Path(tmp) / "model.onnx"
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", _TRACER_WARNING)
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                torch.onnx.export(
                    module,
                    example_inputs,
                    raw,
                    input_names=list(input_names),
                    output_names=list(output_names),
                    dynamic_axes={k: dict(v) for k, v in (dynamic_axes or {}).items()},
                    opset_version=opset,
                    do_constant_folding=True,
                    dynamo=False,
                )
            proto = onnx.load(str(raw))
    finally:
        restore_modes(modes)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    onnx.checker.check_model(proto, full_check=True)
    with atomic_open(out, "wb") as handle:
        handle.write(proto.SerializeToString())
    return out


def export_action_model(
    model: ActionModel | ActionEnsemble,
    path: str | os.PathLike[str],
    num_frames: int,
    frame_size: tuple[int, int] = (40, 60),
    opset: int = DEFAULT_OPSET,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Export an action model to ONNX: ``(clip [B, 1, T, H, W], rois [K, 5]) -> logits [K, C]``.

    Args:
        model: the action model or ensemble (exported in eval mode; the training flags of its modules are restored).
        path: output ``.onnx`` file (written atomically).
        num_frames: clip length ``T`` (fixed in the graph).
        frame_size: ``(H, W)`` of the clips fed to the model (fixed; the model's own ``input_size``
            resize is part of the graph).
        opset: ONNX opset version.
        metadata: extra ``metadata_props`` (e.g. :func:`trained_metadata`: classes, normalisation
            and clip settings, so that a streaming predictor needs only the ``.onnx`` file).

    ``B`` (axis 0 of ``clip``) and ``K`` (axis 0 of ``rois`` and ``logits``) are dynamic. RoIAlign is
    exported through :func:`thermact.ops.roi_align.roi_align_static`, correct for any number,
    position and size of boxes.
    """
    if getattr(model, "interaction", None) is not None:
        raise ConfigError(
            f"cannot export {str(path)!r}: the model has an interaction head (model.head.interaction), whose "
            "memory of neighbouring keyframes a (clip, rois) -> logits graph cannot carry; exporting it "
            "without memory would silently change its predictions. Run it in PyTorch (eval, detect, stream)."
        )
    if num_frames < 1 or len(frame_size) != 2 or min(frame_size) < 1:
        raise ValueError(f"num_frames and frame_size must be positive, got {num_frames}, {frame_size}")
    H, W = int(frame_size[0]), int(frame_size[1])
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    clip = torch.randn(2, 1, num_frames, H, W, generator=gen).to(device)
    rois = torch.tensor(
        [[0.0, 0.0, 0.0, W * 0.5, H * 0.5], [1.0, W * 0.25, H * 0.25, float(W), float(H)]], device=device
    )
    return export_module(
        model,
        (clip, rois),
        path,
        input_names=("clip", "rois"),
        output_names=("logits",),
        dynamic_axes={"clip": {0: "batch"}, "rois": {0: "num_boxes"}, "logits": {0: "num_boxes"}},
        opset=opset,
        metadata={META_KIND: "action_model", **(metadata or {})},
    )


# ---------------------------------------------------------------------------------------------
# Person detector


class _DetectorTuple(nn.Module):
    """``PersonDetectorNet`` returning a tuple ``(heatmap, size, offset)`` (traceable)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, clip: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.model(clip)
        return out.heatmap, out.size, out.offset


DETECTOR_OUTPUTS = ("heatmap", "size", "offset")


def export_person_detector(
    model: PersonDetectorNet,
    path: str | os.PathLike[str],
    frame_size: tuple[int, int] = (40, 60),
    opset: int = DEFAULT_OPSET,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Export a :class:`~thermact.models.person_detector.PersonDetectorNet` to ONNX.

    Input ``clip`` ``float32 [B, 1, T, H, W]`` (``T = model.num_frames``, ``H, W = frame_size``);
    outputs ``heatmap [B, K, h, w]``, ``size [B, 2, h, w]``, ``offset [B, 2, h, w]`` at the model's
    stride (see :mod:`thermact.models.person_detector`); ``B`` is dynamic.
    """
    H, W = int(frame_size[0]), int(frame_size[1])
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    clip = torch.randn(2, 1, int(model.num_frames), H, W, generator=torch.Generator().manual_seed(0)).to(
        device
    )
    return export_module(
        _DetectorTuple(model),
        (clip,),
        path,
        input_names=("clip",),
        output_names=DETECTOR_OUTPUTS,
        dynamic_axes={"clip": {0: "batch"}, **{n: {0: "batch"} for n in DETECTOR_OUTPUTS}},
        opset=opset,
        metadata={META_KIND: "person_detector", **(metadata or {})},
    )


# ---------------------------------------------------------------------------------------------
# Real clips and the command


def trained_metadata(trained: TrainedActionModel) -> dict[str, str]:
    """``metadata_props`` of a restored action model: classes, normalisation, clip, score mode."""
    cfg = trained.config
    return {
        META_CLASSES: json.dumps(list(trained.classes)),
        META_NORM: json.dumps(trained.norm.to_dict()),
        META_CLIP: json.dumps(dataclasses.asdict(trained.clip)),
        META_SCORE_MODE: cfg.model.head.mode,
        "thermact.model": cfg.model.name,
        "thermact.checkpoint": str(trained.path),
        "thermact.epoch": str(trained.epoch),
    }


def export_action_onnx(
    trained: TrainedActionModel,
    path: str | os.PathLike[str],
    frame_size: tuple[int, int] = (40, 60),
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export a restored action model with its metadata (:func:`trained_metadata`), which is all
    :class:`~thermact.inference.runners.ActionRunner` needs to run it."""
    meta = trained_metadata(trained)
    return export_action_model(trained.model, path, trained.clip.num_frames, frame_size, opset, meta)


def export_detector_onnx(
    trained: TrainedDetector,
    path: str | os.PathLike[str],
    frame_size: tuple[int, int] = (40, 60),
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export a restored person detector with the normalisation, clip and decoding settings
    :meth:`~thermact.inference.runners.DetectorRunner.from_onnx` reads."""
    clip = trained.clip
    ev = trained.config.eval
    meta = {
        META_DET_NORM: json.dumps(trained.norm.to_dict()),
        META_DET_CLIP: json.dumps({"window_s": clip.window_s, "num_frames": clip.num_frames}),
        META_DET_DECODE: json.dumps(
            {
                "stride": trained.model.stride,
                "top_k": ev.top_k,
                "nms_iou": ev.nms_iou,
                "heat_growth": None if ev.heat_growth is None else dataclasses.asdict(ev.heat_growth),
            }
        ),
    }
    return export_person_detector(trained.model, path, frame_size, opset, metadata=meta)
