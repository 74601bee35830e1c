"""Detection, tracking and action classification of frame streams: the one implementation behind
``thermact detect`` (offline, whole recordings) and ``thermact stream`` / :class:`StreamingPredictor`
(live, many sensors).

Per sensor, every accepted frame goes through:

1. **ingest**: the frame (``[H, W]`` °C) must be newer than the sensor's last frame (duplicates
   and frames out of order are dropped and counted). Invalid pixels (the ``-273.2`` °C sentinel,
   NaN, ±inf, impossible values: :func:`thermact.data.recording.invalid_mask`) are repaired
   *causally*, like :func:`thermact.data.recording.repair_invalid_pixels` restricted to the past:
   the same pixel's last valid value if it was seen at most ``temporal_radius`` frames ago, else
   the median of the valid pixels around it (growing neighbourhood). A frame without any valid
   pixel is dropped (counted). The repaired frame goes into the sensor's :class:`FrameRing`, a
   fixed-capacity ring buffer, so memory stays flat however long a sensor runs.
2. **detection**: the detector's causal clip (``T`` frames over ``window_s`` ending at this frame,
   nearest buffered frame per grid point with edge replication,
   :func:`thermact.data.clips.nearest_indices`), person boxes above ``score_threshold``.
3. **tracking**: :class:`thermact.tracking.Tracker` turns the boxes into stable track ids.
4. **classification**: each confirmed track matched in this frame is *due* when it was never
   classified or at least ``cadence_s`` (less half the last frame interval, so the mean rate is
   at least ``1 / cadence_s``) has passed since its last classification. A due track gets the
   action model's clip of ``window_s`` / ``num_frames`` in the **causal** position: the clip
   *ends at the current frame*. Live use has no future frames, and offline runs use the same
   position so that ``thermact detect`` and a live stream give the same answers. (An action
   model trained on centred clips, ``data.keyframe_position: center``, sees the person's last
   2.7 s instead of the 1.35 s either side it was trained on: expect some loss of accuracy;
   train with ``data.keyframe_position=causal`` for live use.)

Batching: :meth:`InferencePipeline.process` takes frames of many sensors; each *round* holds at
most one frame per sensor and makes **one** detector call for all of its frames and **one** action
call for all of its due tracks (several frames of one sensor in one call are spread over
successive rounds, in order). Per-sensor results do not depend on what else is in the batch.

Models are used through two small protocols, :class:`ActionModelLike` and
:class:`DetectorLike`; :class:`ActionRunner` and :class:`DetectorRunner` implement them for both
the PyTorch models (:class:`~thermact.engine.restore.TrainedModel`,
:class:`~thermact.detection.restore.TrainedDetector`) and the onnxruntime runners
(:class:`~thermact.export.onnx.OnnxActionModel`, :class:`~thermact.export.onnx.OnnxPersonDetector`).

Boxes are pixel XYXY over the ``H x W`` frame; times are integer milliseconds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast, runtime_checkable

import numpy as np
import numpy.typing as npt
import torch

from thermact.data.clips import ClipConfig, clip_times, nearest_indices
from thermact.data.recording import invalid_mask, repair_invalid_pixels
from thermact.data.transforms import NormStats, normalize
from thermact.detection.decode import PERSON, Detections, decode
from thermact.errors import CheckpointError, DataError
from thermact.export.onnx import (
    META_DET_CLIP,
    META_DET_DECODE,
    META_DET_NORM,
    OnnxActionModel,
    OnnxPersonDetector,
)
from thermact.models.detector import ActionDetector
from thermact.models.memory import FeatureBank
from thermact.ops.fuse import fold_batchnorm
from thermact.tracking.tracker import Tracker, TrackerConfig

if TYPE_CHECKING:
    from thermact.detection.model import DetectorOutput
    from thermact.detection.restore import TrainedDetector
    from thermact.engine.restore import TrainedModel

__all__ = [
    "ActionModelLike",
    "ActionRunner",
    "ClipKeys",
    "DetectorLike",
    "DetectorRunner",
    "FrameInput",
    "FrameResult",
    "FrameRing",
    "InferencePipeline",
    "MemoryActionModel",
    "PersonResult",
    "Precision",
    "SensorCounters",
    "SensorState",
    "StageTimes",
    "as_action_model",
    "as_detector",
    "buffer_capacity",
    "counters_dict",
    "load_action_model",
    "load_detector",
    "raw_frames",
    "repair_frame",
    "results_by_mode",
]

FloatArray = npt.NDArray[np.float32]
Precision = Literal["fp32", "bf16"]
"""Arithmetic of the PyTorch runners: ``bf16`` runs the networks under bfloat16 autocast (about
twice as fast on CPUs with AMX or AVX512-BF16, slower on CPUs without; outputs agree with fp32 to
~1e-2, see the README)."""


# ---------------------------------------------------------------------------------------------
# Model protocols and runners


@runtime_checkable
class ActionModelLike(Protocol):
    """What the pipeline needs of an action model.

    ``clip`` is the *causal* clip the model is fed (``window_s``, ``num_frames``);
    ``scores(clips, rois)`` takes raw clips ``[B, T, H, W]`` in °C (repaired) and RoIs ``[K, 5]``
    rows ``(batch_index, x1, y1, x2, y2)`` pixel XYXY, and returns class scores ``[K, C]``
    (softmax or sigmoid of the logits) as float32.
    """

    @property
    def classes(self) -> list[str]: ...

    @property
    def clip(self) -> ClipConfig: ...

    def scores(self, clips: FloatArray, rois: FloatArray) -> FloatArray: ...


class MemoryActionModel(ActionModelLike, Protocol):
    """An :class:`ActionModelLike` with a memory (an interaction head): ``uses_memory`` is True,
    ``scores`` also takes the :class:`ClipKeys` of the clips, ``memory_size`` counts the keyframes
    held and ``forget(sensor_id)`` drops a sensor's memory (:class:`ActionRunner` of a PyTorch IA
    model)."""

    @property
    def uses_memory(self) -> bool: ...

    @property
    def memory_size(self) -> int: ...

    def scores(self, clips: FloatArray, rois: FloatArray, keys: ClipKeys | None = None) -> FloatArray: ...

    def forget(self, sensor_id: str) -> None: ...


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


def prepare_for_inference(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """An eval-mode copy of ``model`` on ``device``, made faster for inference: BatchNorms folded
    into the convolutions before them (:func:`thermact.ops.fuse.fold_batchnorm`) and, on a CPU,
    channels-last weights (``channels_last`` for 2D convs, ``channels_last_3d`` for 3D convs), which
    oneDNN runs 15-30 % faster for these small-channel networks. Same values up to float rounding
    (~1e-6); ``model`` itself is not changed."""
    fused, _ = fold_batchnorm(model)
    fused = fused.to(device)
    if device.type == "cpu":
        for m in fused.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)):
                fmt = torch.channels_last if isinstance(m, torch.nn.Conv2d) else torch.channels_last_3d
                m.weight = torch.nn.Parameter(m.weight.detach().contiguous(memory_format=fmt))
    return fused


@dataclasses.dataclass(frozen=True)
class ClipKeys:
    """Who and when the clips of one action call are, for action models with a memory (the IA
    head): ``sensor_ids`` and ``times_ms`` per clip (``B``), ``track_ids`` int64 ``[K]`` per RoI."""

    sensor_ids: Sequence[str]
    times_ms: Sequence[int]
    track_ids: npt.NDArray[np.int64]


class _TorchAction:
    """``ActionDetector`` behind a NumPy call: ``(clip [B,1,T,H,W], rois [K,5]) -> logits [K,C]``.

    A model with an interaction head also keeps a memory (:class:`~thermact.models.memory.FeatureBank`
    keyed by sensor id and frame time): given :class:`ClipKeys`, each call reads the features of the
    same sensor's earlier classifications within the head's ``memory_window_s`` (the past only:
    live there is no future), then stores its own and forgets those older than the window, so the
    memory stays bounded per sensor.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: Precision = "fp32") -> None:
        self.model = model
        self.device = device
        self.amp_dtype = _amp_dtype(precision)
        self.memory: FeatureBank | None = None
        if isinstance(model, ActionDetector) and model.interaction is not None:
            self.memory = model.new_memory_bank()

    def __call__(self, clip: FloatArray, rois: FloatArray, keys: ClipKeys | None = None) -> FloatArray:
        x, r = torch.from_numpy(clip).to(self.device), torch.from_numpy(rois).to(self.device)
        amp = self.amp_dtype
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
            out = self.model(x, r) if self.memory is None or keys is None else self._with_memory(x, r, keys)
        return np.asarray(out.float().cpu().numpy(), dtype=np.float32)

    def _with_memory(self, clip: torch.Tensor, rois: torch.Tensor, keys: ClipKeys) -> torch.Tensor:
        assert self.memory is not None and isinstance(self.model, ActionDetector)
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
            (the contract of ``ActionDetector.forward`` and of ``OnnxActionModel.__call__``).
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
        self.net = net
        self._memory = net.memory if isinstance(net, _TorchAction) else None
        """The interaction head's memory (a PyTorch IA model only)."""
        self._classes = list(classes)
        self.norm = norm
        self._clip = ClipConfig(float(window_s), int(num_frames), "causal")
        self.score_mode = score_mode
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
        logits = np.asarray(raw, dtype=np.float64)
        if self.score_mode == "sigmoid":
            out = 1.0 / (1.0 + np.exp(-logits))
        else:
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            out = e / e.sum(axis=1, keepdims=True)
        return out.astype(np.float32)

    @classmethod
    def from_trained(
        cls, trained: TrainedModel, device: str | torch.device = "cpu", precision: Precision = "fp32"
    ) -> ActionRunner:
        dev = torch.device(device)
        cfg = trained.config
        return cls(
            _TorchAction(prepare_for_inference(trained.model, dev), dev, precision),
            trained.classes,
            trained.norm,
            cfg.data.window_s,
            cfg.model.num_frames,
            cfg.model.head.mode,
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


def _amp_dtype(precision: str) -> torch.dtype | None:
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    return torch.bfloat16 if precision == "bf16" else None


class _TorchDetector:
    def __init__(self, model: torch.nn.Module, device: torch.device, precision: Precision = "fp32") -> None:
        self.model = model
        self.device = device
        self.amp_dtype = _amp_dtype(precision)

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
        top_k, nms_iou: decoding parameters (:func:`thermact.detection.decode.decode`).
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
    ) -> None:
        self.net = net
        self.norm = norm
        self._clip = ClipConfig(float(window_s), int(num_frames), "causal")
        self.stride = int(stride)
        self.top_k = int(top_k)
        self.nms_iou = float(nms_iou)
        self.name = name

    @property
    def clip(self) -> ClipConfig:
        return self._clip

    def detect(self, clips: FloatArray, score_threshold: float) -> list[Detections]:
        if clips.shape[0] == 0:
            return []
        out = self.net(_normalize_clips(clips, self.norm))
        size = (int(clips.shape[-2]), int(clips.shape[-1]))
        return decode(out, self.stride, size, self.top_k, score_threshold, self.nms_iou)

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
        )


