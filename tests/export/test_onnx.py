"""ONNX export: trace-safe RoIAlign, action models and the person detector vs onnxruntime on real clips."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import Tensor, nn

from thermact.data.clips import ClipConfig
from thermact.data.dataset import real_clips
from thermact.data.source import ThermalData
from thermact.data.transforms import NormStats
from thermact.errors import CheckpointError, ConfigError
from thermact.export.onnx import export_action_model, export_module, export_person_detector
from thermact.export.runtime import OnnxActionModel, OnnxPersonDetector, OnnxRunner
from thermact.export.verify import verify_onnx
from thermact.models.action import ActionModel
from thermact.models.ensemble import ActionEnsemble
from thermact.models.factory import HeadConfig, ModelConfig, build_model
from thermact.models.head import RoIActionHead
from thermact.models.slowfast import SlowFast
from thermact.ops.roi_align import roi_align, roi_align_static

T = 16
CLIP = ClipConfig(2.7, T, "center")
H, W = 40, 60


@pytest.fixture(scope="module")
def batches(real_data: ThermalData, norm: NormStats) -> tuple[list[Tensor], list[Tensor]]:
    """4 real normalised clips (both sessions) in batches of 3 and 1, with their real person boxes."""
    return real_clips(real_data, CLIP, norm, num_clips=4, batch_size=3)


@pytest.fixture(scope="module")
def thermal_onnx(thermal: ActionModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_action_model(thermal, tmp_path_factory.mktemp("onnx") / "thermal.onnx", T, (H, W))


def _border_rois(batch: int, k: int) -> Tensor:
    """``k`` boxes over ``batch`` clips: frame corners and edges, overhangs, tiny and whole-frame boxes."""
    pool = [
        [0.0, 0.0, 12.0, 18.0],  # top-left corner
        [48.0, 28.0, 60.0, 40.0],  # bottom-right corner
        [-0.5, 10.0, 9.0, 40.5],  # half-pixel overhang, left and bottom
        [0.0, 0.0, 60.0, 40.0],  # whole frame (adaptive grid 2 per bin at stride 4)
        [30.2, 17.7, 31.1, 18.4],  # sub-pixel box
        [55.0, 0.0, 60.0, 6.0],  # top-right corner
    ]
    rows = [[float(i % batch), *pool[i % len(pool)]] for i in range(k)]
    return torch.tensor(rows, dtype=torch.float32)


# ---------------------------------------------------------------------------------------------
# RoIAlign


class _RoIAlignModule(nn.Module):
    def forward(self, x: Tensor, rois: Tensor) -> Tensor:
        return roi_align_static(x, rois, 7, 0.25, -1, True)


def test_exported_roi_align_is_correct_for_other_boxes_than_traced(tmp_path: Path) -> None:
    """Traced with 2 small boxes (1 sample per bin); run with other K and boxes needing up to 6 samples."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 10, 15, generator=gen)
    traced_rois = torch.tensor([[0.0, 4.0, 4.0, 12.0, 16.0], [1.0, 20.0, 8.0, 30.0, 20.0]])
    path = export_module(
        _RoIAlignModule(),
        (x, traced_rois),
        tmp_path / "roi.onnx",
        ("x", "rois"),
        ("pooled",),
        {"x": {0: "n"}, "rois": {0: "k"}, "pooled": {0: "k"}},
    )
    runner = OnnxRunner(path)
    x3 = torch.randn(3, 8, 10, 15, generator=gen)
    for k, scale in ((1, 40.0), (5, 120.0), (9, 170.0)):
        xy = torch.rand(k, 2, generator=gen) * torch.tensor([70.0, 50.0]) - 5.0
        rois = torch.cat(
            [torch.randint(0, 3, (k, 1), generator=gen).float(), xy, xy + 1 + torch.rand(k, 2) * scale], 1
        )
        (got,) = runner(x3.numpy(), rois.numpy())
        ref = roi_align(x3, rois, 7, 0.25).numpy()
        assert got.shape == (k, 8, 7, 7)
        np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5)
        assert np.abs(ref).max() > 0.1


# ---------------------------------------------------------------------------------------------
# Action models


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_head_uses_the_static_roi_align_only_while_tracing(
    thermal: ActionModel, batches: tuple[list[Tensor], list[Tensor]]
) -> None:
    clips, rois = batches
    with torch.no_grad():
        eager = thermal(clips[0], rois[0])
        traced = torch.jit.trace(thermal, (clips[0], rois[0]), check_trace=False)
        torch.testing.assert_close(traced(clips[0], rois[0]), eager, rtol=0, atol=1e-5)


