"""Models behind NumPy calls, for inference on raw °C frames: the action model and the person
detector, each as a PyTorch model (restored from a checkpoint) or an exported ONNX model.

The pipeline (:mod:`thermact.inference.pipeline`) needs two things, written as protocols:
:class:`ActionModelLike` (``scores(clips, rois) -> [K, C]``) and :class:`DetectorLike`
(``detect(clips, score_threshold) -> [Detections]``). :class:`ActionRunner` and
:class:`DetectorRunner` implement them over either backend: they normalise the raw clips with the
model's statistics, run the network and post-process its output with
:mod:`thermact.models.postprocess` (class scores; decoded boxes). :func:`load_action_model`,
:func:`load_detector`, :func:`as_action_model` and :func:`as_detector` build them from a
checkpoint, an ``.onnx`` file or a restored model.

Shapes: clips ``[B, T, H, W]`` float32 °C (repaired, current frame last: the clip is always
causal here); RoIs ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)``, pixel XYXY.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, cast, runtime_checkable

import numpy as np
import numpy.typing as npt
import torch

from thermact.data.clips import ClipConfig
from thermact.data.transforms import NormStats, normalize
from thermact.engine.restore import TrainedModel
from thermact.engine.run import autocast_dtype
from thermact.errors import CheckpointError, ConfigError
from thermact.export.onnx import META_DET_CLIP, META_DET_DECODE, META_DET_NORM
from thermact.export.runtime import OnnxActionModel, OnnxPersonDetector
from thermact.models.action import ActionModel
from thermact.models.ensemble import ActionEnsemble
from thermact.models.heat_boxes import HeatGrowth, grow_person_boxes
from thermact.models.memory import FeatureBank
from thermact.models.person_detector import DetectorOutput, PersonDetectorNet
from thermact.models.postprocess import Detections, ScoreMode, decode, scores_from_logits
from thermact.models.tta import TTA, check_tta, with_tta
from thermact.ops.fuse import prepare_for_inference
from thermact.tasks.action import TrainedActionModel, restore_model
from thermact.tasks.person import TrainedDetector, restore_detector

__all__ = [
    "ActionModelLike",
    "ActionRunner",
    "ClipKeys",
    "DetectorLike",
    "DetectorRunner",
    "Precision",
    "as_action_model",
    "as_detector",
    "load_action_model",
    "load_detector",
]

FloatArray = npt.NDArray[np.float32]
Precision = Literal["fp32", "bf16"]
"""Arithmetic of the PyTorch runners: ``bf16`` runs the networks under bfloat16 autocast (about
twice as fast on CPUs with AMX or AVX512-BF16, slower on CPUs without; outputs agree with fp32 to
~1e-2, see the README)."""


@runtime_checkable
class ActionModelLike(Protocol):
    """What the pipeline needs of an action model.

    ``clip`` is the *causal* clip the model is fed (``window_s``, ``num_frames``);
    ``scores(clips, rois)`` takes raw clips ``[B, T, H, W]`` in °C (repaired) and RoIs ``[K, 5]``
    rows ``(batch_index, x1, y1, x2, y2)`` pixel XYXY, and returns class scores ``[K, C]``
    (softmax or sigmoid of the logits) as float32. :class:`ActionRunner` of a model with an
    interaction head also keeps a per-sensor memory (``uses_memory``; its ``scores`` then takes
    the :class:`ClipKeys` of the clips).
    """

    @property
    def classes(self) -> list[str]: ...

    @property
    def clip(self) -> ClipConfig: ...

    def scores(self, clips: FloatArray, rois: FloatArray) -> FloatArray: ...


@runtime_checkable
class DetectorLike(Protocol):
    """What the pipeline needs of a person detector.

    ``clip`` is its causal clip; ``detect(clips, score_threshold)`` takes raw clips
    ``[B, T, H, W]`` °C (current frame last) and returns one :class:`Detections` per clip
    (boxes pixel XYXY, scores, labels with 0 = person).
    """

    @property
    def clip(self) -> ClipConfig: ...

    def detect(self, clips: FloatArray, score_threshold: float) -> list[Detections]: ...


def _normalize_clips(clips: FloatArray, norm: NormStats) -> FloatArray:
    """``[B, T, H, W]`` °C → normalised ``[B, 1, T, H, W]`` float32, one clip at a time for clip medians."""
    if norm.reference == "clip_median":
        out = np.stack([normalize(c, norm) for c in clips])
    else:
        out = normalize(clips, norm)
    return np.ascontiguousarray(out[:, None], dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class ClipKeys:
    """Who and when the clips of one action call are, for action models with a memory (the IA
    head): ``sensor_ids`` and ``times_ms`` per clip (``B``), ``track_ids`` int64 ``[K]`` per RoI."""

    sensor_ids: Sequence[str]
    times_ms: Sequence[int]
    track_ids: npt.NDArray[np.int64]


class _TorchAction:
    """``ActionModel`` behind a NumPy call: ``(clip [B,1,T,H,W], rois [K,5]) -> logits [K,C]``.

    A model with an interaction head also keeps a memory (:class:`~thermact.models.memory.FeatureBank`
    keyed by sensor id and frame time): given :class:`ClipKeys`, each call reads the features of the
    same sensor's earlier classifications within the head's ``memory_window_s`` (the past only:
    live there is no future), then stores its own and forgets those older than the window, so the
    memory stays bounded per sensor.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: Precision = "fp32") -> None:
        self.model = model
        self.device = device
        self.amp_dtype = precision_dtype(precision, device)
        self.memory: FeatureBank | None = None
        if isinstance(model, ActionModel) and model.interaction is not None:
            self.memory = model.new_memory_bank()

    def __call__(self, clip: FloatArray, rois: FloatArray, keys: ClipKeys | None = None) -> FloatArray:
        x, r = torch.from_numpy(clip).to(self.device), torch.from_numpy(rois).to(self.device)
        amp = self.amp_dtype
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
            out = self.model(x, r) if self.memory is None or keys is None else self._with_memory(x, r, keys)
        return np.asarray(out.float().cpu().numpy(), dtype=np.float32)

    def _with_memory(self, clip: torch.Tensor, rois: torch.Tensor, keys: ClipKeys) -> torch.Tensor:
        assert self.memory is not None and isinstance(self.model, ActionModel)
        bank = self.memory
        index = rois[:, 0].to(torch.int64)
        tracks = torch.from_numpy(np.asarray(keys.track_ids, dtype=np.int64))
        pooled = self.model.person_features(clip, rois)
        context = bank.gather(keys.sensor_ids, keys.times_ms, index, tracks, device=self.device)
        logits = self.model.classify(pooled, index, context)
        bank.write(keys.sensor_ids, keys.times_ms, pooled, index, tracks)
        for sensor_id, t in zip(keys.sensor_ids, keys.times_ms, strict=True):
            bank.drop_older_than(sensor_id, int(t) - bank.window_ms)
        return logits