def load_action_model(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    threads: int = 1,
    precision: Precision = "fp32",
) -> ActionRunner:
    """An action model from a checkpoint (``.pt``) or an exported ``.onnx`` file (``precision``
    applies to checkpoints; an ONNX model runs as exported).

    Raises:
        CheckpointError: missing or unreadable file, or a person-detector checkpoint.
    """
    p = Path(path)
    if p.suffix == ".onnx":
        return ActionRunner.from_onnx(OnnxActionModel(p, intra_op_threads=threads))
    from thermact.engine.restore import restore_model  # refuses detector checkpoints by name

    return ActionRunner.from_trained(restore_model(p, device), device, precision)


def load_detector(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    threads: int = 1,
    precision: Precision = "fp32",
) -> DetectorRunner:
    """A person detector from a detector checkpoint (``.pt``) or an ``.onnx`` file with metadata
    (``precision`` applies to checkpoints).

    Raises:
        CheckpointError: missing or unreadable file, or an action-model checkpoint.
    """
    p = Path(path)
    if p.suffix == ".onnx":
        return DetectorRunner.from_onnx(OnnxPersonDetector(p, intra_op_threads=threads))
    from thermact.detection.restore import restore_detector

    return DetectorRunner.from_trained(restore_detector(p, device), device, precision=precision)