def test_onnx_file_passes_the_checker_with_dynamic_batch_and_boxes(thermal_onnx: Path) -> None:
    onnx.checker.check_model(str(thermal_onnx), full_check=True)
    graph = onnx.load(str(thermal_onnx)).graph

    def dims(value: onnx.ValueInfoProto) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert {i.name: dims(i) for i in graph.input} == {"clip": ["batch", 1, T, H, W], "rois": ["num_boxes", 5]}
    assert {o.name: dims(o) for o in graph.output} == {"logits": ["num_boxes", 14]}


@pytest.mark.parametrize(("batch", "extra"), [(1, 0), (1, 1), (3, 0), (3, 2), (3, 5)])
def test_thermal_net_onnx_matches_torch_on_real_clips(
    thermal: ActionModel,
    thermal_onnx: Path,
    batches: tuple[list[Tensor], list[Tensor]],
    batch: int,
    extra: int,
) -> None:
    """B in {1, 3}; the real person boxes plus 0-5 boxes at the frame border, so K runs 1..8."""
    clips_all, rois_all = batches
    clips = clips_all[0][:batch]
    real = rois_all[0][rois_all[0][:, 0] < batch]
    rois = torch.cat([real, _border_rois(batch, extra)]) if extra else real
    runner = OnnxActionModel(thermal_onnx)
    got = runner(clips.numpy(), rois.numpy())
    with torch.no_grad():
        ref = thermal(clips, rois).numpy()
    assert got.shape == ref.shape == (rois.shape[0], 14)
    assert np.abs(ref).max() > 0.5  # the logits are informative, so the tolerance means something
    assert np.abs(got - ref).max() < 1e-4


@pytest.mark.parametrize("k", [1, 2, 5])
def test_border_boxes_alone_match(
    thermal: ActionModel, thermal_onnx: Path, batches: tuple[list[Tensor], list[Tensor]], k: int
) -> None:
    clip = batches[0][1]  # the 4th clip, its own batch of 1
    rois = _border_rois(1, k)
    got = OnnxActionModel(thermal_onnx)(clip.numpy(), rois.numpy())
    with torch.no_grad():
        ref = thermal(clip, rois).numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)


def test_verify_onnx_reports_the_differences(
    thermal: ActionModel, thermal_onnx: Path, batches: tuple[list[Tensor], list[Tensor]]
) -> None:
    clips, rois = batches
    report = verify_onnx(thermal, thermal_onnx, list(zip(clips, rois, strict=True)))
    assert report.num_clips == 4
    assert report.num_boxes == sum(int(r.shape[0]) for r in rois)
    assert 0.0 <= report.mean_abs_diff <= report.max_abs_diff < 1e-4
    assert report.max_abs_logit > 0.5
    assert report.argmax_agreement == 1.0
    assert report.ok and report.to_dict()["ok"] is True
    assert report.threshold == pytest.approx(1e-4 * report.max_abs_logit)
    assert "OK" in report.summary()
    assert thermal.training is False

    # a model that is not the exported one: verification must notice
    other = build_model(ModelConfig(num_frames=T, head=HeadConfig(mlp_dim=32)), verbose=False).eval()
    other.load_state_dict(thermal.state_dict())
    with torch.no_grad():
        other.head.classifier.bias.add_(torch.linspace(-0.5, 0.5, 14))
    bad = verify_onnx(other, thermal_onnx, list(zip(clips, rois, strict=True)), tolerance=1e-4)
    assert bad.max_abs_diff == pytest.approx(0.5, abs=1e-3)
    assert not bad.ok and "FAILED" in bad.summary()


def test_export_keeps_the_training_flags(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5))
    net[1].eval()  # a frozen BN inside a training model
    export_module(net, (torch.zeros(1, 1, 5, 5),), tmp_path / "m.onnx", ("x",), ("y",))
    assert [m.training for m in net.modules()] == [True, True, False, True]