class ActionRunner:
    """An action model (PyTorch or onnxruntime) as an :class:`ActionModelLike`.

    Args:
        net: ``(clip [B, 1, T, H, W] normalised float32, rois [K, 5] float32) -> logits [K, C]``
            (the contract of ``ActionModel.forward`` and of ``OnnxActionModel.__call__``).
        classes: class names in logit order.
        norm: the normalisation the model was trained with.
        window_s, num_frames: the clip length (always sampled causally here).
        score_mode: ``"softmax"`` (single-label) or ``"sigmoid"`` (multi-label).
        name: what to call it in messages.
    """

    def __init__(
        self,
        net: Callable[[FloatArray, FloatArray], FloatArray],
        classes: Sequence[str],
        norm: NormStats,
        window_s: float,
        num_frames: int,
        score_mode: str = "softmax",
        name: str = "action model",
    ) -> None:
        if score_mode not in ("softmax", "sigmoid"):
            raise ValueError(f"score_mode must be 'softmax' or 'sigmoid', got {score_mode!r}")
        if norm.reference == "background":
            raise ConfigError(
                f"{name}: trained with data.normalize=background, whose per-pixel room background is "
                "estimated from a whole recording; the live pipeline has no such estimate yet (train "
                "with normalize=dataset or clip_median to run it live)"
            )
        self.score_mode: ScoreMode = "sigmoid" if score_mode == "sigmoid" else "softmax"
        self.net = net
        self._memory = net.memory if isinstance(net, _TorchAction) else None
        """The interaction head's memory (a PyTorch IA model only)."""
        self._classes = list(classes)
        self.norm = norm
        self._clip = ClipConfig(float(window_s), int(num_frames), "causal")
        self.name = name

    @property
    def classes(self) -> list[str]:
        return self._classes

    @property
    def clip(self) -> ClipConfig:
        return self._clip

    @property
    def uses_memory(self) -> bool:
        """True for a PyTorch model with an interaction head: :meth:`scores` then wants ``keys``."""
        return self._memory is not None

    @property
    def memory_size(self) -> int:
        """Keyframes held in the memory (0 without one)."""
        return 0 if self._memory is None else len(self._memory)

    def forget(self, sensor_id: str) -> None:
        """Drop what the model remembers of ``sensor_id`` (a no-op without a memory)."""
        if self._memory is not None:
            self._memory.drop_older_than(sensor_id, 1 << 62)

    def scores(self, clips: FloatArray, rois: FloatArray, keys: ClipKeys | None = None) -> FloatArray:
        """Class scores ``[K, C]``; ``keys`` feed the memory of an interaction head (ignored otherwise)."""
        r = np.ascontiguousarray(rois, dtype=np.float32).reshape(-1, 5)
        if r.shape[0] == 0:
            return np.zeros((0, len(self._classes)), dtype=np.float32)
        x = _normalize_clips(clips, self.norm)
        raw = self.net(x, r) if self._memory is None else cast(_TorchAction, self.net)(x, r, keys)
        logits = torch.from_numpy(np.asarray(raw, dtype=np.float64))
        return scores_from_logits(logits, self.score_mode).numpy().astype(np.float32)

    @classmethod
    def from_trained(
        cls,
        trained: TrainedActionModel,
        device: str | torch.device = "cpu",
        precision: Precision = "fp32",
        tta: TTA = "none",
    ) -> ActionRunner:
        """``tta="flips"``: scores averaged over the four flips of each clip (:mod:`thermact.models.tta`;
        a :class:`~thermact.errors.ConfigError` for a model with an interaction head)."""
        check_tta(trained.model, tta, str(trained.path))
        dev = torch.device(device)
        mode = trained.config.model.head.mode
        return cls(
            _TorchAction(with_tta(prepare_for_inference(trained.model, dev), tta, mode), dev, precision),
            trained.classes,
            trained.norm,
            trained.clip.window_s,
            trained.clip.num_frames,
            trained.config.model.head.mode,
            name=str(trained.path),
        )

    @classmethod
    def from_onnx(cls, model: OnnxActionModel) -> ActionRunner:
        """From an exported model carrying :func:`thermact.export.onnx.trained_metadata`."""
        classes, norm, clip = model.classes, model.norm, model.clip_config
        if classes is None or norm is None or clip is None:
            raise CheckpointError(
                f"{model.runner.path}: the ONNX action model lacks its classes / normalisation / clip "
                "metadata (export it with `thermact export` or export_action_onnx)"
            )
        return cls(
            model,
            classes,
            norm,
            clip.window_s,
            clip.num_frames,
            model.score_mode or "softmax",
            str(model.runner.path),
        )