def as_action_model(
    model: Any, device: str | torch.device = "cpu", precision: Precision = "fp32"
) -> ActionModelLike:
    """Accept an :class:`ActionModelLike`, a ``TrainedModel``, an ``OnnxActionModel`` or a path
    (``precision``: for the PyTorch models built here)."""
    from thermact.engine.restore import TrainedModel

    if isinstance(model, (str, os.PathLike)):
        return load_action_model(model, device, precision=precision)
    if isinstance(model, TrainedModel):
        return ActionRunner.from_trained(model, device, precision)
    if isinstance(model, OnnxActionModel):
        return ActionRunner.from_onnx(model)
    if isinstance(model, ActionModelLike):
        return model
    raise TypeError(f"not an action model: {type(model).__name__}")


def as_detector(
    model: Any, device: str | torch.device = "cpu", precision: Precision = "fp32"
) -> DetectorLike:
    """Accept a :class:`DetectorLike`, a ``PersonDetector`` / ``TrainedDetector``, an
    ``OnnxPersonDetector`` (with metadata) or a path (``precision``: for PyTorch models built here)."""
    from thermact.detection.restore import PersonDetector, TrainedDetector

    if isinstance(model, (str, os.PathLike)):
        return load_detector(model, device, precision=precision)
    if isinstance(model, PersonDetector):
        return DetectorRunner.from_trained(model.trained, device, model.top_k, model.nms_iou, precision)
    if isinstance(model, TrainedDetector):
        return DetectorRunner.from_trained(model, device, precision=precision)
    if isinstance(model, OnnxPersonDetector):
        return DetectorRunner.from_onnx(model)
    if isinstance(model, DetectorLike):
        return model
    raise TypeError(f"not a person detector: {type(model).__name__}")


