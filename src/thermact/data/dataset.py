"""A PyTorch dataset of clips around annotated keyframes, and its collate function.

Each item is one keyframe: a clip of ``clip.num_frames`` frames sampled on a time grid around it
(:mod:`thermact.data.clips`; edge frames are replicated at the start/end of a recording, an index
outside the recording is never produced), its person boxes, their action labels and track ids.

Pipeline of :meth:`ClipDataset.__getitem__`, in this order:

1. frames (°C, dead pixels repaired) and validity mask of the clip, person boxes (pixel XYXY);
   with a :class:`~thermact.data.sensor_augment.SensorAugment` the clip's frame timing is jittered
   and the frames get packet loss and dead pixels (its own generator, seeded from
   ``(seed + SENSOR_SEED, epoch, index)``, so the other draws stay those of a run without it);
   with ``"background"`` normalisation the recording's background is subtracted; with
   ``detected_boxes`` each annotated box that a detector found is replaced, with probability
   ``p_detected``, by that detection's box (label and track kept; :func:`swap_in_detected`, its own
   generator seeded from ``(seed + SWAP_SEED, epoch, index)``);
2. augmentation (if given) at the sensor resolution, with a generator seeded from
   ``(seed, epoch, index)`` so a sample does not depend on the worker that loads it;
3. normalisation (if given);
4. resize to ``input_size`` (if given; bilinear, so it commutes with the normalisation up to
   float rounding).

Items are :class:`ClipSample`; :func:`collate_clips` turns a list of them into a
:class:`ClipBatch` with boxes concatenated into RoIs ``[K, 5] = (batch_index, x1, y1, x2, y2)``,
the format of :func:`thermact.ops.roi_align.roi_align`.

Worker safety: the dataset holds :class:`~thermact.data.recording.Recording` objects, which pickle
without their decoded arrays, so with ``num_workers > 0`` (spawn or fork) each worker reads the
files it needs once; no HDF5 handle is ever shared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from thermact.data.annotations import ClassList, Keyframe, boxes_array
from thermact.data.clips import ClipConfig, clip_indices
from thermact.data.geometry import resize
from thermact.data.recording import Recording
from thermact.data.sensor_augment import SensorAugment
from thermact.data.source import ThermalData
from thermact.data.transforms import Augment, NormStats, normalize
from thermact.errors import DataError


@dataclasses.dataclass(frozen=True)
class ClipSample:
    """One keyframe's clip and its person boxes.

    Attributes:
        frames: float32 ``[1, T, H, W]``: °C, or normalised when the dataset has :class:`NormStats`.
        valid: bool ``[T, H, W]``: True where the sensor value was valid (not repaired).
        boxes: float32 ``[N, 4]`` pixel XYXY over the (possibly resized) ``H × W`` frame.
        labels: int64 ``[N]`` action class ids.
        track_ids: int64 ``[N]`` person identities within the recording.
        recording_id: the recording the clip comes from.
        keyframe_ms: keyframe time (ms).
        keyframe_id: the keyframe's id in the annotations.
        frame_indices: int64 ``[T]`` indices of the clip's frames in the recording.
    """

    frames: torch.Tensor
    valid: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    track_ids: torch.Tensor
    recording_id: str
    keyframe_ms: int
    keyframe_id: str
    frame_indices: torch.Tensor


@dataclasses.dataclass(frozen=True)
class ClipBatch:
    """A batch of :class:`ClipSample` (see :func:`collate_clips`).

    Attributes:
        frames: float32 ``[B, 1, T, H, W]``.
        valid: bool ``[B, T, H, W]``.
        rois: float32 ``[K, 5]`` = ``(batch_index, x1, y1, x2, y2)``, pixel XYXY, all boxes of the
            batch in sample order.
        labels: int64 ``[K]``.
        track_ids: int64 ``[K]``.
        num_boxes: int64 ``[B]`` boxes per sample (``rois`` of sample ``b`` are a contiguous run).
        recording_ids, keyframe_ids: ``B`` strings.
        keyframe_ms: int64 ``[B]``.
        frame_indices: int64 ``[B, T]``.
    """

    frames: torch.Tensor
    valid: torch.Tensor
    rois: torch.Tensor
    labels: torch.Tensor
    track_ids: torch.Tensor
    num_boxes: torch.Tensor
    recording_ids: list[str]
    keyframe_ids: list[str]
    keyframe_ms: torch.Tensor
    frame_indices: torch.Tensor

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def _map(self, fn: Any) -> ClipBatch:
        changes = {
            f.name: fn(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return dataclasses.replace(self, **changes)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ClipBatch:
        """All tensors moved to ``device``."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> ClipBatch:
        """Called by ``DataLoader(pin_memory=True)``."""
        return self._map(lambda t: t.pin_memory())