def precision_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a runner ``precision`` (``fp32``: none; ``bf16``: bfloat16)."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    return autocast_dtype("bf16" if precision == "bf16" else "none", device)


class _TorchDetector:
    def __init__(self, model: torch.nn.Module, device: torch.device, precision: Precision = "fp32") -> None:
        self.model = model
        self.device = device
        self.amp_dtype = precision_dtype(precision, device)

    def __call__(self, clip: FloatArray) -> DetectorOutput:
        amp = self.amp_dtype
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
            out: DetectorOutput = self.model(torch.from_numpy(clip).to(self.device))
        return out


class DetectorRunner:
    """A person detector (PyTorch or onnxruntime) as a :class:`DetectorLike`.

    Args:
        net: ``clip [B, 1, T, H, W] normalised float32 -> DetectorOutput`` (the contract of
            ``PersonDetectorNet.forward`` and ``OnnxPersonDetector.__call__``).
        norm: the detector's normalisation.
        window_s, num_frames: its causal clip.
        stride: input pixels per heatmap cell.
        top_k, nms_iou: decoding parameters (:func:`thermact.models.postprocess.decode`).
        heat_growth: person boxes grown to the body heat of the current frame
            (:func:`thermact.models.heat_boxes.grow_person_boxes`); None: boxes as decoded.
    """

    def __init__(
        self,
        net: Callable[[FloatArray], DetectorOutput],
        norm: NormStats,
        window_s: float,
        num_frames: int,
        stride: int,
        top_k: int = 20,
        nms_iou: float = 0.5,
        name: str = "person detector",
        heat_growth: HeatGrowth | None = None,
    ) -> None:
        self.net = net
        self.norm = norm
        self._clip = ClipConfig(float(window_s), int(num_frames), "causal")
        self.stride = int(stride)
        self.top_k = int(top_k)
        self.nms_iou = float(nms_iou)
        self.name = name
        self.heat_growth = heat_growth

    @property
    def clip(self) -> ClipConfig:
        return self._clip

    def detect(self, clips: FloatArray, score_threshold: float = 0.3) -> list[Detections]:
        """Detections of the last frame of each raw clip ``[B, T, H, W]`` °C (see :class:`DetectorLike`)."""
        if clips.ndim != 4 or clips.shape[1] != self._clip.num_frames:
            raise ValueError(
                f"clips must be [B, {self._clip.num_frames}, H, W] in °C, got {list(clips.shape)}"
            )
        if clips.shape[0] == 0:
            return []
        out = self.net(_normalize_clips(clips, self.norm))
        size = (int(clips.shape[-2]), int(clips.shape[-1]))
        dets = decode(out, self.stride, size, self.top_k, score_threshold, self.nms_iou)
        if self.heat_growth is None:
            return dets
        return grow_person_boxes(torch.from_numpy(np.array(clips[:, -1])), dets, self.heat_growth)

    @classmethod
    def from_trained(
        cls,
        trained: TrainedDetector,
        device: str | torch.device = "cpu",
        top_k: int | None = None,
        nms_iou: float | None = None,
        precision: Precision = "fp32",
    ) -> DetectorRunner:
        dev = torch.device(device)
        clip = trained.clip
        ev = trained.config.eval
        return cls(
            _TorchDetector(prepare_for_inference(trained.model, dev), dev, precision),
            trained.norm,
            clip.window_s,
            clip.num_frames,
            trained.model.stride,
            ev.top_k if top_k is None else top_k,
            ev.nms_iou if nms_iou is None else nms_iou,
            name=str(trained.path),
            heat_growth=ev.heat_growth,
        )

    @classmethod
    def from_onnx(
        cls,
        model: OnnxPersonDetector,
        norm: NormStats | None = None,
        window_s: float | None = None,
        stride: int | None = None,
        top_k: int | None = None,
        nms_iou: float | None = None,
    ) -> DetectorRunner:
        """From an exported detector; settings not given come from the metadata that
        :func:`export_detector_onnx` stores (a :class:`CheckpointError` when absent)."""
        path = model.runner.path
        meta = model.runner.metadata

        def read(key: str) -> Any:
            if key not in meta:
                raise CheckpointError(
                    f"{path}: the ONNX person detector lacks the {key!r} metadata (export it with "
                    "export_detector_onnx, or pass the settings explicitly)"
                )
            try:
                return json.loads(meta[key])
            except json.JSONDecodeError as err:
                raise CheckpointError(f"{path}: metadata {key!r} is not valid JSON: {err}") from None

        if norm is None:
            norm = NormStats.from_dict(read(META_DET_NORM), where=f"{path}: {META_DET_NORM}")
        if window_s is None:
            window_s = float(read(META_DET_CLIP)["window_s"])
        decode_meta: dict[str, Any] = read(META_DET_DECODE) if None in (stride, top_k, nms_iou) else {}
        return cls(
            model,
            norm,
            window_s,
            model.clip_shape[1],
            int(stride if stride is not None else decode_meta["stride"]),
            int(top_k if top_k is not None else decode_meta["top_k"]),
            float(nms_iou if nms_iou is not None else decode_meta["nms_iou"]),
            name=str(path),
            heat_growth=_heat_growth_of(decode_meta.get("heat_growth"), path),
        )


