"""The detector can fit a few real keyframes: person AP@0.5 on them goes to ~1."""

from __future__ import annotations

import pytest
import torch

from thermact.data.detection import DetectionClipDataset, collate_detection, detection_clip
from thermact.data.source import ThermalData
from thermact.data.transforms import compute_norm_stats
from thermact.evaluation.detection import detection_metrics
from thermact.models.person_detector import person_detector_s
from thermact.models.person_loss import CenterNetLoss
from thermact.models.person_targets import encode_batch
from thermact.models.postprocess import decode
from thermact.runtime import configure_cpu_math

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread


def test_overfits_real_keyframes(real_data: ThermalData) -> None:
    configure_cpu_math()  # denormals make CPU training many times slower
    torch.manual_seed(0)
    kfs = [k for k in real_data.keyframes if k.others][::40][:8]
    clip = detection_clip(3, 0.5)
    norm = compute_norm_stats(real_data.recordings, kfs, clip)
    ds = DetectionClipDataset(real_data.recordings, kfs, clip, norm)
    batch = collate_detection([ds[i] for i in range(len(ds))])
    net = person_detector_s()
    loss_fn = CenterNetLoss()
    opt = torch.optim.AdamW(net.parameters(), lr=0.01)
    targets = encode_batch(batch.boxes, batch.labels, 2, (20, 30), net.stride)
    first: float | None = None
    for _ in range(80):
        loss, _ = loss_fn(net(batch.frames), targets)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first is not None and float(loss.detach()) < 0.2 * first
    net.eval()
    with torch.no_grad():
        dets = decode(net(batch.frames), net.stride, (40, 60), score_threshold=0.05)
    m = detection_metrics(dict(zip(batch.keyframe_ids, dets, strict=True)), kfs, score_threshold=0.3)
    assert m.person_ap is not None and m.person_ap > 0.9
    assert m.recall is not None and m.recall > 0.8
    assert m.hot_object_fp == 0