def _stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``torch.stack`` along a new dim 0; for CPU tensors a single-threaded NumPy copy.

    In the main process (``num_workers=0``) torch's multi-threaded copy of a few hundred KB costs
    more in thread synchronisation than it saves, badly so on a busy machine.
    """
    if all(t.device.type == "cpu" and not t.requires_grad for t in tensors):
        return torch.from_numpy(np.stack([t.numpy() for t in tensors]))
    return torch.stack(list(tensors))


def collate_clips(samples: Sequence[ClipSample]) -> ClipBatch:
    """Stack samples of the same clip shape into a :class:`ClipBatch` (``collate_fn`` of a DataLoader)."""
    if not samples:
        raise ValueError("collate_clips needs at least one sample")
    shape = samples[0].frames.shape
    for s in samples:
        if s.frames.shape != shape:
            raise ValueError(
                f"all clips of a batch must have the same shape; {s.keyframe_id} has "
                f"{list(s.frames.shape)}, {samples[0].keyframe_id} has {list(shape)}"
            )
    num_boxes = torch.tensor([int(s.boxes.shape[0]) for s in samples], dtype=torch.int64)
    batch_index = torch.repeat_interleave(torch.arange(len(samples), dtype=torch.float32), num_boxes)
    boxes = torch.cat([s.boxes.to(torch.float32) for s in samples], dim=0)
    return ClipBatch(
        frames=_stack([s.frames for s in samples]),
        valid=_stack([s.valid for s in samples]),
        rois=torch.cat([batch_index.unsqueeze(1), boxes], dim=1),
        labels=torch.cat([s.labels for s in samples]),
        track_ids=torch.cat([s.track_ids for s in samples]),
        num_boxes=num_boxes,
        recording_ids=[s.recording_id for s in samples],
        keyframe_ids=[s.keyframe_id for s in samples],
        keyframe_ms=torch.tensor([s.keyframe_ms for s in samples], dtype=torch.int64),
        frame_indices=_stack([s.frame_indices for s in samples]),
    )


SENSOR_SEED = 7_919
"""Offset of the base seed of the :class:`SensorAugment` generators (a stream of their own)."""


SWAP_SEED = 104_729
"""Offset of the base seed of the generators of :func:`swap_in_detected` (a stream of their own)."""


def swap_in_detected(
    boxes: npt.NDArray[np.float32], detected: npt.NDArray[np.float32], p: float, gen: torch.Generator
) -> npt.NDArray[np.float32]:
    """Annotated boxes ``[N, 4]`` with each row whose ``detected [N, 4]`` row is finite (the
    detector found that person) replaced by it with probability ``p``; rows of NaN keep their box.
    Draws ``N`` uniforms from ``gen``."""
    if detected.shape != boxes.shape:
        raise ValueError(f"detected boxes {detected.shape} do not match the annotated boxes {boxes.shape}")
    use = (torch.rand(boxes.shape[0], generator=gen).numpy() < p) & np.isfinite(detected).all(axis=1)
    return np.where(use[:, None], detected, boxes).astype(np.float32)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for the augmentation of item ``index`` in ``epoch`` (independent of workers)."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def read_clip(
    rec: Recording, keyframe_ms: int, clip: ClipConfig, sensor: SensorAugment | None, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Frame indices ``[T]``, frames ``[T, H, W]`` (°C) and validity ``[T, H, W]`` of the clip of
    ``keyframe_ms``: on the plain time grid, or with ``sensor``'s jittered timing and corruptions
    drawn from a generator seeded with ``seed``."""
    if sensor is None:
        idx = clip_indices(rec.timestamps, keyframe_ms, clip)
        return idx, rec.frames[idx], rec.valid[idx]
    gen = torch.Generator().manual_seed(seed)
    idx = sensor.indices(rec.timestamps, keyframe_ms, clip, gen)
    frames, valid = sensor.corrupt(rec.frames[idx], rec.valid[idx], gen)
    return idx, frames, valid


