"""Tests for thermact.data.sensor_augment: frame timing, packet loss and dead pixels on real recordings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from thermact.config import build_config
from thermact.data.clips import ClipConfig, clip_indices
from thermact.data.dataset import ClipDataset
from thermact.data.sensor_augment import SensorAugment, dead_pixels, stale_rows
from thermact.data.source import ThermalData
from thermact.data.transforms import Augment
from thermact.errors import ConfigError
from thermact.tasks.action import ActionRunConfig
from thermact.tasks.person import DetectorRunConfig

CLIP = ClipConfig(2.7, 8, "causal")


def test_jitter_keeps_the_keyframe_and_real_frames(real_data: ThermalData) -> None:
    jitter = SensorAugment(time_stretch=(0.75, 1.33), frame_drop=0.6)
    seen_windows = set()
    for kf in real_data.keyframes[:40]:
        ts = real_data.recordings[kf.recording_id].timestamps
        plain = clip_indices(ts, kf.timestamp_ms, CLIP)
        for seed in range(3):
            idx = jitter.indices(ts, kf.timestamp_ms, CLIP, torch.Generator().manual_seed(seed))
            assert idx.shape == (8,) and (np.diff(idx) >= 0).all() and idx[0] >= 0 and idx[-1] < len(ts)
            assert idx[-1] == plain[-1]  # causal: the newest frame is the keyframe's, never dropped
            seen_windows.add(int(ts[idx[-1]] - ts[idx[0]]))
    assert len(seen_windows) > 20  # the span really varies


def test_time_shift_moves_the_clip_around_the_keyframe(real_data: ThermalData) -> None:
    shift = SensorAugment(time_shift_s=0.5)
    offsets = []
    for kf in real_data.keyframes[:40]:
        ts = real_data.recordings[kf.recording_id].timestamps
        plain = clip_indices(ts, kf.timestamp_ms, CLIP)
        if plain[0] == 0 or plain[-1] >= len(ts) - 4:
            continue  # at a recording's edge the grid repeats the edge frame
        for seed in range(3):
            idx = shift.indices(ts, kf.timestamp_ms, CLIP, torch.Generator().manual_seed(seed))
            offsets.append(int(ts[idx[-1]] - ts[plain[-1]]))
            assert (np.diff(idx) >= 0).all()
            gaps = np.diff(ts[max(0, plain[-1] - 6) : plain[-1] + 7])
            assert abs(offsets[-1]) <= 500 + gaps.max()  # within the shift, up to the nearest frame
    assert min(offsets) < -150 and max(offsets) > 150 and len(set(offsets)) > 5
    with pytest.raises(ValueError, match="time_shift_s"):
        SensorAugment(time_shift_s=-0.1)


def test_neutral_settings_are_the_plain_grid(real_data: ThermalData) -> None:
    kf = real_data.keyframes[10]
    ts = real_data.recordings[kf.recording_id].timestamps
    assert not SensorAugment().enabled
    got = SensorAugment(p_stale_rows=0.5).indices(ts, kf.timestamp_ms, CLIP, torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(got, clip_indices(ts, kf.timestamp_ms, CLIP))
    for bad, key in (({"frame_drop": 1.0}, "frame_drop"), ({"time_stretch": (1.2, 0.8)}, "time_stretch")):
        with pytest.raises(ValueError, match=key):
            SensorAugment(**bad)
    with pytest.raises(ValueError, match="dead_pixels"):
        SensorAugment(dead_pixels=0.6)


def test_stale_rows_copy_the_previous_frame_and_mark_them_invalid(real_data: ThermalData) -> None:
    rec = real_data.recordings["SL18_R1"]
    frames, valid = rec.frames[100:108], rec.valid[100:108]
    before = frames.copy()
    out, mask = stale_rows(frames, valid, 0.5, torch.Generator().manual_seed(1))
    hit = [t for t in range(8) if not mask[t].all()]
    assert hit and 0 not in hit
    for t in hit:
        first = int(np.argmax(~mask[t].all(axis=1)))
        assert 20 <= first <= 39 and not mask[t, first:].any() and mask[t, :first].all()
        np.testing.assert_array_equal(out[t, first:], out[t - 1, first:])
        np.testing.assert_array_equal(out[t, :first], frames[t, :first])
    np.testing.assert_array_equal(frames, before)  # the input is untouched
    same, same_mask = stale_rows(frames, valid, 0.0, torch.Generator().manual_seed(1))
    assert same is frames and same_mask is valid


def test_dead_pixels_take_their_neighbours_median(real_data: ThermalData) -> None:
    rec = real_data.recordings["SL14_R1"]
    frames, valid = rec.frames[200:208], rec.valid[200:208]
    assert valid.all()
    out, mask = dead_pixels(frames, valid, 24, torch.Generator().manual_seed(2))
    dead = ~mask[0]
    assert dead.sum() == 24 and (mask == mask[0]).all()  # the same pixels in every frame
    np.testing.assert_array_equal(out[:, ~dead], frames[:, ~dead])
    y, x = (int(v[0]) for v in np.nonzero(dead))
    near = frames[3, max(0, y - 1) : y + 2, max(0, x - 1) : x + 2][
        ~dead[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
    ]
    if near.size:  # a dead pixel whose 3x3 neighbours are all dead takes a wider ring
        assert out[3, y, x] == pytest.approx(float(np.median(near)))
    assert np.abs(out[:, dead] - frames[:, dead]).mean() < 1.0  # repaired values are plausible


def test_dataset_sensor_stream_leaves_the_other_draws_alone(real_data: ThermalData) -> None:
    kfs = real_data.keyframes[:20]
    aug = Augment()
    plain = ClipDataset.from_data(real_data, kfs, CLIP, augment=aug, seed=3)
    sensor = SensorAugment((0.7, 1.4), 0.5, 0.2, 0.01)
    jittered = ClipDataset.from_data(real_data, kfs, CLIP, augment=aug, seed=3, sensor=sensor)
    timing = ClipDataset.from_data(
        real_data,
        kfs,
        CLIP,
        augment=aug,
        seed=3,
        sensor=dataclasses.replace(sensor, p_stale_rows=0, dead_pixels=0),
    )
    changed = sum(not torch.equal(plain[i].frame_indices, jittered[i].frame_indices) for i in range(20))
    assert changed >= 10
    lost = 0
    for i in range(20):
        torch.testing.assert_close(jittered[i].boxes, plain[i].boxes)  # the same flips and box jitter
        torch.testing.assert_close(jittered[i].frame_indices, timing[i].frame_indices)  # timing drawn first
        assert (jittered[i].valid <= timing[i].valid).all()  # corruption only adds invalid pixels
        lost += int(timing[i].valid.sum() - jittered[i].valid.sum())
    assert lost > 20 * 8 * 2  # stale rows (0.2 per frame) and up to 24 dead pixels per clip
    neutral = ClipDataset.from_data(real_data, kfs, CLIP, augment=aug, seed=3, sensor=SensorAugment())
    assert neutral.sensor is None
    torch.testing.assert_close(neutral[5].frames, plain[5].frames, rtol=0, atol=0)


def test_config_keys_are_validated_by_name() -> None:
    cfg = build_config(ActionRunConfig, None, ["augment.frame_drop=0.3", "augment.time_stretch=[0.8,1.25]"])
    assert dataclasses.astuple(cfg.augment)[-5:] == ((0.8, 1.25), 0.3, 0.0, 0.0, 0.0)
    for override, key in (
        ("augment.frame_drop=1", "augment.frame_drop"),
        ("augment.time_stretch=[1.2,0.9]", "augment.time_stretch"),
        ("augment.dead_pixels=0.9", "augment.dead_pixels"),
        ("augment.p_stale_rows=-0.1", "augment.p_stale_rows"),
        ("augment.time_shift_s=-1", "augment.time_shift_s"),
    ):
        with pytest.raises(ConfigError, match=key):
            build_config(ActionRunConfig, None, [override])
    assert build_config(ActionRunConfig, None, ["augment.time_shift_s=0.5"]).augment.time_shift_s == 0.5
    with pytest.raises(ConfigError, match="config key 'augment.time_shift_s'"):  # boxes at the last frame
        build_config(DetectorRunConfig, None, ["augment.time_shift_s=0.5"])
