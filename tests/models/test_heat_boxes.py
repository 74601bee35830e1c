"""Tests for thermact.models.heat_boxes: growing person boxes to the body heat around them, on
synthetic frames with known blobs and on real lying people whose boxes were cut short."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thermact.data.source import ThermalData
from thermact.models.heat_boxes import HeatGrowth, grow_person_boxes, grow_to_heat
from thermact.models.postprocess import PERSON, Detections

NONE = torch.zeros(0, 4)
NO_INDEX = torch.zeros(0, dtype=torch.int64)


def _frame(*blobs: tuple[int, int, int, int], floor: float = 20.0, heat: float = 30.0) -> torch.Tensor:
    """A 40 x 60 frame at ``floor`` °C with ``heat`` °C in each pixel-XYXY blob ``(x1, y1, x2, y2)``."""
    frame = torch.full((40, 60), floor)
    for x1, y1, x2, y2 in blobs:
        frame[y1:y2, x1:x2] = heat
    return frame


def _grow(frame: torch.Tensor, box: list[float], margin: float = 0.5, delta: float = 2.5) -> list[float]:
    out = grow_to_heat(
        frame[None], torch.tensor([box]), torch.zeros(1, dtype=torch.int64), NONE, NO_INDEX, delta, margin
    )
    return [float(v) for v in out[0]]


def test_a_short_box_grows_to_its_whole_blob() -> None:
    # a lying body over x 10..30; the detector's box covers x 14..26 of it
    assert _grow(_frame((10, 10, 30, 15)), [14, 10, 26, 15]) == [10, 10, 30, 15]


def test_growth_stops_at_the_margin() -> None:
    # blob x 0..50; box x 20..30 (width 10), margin 0.5: pixel centres within x 15..35 only
    assert _grow(_frame((0, 10, 50, 15)), [20, 10, 30, 15]) == [15, 10, 35, 15]


def test_a_separate_warm_blob_inside_the_margin_is_not_joined() -> None:
    # a kettle at x 28..30, two cold pixels away from the body (x 10..26), inside the margin
    frame = _frame((10, 10, 26, 15), (28, 11, 30, 13))
    assert _grow(frame, [14, 10, 26, 15]) == [10, 10, 26, 15]


def test_a_box_is_never_shrunk_and_a_cold_box_is_kept() -> None:
    frame = _frame((10, 10, 14, 14))
    assert _grow(frame, [8.5, 8.25, 15.5, 16.75]) == [8.5, 8.25, 15.5, 16.75]
    assert _grow(frame, [40.0, 20.0, 48.0, 30.0]) == [40.0, 20.0, 48.0, 30.0]  # no heat in it


def test_the_threshold_is_above_the_background_not_absolute() -> None:
    # the same scene 8 °C warmer, and a body only 2 °C above the floor (below the 2.5 °C threshold)
    assert _grow(_frame((10, 10, 30, 15), floor=28.0, heat=38.0), [14, 10, 26, 15]) == [10, 10, 30, 15]
    assert _grow(_frame((10, 10, 30, 15), heat=22.0), [14, 10, 26, 15]) == [14, 10, 26, 15]


def test_a_warm_corner_of_the_room_beside_a_person_is_not_joined() -> None:
    """A desk or sunlit wall 3.5 °C above the floor fills the frame left of x = 26 and touches a
    standing person (+8 °C, box x 20..30): 3.5 °C is above the floor by more than the 3 °C
    threshold, but the person's surroundings are that warm too, so the box stays as it is."""
    frame = torch.full((40, 60), 18.0)
    frame[:, :26] = 21.5
    frame[10:20, 20:30] = 26.0
    assert _grow(frame, [20, 10, 30, 20], margin=0.3, delta=3.0) == [20, 10, 30, 20]
    # a plain room: with the same person's heat reaching past the box, it is found (up to the margin)
    frame = _frame((14, 10, 30, 20), floor=18.0, heat=26.0)
    assert _grow(frame, [20, 10, 30, 20], margin=0.3, delta=3.0) == [17, 10, 30, 20]