class ClipDataset(torch.utils.data.Dataset[ClipSample]):
    """Clips around keyframes, one item per keyframe.

    Args:
        recordings: recording id → :class:`Recording` (every keyframe's recording must be there).
        keyframes: the keyframes (e.g. one split's); their person boxes become the targets.
        classes: the action classes (the labels are checked against it).
        clip: time window, frames per clip and keyframe position.
        norm: normalisation statistics (from the training keyframes); None keeps °C.
        augment: random augmentation (training only); None for evaluation.
        input_size: ``(h, w)`` to resize the frames (and boxes) to; None keeps the sensor size.
        seed: base seed of the per-item augmentation generators.
        sensor: random sensor behaviour (training only); None (or all neutral) for evaluation.
        detected_boxes: keyframe id → float32 ``[N, 4]`` pixel XYXY, per annotated person (in the
            keyframe's order) the box a person detector gave it, NaN where it found none
            (training only; see :func:`swap_in_detected`).
        p_detected: probability that an annotated box is replaced by its detected box.

    Raises:
        DataError: a keyframe names an unknown recording, lies outside its recording's time span or
            has a label outside ``classes``.
    """

    def __init__(
        self,
        recordings: Mapping[str, Recording],
        keyframes: Sequence[Keyframe],
        classes: ClassList,
        clip: ClipConfig,
        norm: NormStats | None = None,
        augment: Augment | None = None,
        input_size: tuple[int, int] | None = None,
        seed: int = 0,
        sensor: SensorAugment | None = None,
        detected_boxes: Mapping[str, npt.NDArray[np.float32]] | None = None,
        p_detected: float = 0.0,
    ) -> None:
        if input_size is not None and (len(input_size) != 2 or min(input_size) < 1):
            raise ValueError(f"input_size must be (h, w) with positive entries, got {input_size}")
        self.recordings = dict(recordings)
        self.keyframes = list(keyframes)
        self.classes = classes
        self.clip = clip
        self.norm = norm
        self.augment = augment
        self.input_size = (int(input_size[0]), int(input_size[1])) if input_size is not None else None
        self.seed = int(seed)
        self.sensor = sensor if sensor is not None and sensor.enabled else None
        self.detected_boxes = dict(detected_boxes or {}) if p_detected > 0 else {}
        self.p_detected = float(p_detected)
        self.epoch = 0
        self._check_keyframes()

    @classmethod
    def from_data(
        cls,
        data: ThermalData,
        keyframes: Sequence[Keyframe] | None,
        clip: ClipConfig,
        norm: NormStats | None = None,
        augment: Augment | None = None,
        input_size: tuple[int, int] | None = None,
        seed: int = 0,
        sensor: SensorAugment | None = None,
        detected_boxes: Mapping[str, npt.NDArray[np.float32]] | None = None,
        p_detected: float = 0.0,
    ) -> ClipDataset:
        """A dataset over ``keyframes`` (None: all keyframes) of a loaded :class:`ThermalData`."""
        return cls(
            data.recordings,
            data.keyframes if keyframes is None else keyframes,
            data.classes,
            clip,
            norm=norm,
            augment=augment,
            input_size=input_size,
            seed=seed,
            sensor=sensor,
            detected_boxes=detected_boxes,
            p_detected=p_detected,
        )

    def _check_keyframes(self) -> None:
        for kf in self.keyframes:
            rec = self.recordings.get(kf.recording_id)
            if rec is None:
                raise DataError(f"keyframe {kf.keyframe_id}: unknown recording {kf.recording_id!r}")
            if not rec.start_ms <= kf.timestamp_ms <= rec.end_ms:
                raise DataError(
                    f"keyframe {kf.keyframe_id}: time {kf.timestamp_ms} ms lies outside {rec.path.name} "
                    f"({rec.start_ms}..{rec.end_ms} ms)"
                )
            detected = self.detected_boxes.get(kf.keyframe_id)
            if detected is not None and detected.shape != (len(kf.persons), 4):
                raise DataError(
                    f"keyframe {kf.keyframe_id}: detected boxes {detected.shape} for {len(kf.persons)} persons"
                )
            for box in kf.persons:
                if box.label is None or not 0 <= box.label < len(self.classes):
                    raise DataError(
                        f"keyframe {kf.keyframe_id}: person track {box.track_id} has label {box.label!r} "
                        f"outside 0..{len(self.classes) - 1}"
                    )

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws (call before each training epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.keyframes)

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(H, W)`` of the returned frames (of the first keyframe's recording if not resized)."""
        if self.input_size is not None:
            return self.input_size
        if not self.keyframes:
            raise DataError("empty dataset has no frame size")
        return self.recordings[self.keyframes[0].recording_id].frame_size

    def indices(self, index: int) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Frame indices ``[T]`` of item ``index``'s clip on the plain time grid (before any sensor jitter:
        an item's own ``frame_indices`` are those it was built from)."""
        kf = self.keyframes[index]
        return clip_indices(self.recordings[kf.recording_id].timestamps, kf.timestamp_ms, self.clip)

    def __getitem__(self, index: int) -> ClipSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} keyframes")
        index = index % len(self)
        kf = self.keyframes[index]
        rec = self.recordings[kf.recording_id]
        # Per-sample work runs in NumPy (single-threaded): tiny torch ops would each pay for
        # intra-op thread synchronisation in the main process.
        sensor_seed = sample_seed(self.seed + SENSOR_SEED, self.epoch, index)
        idx, frames_np, valid_np = read_clip(rec, kf.timestamp_ms, self.clip, self.sensor, sensor_seed)
        boxes_np = boxes_array(kf.persons)
        detected = self.detected_boxes.get(kf.keyframe_id)
        if detected is not None:
            swap_gen = torch.Generator().manual_seed(sample_seed(self.seed + SWAP_SEED, self.epoch, index))
            boxes_np = swap_in_detected(boxes_np, detected, self.p_detected, swap_gen)
        if self.norm is not None and self.norm.reference == "background":
            frames_np = frames_np - rec.background
        if self.augment is not None:
            gen = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, index))
            frames_np, valid_np, boxes_np = self.augment.apply(frames_np, valid_np, boxes_np, gen)
        if self.norm is not None:
            frames_np = normalize(frames_np, self.norm)
        frames = torch.from_numpy(np.ascontiguousarray(frames_np, dtype=np.float32))
        valid = torch.from_numpy(np.ascontiguousarray(valid_np, dtype=np.bool_))
        boxes = torch.from_numpy(np.ascontiguousarray(boxes_np, dtype=np.float32))
        if self.input_size is not None:
            frames, valid, boxes = resize(frames, valid, boxes, self.input_size)
        labels = torch.tensor([int(b.label) for b in kf.persons if b.label is not None], dtype=torch.int64)
        track_ids = torch.tensor([b.track_id for b in kf.persons], dtype=torch.int64)
        return ClipSample(
            frames=frames.unsqueeze(0),
            valid=valid,
            boxes=boxes,
            labels=labels,
            track_ids=track_ids,
            recording_id=kf.recording_id,
            keyframe_ms=int(kf.timestamp_ms),
            keyframe_id=kf.keyframe_id,
            frame_indices=torch.from_numpy(idx.astype(np.int64)),
        )


