"""onnxruntime runners of exported models, with the call contracts of the PyTorch models.

:class:`OnnxRunner` runs any exported graph (CPU provider, configurable intra-op threads);
:class:`OnnxActionModel` is ``__call__(clip, rois) -> logits`` with NumPy arrays, the contract of
``ActionModel.forward`` (and reads the metadata :func:`thermact.export.onnx.trained_metadata`
stores); :class:`OnnxPersonDetector` is ``__call__(clip) -> DetectorOutput``, the contract of
``PersonDetectorNet.forward``. So :mod:`thermact.inference.runners` runs either backend.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from thermact.data.clips import ClipConfig
from thermact.data.transforms import NormStats
from thermact.errors import CheckpointError
from thermact.export.onnx import (
    DETECTOR_OUTPUTS,
    META_CLASSES,
    META_CLIP,
    META_NORM,
    META_SCORE_MODE,
)
from thermact.models.person_detector import DetectorOutput

__all__ = ["OnnxActionModel", "OnnxPersonDetector", "OnnxRunner"]

FloatArray = npt.NDArray[np.float32]


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
