"""Decoding: encode ground truth → decode gives the same boxes; thresholds, NMS and clipping."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from thermact.models.person_detector import DetectorOutput
from thermact.models.person_targets import encode_targets
from thermact.models.postprocess import Detections, decode, local_max_3x3, person_boxes
from thermact.ops.nms import batched_nms

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread


def _perfect_output(boxes: torch.Tensor, labels: torch.Tensor) -> DetectorOutput:
    """The output a perfect detector would give: the targets, heatmap as logits."""
    t = encode_targets(boxes, labels, 2, (20, 30), 2)
    heat = t.heatmap.clamp(1e-6, 1 - 1e-6)
    logits = torch.log(heat / (1 - heat))
    return DetectorOutput(logits.unsqueeze(0), t.size.unsqueeze(0), t.offset.unsqueeze(0))


def test_round_trip_real_sized_boxes() -> None:
    boxes = torch.tensor([[5.3, 4.1, 17.9, 15.2], [30.2, 20.7, 41.0, 29.9], [44.0, 2.0, 58.5, 14.25]])
    labels = torch.tensor([0, 0, 1])
    (dets,) = decode(_perfect_output(boxes, labels), 2, (40, 60), score_threshold=0.5)
    assert len(dets) == 3
    assert dets.scores.tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    order = dets.boxes[:, 0].argsort()
    assert torch.allclose(dets.boxes[order], boxes, atol=0.5)
    assert (dets.boxes[order] - boxes).abs().max() < 1e-3  # exact up to float rounding
    assert dets.labels[order].tolist() == [0, 0, 1]
    persons = person_boxes(dets)
    assert len(persons) == 2 and (persons.labels == 0).all()


def test_threshold_topk_clipping_and_nms() -> None:
    heat = torch.full((1, 2, 20, 30), -10.0)
    heat[0, 0, 5, 5] = 2.0  # score 0.88
    heat[0, 0, 5, 7] = 1.9  # a second peak 2 cells away: a near duplicate box
    heat[0, 0, 15, 25] = -1.0  # score 0.27
    heat[0, 1, 0, 0] = 0.0  # score 0.5, box overhanging the corner
    size = torch.full((1, 2, 20, 30), torch.log(torch.tensor(10.0)).item())
    offset = torch.full((1, 2, 20, 30), 0.5)
    (dets,) = decode(DetectorOutput(heat, size, offset), 2, (40, 60), score_threshold=0.3, nms_iou=0.5)
    # (5,7) box overlaps (5,5) with IoU 6/14 = 0.43 < 0.5 → both kept; the low score is dropped
    assert len(dets) == 3
    assert dets.scores.tolist() == sorted(dets.scores.tolist(), reverse=True)
    corner = dets.boxes[dets.labels == 1][0]
    assert corner.tolist() == pytest.approx([0.0, 0.0, 6.0, 6.0])  # centre (1, 1), clipped at 0
    (strict,) = decode(DetectorOutput(heat, size, offset), 2, (40, 60), score_threshold=0.3, nms_iou=0.3)
    assert len(strict) == 2  # the duplicate is suppressed
    (top1,) = decode(DetectorOutput(heat, size, offset), 2, (40, 60), top_k=1, score_threshold=0.0)
    assert len(top1) == 1 and top1.scores[0] == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item())


def test_detections_select_and_empty() -> None:
    d = Detections(
        torch.tensor([[0.0, 0, 1, 1], [1, 1, 2, 2]]), torch.tensor([0.9, 0.2]), torch.tensor([1, 0])
    )
    assert len(person_boxes(d)) == 1 and person_boxes(d).scores.tolist() == pytest.approx([0.2])
    assert len(Detections.empty()) == 0 and Detections.empty().boxes.shape == (0, 4)


def test_peaks_are_the_3x3_maxima() -> None:
    gen = torch.Generator().manual_seed(0)
    for heat in (
        torch.rand(3, 2, 7, 9, generator=gen),
        torch.randint(0, 3, (2, 2, 5, 4), generator=gen).float(),
    ):
        assert torch.equal(local_max_3x3(heat), F.max_pool2d(heat, 3, stride=1, padding=1))


def test_nms_of_a_batch_is_batched_nms_of_each_image() -> None:
    gen = torch.Generator().manual_seed(0)
    # rounded logits: many equal scores, so the order among ties matters too
    heat = (torch.randn(6, 2, 20, 30, generator=gen) * 2).round()
    size = torch.randn(6, 2, 20, 30, generator=gen) * 0.3 + 2.0
    out = DetectorOutput(heat, size, torch.rand(6, 2, 20, 30, generator=gen))
    unsuppressed = decode(out, 2, (40, 60), top_k=20, score_threshold=0.2, nms_iou=1.0)
    for iou in (0.1, 0.3, 0.5):
        decoded = decode(out, 2, (40, 60), top_k=20, score_threshold=0.2, nms_iou=iou)
        for raw, got in zip(unsuppressed, decoded, strict=True):
            keep = batched_nms(raw.boxes, raw.scores, raw.labels, iou)
            assert len(got) > 0 and (iou > 0.1 or len(got) < len(raw))
            assert torch.equal(got.boxes, raw.boxes[keep]) and torch.equal(got.labels, raw.labels[keep])
            assert torch.equal(got.scores, raw.scores[keep])