# ---------------------------------------------------------------------------------------------
# Per-sensor state


def buffer_capacity(window_s: float, max_fps: float = 12.0) -> int:
    """Frames a ring buffer needs for clips of ``window_s`` at up to ``max_fps`` (plus one second)."""
    return math.ceil((window_s + 1.0) * max_fps) + 1


class FrameRing:
    """Fixed-capacity ring buffer of repaired frames ``[H, W]`` float32 and their times (ms).

    Memory is allocated once (``capacity x H x W`` floats); the oldest frame is overwritten.
    """

    def __init__(self, capacity: int, frame_size: tuple[int, int]) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self._frames = np.zeros((self.capacity, frame_size[0], frame_size[1]), dtype=np.float32)
        self._ts = np.zeros(self.capacity, dtype=np.int64)
        self._start = 0
        self._len = 0

    def __len__(self) -> int:
        return self._len

    @property
    def nbytes(self) -> int:
        return int(self._frames.nbytes + self._ts.nbytes)

    def append(self, timestamp_ms: int, frame: FloatArray) -> None:
        slot = (self._start + self._len) % self.capacity
        self._frames[slot] = frame
        self._ts[slot] = timestamp_ms
        if self._len < self.capacity:
            self._len += 1
        else:
            self._start = (self._start + 1) % self.capacity

    def _slots(self) -> npt.NDArray[np.int64]:
        return (self._start + np.arange(self._len, dtype=np.int64)) % self.capacity

    def timestamps(self) -> npt.NDArray[np.int64]:
        """Buffered times, oldest first (a copy)."""
        return self._ts[self._slots()]

    @property
    def last_timestamp(self) -> int | None:
        return None if self._len == 0 else int(self._ts[(self._start + self._len - 1) % self.capacity])

    def gather(self, times: npt.NDArray[np.int64]) -> FloatArray:
        """Frames ``[len(times), H, W]`` nearest to ``times`` (edge frames replicated; a copy)."""
        if self._len == 0:
            raise ValueError("the ring buffer is empty")
        slots = self._slots()
        return self._frames[slots[nearest_indices(self._ts[slots], times)]]


