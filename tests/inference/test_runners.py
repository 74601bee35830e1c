"""The runners: prepared models equal the trained ones; bf16 agrees with fp32."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thermact.inference.runners import load_action_model, load_detector
from thermact.ops.fuse import prepare_for_inference
from thermact.ops.nms import box_iou


def test_runners_prepared_for_inference_equal_the_trained_models(
    action_ckpt: Path, detector_ckpt: Path, real_data: Any
) -> None:
    """BatchNorm folding and channels-last weights (prepare_for_inference) change no result."""
    import torch

    from thermact.data.transforms import normalize
    from thermact.tasks.action import restore_model
    from thermact.tasks.person import restore_detector

    rec = next(iter(real_data.recordings.values()))
    raw = np.asarray(rec.frames[40:48], dtype=np.float32)  # 8 real frames, °C
    trained = restore_model(action_ckpt)
    runner = load_action_model(action_ckpt)
    rois = np.array([[0, 10, 8, 24, 30], [0, 30, 5, 50, 20]], dtype=np.float32)
    clip = torch.from_numpy(np.ascontiguousarray(normalize(raw, trained.norm)[None, None], dtype=np.float32))
    with torch.no_grad():
        ref = torch.softmax(trained.model.eval()(clip, torch.from_numpy(rois)), dim=1).numpy()
    got = runner.scores(raw[None, -trained.config.model.num_frames :], rois)
    np.testing.assert_allclose(got, ref, atol=1e-5)

    det = restore_detector(detector_ckpt)
    prepared = prepare_for_inference(det.model, torch.device("cpu"))
    assert prepared is not det.model
    x = torch.from_numpy(np.ascontiguousarray(normalize(raw[-3:], det.norm)[None, None], dtype=np.float32))
    with torch.no_grad():
        a, b = det.model.eval()(x), prepared(x)
    torch.testing.assert_close(b.heatmap, a.heatmap, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(b.size, a.size, atol=1e-4, rtol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in prepared.modules())


def test_bf16_runners_agree_with_fp32(action_ckpt: Path, detector_ckpt: Path, real_data: Any) -> None:
    """precision="bf16" (bfloat16 autocast) changes the scores by at most a few hundredths and the
    confident person boxes by less than a pixel (median) on real clips, whatever the CPU's bf16
    kernels (native or emulated: then a box on the frame border moved 5 px); fp32 stays the default."""
    rec = next(iter(real_data.recordings.values()))
    clips = np.stack([np.asarray(rec.frames[i : i + 8], dtype=np.float32) for i in range(0, 64, 8)])
    rois = np.array(
        [[b, 8, 6, 22, 28] for b in range(8)] + [[b, 30, 5, 50, 20] for b in range(8)], np.float32
    )
    a32, a16 = load_action_model(action_ckpt), load_action_model(action_ckpt, precision="bf16")
    s32, s16 = a32.scores(clips, rois), a16.scores(clips, rois)
    assert s16.dtype == np.float32 and np.abs(s16 - s32).max() < 0.1  # 0.028 for the trained live model
    assert (s16.argmax(1) == s32.argmax(1)).mean() >= 0.9
    d32, d16 = load_detector(detector_ckpt), load_detector(detector_ckpt, precision="bf16")
    frames = np.asarray(rec.frames, dtype=np.float32)
    det_clips = np.stack([frames[i - 2 : i + 1] for i in range(2, len(frames), len(frames) // 40)])
    shifts: list[float] = []
    for det32, det16 in zip(d32.detect(det_clips, 0.5), d16.detect(det_clips, 0.2), strict=True):
        # every confident fp32 box is found by bf16 (IoU >= 0.5; a borderline one may come and go)
        for box in det32.boxes:
            assert len(det16) and float(box_iou(box[None], det16.boxes).max()) >= 0.5
            shifts.append(float((det16.boxes - box).abs().max(dim=1).values.min()))
    assert len(shifts) >= 10 and float(np.median(shifts)) < 1.0  # typically well under a pixel
    with pytest.raises(ValueError, match="precision"):
        load_action_model(action_ckpt, precision="fp16")  # type: ignore[arg-type]


def test_box_cue_models_prepared_for_inference_are_unchanged(real_data: Any) -> None:
    """The box-cue encoder's BatchNorm1d (no convolution before it) survives BN folding as it is."""
    import torch

    from thermact.data.clips import ClipConfig
    from thermact.models.factory import HeadConfig, ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(name="thermal_net_t", num_frames=8, head=HeadConfig(mlp_dim=32, box_cues=True))
    model = build_model(cfg, ClipConfig(2.7, 8, "causal"), verbose=False).eval()
    rec = next(iter(real_data.recordings.values()))
    clip = torch.from_numpy((np.asarray(rec.frames[40:48], dtype=np.float32)[None, None] - 20.0) / 3.0)
    rois = torch.tensor([[0, 10, 8, 24, 30], [0, 30, 5, 50, 20]], dtype=torch.float32)
    prepared = prepare_for_inference(model, torch.device("cpu"))
    with torch.no_grad():
        torch.testing.assert_close(prepared(clip, rois), model(clip, rois), atol=1e-5, rtol=1e-5)
    assert isinstance(prepared.cues.norm, torch.nn.BatchNorm1d)