def _heat_growth_of(meta: Any, path: Path) -> HeatGrowth | None:
    """The ``heat_growth`` entry of an exported detector's decoding metadata (absent: off, as
    exported before it existed)."""
    if meta is None:
        return None
    try:
        return HeatGrowth(**meta)
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"{path}: metadata {META_DET_DECODE!r} has a bad 'heat_growth': {err}"
        ) from None


def load_action_model(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    threads: int = 1,
    precision: Precision = "fp32",
    tta: TTA = "none",
) -> ActionRunner:
    """An action model from a checkpoint (``.pt``) or an exported ``.onnx`` file (``precision``
    and ``tta`` apply to checkpoints; an ONNX model runs as exported).

    Raises:
        CheckpointError: missing or unreadable file, or a person-detector checkpoint.
        ConfigError: ``tta`` other than none for an ONNX file or an interaction model.
    """
    p = Path(path)
    if p.suffix == ".onnx":
        if tta != "none":
            raise ConfigError(f"{p}: tta={tta} needs a PyTorch checkpoint (an ONNX model runs as exported)")
        return ActionRunner.from_onnx(OnnxActionModel(p, intra_op_threads=threads))
    return ActionRunner.from_trained(restore_model(p, device), device, precision, tta)


def load_detector(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    threads: int = 1,
    precision: Precision = "fp32",
    heat_growth: bool = True,
) -> DetectorRunner:
    """A person detector from a detector checkpoint (``.pt``) or an ``.onnx`` file with metadata
    (``precision`` applies to checkpoints). ``heat_growth=False``: its person boxes as decoded, not
    grown to the body heat as its config says (:mod:`thermact.models.heat_boxes`).

    Raises:
        CheckpointError: missing or unreadable file, or an action-model checkpoint.
    """
    p = Path(path)
    if p.suffix == ".onnx":
        runner = DetectorRunner.from_onnx(OnnxPersonDetector(p, intra_op_threads=threads))
    else:
        runner = DetectorRunner.from_trained(restore_detector(p, device), device, precision=precision)
    if not heat_growth:
        runner.heat_growth = None
    return runner


