"""Tests for thermact.data.dataset on the bundled real data."""

from __future__ import annotations

import dataclasses
import pickle

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from thermact.data.annotations import Box, Keyframe, boxes_array
from thermact.data.clips import ClipConfig, clip_times
from thermact.data.dataset import ClipBatch, ClipDataset, collate_clips, sample_seed, swap_in_detected
from thermact.data.geometry import hflip
from thermact.data.source import ThermalData, load_dataset
from thermact.data.transforms import Augment, NormStats
from thermact.errors import DataError

CLIP = ClipConfig(window_s=2.7, num_frames=16)


@pytest.fixture(scope="module")
def data() -> ThermalData:
    return load_dataset(with_raw=False)


def brute_nearest(timestamps: np.ndarray, times: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.argmin(np.abs(timestamps[None, :] - times[:, None]), axis=1)
    return out


def edge_keyframe(data: ThermalData, rec_id: str, which: int) -> Keyframe:
    rec = data.recordings[rec_id]
    template = next(k for k in data.keyframes if k.recording_id == rec_id)
    ts = int(rec.timestamps[which])
    return dataclasses.replace(template, keyframe_id=f"{rec_id}_{ts}", timestamp_ms=ts, frame_index=None)


def test_sample_matches_recording_and_annotation(data: ThermalData) -> None:
    ds = ClipDataset.from_data(data, None, CLIP)
    assert len(ds) == 387
    for i in (0, 100, 386):
        kf = data.keyframes[i]
        rec = data.recordings[kf.recording_id]
        s = ds[i]
        idx = brute_nearest(rec.timestamps, clip_times(kf.timestamp_ms, CLIP))
        assert s.frames.shape == (1, 16, 40, 60) and s.frames.dtype == torch.float32
        assert s.valid.shape == (16, 40, 60) and s.valid.dtype == torch.bool
        np.testing.assert_array_equal(s.frame_indices.numpy(), idx)
        np.testing.assert_array_equal(s.frames[0].numpy(), rec.frames[idx])
        np.testing.assert_array_equal(s.valid.numpy(), rec.valid[idx])
        np.testing.assert_array_equal(s.boxes.numpy(), boxes_array(kf.persons))
        assert s.labels.tolist() == [b.label for b in kf.persons]
        assert s.track_ids.tolist() == [b.track_id for b in kf.persons]
        assert s.labels.dtype == torch.int64 and s.track_ids.dtype == torch.int64
        assert (s.recording_id, s.keyframe_ms, s.keyframe_id) == (
            kf.recording_id,
            kf.timestamp_ms,
            kf.keyframe_id,
        )
    assert ds[-1].keyframe_id == data.keyframes[-1].keyframe_id
    with pytest.raises(IndexError):
        ds[387]


def test_time_grid_on_irregular_timestamps_matches_brute_force(data: ThermalData) -> None:
    cfg = ClipConfig(window_s=4.0, num_frames=8)
    ds = ClipDataset.from_data(data, None, cfg)
    for i in range(0, len(ds), 5):
        kf = data.keyframes[i]
        ts = data.recordings[kf.recording_id].timestamps
        want = brute_nearest(ts, clip_times(kf.timestamp_ms, cfg))
        np.testing.assert_array_equal(ds.indices(i), want)


@pytest.mark.parametrize("rec_id", ["SL14_R4", "SL18_R1"])
def test_keyframes_at_first_and_last_frame_replicate_edges(data: ThermalData, rec_id: str) -> None:
    rec = data.recordings[rec_id]
    last = rec.num_frames - 1
    for position in ("center", "causal"):
        cfg = ClipConfig(window_s=2.7, num_frames=16, keyframe_position=position)
        first_kf, last_kf = edge_keyframe(data, rec_id, 0), edge_keyframe(data, rec_id, -1)
        ds = ClipDataset(data.recordings, [first_kf, last_kf], data.classes, cfg)
        s0, s1 = ds[0], ds[1]
        for s, kf in ((s0, first_kf), (s1, last_kf)):
            idx = s.frame_indices.numpy()
            assert idx.min() >= 0 and idx.max() <= last
            np.testing.assert_array_equal(
                idx, brute_nearest(rec.timestamps, clip_times(kf.timestamp_ms, cfg))
            )
            np.testing.assert_array_equal(s.frames[0].numpy(), rec.frames[idx])
        # grid points before the first frame take frame 0, after the last take frame T-1
        before = clip_times(first_kf.timestamp_ms, cfg) <= rec.timestamps[0]
        assert before.sum() >= 8
        assert np.all(s0.frame_indices.numpy()[before] == 0)
        after = clip_times(last_kf.timestamp_ms, cfg) >= rec.timestamps[-1]
        assert np.all(s1.frame_indices.numpy()[after] == last)
        if position == "causal":
            assert np.all(s0.frame_indices.numpy() == 0)
            assert s1.frame_indices[-1] == last
        else:
            assert after.sum() >= 8


def test_causal_and_center_keyframe_position(data: ThermalData) -> None:
    causal = ClipDataset.from_data(
        data, None, ClipConfig(window_s=2.7, num_frames=16, keyframe_position="causal")
    )
    center = ClipDataset.from_data(data, None, ClipConfig(window_s=3.0, num_frames=15))
    for i in range(0, len(causal), 11):
        kf = data.keyframes[i]
        k = data.recordings[kf.recording_id].exact_index(kf.timestamp_ms)
        assert k is not None
        assert int(causal[i].frame_indices[-1]) == k
        assert int(causal[i].frame_indices.max()) == k  # nothing from the future
        assert int(center[i].frame_indices[7]) == k


def test_dead_pixels_never_reach_the_sample(data: ThermalData) -> None:
    ds = ClipDataset.from_data(data, [k for k in data.keyframes if k.recording_id == "SL14_R1"], CLIP)
    found = 0
    for i in range(len(ds)):
        idx = ds.indices(i)
        if data.recordings["SL14_R1"].valid[idx].all():
            continue
        s = ds[i]
        with h5py.File(data.recordings["SL14_R1"].path, "r") as handle:
            raw = np.asarray(handle["frames"][()])[s.frame_indices.numpy()]
        dead = raw == np.float32(-273.2)
        assert dead.sum() >= 500  # whole blocks of dead rows in this clip's raw frames
        assert float(s.frames.min()) > 5.0  # repaired: plausible room temperatures only
        np.testing.assert_array_equal(s.valid.numpy(), ~dead)
        np.testing.assert_array_equal(s.frames[0].numpy()[~dead], raw[~dead])
        found += 1
    assert found >= 5


def test_normalisation_resize_and_augment(data: ThermalData) -> None:
    norm = NormStats(17.5, 1.75)
    kfs = data.keyframes[:4]
    plain = ClipDataset.from_data(data, kfs, CLIP)
    normed = ClipDataset.from_data(data, kfs, CLIP, norm=norm)
    torch.testing.assert_close(normed[2].frames, (plain[2].frames - 17.5) / 1.75)
    big = ClipDataset.from_data(data, kfs, CLIP, input_size=(80, 120))
    s = big[2]
    assert s.frames.shape == (1, 16, 80, 120) and s.valid.shape == (16, 80, 120)
    assert big.frame_size == (80, 120) and plain.frame_size == (40, 60)
    torch.testing.assert_close(s.boxes, plain[2].boxes * 2.0)

    flip = Augment(p_hflip=1.0, p_vflip=0.0, offset_c=(0.0, 0.0), gain=(1.0, 1.0), box_jitter=0.0)
    flipped = ClipDataset.from_data(data, kfs, CLIP, augment=flip)[2]
    f, v, b = hflip(plain[2].frames[0], plain[2].valid, plain[2].boxes)
    assert (
        torch.equal(flipped.frames[0], f) and torch.equal(flipped.valid, v) and torch.equal(flipped.boxes, b)
    )

    aug = ClipDataset.from_data(data, kfs, CLIP, augment=Augment(box_jitter=0.1), seed=3)
    first = aug[1]
    assert torch.equal(aug[1].frames, first.frames) and torch.equal(aug[1].boxes, first.boxes)
    aug.set_epoch(1)
    assert not torch.equal(aug[1].boxes, first.boxes)
    assert sample_seed(3, 0, 1) != sample_seed(3, 1, 1) and sample_seed(3, 0, 1) == sample_seed(3, 0, 1)


def test_swap_in_detected_replaces_found_boxes_only() -> None:
    boxes = np.array([[0, 0, 4, 4], [10, 10, 20, 30], [5, 5, 9, 9]], dtype=np.float32)
    detected = np.array([[1, 1, 5, 5], [np.nan] * 4, [4, 6, 9, 10]], dtype=np.float32)
    gen = torch.Generator().manual_seed(0)
    np.testing.assert_array_equal(
        swap_in_detected(boxes, detected, 1.0, gen), [[1, 1, 5, 5], [10, 10, 20, 30], [4, 6, 9, 10]]
    )
    np.testing.assert_array_equal(swap_in_detected(boxes, detected, 0.0, gen), boxes)
    # p = 0.5: each found box is swapped on its own draw, ~half of them over many draws
    many = np.stack([swap_in_detected(boxes, detected, 0.5, gen) for _ in range(400)])
    assert 0.4 < float((many[:, 0] == detected[0]).all(axis=1).mean()) < 0.6
    assert (many[:, 1] == boxes[1]).all()
    with pytest.raises(ValueError, match="do not match"):
        swap_in_detected(boxes, detected[:2], 1.0, gen)


def test_detected_boxes_reach_the_sample_before_the_augmentation(data: ThermalData) -> None:
    kfs = [k for k in data.keyframes if len(k.persons) >= 2][:3]
    detected = {k.keyframe_id: boxes_array(k.persons) + np.float32(1.5) for k in kfs}
    detected[kfs[0].keyframe_id][0] = np.nan  # the detector missed that person
    plain = ClipDataset.from_data(data, kfs, CLIP)
    swapped = ClipDataset.from_data(data, kfs, CLIP, detected_boxes=detected, p_detected=1.0)
    np.testing.assert_array_equal(swapped[1].boxes.numpy(), detected[kfs[1].keyframe_id])
    first = swapped[0].boxes.numpy()
    np.testing.assert_array_equal(first[0], plain[0].boxes.numpy()[0])
    np.testing.assert_array_equal(first[1:], detected[kfs[0].keyframe_id][1:])
    assert torch.equal(swapped[1].frames, plain[1].frames) and torch.equal(swapped[1].labels, plain[1].labels)
    # mirrored with the clip
    mirror = Augment(p_hflip=1.0, p_vflip=0.0, offset_c=(0.0, 0.0), gain=(1.0, 1.0), box_jitter=0.0)
    m = ClipDataset.from_data(data, kfs, CLIP, augment=mirror, detected_boxes=detected, p_detected=1.0)[1]
    _, _, expected = hflip(plain[1].frames[0], plain[1].valid, torch.from_numpy(detected[kfs[1].keyframe_id]))
    torch.testing.assert_close(m.boxes, expected)
    # the augmentation's own draws are those of a run without detected boxes
    jitter = Augment(box_jitter=0.1)
    a = ClipDataset.from_data(data, kfs, CLIP, augment=jitter, seed=5)[1]
    b = ClipDataset.from_data(
        data, kfs, CLIP, augment=jitter, seed=5, detected_boxes=detected, p_detected=1.0
    )[1]
    assert torch.equal(a.frames, b.frames) and not torch.equal(a.boxes, b.boxes)
    off = ClipDataset.from_data(
        data, kfs, CLIP, augment=jitter, seed=5, detected_boxes=detected, p_detected=0.0
    )[1]
    assert torch.equal(off.boxes, a.boxes)
    with pytest.raises(DataError, match="detected boxes"):
        ClipDataset.from_data(
            data,
            kfs[1:2],
            CLIP,
            detected_boxes={kfs[1].keyframe_id: detected[kfs[1].keyframe_id][:1]},
            p_detected=0.5,
        )


def test_collate_builds_rois(data: ThermalData) -> None:
    ds = ClipDataset.from_data(data, data.keyframes[:3], CLIP)
    samples = [ds[i] for i in range(3)]
    empty_kf = dataclasses.replace(data.keyframes[5], keyframe_id="empty", persons=())
    empty = ClipDataset(data.recordings, [empty_kf], data.classes, CLIP)[0]
    assert empty.boxes.shape == (0, 4) and empty.labels.shape == (0,)
    batch = collate_clips([samples[0], empty, samples[1], samples[2]])
    assert isinstance(batch, ClipBatch) and len(batch) == 4
    assert batch.frames.shape == (4, 1, 16, 40, 60) and batch.valid.shape == (4, 16, 40, 60)
    n = [s.boxes.shape[0] for s in samples]
    assert batch.num_boxes.tolist() == [n[0], 0, n[1], n[2]]
    assert batch.rois.shape == (sum(n), 5) and batch.rois.dtype == torch.float32
    assert batch.rois[:, 0].tolist() == [0.0] * n[0] + [2.0] * n[1] + [3.0] * n[2]
    torch.testing.assert_close(batch.rois[:, 1:], torch.cat([s.boxes for s in samples]))
    assert batch.labels.tolist() == [v for s in samples for v in s.labels.tolist()]
    assert batch.track_ids.tolist() == [v for s in samples for v in s.track_ids.tolist()]
    assert batch.keyframe_ids == [
        samples[0].keyframe_id,
        "empty",
        samples[1].keyframe_id,
        samples[2].keyframe_id,
    ]
    assert batch.keyframe_ms[1] == empty_kf.timestamp_ms
    assert torch.equal(batch.frame_indices[3], samples[2].frame_indices)
    assert batch.to("cpu").rois is not None
    with pytest.raises(ValueError, match="same shape"):
        big = ClipDataset.from_data(data, data.keyframes[:1], CLIP, input_size=(80, 120))[0]
        collate_clips([samples[0], big])


def test_dataset_errors(data: ThermalData) -> None:
    kf = data.keyframes[0]
    with pytest.raises(DataError, match="unknown recording"):
        ClipDataset(data.recordings, [dataclasses.replace(kf, recording_id="nope")], data.classes, CLIP)
    with pytest.raises(DataError, match="outside"):
        ClipDataset(
            data.recordings,
            [dataclasses.replace(kf, timestamp_ms=kf.timestamp_ms + 10**9)],
            data.classes,
            CLIP,
        )
    bad_box = Box((1.0, 1.0, 5.0, 5.0), "person", 99, "x", 0)
    with pytest.raises(DataError, match="label"):
        ClipDataset(data.recordings, [dataclasses.replace(kf, persons=(bad_box,))], data.classes, CLIP)


def test_pickles_without_frames(data: ThermalData) -> None:
    ds = ClipDataset.from_data(data, data.keyframes[:5], CLIP, norm=NormStats(17.5, 1.75))
    blob = pickle.dumps(ds)
    assert len(blob) < 200_000  # the decoded recordings (~40 MB) are not copied
    clone = pickle.loads(blob)
    a, b = ds[4], clone[4]
    assert torch.equal(a.frames, b.frames) and torch.equal(a.valid, b.valid) and torch.equal(a.boxes, b.boxes)


def test_dataloader_workers_give_the_same_batches(data: ThermalData) -> None:
    kfs = data.keyframes[::24]
    ds = ClipDataset.from_data(
        data,
        kfs,
        CLIP,
        norm=NormStats(17.5, 1.75),
        augment=Augment(box_jitter=0.1),
        seed=7,
    )
    ds.set_epoch(2)

    def run(workers: int) -> list[ClipBatch]:
        loader = DataLoader(ds, batch_size=4, shuffle=False, num_workers=workers, collate_fn=collate_clips)
        return list(loader)

    serial, parallel = run(0), run(2)
    assert len(serial) == len(parallel) == (len(kfs) + 3) // 4
    for a, b in zip(serial, parallel, strict=True):
        for field in dataclasses.fields(ClipBatch):
            x, y = getattr(a, field.name), getattr(b, field.name)
            if isinstance(x, torch.Tensor):
                assert torch.equal(x, y), field.name
            else:
                assert x == y, field.name