def real_clips(
    data: ThermalData,
    clip: ClipConfig,
    norm: NormStats | None,
    num_clips: int = 8,
    batch_size: int = 4,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Normalised real clips with their annotated person boxes, in batches.

    Takes ``num_clips`` keyframes with at least one person, evenly spread over all keyframes of
    ``data`` (both sessions, every recording), and returns ``(clips, rois)``: lists of
    ``[B, 1, T, H, W]`` clip batches and their ``[K, 5]`` RoIs (pixel XYXY), ``B <= batch_size``.

    Raises:
        DataError: the dataset has no keyframe with a person box.
    """
    if num_clips < 1 or batch_size < 1:
        raise ValueError(f"num_clips and batch_size must be >= 1, got {num_clips}, {batch_size}")
    with_people = [k for k in data.keyframes if len(k.persons) > 0]
    if not with_people:
        raise DataError(f"{data.root}: no keyframe with a person box to verify the export on")
    n = min(num_clips, len(with_people))
    picks = np.linspace(0, len(with_people) - 1, n).round().astype(int)
    ds = ClipDataset.from_data(data, [with_people[i] for i in picks], clip, norm=norm)
    clips: list[torch.Tensor] = []
    rois: list[torch.Tensor] = []
    for start in range(0, n, batch_size):
        batch = collate_clips([ds[i] for i in range(start, min(start + batch_size, n))])
        clips.append(batch.frames)
        rois.append(batch.rois)
    return clips, rois