def test_context_boxes_keep_a_large_body_out_of_the_background() -> None:
    # a body covering most of the frame would make the median "warm" without the context box
    frame = _frame((0, 0, 60, 28), (10, 30, 30, 35))
    box = torch.tensor([[14.0, 30.0, 26.0, 35.0]])
    index = torch.zeros(1, dtype=torch.int64)
    alone = grow_to_heat(frame[None], box, index, NONE, NO_INDEX, 2.5, 0.5)
    assert alone.tolist() == box.tolist()  # background 30 °C: nothing is warm
    context = torch.tensor([[0.0, 0.0, 60.0, 28.0]])
    grown = grow_to_heat(frame[None], box, index, context, torch.zeros(1, dtype=torch.int64), 2.5, 0.5)
    assert grown.tolist() == [[10.0, 30.0, 30.0, 35.0]]


def test_grow_person_boxes_batches_frames_and_leaves_non_persons() -> None:
    frames = torch.stack([_frame((10, 10, 30, 15)), _frame((30, 20, 50, 25))])
    person, other = PERSON, PERSON + 1
    dets = [
        Detections(
            torch.tensor([[14.0, 10, 26, 15], [14, 10, 26, 15]]),
            torch.tensor([0.9, 0.8]),
            torch.tensor([person, other]),
        ),
        Detections(torch.tensor([[34.0, 20, 46, 25]]), torch.tensor([0.5]), torch.tensor([person])),
    ]
    out = grow_person_boxes(frames, dets, HeatGrowth(2.5, 0.5))
    assert out[0].boxes.tolist() == [[10, 10, 30, 15], [14, 10, 26, 15]]
    assert out[1].boxes.tolist() == [[30, 20, 50, 25]]
    assert out[0].scores is dets[0].scores and out[1].labels is dets[1].labels
    # normalised frames (°C / 4) with unit_c = 4 give the same boxes
    scaled = grow_person_boxes(frames / 4 - 5, dets, HeatGrowth(2.5, 0.5), unit_c=4.0)
    assert [d.boxes.tolist() for d in scaled] == [d.boxes.tolist() for d in out]
    assert grow_person_boxes(frames[:0], [], HeatGrowth()) == []
    with pytest.raises(ValueError, match="2 frames"):
        grow_person_boxes(frames, dets[:1], HeatGrowth())


def test_heat_growth_checks_its_settings() -> None:
    for bad in ({"hot_delta_c": 0.0}, {"margin": -0.1}, {"context_score": 1.5}):
        with pytest.raises(ValueError, match="HeatGrowth needs"):
            HeatGrowth(**bad)  # type: ignore[arg-type]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_real_lying_boxes_cut_short_grow_back_towards_the_annotation(real_data: ThermalData) -> None:
    """The detector's error in unseen rooms, made on purpose: every annotated lying person of the
    bundled data with its box's long side cut to 80 % (centred); growing gives most of it back."""
    before, after = [], []
    for kf in real_data.keyframes:
        lying = [b for b in kf.persons if b.name is not None and b.name.startswith("lying")]
        if not lying:
            continue
        frame = torch.from_numpy(np.array(real_data.recordings[kf.recording_id].frames[kf.frame_index]))
        truth = np.array([b.xyxy for b in lying])
        short = truth.copy()
        w, h = truth[:, 2] - truth[:, 0], truth[:, 3] - truth[:, 1]
        cut_x, cut_y = np.where(w >= h, 0.1 * w, 0.0), np.where(w >= h, 0.0, 0.1 * h)
        short += np.stack([cut_x, cut_y, -cut_x, -cut_y], axis=1)
        dets = Detections(
            torch.tensor(short, dtype=torch.float32),
            torch.ones(len(lying)),
            torch.full((len(lying),), PERSON),
        )
        grown = grow_person_boxes(frame[None], [dets], HeatGrowth())[0].boxes.numpy()
        assert (grown[:, :2] <= short[:, :2] + 1e-4).all() and (grown[:, 2:] >= short[:, 2:] - 1e-4).all()
        before += [_iou(s, t) for s, t in zip(short, truth, strict=True)]
        after += [_iou(g, t) for g, t in zip(grown, truth, strict=True)]
    assert len(before) > 100
    print(f"{len(before)} lying boxes: IoU with the annotation {np.mean(before):.3f} -> {np.mean(after):.3f}")
    assert np.mean(after) > np.mean(before) + 0.04