def repair_frame(
    frame: npt.NDArray[np.floating[Any]],
    last_valid: FloatArray | None,
    age: npt.NDArray[np.int64] | None,
    temporal_radius: int = 3,
) -> tuple[FloatArray | None, npt.NDArray[np.bool_]]:
    """Causal repair of one frame (see the module docstring).

    Args:
        frame: ``[H, W]`` raw °C.
        last_valid: ``[H, W]`` last valid value of each pixel (None before the first frame).
        age: ``[H, W]`` frames ingested after the one the value was seen in (0 = the previous
            frame, so the value is ``age + 1`` frames old).

    Returns:
        ``(repaired frame or None when no pixel is valid, invalid mask)``.
    """
    bad = invalid_mask(frame)
    if not bad.any():
        return np.array(frame, dtype=np.float32, copy=True), bad
    if bad.all():
        return None, bad
    out = np.where(bad, np.float32(0.0), frame).astype(np.float32)
    filled = ~bad
    if last_valid is not None and age is not None:
        take = bad & (age < temporal_radius)
        out[take] = last_valid[take]
        filled = filled | take
    if not filled.all():  # spatial: growing-neighbourhood median of the frame's valid pixels
        raw = np.where(bad, np.float32(np.nan), out).astype(np.float32)
        fixed = repair_invalid_pixels(raw[None], (~bad)[None], temporal_radius=0)[0]
        out = np.where(filled, out, fixed).astype(np.float32)
    return out, bad


@dataclasses.dataclass
class SensorCounters:
    """What happened to one sensor's frames."""

    frames_in: int = 0
    accepted: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    empty_frames: int = 0
    """Frames without any valid pixel (dropped)."""
    repaired_frames: int = 0
    repaired_pixels: int = 0
    detections: int = 0
    classifications: int = 0
    tracks_ended: int = 0

    def add(self, other: SensorCounters) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class SensorState:
    """Everything kept per sensor: ring buffer, repair state, tracker, per-track classification."""

    def __init__(
        self, sensor_id: str, capacity: int, frame_size: tuple[int, int], tracker_config: TrackerConfig
    ) -> None:
        self.sensor_id = sensor_id
        self.frame_size = frame_size
        self.ring = FrameRing(capacity, frame_size)
        self.tracker = Tracker(tracker_config)
        self.counters = SensorCounters()
        self.last_valid: FloatArray | None = None
        self.age: npt.NDArray[np.int64] | None = None
        self.prev_ms: int | None = None
        self.last_classified: dict[int, int] = {}
        self.last_scores: dict[int, tuple[FloatArray, int]] = {}
        self.alive: set[int] = set()

    @property
    def num_track_states(self) -> int:
        """Per-track entries held (bounded by the tracker's live tracks)."""
        return len(self.last_classified) + len(self.last_scores) + len(self.alive)

    def ingest(
        self, timestamp_ms: int, frame: npt.NDArray[np.floating[Any]], temporal_radius: int
    ) -> int | None:
        """Check, repair and buffer a frame; return the number of repaired pixels or None if dropped."""
        c = self.counters
        c.frames_in += 1
        last = self.ring.last_timestamp
        if last is not None and timestamp_ms <= last:
            if timestamp_ms == last:
                c.duplicates += 1
            else:
                c.out_of_order += 1
            return None
        repaired, bad = repair_frame(frame, self.last_valid, self.age, temporal_radius)
        if repaired is None:
            c.empty_frames += 1
            return None
        if self.last_valid is None or self.age is None:
            self.last_valid = repaired.copy()
            self.age = np.full(bad.shape, 1 << 30, dtype=np.int64)  # never seen valid
        good = ~bad
        self.last_valid[good] = repaired[good]
        self.age += 1
        self.age[good] = 0
        nbad = int(bad.sum())
        if nbad:
            c.repaired_frames += 1
            c.repaired_pixels += nbad
        self.prev_ms = last
        self.ring.append(timestamp_ms, repaired)
        c.accepted += 1
        return nbad


# ---------------------------------------------------------------------------------------------
# Results


@dataclasses.dataclass(frozen=True)
class FrameInput:
    """One frame of one sensor: ``frame`` ``[H, W]`` raw °C; ``arrival_s`` the clock time it arrived
    (for latency; None: when it was handed over)."""

    sensor_id: str
    timestamp_ms: int
    frame: npt.NDArray[np.floating[Any]]
    arrival_s: float | None = None


