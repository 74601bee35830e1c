"""Detection samples: a short causal clip ending at each annotated keyframe, with every box of it.

The clip is sampled like the action clips (:mod:`thermact.data.clips`) with a causal
:class:`~thermact.data.clips.ClipConfig`: ``num_frames`` grid points ``window_s / num_frames``
apart, the last one exactly at the keyframe, each taking the nearest real frame (edge frames
replicated at a recording's start). The default detector clip is 3 frames over 0.5 s, i.e. the
keyframe and the frames about 0.17 s and 0.33 s before it at ~6 fps. Only the past is used, so the
same detector runs live.

Targets: the person boxes (label 0) and, unless ``with_others=False``, the hot objects and
furniture of the raw annotations (``Keyframe.others``, label 1 = warm non-person). Augmentation
(:class:`~thermact.data.transforms.Augment`, seeded per ``(seed, epoch, index)`` exactly as in
:class:`~thermact.data.dataset.ClipDataset`) maps frames and both kinds of box together, then the
clip is normalised with the training :class:`~thermact.data.transforms.NormStats`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from thermact.data.annotations import Keyframe, boxes_array
from thermact.data.clips import ClipConfig
from thermact.data.dataset import SENSOR_SEED, read_clip, sample_seed
from thermact.data.recording import Recording
from thermact.data.sensor_augment import SensorAugment
from thermact.data.transforms import Augment, NormStats, normalize
from thermact.errors import DataError

__all__ = [
    "NON_PERSON",
    "DetectionBatch",
    "DetectionClipDataset",
    "DetectionSample",
    "collate_detection",
    "detection_clip",
]

NON_PERSON = 1
"""Label of hot objects and furniture (persons are 0)."""


def detection_clip(num_frames: int, window_s: float) -> ClipConfig:
    """The causal clip of a detector: ``num_frames`` frames over ``window_s`` seconds, keyframe last."""
    return ClipConfig(window_s=window_s, num_frames=num_frames, keyframe_position="causal")


@dataclasses.dataclass(frozen=True)
class DetectionSample:
    """One keyframe: frames ``[1, T, H, W]`` (normalised if the dataset has NormStats), boxes ``[N, 4]``
    pixel XYXY, labels ``[N]`` (0 person, 1 non-person), persons first. ``others_known`` is False when
    nobody annotated the keyframe's hot objects and furniture (no raw annotations for its recording):
    the absence of non-person boxes then says nothing, and the loss ignores that class there."""

    frames: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    keyframe_id: str
    recording_id: str
    keyframe_ms: int
    frame_indices: torch.Tensor
    others_known: bool = True


@dataclasses.dataclass(frozen=True)
class DetectionBatch:
    """Samples stacked: frames ``[B, 1, T, H, W]``; boxes / labels one tensor per image;
    ``others_known`` bool ``[B]`` (see :class:`DetectionSample`)."""

    frames: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    keyframe_ids: list[str]
    recording_ids: list[str]
    keyframe_ms: list[int]
    others_known: torch.Tensor = dataclasses.field(default_factory=lambda: torch.ones(0, dtype=torch.bool))

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def collate_detection(samples: Sequence[DetectionSample]) -> DetectionBatch:
    """``collate_fn`` of a DataLoader over :class:`DetectionClipDataset`."""
    if not samples:
        raise ValueError("collate_detection needs at least one sample")
    return DetectionBatch(
        frames=torch.from_numpy(np.stack([s.frames.numpy() for s in samples])),
        boxes=[s.boxes for s in samples],
        labels=[s.labels for s in samples],
        keyframe_ids=[s.keyframe_id for s in samples],
        recording_ids=[s.recording_id for s in samples],
        keyframe_ms=[s.keyframe_ms for s in samples],
        others_known=torch.tensor([s.others_known for s in samples], dtype=torch.bool),
    )


class DetectionClipDataset(torch.utils.data.Dataset[DetectionSample]):
    """Causal clips ending at keyframes, with person and non-person boxes.

    Args:
        recordings: recording id → :class:`Recording`.
        keyframes: the keyframes (one item each).
        clip: a causal clip configuration (see :func:`detection_clip`).
        norm: normalisation statistics (from the training keyframes); None keeps °C.
        augment: random augmentation (training only).
        with_others: also return the hot-object / furniture boxes (label 1).
        seed: base seed of the per-item augmentation generators.
        sensor: random sensor behaviour (training only; :mod:`thermact.data.sensor_augment`), drawn
            as for :class:`~thermact.data.dataset.ClipDataset`.
    """

    def __init__(
        self,
        recordings: Mapping[str, Recording],
        keyframes: Sequence[Keyframe],
        clip: ClipConfig,
        norm: NormStats | None = None,
        augment: Augment | None = None,
        with_others: bool = True,
        seed: int = 0,
        sensor: SensorAugment | None = None,
    ) -> None:
        if clip.keyframe_position != "causal":
            raise ValueError("a detector clip must be causal (keyframe_position='causal')")
        self.recordings = dict(recordings)
        self.keyframes = list(keyframes)
        self.clip = clip
        self.norm = norm
        self.augment = augment
        self.with_others = with_others
        self.seed = int(seed)
        self.sensor = sensor if sensor is not None and sensor.enabled else None
        self.epoch = 0
        for kf in self.keyframes:
            if kf.recording_id not in self.recordings:
                raise DataError(f"keyframe {kf.keyframe_id}: unknown recording {kf.recording_id!r}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.keyframes)

    def __getitem__(self, index: int) -> DetectionSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} keyframes")
        index = index % len(self)
        kf = self.keyframes[index]
        rec = self.recordings[kf.recording_id]
        sensor_seed = sample_seed(self.seed + SENSOR_SEED, self.epoch, index)
        idx, frames, valid = read_clip(rec, kf.timestamp_ms, self.clip, self.sensor, sensor_seed)
        others = kf.others if self.with_others else ()
        boxes = np.concatenate([boxes_array(kf.persons), boxes_array(others)], axis=0)
        labels = np.asarray([0] * len(kf.persons) + [NON_PERSON] * len(others), dtype=np.int64)
        if self.augment is not None:
            gen = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, index))
            frames, valid, boxes = self.augment.apply(frames, valid, boxes, gen)
        if self.norm is not None:
            frames = normalize(frames, self.norm)
        return DetectionSample(
            frames=torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).unsqueeze(0),
            boxes=torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)),
            labels=torch.from_numpy(labels),
            keyframe_id=kf.keyframe_id,
            recording_id=kf.recording_id,
            keyframe_ms=int(kf.timestamp_ms),
            frame_indices=torch.from_numpy(idx.astype(np.int64)),
            others_known=bool(kf.others_known) or not self.with_others,
        )
