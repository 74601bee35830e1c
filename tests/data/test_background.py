"""Tests for thermact.data.background and the ``background`` normalisation on real recordings."""

from __future__ import annotations

import numpy as np
import pytest

from thermact.data.annotations import boxes_array
from thermact.data.background import background_image
from thermact.data.clips import ClipConfig
from thermact.data.dataset import ClipDataset
from thermact.data.source import ThermalData
from thermact.data.transforms import NormStats, compute_norm_stats
from thermact.errors import ConfigError
from thermact.inference.runners import ActionRunner

CLIP = ClipConfig(2.7, 8, "causal")


def _box_masks(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[N, H, W] True on the pixels a pixel-XYXY box covers."""
    out = np.zeros((len(boxes), *size), dtype=bool)
    for m, (x1, y1, x2, y2) in zip(out, boxes, strict=True):
        m[int(np.floor(y1)) : int(np.ceil(y2)), int(np.floor(x1)) : int(np.ceil(x2))] = True
    return out


def test_background_is_the_room_without_its_people(real_data: ThermalData) -> None:
    above_person, above_room = [], []
    for kf in real_data.keyframes[::5]:
        rec = real_data.recordings[kf.recording_id]
        frame = rec.frames[int(rec.index_at(kf.timestamp_ms)[0])]
        heat = frame - rec.background
        masks = _box_masks(boxes_array(kf.persons), (40, 60))
        above_person += [float(heat[m].max()) for m in masks]
        above_room.append(float(np.median(heat[~masks.any(axis=0)])))
    assert np.median(above_person) > 4.0  # people stand out by several degrees
    assert np.abs(above_room).max() < 1.0  # the rest of the room is close to its background
    bg = real_data.recordings["SL14_R1"].background
    assert bg.shape == (40, 60) and bg.dtype == np.float32
    assert bg.max() - bg.min() > 5.0  # a real room is not flat: warm objects, cold corners


def test_background_ignores_invalid_values() -> None:
    frames = np.full((10, 2, 2), 20.0, dtype=np.float32)
    frames[:, 0, 0] = -273.2
    valid = np.ones_like(frames, dtype=bool)
    valid[:, 0, 0] = False
    bg = background_image(frames, valid, q=0.1)
    np.testing.assert_array_equal(bg, np.full((2, 2), 20.0, dtype=np.float32))
    with pytest.raises(ValueError, match="q must be"):
        background_image(frames, valid, q=1.0)


def test_background_normalisation_feeds_heat_above_the_room(real_data: ThermalData) -> None:
    kfs = real_data.keyframes[:30]
    norm = compute_norm_stats(real_data.recordings, kfs, CLIP, "background")
    assert norm.reference == "background" and abs(norm.mean_c) < 1.0 and 0.3 < norm.std_c < 3.0
    assert NormStats.from_dict(norm.to_dict()) == norm
    ds = ClipDataset.from_data(real_data, kfs, CLIP, norm=norm)
    sample = ds[0]
    rec = real_data.recordings[kfs[0].recording_id]
    raw = rec.frames[sample.frame_indices.numpy()]
    expected = (raw - rec.background - norm.mean_c) / norm.std_c
    np.testing.assert_allclose(sample.frames[0].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_live_runner_refuses_a_background_model() -> None:
    norm = NormStats(0.2, 1.5, 10, "background")
    with pytest.raises(ConfigError, match="normalize=background"):
        ActionRunner(lambda clip, rois: clip, ["a"], norm, 2.7, 8)