@dataclasses.dataclass(frozen=True)
class PersonResult:
    """One tracked person in one frame.

    Attributes:
        sensor_id, track_id, timestamp_ms: who and when.
        box: pixel XYXY detection box matched to the track.
        det_score: its detection score.
        scores: ``[C]`` class scores of the track's latest classification.
        top_class, top_label, top_score: the best class of ``scores``.
        fresh: classified at this frame (else the scores are those of ``classified_ms``).
        classified_ms: time of the frame the scores come from.
    """

    sensor_id: str
    track_id: int
    timestamp_ms: int
    box: tuple[float, float, float, float]
    det_score: float
    scores: FloatArray
    top_class: int
    top_label: str
    top_score: float
    fresh: bool
    classified_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "box": [round(float(v), 3) for v in self.box],
            "det_score": round(self.det_score, 5),
            "top_class": self.top_class,
            "top_label": self.top_label,
            "top_score": round(self.top_score, 5),
            "scores": [round(float(v), 5) for v in self.scores],
            "fresh": self.fresh,
            "classified_ms": self.classified_ms,
        }


@dataclasses.dataclass(frozen=True)
class FrameResult:
    """An accepted frame: its tracked persons, the tracks that ended at it, repaired pixel count."""

    sensor_id: str
    timestamp_ms: int
    persons: tuple[PersonResult, ...]
    ended_tracks: tuple[int, ...]
    repaired_pixels: int
    arrival_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "sensor_id": self.sensor_id,
            "timestamp_ms": self.timestamp_ms,
            "persons": [p.to_dict() for p in self.persons],
            "ended_tracks": list(self.ended_tracks),
            "repaired_pixels": self.repaired_pixels,
        }


@dataclasses.dataclass
class StageTimes:
    """Seconds spent per stage (``other`` = total - the rest: Python bookkeeping)."""

    ingest_s: float = 0.0
    detector_s: float = 0.0
    tracking_s: float = 0.0
    action_s: float = 0.0
    total_s: float = 0.0
    frames: int = 0
    rounds: int = 0
    detector_calls: int = 0
    action_calls: int = 0
    action_clips: int = 0
    action_boxes: int = 0

    @property
    def other_s(self) -> float:
        return max(0.0, self.total_s - self.ingest_s - self.detector_s - self.tracking_s - self.action_s)

    def to_dict(self) -> dict[str, float | int]:
        d: dict[str, float | int] = dataclasses.asdict(self)
        d["other_s"] = self.other_s
        return d


# ---------------------------------------------------------------------------------------------
# The pipeline


@dataclasses.dataclass
class _Pending:
    state: SensorState
    timestamp_ms: int
    repaired: int
    arrival_s: float


