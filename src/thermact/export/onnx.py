"""ONNX export of thermact models, onnxruntime runners and a torch-vs-onnxruntime check.

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

Runners: :class:`OnnxRunner` (any exported graph; CPU provider, configurable intra-op threads),
:class:`OnnxActionModel` (``__call__(clip, rois) -> logits`` with NumPy arrays, the contract of
``ActionModel.forward``, so a streaming predictor can use either) and
:class:`OnnxPersonDetector` (``__call__(clip) -> DetectorOutput``, the contract of
``PersonDetectorNet.forward``). :func:`verify_onnx` compares torch and onnxruntime on real clips
and returns a :class:`VerifyReport`. A model exported from a checkpoint carries its class names,
normalisation statistics, clip settings and score mode as ONNX ``metadata_props``
(:func:`trained_metadata`), so :class:`OnnxActionModel` alone is enough to run it on a stream.

``thermact export`` (:mod:`thermact.commands.export`) restores a checkpoint, exports it, verifies
it on real clips and prints the differences.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from thermact.data.clips import ClipConfig
from thermact.data.transforms import NormStats
from thermact.errors import CheckpointError, ConfigError
from thermact.io import atomic_open
from thermact.models.action import ActionModel
from thermact.models.person_detector import DetectorOutput, PersonDetectorNet
from thermact.tasks.action import TrainedActionModel
from thermact.tasks.person import TrainedDetector

__all__ = [
    "DEFAULT_OPSET",
    "OnnxActionModel",
    "OnnxPersonDetector",
    "OnnxRunner",
    "VerifyReport",
    "export_action_model",
    "export_action_onnx",
    "export_detector_onnx",
    "export_module",
    "export_person_detector",
    "trained_metadata",
    "verify_onnx",
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


def _training_modes(module: nn.Module) -> list[tuple[nn.Module, bool]]:
    """The training flag of every submodule (``module.train(flag)`` would overwrite them all)."""
    return [(m, m.training) for m in module.modules()]


def _restore_modes(modes: Sequence[tuple[nn.Module, bool]]) -> None:
    for m, flag in modes:
        m.training = flag


def check_out_path(path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    if out.suffix != ".onnx":
        raise ConfigError(f"output path {str(out)!r} must end in .onnx")
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
    modes = _training_modes(module)
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
        _restore_modes(modes)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    onnx.checker.check_model(proto, full_check=True)
    with atomic_open(out, "wb") as handle:
        handle.write(proto.SerializeToString())
    return out


def export_action_model(
    model: ActionModel,
    path: str | os.PathLike[str],
    num_frames: int,
    frame_size: tuple[int, int] = (40, 60),
    opset: int = DEFAULT_OPSET,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Export an action model to ONNX: ``(clip [B, 1, T, H, W], rois [K, 5]) -> logits [K, C]``.

    Args:
        model: the detector (exported in eval mode; the training flags of its modules are restored).
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
# onnxruntime


class OnnxRunner:
    """An onnxruntime CPU session of an exported model.

    Args:
        path: the ``.onnx`` file.
        intra_op_threads: threads of one operator (``0``: onnxruntime's default, one per core).
        inter_op_threads: threads running independent operators (``0``: default).

    Raises:
        CheckpointError: the file is missing or not a loadable ONNX model.
    """

    def __init__(
        self, path: str | os.PathLike[str], intra_op_threads: int = 1, inter_op_threads: int = 1
    ) -> None:
        ort: Any = importlib.import_module("onnxruntime")  # untyped package: used as Any

        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: ONNX model not found")
        if intra_op_threads < 0 or inter_op_threads < 0:
            raise ValueError(f"thread counts must be >= 0, got {intra_op_threads}, {inter_op_threads}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(intra_op_threads)
        opts.inter_op_num_threads = int(inter_op_threads)
        opts.log_severity_level = 3
        try:
            self.session: Any = ort.InferenceSession(
                str(self.path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own exception types for bad files
            raise CheckpointError(f"{self.path}: cannot be loaded by onnxruntime: {err}") from err
        self.input_names: tuple[str, ...] = tuple(i.name for i in self.session.get_inputs())
        self.output_names: tuple[str, ...] = tuple(o.name for o in self.session.get_outputs())

    @property
    def metadata(self) -> dict[str, str]:
        """The model's ``metadata_props`` (key → value)."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def input_shape(self, name: str) -> list[int | str | None]:
        """Declared shape of input ``name`` (ints for fixed axes, names for dynamic ones)."""
        for i in self.session.get_inputs():
            if i.name == name:
                return list(i.shape)
        raise KeyError(f"{self.path}: no input named {name!r} (inputs: {self.input_names})")

    def output_shape(self, name: str) -> list[int | str | None]:
        """Declared shape of output ``name``."""
        for o in self.session.get_outputs():
            if o.name == name:
                return list(o.shape)
        raise KeyError(f"{self.path}: no output named {name!r} (outputs: {self.output_names})")

    def run(self, feeds: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        """Run with inputs by name; returns every output by name."""
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise ValueError(f"{self.path}: missing inputs {missing} (model inputs: {self.input_names})")
        outs = self.session.run(list(self.output_names), {n: feeds[n] for n in self.input_names})
        return {n: np.asarray(o) for n, o in zip(self.output_names, outs, strict=True)}

    def __call__(self, *inputs: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
        """Run with inputs in the model's input order; returns the outputs in its output order."""
        if len(inputs) != len(self.input_names):
            raise ValueError(
                f"{self.path}: expected {len(self.input_names)} inputs {self.input_names}, got {len(inputs)}"
            )
        result = self.run(dict(zip(self.input_names, inputs, strict=True)))
        return [result[n] for n in self.output_names]


class OnnxActionModel:
    """An exported action model behind the ``ActionModel.forward`` contract, on NumPy arrays.

    ``model(clip, rois)`` with ``clip`` ``float32 [B, 1, T, H, W]`` (normalised like the training
    clips) and ``rois`` ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` returns logits
    ``float32 [K, C]``. Inputs are validated (the graph itself cannot raise): ``T``, ``H``, ``W``
    must be the exported ones, boxes finite, batch indices integers in ``[0, B - 1]``.

    Args:
        path: the ``.onnx`` file written by :func:`export_action_model`.
        intra_op_threads: onnxruntime intra-op threads (``0``: one per core).
    """

    def __init__(self, path: str | os.PathLike[str], intra_op_threads: int = 1) -> None:
        self.runner = OnnxRunner(path, intra_op_threads=intra_op_threads)
        if self.runner.input_names != ("clip", "rois") or self.runner.output_names != ("logits",):
            raise CheckpointError(
                f"{self.runner.path}: not an exported action model (inputs {self.runner.input_names}, "
                f"outputs {self.runner.output_names}; expected ('clip', 'rois') -> ('logits',))"
            )
        shape = self.runner.input_shape("clip")
        out_shape = self.runner.output_shape("logits")
        fixed = [s for s in shape[1:] if isinstance(s, int)]
        classes = out_shape[1] if len(out_shape) == 2 else None
        if len(shape) != 5 or len(fixed) != 4 or not isinstance(classes, int):
            raise CheckpointError(
                f"{self.runner.path}: unexpected clip input shape {shape} / logits {out_shape}"
            )
        self.clip_shape: tuple[int, int, int, int] = (fixed[0], fixed[1], fixed[2], fixed[3])
        self.num_classes: int = classes

    @property
    def num_frames(self) -> int:
        return self.clip_shape[1]

    def _meta_json(self, key: str) -> Any:
        raw = self.runner.metadata.get(key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{self.runner.path}: metadata {key!r} is not valid JSON: {err}") from None

    @property
    def classes(self) -> list[str] | None:
        """Class names in logit order (None when exported without :func:`trained_metadata`)."""
        value = self._meta_json(META_CLASSES)
        return None if value is None else [str(v) for v in value]

    @property
    def norm(self) -> NormStats | None:
        """Normalisation statistics the clips must be given with (None when not stored)."""
        from thermact.data.transforms import NormStats

        value = self._meta_json(META_NORM)
        return None if value is None else NormStats.from_dict(value, where=f"{self.runner.path}: {META_NORM}")

    @property
    def clip_config(self) -> ClipConfig | None:
        """How clips are sampled for this model (None when not stored)."""
        from thermact.data.clips import ClipConfig

        value = self._meta_json(META_CLIP)
        if value is None:
            return None
        try:
            return ClipConfig(float(value["window_s"]), int(value["num_frames"]), value["keyframe_position"])
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{self.runner.path}: metadata {META_CLIP!r} is invalid: {err}") from None

    @property
    def score_mode(self) -> str | None:
        """``"softmax"`` or ``"sigmoid"``: how logits become scores (None when not stored)."""
        return self.runner.metadata.get(META_SCORE_MODE)

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.clip_shape[2], self.clip_shape[3]

    def __call__(self, clip: npt.ArrayLike, rois: npt.ArrayLike) -> FloatArray:
        """Logits ``[K, num_classes]`` (see the class docstring)."""
        c = np.ascontiguousarray(clip, dtype=np.float32)
        r = np.ascontiguousarray(rois, dtype=np.float32)
        if c.ndim != 5 or tuple(c.shape[1:]) != self.clip_shape:
            raise ValueError(
                f"clip must be [B, {', '.join(map(str, self.clip_shape))}] (as exported), got {list(c.shape)}"
            )
        if r.ndim != 2 or r.shape[1] != 5:
            raise ValueError(f"rois must be [K, 5] (batch_index, x1, y1, x2, y2), got {list(r.shape)}")
        if r.shape[0] == 0:
            return np.zeros((0, self.num_classes), dtype=np.float32)
        if not np.isfinite(r).all():
            raise ValueError("rois contain non-finite values")
        b = r[:, 0]
        if (b < 0).any() or (b > c.shape[0] - 1).any() or (b != np.round(b)).any():
            raise ValueError(
                f"rois batch indices must be integers in [0, {c.shape[0] - 1}], got range [{b.min()}, {b.max()}]"
            )
        (logits,) = self.runner(c, r)
        return np.asarray(logits, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Verification


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """Torch vs onnxruntime on the same inputs.

    Attributes:
        max_abs_diff: largest ``|torch - onnxruntime|`` over all logits.
        mean_abs_diff: mean of ``|torch - onnxruntime|``.
        max_rel_diff: largest ``|diff| / |torch|`` over the logits with ``|torch| > 1e-3`` (0 when
            there are none).
        max_abs_logit: largest ``|torch|`` logit (the scale the differences compare to).
        argmax_agreement: fraction of boxes whose top class is the same.
        num_clips: clips compared.
        num_boxes: boxes (logit rows) compared.
        tolerance: the tolerance :attr:`ok` was judged with (see :attr:`threshold`).
        torch_ms: mean torch forward time per call (ms).
        onnx_ms: mean onnxruntime time per call (ms).
    """

    max_abs_diff: float
    mean_abs_diff: float
    max_rel_diff: float
    max_abs_logit: float
    argmax_agreement: float
    num_clips: int
    num_boxes: int
    tolerance: float
    torch_ms: float
    onnx_ms: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.threshold

    @property
    def threshold(self) -> float:
        """``tolerance * max(1, max_abs_logit)``: absolute for logits within ±1, else relative to their
        scale (float32 rounding grows with the logits; SlowFast's can reach ~100)."""
        return self.tolerance * max(1.0, self.max_abs_logit)

    def to_dict(self) -> dict[str, float | int | bool]:
        d: dict[str, float | int | bool] = dataclasses.asdict(self)
        d["threshold"] = self.threshold
        d["ok"] = self.ok
        return d

    def summary(self) -> str:
        return (
            f"onnxruntime vs torch on {self.num_clips} clip(s), {self.num_boxes} box(es): "
            f"max |diff| {self.max_abs_diff:.3g}, mean {self.mean_abs_diff:.3g}, max rel {self.max_rel_diff:.3g} "
            f"(logits up to {self.max_abs_logit:.3g}), top-1 agreement {self.argmax_agreement:.1%}, "
            f"{'OK' if self.ok else 'FAILED'} at tolerance {self.tolerance:g} (threshold {self.threshold:.3g})"
        )


def _as_outputs(out: Any) -> list[Tensor]:
    """A model's output as a list of tensors (a tensor, a tuple, or a dataclass of tensors)."""
    if isinstance(out, Tensor):
        return [out]
    if dataclasses.is_dataclass(out):
        return [getattr(out, f.name) for f in dataclasses.fields(out)]
    return list(out)


def verify_onnx(
    model: nn.Module,
    onnx_model: str | os.PathLike[str] | OnnxRunner | OnnxActionModel,
    inputs: Sequence[tuple[Tensor | npt.NDArray[np.float32], ...]],
    tolerance: float = 1e-4,
    intra_op_threads: int = 1,
) -> VerifyReport:
    """Run ``model`` (eval mode, no grad) and the exported graph on the same inputs; compare outputs.

    Works for any exported model: the action model (``(clip, rois) -> logits``; the top-1 agreement
    is per box) and the person detector (``clip -> heatmap, size, offset``; the agreement is the
    strongest heatmap peak per clip). All outputs are compared element-wise.

    Args:
        model: the torch model that was exported.
        onnx_model: its ``.onnx`` file, or an already open runner.
        inputs: batches, each the tuple of the model's inputs (one call per batch).
        tolerance: max abs difference per unit of output scale accepted by :attr:`VerifyReport.ok`.
        intra_op_threads: onnxruntime threads (when a path is given).
    """
    if isinstance(onnx_model, OnnxActionModel):
        onnx_model = onnx_model.runner
    runner = onnx_model if isinstance(onnx_model, OnnxRunner) else OnnxRunner(onnx_model, intra_op_threads)
    if not inputs:
        raise ValueError("verify_onnx needs at least one batch of inputs")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    modes = _training_modes(model)
    model.eval()
    ref: list[list[npt.NDArray[Any]]] = []
    got: list[list[npt.NDArray[Any]]] = []
    torch_s = onnx_s = 0.0
    try:
        with torch.no_grad():
            for batch in inputs:
                arrays = [
                    np.ascontiguousarray(
                        x.detach().cpu().numpy() if isinstance(x, Tensor) else x, dtype=np.float32
                    )
                    for x in batch
                ]
                t0 = time.perf_counter()
                out = _as_outputs(model(*(torch.from_numpy(x).to(device) for x in arrays)))
                t1 = time.perf_counter()
                got.append(runner(*arrays))
                onnx_s += time.perf_counter() - t1
                torch_s += t1 - t0
                ref.append([o.float().cpu().numpy() for o in out])
    finally:
        _restore_modes(modes)
    return _compare(ref, got, int(sum(int(np.shape(b[0])[0]) for b in inputs)), tolerance, torch_s, onnx_s)


def _compare(
    ref: list[list[npt.NDArray[Any]]],
    got: list[list[npt.NDArray[Any]]],
    num_clips: int,
    tolerance: float,
    torch_s: float,
    onnx_s: float,
) -> VerifyReport:
    first_ref = np.concatenate([r[0].reshape(r[0].shape[0], -1) for r in ref]).astype(np.float64)
    first_got = np.concatenate([g[0].reshape(g[0].shape[0], -1) for g in got]).astype(np.float64)
    if first_ref.shape != first_got.shape:
        raise AssertionError(f"torch output {first_ref.shape} but onnxruntime output {first_got.shape}")
    a = np.concatenate([o.ravel() for r in ref for o in r]).astype(np.float64)
    b = np.concatenate([o.ravel() for g in got for o in g]).astype(np.float64)
    diff = np.abs(a - b)
    big = np.abs(a) > 1e-3
    rows = first_ref.shape[0]
    return VerifyReport(
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        max_rel_diff=float((diff[big] / np.abs(a[big])).max()) if big.any() else 0.0,
        max_abs_logit=float(np.abs(a).max()) if a.size else 0.0,
        argmax_agreement=float((first_ref.argmax(1) == first_got.argmax(1)).mean()) if rows else 1.0,
        num_clips=num_clips,
        num_boxes=rows,
        tolerance=float(tolerance),
        torch_ms=1000.0 * torch_s / len(ref),
        onnx_ms=1000.0 * onnx_s / len(ref),
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


class OnnxPersonDetector:
    """An exported person detector behind ``PersonDetectorNet.forward``: ``clip -> DetectorOutput``.

    Accepts a NumPy array or tensor ``[B, 1, T, H, W]`` and returns a
    :class:`~thermact.models.person_detector.DetectorOutput` of CPU tensors, so
    :func:`thermact.models.postprocess.decode` works on it unchanged.
    """

    def __init__(self, path: str | os.PathLike[str], intra_op_threads: int = 1) -> None:
        self.runner = OnnxRunner(path, intra_op_threads=intra_op_threads)
        if self.runner.input_names != ("clip",) or self.runner.output_names != DETECTOR_OUTPUTS:
            raise CheckpointError(
                f"{self.runner.path}: not an exported person detector (inputs {self.runner.input_names}, "
                f"outputs {self.runner.output_names})"
            )
        shape = self.runner.input_shape("clip")
        self.clip_shape: tuple[int, ...] = tuple(int(s) if isinstance(s, int) else -1 for s in shape[1:])

    def __call__(self, clip: npt.ArrayLike | Tensor) -> DetectorOutput:
        from thermact.models.person_detector import DetectorOutput

        c = clip.detach().cpu().numpy() if isinstance(clip, Tensor) else clip
        arr = np.ascontiguousarray(c, dtype=np.float32)
        if arr.ndim != 5 or tuple(arr.shape[1:]) != self.clip_shape:
            raise ValueError(
                f"clip must be [B, {', '.join(map(str, self.clip_shape))}] (as exported), got {list(arr.shape)}"
            )
        heatmap, size, offset = (torch.from_numpy(o) for o in self.runner(arr))
        return DetectorOutput(heatmap, size, offset)


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
            {"stride": trained.model.stride, "top_k": ev.top_k, "nms_iou": ev.nms_iou}
        ),
    }
    return export_person_detector(trained.model, path, frame_size, opset, metadata=meta)