def test_onnx_action_model_validates_its_inputs(thermal_onnx: Path) -> None:
    runner = OnnxActionModel(thermal_onnx, intra_op_threads=2)
    assert (runner.num_frames, runner.frame_size, runner.num_classes) == (T, (H, W), 14)
    clip = np.zeros((2, 1, T, H, W), np.float32)
    assert runner(clip, np.zeros((0, 5), np.float32)).shape == (0, 14)
    with pytest.raises(ValueError, match="clip must be"):
        runner(np.zeros((1, 1, T - 1, H, W), np.float32), np.zeros((1, 5), np.float32))
    with pytest.raises(ValueError, match="batch indices"):
        runner(clip, np.array([[2, 0, 0, 5, 5]], np.float32))
    with pytest.raises(ValueError, match="batch indices"):
        runner(clip, np.array([[0.5, 0, 0, 5, 5]], np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        runner(clip, np.array([[0, np.nan, 0, 5, 5]], np.float32))
    with pytest.raises(ValueError, match="rois must be"):
        runner(clip, np.zeros((3, 4), np.float32))


@pytest.mark.slow  # ~5 s on 2 idle cores: tracing runs SlowFast R50 once
def test_slowfast_with_resize_matches_torch_on_real_clips(
    real_data: ThermalData,
    norm: NormStats,
    tmp_path: Path,
    make_informative: Callable[[nn.Module, int], None],
) -> None:
    """SlowFast R50 (alpha 4, T = 8) on real 40x60 clips resized to 16x32 inside the graph.

    Tolerance relative to the logit scale: SlowFast's 2304-channel features give logits of ~100
    with an O(1) classifier, where float32 rounding alone is ~1e-5.
    """
    torch.manual_seed(0)
    backbone = SlowFast(depth=50, alpha=4)
    head = RoIActionHead(backbone.out_channels, 1 / 16, num_classes=5, mlp_dim=16)
    model = ActionModel(backbone, head, input_size=(16, 32))
    make_informative(model, 2)
    model.eval()
    path = export_action_model(model, tmp_path / "slowfast.onnx", 8, (H, W))
    clips, rois = real_clips(real_data, ClipConfig(2.7, 8, "center"), norm, num_clips=3, batch_size=2)
    rois = [torch.cat([rois[0], _border_rois(2, 3)]), rois[1]]
    report = verify_onnx(model, path, list(zip(clips, rois, strict=True)))
    assert report.num_clips == 3
    assert report.max_abs_logit > 0.5
    assert report.ok, report.summary()  # max |diff| <= 1e-4 * max(1, max |logit|)
    assert report.argmax_agreement == 1.0


# ---------------------------------------------------------------------------------------------
# Person detector


def test_person_detector_onnx_matches_torch_on_real_causal_clips(
    real_data: ThermalData,
    norm: NormStats,
    tmp_path: Path,
    thermal_onnx: Path,
    make_informative: Callable[[nn.Module, int], None],
) -> None:
    from thermact.models.person_detector import person_detector_s
    from thermact.models.postprocess import decode

    torch.manual_seed(0)
    net = person_detector_s(num_frames=3)
    make_informative(net, 3)
    net.eval()
    path = export_person_detector(net, tmp_path / "detector.onnx", (H, W))
    onnx.checker.check_model(str(path))
    runner = OnnxPersonDetector(path)
    clips, _ = real_clips(real_data, ClipConfig(0.5, 3, "causal"), norm, num_clips=4, batch_size=3)
    for clip in clips:  # B = 3, then B = 1
        got = runner(clip.numpy())
        with torch.no_grad():
            ref = net(clip)
        for name in ("heatmap", "size", "offset"):
            a, b = getattr(ref, name), getattr(got, name)
            assert a.shape == b.shape and a.shape[0] == clip.shape[0]
            assert a.abs().max() > 0.1
            torch.testing.assert_close(b, a, rtol=0, atol=1e-4)
        dets_ref = decode(ref, net.stride, (H, W))
        dets_got = decode(got, net.stride, (H, W))
        for d_ref, d_got in zip(dets_ref, dets_got, strict=True):
            # decode runs unchanged on the ONNX outputs; saturated scores tie, so compare them sorted
            assert len(d_got) == len(d_ref) > 0
            torch.testing.assert_close(
                d_got.scores.sort().values, d_ref.scores.sort().values, rtol=0, atol=1e-5
            )
    with pytest.raises(ValueError, match="clip must be"):
        runner(np.zeros((1, 1, 4, H, W), np.float32))
    with pytest.raises(CheckpointError, match="not an exported person detector"):
        OnnxPersonDetector(thermal_onnx)


def test_runner_rejects_missing_and_foreign_files(tmp_path: Path, thermal_onnx: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        OnnxRunner(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="onnxruntime"):
        OnnxRunner(junk)
    roi = export_module(
        _RoIAlignModule(),
        (torch.zeros(1, 2, 4, 4), torch.zeros(1, 5)),
        tmp_path / "r.onnx",
        ("x", "rois"),
        ("y",),
    )
    with pytest.raises(CheckpointError, match="not an exported action model"):
        OnnxActionModel(roi)


def test_interaction_models_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    from thermact.models.factory import HeadConfig, InteractionConfig, ModelConfig, build_model

    ia = InteractionConfig(structure="serial", dim_inner=8)
    model = build_model(ModelConfig(num_frames=8, head=HeadConfig(mlp_dim=16, interaction=ia)), verbose=False)
    with pytest.raises(ConfigError, match="interaction head"):
        export_action_model(model, tmp_path / "ia.onnx", num_frames=8)
    assert not (tmp_path / "ia.onnx").exists()


@pytest.mark.parametrize(
    ("position", "radial"),
    [(False, False), (True, False), (False, True)],
    ids=["cues", "cues_and_position", "cues_and_radial"],
)
def test_box_cue_model_onnx_matches_torch_on_real_clips(
    position: bool,
    radial: bool,
    batches: tuple[list[Tensor], list[Tensor]],
    make_informative: Callable[[nn.Module, int], None],
    tmp_path: Path,
) -> None:
    """The box cues (masks, room background as a median, motion) export: onnxruntime equals torch on
    real clips with their real person boxes and boxes at the frame border, batch sizes 3 and 1."""
    torch.manual_seed(0)
    head = HeadConfig(mlp_dim=32, box_cues=True, box_cue_dim=16, box_position=position, box_radial=radial)
    cfg = ModelConfig(num_frames=T, head=head)
    model = build_model(cfg, CLIP, verbose=False)
    make_informative(model, 2)
    assert model.cues is not None
    with torch.no_grad():  # cue statistics of real clips, so that the embedding is not near zero
        model.cues.train()
        model.box_cues(
            torch.cat(batches[0]), torch.cat([batches[1][0], batches[1][1] + torch.tensor([3.0, 0, 0, 0, 0])])
        )
    model.eval()
    assert model.cues.norm.num_features == 12 + 2 * position + 2 * radial
    path = export_action_model(model, tmp_path / "cues.onnx", T, (H, W))
    runner = OnnxActionModel(path)
    for clips, rois in zip(*batches, strict=True):
        rois = torch.cat([rois, _border_rois(clips.shape[0], 4)])
        with torch.no_grad():
            ref = model(clips, rois).numpy()
            cues = model.box_cues(clips, rois)
        assert cues is not None and float(cues.abs().max()) > 0.5
        got = runner(clips.numpy(), rois.numpy())
        assert got.shape == ref.shape and np.abs(ref).max() > 0.5
        assert np.abs(got - ref).max() < 1e-4


def test_ensemble_onnx_matches_torch_on_real_clips(
    batches: tuple[list[Tensor], list[Tensor]],
    make_informative: Callable[[nn.Module, int], None],
    tmp_path: Path,
) -> None:
    """An ensemble exports as one graph: onnxruntime equals torch (the members' mean scores) on real
    clips with real and border boxes."""
    members = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        member = build_model(ModelConfig(num_frames=T, head=HeadConfig(mlp_dim=32)), CLIP, verbose=False)
        make_informative(member, seed)
        members.append(member.eval())
    ensemble = ActionEnsemble(members).eval()
    runner = OnnxActionModel(export_action_model(ensemble, tmp_path / "ens.onnx", T, (H, W)))
    for clips, rois in zip(*batches, strict=True):
        rois = torch.cat([rois, _border_rois(clips.shape[0], 3)])
        with torch.no_grad():
            ref = ensemble(clips, rois)
            each = [torch.softmax(m(clips, rois), 1) for m in members]
        torch.testing.assert_close(torch.softmax(ref, 1), (each[0] + each[1]) / 2, rtol=0, atol=1e-5)
        assert (each[0] - each[1]).abs().max() > 0.01
        got = runner(clips.numpy(), rois.numpy())
        assert got.shape == ref.shape and np.abs(got - ref.numpy()).max() < 1e-4