class InferencePipeline:
    """Detection + tracking + cadenced action classification over the frames of many sensors.

    Args:
        action: an :class:`ActionModelLike` (see :func:`as_action_model`).
        detector: a :class:`DetectorLike` (see :func:`as_detector`).
        tracker_config: settings of each sensor's :class:`~thermact.tracking.Tracker`.
        cadence_s: seconds between two classifications of one track.
        score_threshold: lowest person-detection score passed to the tracker.
        frame_size: ``(H, W)`` of every sensor.
        max_sensors: the most sensors held at once (a new one beyond it is a :class:`DataError`).
        buffer_frames: ring-buffer capacity per sensor (default :func:`buffer_capacity` of the
            longer clip at ``max_fps``).
        max_fps: the highest frame rate the default buffer is sized for.
        temporal_radius: frames a dead pixel's last valid value is reused for.
        clock: time source for ``arrival_s`` defaults and stage timings.
    """

    def __init__(
        self,
        action: ActionModelLike,
        detector: DetectorLike,
        tracker_config: TrackerConfig | None = None,
        cadence_s: float = 1.0,
        score_threshold: float = 0.3,
        frame_size: tuple[int, int] = (40, 60),
        max_sensors: int = 64,
        buffer_frames: int | None = None,
        max_fps: float = 12.0,
        temporal_radius: int = 3,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not (math.isfinite(cadence_s) and cadence_s > 0):
            raise ValueError(f"cadence_s must be > 0, got {cadence_s}")
        if max_sensors < 1:
            raise ValueError(f"max_sensors must be >= 1, got {max_sensors}")
        self.action = action
        self.memory_action: MemoryActionModel | None = (
            cast(MemoryActionModel, action) if getattr(action, "uses_memory", False) else None
        )
        """The action model when it keeps a per-sensor memory (fed with :class:`ClipKeys`)."""
        self.detector = detector
        self.tracker_config = tracker_config if tracker_config is not None else TrackerConfig()
        self.cadence_ms = cadence_s * 1000.0
        self.score_threshold = float(score_threshold)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.max_sensors = int(max_sensors)
        window = max(action.clip.window_s, detector.clip.window_s)
        self.buffer_frames = (
            int(buffer_frames) if buffer_frames is not None else buffer_capacity(window, max_fps)
        )
        self.temporal_radius = int(temporal_radius)
        self.clock = clock
        self.sensors: dict[str, SensorState] = {}
        self.times = StageTimes()
        self._classes = list(action.classes)
        self._closed = SensorCounters()

    @property
    def classes(self) -> list[str]:
        return self._classes

    def sensor(self, sensor_id: str) -> SensorState:
        """The state of ``sensor_id`` (created on first use)."""
        state = self.sensors.get(sensor_id)
        if state is None:
            if len(self.sensors) >= self.max_sensors:
                raise DataError(
                    f"sensor {sensor_id!r}: already serving max_sensors={self.max_sensors} sensors "
                    "(close one with close_sensor() or raise max_sensors)"
                )
            state = SensorState(sensor_id, self.buffer_frames, self.frame_size, self.tracker_config)
            self.sensors[sensor_id] = state
        return state

    def close_sensor(self, sensor_id: str) -> tuple[int, ...]:
        """Forget a sensor; returns the ids of its tracks that were still alive."""
        state = self.sensors.pop(sensor_id, None)
        if self.memory_action is not None:
            self.memory_action.forget(sensor_id)
        if state is None:
            return ()
        self._closed.add(state.counters)
        return tuple(sorted(state.alive))

    def counters(self) -> SensorCounters:
        """Totals over all sensors, closed ones included."""
        total = SensorCounters()
        total.add(self._closed)
        for s in self.sensors.values():
            total.add(s.counters)
        return total

    def process(self, frames: Iterable[FrameInput]) -> list[FrameResult]:
        """Run frames of any sensors (each sensor's in time order); results of the accepted frames,
        in input order. See the module docstring for the batching."""
        t_start = self.clock()
        items = list(frames)
        for f in items:  # check everything before any state changes
            shape = tuple(np.shape(f.frame))
            if shape != self.frame_size:
                raise DataError(
                    f"sensor {f.sensor_id!r}: frame at {f.timestamp_ms} ms has shape {list(shape)}, "
                    f"expected {list(self.frame_size)}"
                )
        new = {f.sensor_id for f in items} - set(self.sensors)
        if len(self.sensors) + len(new) > self.max_sensors:
            raise DataError(
                f"sensor(s) {sorted(new)}: would exceed max_sensors={self.max_sensors} "
                f"(serving {len(self.sensors)}; close one with close_sensor() or raise max_sensors)"
            )
        rounds: list[list[FrameInput]] = []
        seen: dict[str, int] = {}
        for f in items:
            r = seen.get(f.sensor_id, 0)
            seen[f.sensor_id] = r + 1
            if r == len(rounds):
                rounds.append([])
            rounds[r].append(f)
        out: list[FrameResult] = []
        for items in rounds:
            out.extend(self._round(items, t_start))
        self.times.total_s += self.clock() - t_start
        return out

    def _round(self, items: list[FrameInput], t_start: float) -> list[FrameResult]:
        times = self.times
        times.rounds += 1
        clock = self.clock
        t0 = clock()
        pending: list[_Pending] = []
        det_clips: list[FloatArray] = []
        for f in items:
            frame = np.asarray(f.frame)
            state = self.sensor(f.sensor_id)
            t = int(f.timestamp_ms)
            repaired = state.ingest(t, frame, self.temporal_radius)
            if repaired is None:
                continue
            arrival = f.arrival_s if f.arrival_s is not None else t_start
            pending.append(_Pending(state, t, repaired, arrival))
            det_clips.append(state.ring.gather(clip_times(t, self.detector.clip)))
        t1 = clock()
        times.ingest_s += t1 - t0
        if not pending:
            return []
        dets = self.detector.detect(np.stack(det_clips), self.score_threshold)
        times.detector_calls += 1
        times.frames += len(pending)
        t2 = clock()
        times.detector_s += t2 - t1

        tracked_per_frame = []
        ended_per_frame: list[tuple[int, ...]] = []
        act_clips: list[FloatArray] = []
        clip_keys: list[tuple[str, int]] = []  # (sensor id, time) of each action clip
        rois: list[list[float]] = []
        roi_tracks: list[int] = []
        due_rows: dict[tuple[int, int], int] = {}  # (pending index, track id) -> row in rois
        for i, (p, d) in enumerate(zip(pending, dets, strict=True)):
            persons = d.select(d.labels == PERSON)
            state = p.state
            state.counters.detections += len(persons)
            tracked = state.tracker.update(p.timestamp_ms, persons.boxes.numpy(), persons.scores.numpy())
            alive = {tr.id for tr in state.tracker.tracks if tr.id > 0}
            ended = tuple(sorted(state.alive - alive))
            for tid in ended:
                state.last_classified.pop(tid, None)
                state.last_scores.pop(tid, None)
            state.counters.tracks_ended += len(ended)
            state.alive = alive
            ended_per_frame.append(ended)
            tracked_per_frame.append(tracked)
            slack = (
                0.0
                if state.prev_ms is None
                else min(0.5 * (p.timestamp_ms - state.prev_ms), 0.5 * self.cadence_ms)
            )
            clip_index = -1
            for tb in tracked:
                last = state.last_classified.get(tb.track_id)
                if last is not None and p.timestamp_ms - last < self.cadence_ms - slack:
                    continue
                if clip_index < 0:
                    clip_index = len(act_clips)
                    act_clips.append(state.ring.gather(clip_times(p.timestamp_ms, self.action.clip)))
                    clip_keys.append((state.sensor_id, p.timestamp_ms))
                due_rows[(i, tb.track_id)] = len(rois)
                rois.append([float(clip_index), *tb.box])
                roi_tracks.append(tb.track_id)
        t3 = clock()
        times.tracking_s += t3 - t2

        scores = np.zeros((0, len(self._classes)), dtype=np.float32)
        if rois:
            clips, boxes = np.stack(act_clips), np.asarray(rois, dtype=np.float32)
            if self.memory_action is not None:
                keys = ClipKeys(
                    [k[0] for k in clip_keys],
                    [k[1] for k in clip_keys],
                    np.asarray(roi_tracks, dtype=np.int64),
                )
                scores = self.memory_action.scores(clips, boxes, keys)
            else:
                scores = self.action.scores(clips, boxes)
            times.action_calls += 1
            times.action_clips += len(act_clips)
            times.action_boxes += len(rois)
        t4 = clock()
        times.action_s += t4 - t3

        results: list[FrameResult] = []
        for i, p in enumerate(pending):
            state = p.state
            persons_out: list[PersonResult] = []
            for tb in tracked_per_frame[i]:
                row = due_rows.get((i, tb.track_id))
                if row is not None:
                    s = scores[row]
                    state.last_classified[tb.track_id] = p.timestamp_ms
                    state.last_scores[tb.track_id] = (s, p.timestamp_ms)
                    state.counters.classifications += 1
                s, when = state.last_scores[tb.track_id]
                top = int(np.argmax(s))
                persons_out.append(
                    PersonResult(
                        state.sensor_id,
                        tb.track_id,
                        p.timestamp_ms,
                        tb.box,
                        tb.score,
                        s,
                        top,
                        self._classes[top],
                        float(s[top]),
                        row is not None,
                        when,
                    )
                )
            results.append(
                FrameResult(
                    state.sensor_id,
                    p.timestamp_ms,
                    tuple(persons_out),
                    ended_per_frame[i],
                    p.repaired,
                    p.arrival_s,
                )
            )
        return results


def raw_frames(frames: FloatArray, valid: npt.NDArray[np.bool_]) -> FloatArray:
    """A recording's repaired frames with the invalid pixels put back as NaN (what a sensor sends),
    so that the pipeline repairs them causally exactly as it does live."""
    return np.where(valid, frames, np.float32(np.nan)).astype(np.float32)


def results_by_mode(results: Iterable[FrameResult], mode: Literal["all", "fresh"]) -> list[PersonResult]:
    """The person results of ``results``: all of them, or only fresh classifications."""
    return [p for r in results for p in r.persons if mode == "all" or p.fresh]


def counters_dict(counters: Mapping[str, SensorCounters]) -> dict[str, dict[str, int]]:
    return {k: v.to_dict() for k, v in counters.items()}