def test_flip_averaged_runner_scores_and_where_it_is_refused(
    action_ckpt: Path, real_data: Any, fake_action: Any, tmp_path: Path
) -> None:
    """``tta="flips"``: the runner's scores are those of FlipAverage on the trained model, the
    same for a mirrored clip; refused for ONNX files and models built elsewhere."""
    import torch

    from thermact.data.transforms import normalize
    from thermact.errors import ConfigError
    from thermact.inference.runners import as_action_model
    from thermact.models.tta import FlipAverage
    from thermact.tasks.action import restore_model

    rec = next(iter(real_data.recordings.values()))
    raw = np.asarray(rec.frames[40:48], dtype=np.float32)
    trained = restore_model(action_ckpt)
    runner = load_action_model(action_ckpt, tta="flips")
    rois = np.array([[0, 10, 8, 24, 30], [0, 30, 5, 50, 20]], dtype=np.float32)
    clip = torch.from_numpy(np.ascontiguousarray(normalize(raw, trained.norm)[None, None], dtype=np.float32))
    with torch.no_grad():
        ref = torch.softmax(FlipAverage(trained.model.eval())(clip, torch.from_numpy(rois)), dim=1).numpy()
    got = runner.scores(raw[None], rois)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    mirrored = rois[:, [0, 3, 2, 1, 4]] * [1, -1, 1, -1, 1] + [0, 60, 0, 60, 0]
    np.testing.assert_allclose(runner.scores(raw[None, :, :, ::-1], mirrored), got, atol=1e-5)
    assert np.abs(load_action_model(action_ckpt).scores(raw[None], rois) - got).max() > 1e-6
    with pytest.raises(ConfigError, match="tta=flips needs a PyTorch checkpoint"):
        load_action_model(tmp_path / "action.onnx", tta="flips")  # refused before the file is read
    with pytest.raises(ConfigError, match="tta=flips needs a checkpoint or a restored model"):
        as_action_model(fake_action(trained.classes), tta="flips")


def test_detector_runner_grows_person_boxes_to_the_heat_of_the_current_frame(
    detector_ckpt: Path, real_data: Any
) -> None:
    """A detector's runner grows its person boxes (config ``eval.heat_growth_c``, on by default) on
    the raw °C current frame: exactly :func:`grow_person_boxes` over the boxes as decoded, same
    scores; ``eval.heat_growth_c=null`` (an old export without it alike) turns it off."""
    import dataclasses

    import torch

    from thermact.inference.runners import DetectorRunner
    from thermact.models.heat_boxes import HeatGrowth, grow_person_boxes
    from thermact.tasks.person import restore_detector

    trained = restore_detector(detector_ckpt)
    grown = DetectorRunner.from_trained(trained)
    assert grown.heat_growth == HeatGrowth(3.0, 0.3, 0.3)
    off = dataclasses.replace(
        trained.config, eval=dataclasses.replace(trained.config.eval, heat_growth_c=None)
    )
    plain = DetectorRunner.from_trained(dataclasses.replace(trained, config=off))
    assert plain.heat_growth is None
    assert load_detector(detector_ckpt, heat_growth=False).heat_growth is None
    frames = np.asarray(next(iter(real_data.recordings.values())).frames, dtype=np.float32)
    clips = np.stack([frames[i - 2 : i + 1] for i in range(2, len(frames), len(frames) // 20)])
    got, decoded = grown.detect(clips, 0.3), plain.detect(clips, 0.3)
    want = grow_person_boxes(torch.from_numpy(clips[:, -1].copy()), decoded, HeatGrowth())
    assert sum(len(d) for d in got) >= 10
    assert sum(int((w.boxes != d.boxes).any(dim=1).sum()) for w, d in zip(want, decoded, strict=True)) >= 1
    for g, w, d in zip(got, want, decoded, strict=True):
        assert torch.equal(g.boxes, w.boxes) and torch.equal(g.scores, d.scores)