def as_action_model(
    model: Any, device: str | torch.device = "cpu", precision: Precision = "fp32", tta: TTA = "none"
) -> ActionModelLike:
    """Accept an :class:`ActionModelLike`, a ``TrainedModel``, an ``OnnxActionModel`` or a path
    (``precision`` and ``tta``: for the PyTorch models built here; a model already built runs as
    it is, so ``tta`` other than none is refused for it)."""
    if isinstance(model, (str, os.PathLike)):
        return load_action_model(model, device, precision=precision, tta=tta)
    if isinstance(model, TrainedModel) and isinstance(model.model, (ActionModel, ActionEnsemble)):
        return ActionRunner.from_trained(model, device, precision, tta)
    if tta != "none":
        raise ConfigError(f"tta={tta} needs a checkpoint or a restored model, not a {type(model).__name__}")
    if isinstance(model, OnnxActionModel):
        return ActionRunner.from_onnx(model)
    if isinstance(model, ActionModelLike):
        return model
    raise TypeError(f"not an action model: {type(model).__name__}")


def as_detector(
    model: Any, device: str | torch.device = "cpu", precision: Precision = "fp32"
) -> DetectorLike:
    """Accept a :class:`DetectorLike`, a restored detector (``TrainedModel`` of a
    ``PersonDetectorNet``), an ``OnnxPersonDetector`` (with metadata) or a path (``precision``: for
    PyTorch models built here)."""
    if isinstance(model, (str, os.PathLike)):
        return load_detector(model, device, precision=precision)
    if isinstance(model, TrainedModel) and isinstance(model.model, PersonDetectorNet):
        return DetectorRunner.from_trained(model, device, precision=precision)
    if isinstance(model, OnnxPersonDetector):
        return DetectorRunner.from_onnx(model)
    if isinstance(model, DetectorLike):
        return model
    raise TypeError(f"not a person detector: {type(model).__name__}")
