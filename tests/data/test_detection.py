"""Detection clips on the real keyframes: causal frames, both box kinds, consistent flips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thermact.data.annotations import Keyframe
from thermact.data.clips import clip_indices
from thermact.data.detection import NON_PERSON, DetectionClipDataset, collate_detection, detection_clip
from thermact.data.source import ThermalData
from thermact.data.transforms import Augment, NormStats

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread

CLIP = detection_clip(3, 0.5)


def _kf_with_others(real_data: ThermalData) -> list[Keyframe]:
    return [k for k in real_data.keyframes if k.others and k.persons][:4]


def test_items_are_causal_clips_with_both_kinds(real_data: ThermalData) -> None:
    kfs = _kf_with_others(real_data)
    ds = DetectionClipDataset(real_data.recordings, kfs, CLIP)
    s = ds[0]
    kf = kfs[0]
    rec = real_data.recording(kf.recording_id)
    assert s.frames.shape == (1, 3, 40, 60)
    idx = clip_indices(rec.timestamps, kf.timestamp_ms, CLIP)
    assert rec.timestamps[idx[-1]] == kf.timestamp_ms  # the keyframe is the last frame
    assert (np.diff(rec.timestamps[idx]) >= 0).all() and rec.timestamps[idx[0]] < kf.timestamp_ms
    assert torch.equal(s.frames[0, -1], torch.tensor(rec.frames[idx[-1]]))
    n_p, n_o = len(kf.persons), len(kf.others)
    assert s.labels.tolist() == [0] * n_p + [NON_PERSON] * n_o
    assert torch.allclose(s.boxes[n_p:], torch.tensor([b.xyxy for b in kf.others]))
    no_others = DetectionClipDataset(real_data.recordings, kfs, CLIP, with_others=False)[0]
    assert no_others.labels.tolist() == [0] * n_p


def test_augment_moves_boxes_with_frames_and_normalises(real_data: ThermalData) -> None:
    kfs = _kf_with_others(real_data)
    flip = Augment(p_hflip=1.0, p_vflip=0.0, offset_c=(0.0, 0.0), gain=(1.0, 1.0), box_jitter=0.0)
    plain = DetectionClipDataset(real_data.recordings, kfs, CLIP)[1]
    norm = NormStats(20.0, 2.0)
    flipped = DetectionClipDataset(real_data.recordings, kfs, CLIP, norm=norm, augment=flip)[1]
    assert torch.allclose(flipped.frames, (plain.frames.flip(-1) - 20.0) / 2.0)
    expected = plain.boxes.clone()
    expected[:, 0], expected[:, 2] = 60.0 - plain.boxes[:, 2], 60.0 - plain.boxes[:, 0]
    assert torch.allclose(flipped.boxes, expected)
    # every box of both kinds still covers the same temperatures after the flip
    for b0, b1 in zip(plain.boxes.round().int().tolist(), flipped.boxes.round().int().tolist(), strict=True):
        a = plain.frames[0, -1, b0[1] : b0[3], b0[0] : b0[2]]
        c = (flipped.frames[0, -1, b1[1] : b1[3], b1[0] : b1[2]] * 2.0 + 20.0).flip(-1)
        assert torch.allclose(a, c, atol=1e-4)


def test_collate_and_errors(real_data: ThermalData) -> None:
    kfs = _kf_with_others(real_data)
    ds = DetectionClipDataset(real_data.recordings, kfs, CLIP)
    batch = collate_detection([ds[0], ds[1], ds[2]])
    assert batch.frames.shape == (3, 1, 3, 40, 60) and len(batch) == 3
    assert [len(b) for b in batch.boxes] == [len(k.persons) + len(k.others) for k in kfs[:3]]
    assert batch.keyframe_ids == [k.keyframe_id for k in kfs[:3]]
    with pytest.raises(ValueError, match="causal"):
        DetectionClipDataset(real_data.recordings, kfs, detection_clip(3, 0.5).__class__(0.5, 3, "center"))
    with pytest.raises(IndexError):
        ds[10]


def test_sensor_augmentation_draws_as_the_action_clips_do(real_data: ThermalData) -> None:
    """With a SensorAugment the detector's training clips get the jittered timing, packet loss
    and dead pixels of the action model's (same keyframe, seed and epoch: same draws)."""
    from thermact.data.dataset import ClipDataset
    from thermact.data.sensor_augment import SensorAugment

    kfs = [k for k in real_data.keyframes if k.persons][::40][:12]
    sensor = SensorAugment((0.8, 1.25), 0.5, 0.3, 0.02)
    plain = DetectionClipDataset(real_data.recordings, kfs, CLIP, seed=3)
    jittered = DetectionClipDataset(real_data.recordings, kfs, CLIP, seed=3, sensor=sensor)
    action = ClipDataset.from_data(real_data, kfs, CLIP, seed=3, sensor=sensor)
    moved = 0
    for i in range(len(kfs)):
        a, b, c = plain[i], jittered[i], action[i]
        assert torch.equal(b.frame_indices, c.frame_indices) and torch.equal(b.frames, c.frames)
        assert torch.equal(b.boxes[: len(kfs[i].persons)], c.boxes)  # sensor jitter moves no box
        moved += int(not torch.equal(a.frames, b.frames))
        assert int(b.frame_indices[-1]) == int(a.frame_indices[-1])  # still ends at the keyframe
    assert moved >= len(kfs) // 2  # most clips are changed
    epoch0 = [jittered[i].frames for i in range(len(kfs))]
    jittered.set_epoch(1)  # new draws every epoch
    assert any(not torch.equal(jittered[i].frames, f) for i, f in enumerate(epoch0))
    off = DetectionClipDataset(real_data.recordings, kfs, CLIP, seed=3, sensor=SensorAugment())
    assert off.sensor is None and torch.equal(off[0].frames, plain[0].frames)
