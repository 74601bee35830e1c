"""``thermact export [CHECKPOINT] [out=PATH.onnx] [verify=true] [key=value ...]``: ONNX export of an
action model or a person detector (:mod:`thermact.export.onnx`), checked against PyTorch on real
clips with onnxruntime."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from thermact.config import build_options
from thermact.data.source import load_dataset
from thermact.detection.dataset import DetectionClipDataset, collate_detection
from thermact.detection.restore import restore_detector
from thermact.engine.checkpoint import load_checkpoint
from thermact.engine.restore import restore_model
from thermact.engine.train import clip_config
from thermact.errors import ConfigError, DataError
from thermact.export.onnx import (
    DEFAULT_OPSET,
    OnnxPersonDetector,
    VerifyReport,
    check_out_path,
    export_action_model,
    export_detector_onnx,
    real_clips,
    trained_metadata,
    verify_onnx,
)

__all__ = ["ExportOptions", "ExportOutcome", "load_export_options", "main", "run_export"]


@dataclasses.dataclass
class ExportOptions:
    """Options of ``thermact export`` (``key=value`` on the command line)."""

    checkpoint: str = ""
    """The checkpoint to export (required; also accepted as the positional argument)."""
    out: str | None = None
    """Output ``.onnx`` file; None: the checkpoint path with the suffix ``.onnx``."""
    verify: bool = True
    """Compare onnxruntime with torch on real clips of the dataset."""
    dataset: str | None = None
    """Dataset of the verification clips; None: the checkpoint's ``data.root`` (else the bundled one)."""
    num_clips: int = 16
    batch_size: int = 4
    tolerance: float = 1e-4
    """Largest acceptable max abs logit difference, times ``max(1, largest |logit|)``."""
    frame_size: tuple[int, int] = (40, 60)
    """``[H, W]`` of the clips the exported model takes (the sensor frame)."""
    opset: int = DEFAULT_OPSET
    """ONNX opset, 11..20 (the TorchScript exporter's range)."""
    threads: int = 1
    """onnxruntime intra-op threads for the verification."""

    def __post_init__(self) -> None:
        if not self.checkpoint:
            raise ConfigError("config key 'checkpoint' is required: pass checkpoint=PATH")
        if self.num_clips < 1 or self.batch_size < 1:
            raise ConfigError(
                f"config keys 'num_clips', 'batch_size': must be >= 1, got {self.num_clips}, {self.batch_size}"
            )
        if not self.tolerance > 0:
            raise ConfigError(f"config key 'tolerance': must be > 0, got {self.tolerance}")
        if len(self.frame_size) != 2 or min(self.frame_size) < 1:
            raise ConfigError(f"config key 'frame_size': must be [H, W] > 0, got {list(self.frame_size)}")
        if not 11 <= self.opset <= 20:  # what the TorchScript exporter supports (checked: 11..20)
            raise ConfigError(f"config key 'opset': must be in 11..20, got {self.opset}")
        if self.threads < 0:
            raise ConfigError(f"config key 'threads': must be >= 0, got {self.threads}")


def load_export_options(target: str | None, overrides: Sequence[str]) -> ExportOptions:
    """Validated options; a positional ``target`` is the checkpoint (conflicts with checkpoint=)."""
    return build_options(ExportOptions, "checkpoint", target, overrides)


@dataclasses.dataclass(frozen=True)
class ExportOutcome:
    """What :func:`run_export` produced."""

    path: Path
    report: VerifyReport | None
    kind: Literal["action_model", "person_detector"] = "action_model"


def run_export(opts: ExportOptions, lenient: bool = False) -> ExportOutcome:
    """Restore ``opts.checkpoint``, export it to ONNX and (``opts.verify``) check it on real clips.

    The exported file carries :func:`trained_metadata`. Verification uses
    :func:`real_clips` of the dataset with the checkpoint's clip settings and normalisation.

    Raises:
        CheckpointError: the checkpoint cannot be restored.
        ConfigError: bad options or output path.
        DataError: the verification dataset cannot be loaded or has other frame sizes.
    """

    out = check_out_path(opts.out if opts.out is not None else Path(opts.checkpoint).with_suffix(".onnx"))
    if load_checkpoint(opts.checkpoint)["config"].get("task") == "detector":
        return run_detector_export(opts, out, lenient)
    trained = restore_model(opts.checkpoint, "cpu")
    frame_size = (int(opts.frame_size[0]), int(opts.frame_size[1]))
    clips: list[Tensor] = []
    rois: list[Tensor] = []
    if opts.verify:  # load the clips first: a dataset problem must not leave a written model behind
        root = opts.dataset if opts.dataset is not None else trained.config.data.root
        data = load_dataset(root, lenient=lenient)
        sizes = {rec.frame_size for rec in data.recordings.values()}
        if sizes != {frame_size}:
            raise DataError(
                f"{data.root}: frames are {sorted(sizes)} but the model is exported for {list(frame_size)} "
                "(set frame_size=[H,W])"
            )
        clip = clip_config(trained.config)
        clips, rois = real_clips(data, clip, trained.norm, opts.num_clips, opts.batch_size)
    path = export_action_model(
        trained.model,
        out,
        trained.config.model.num_frames,
        frame_size,
        opset=opts.opset,
        metadata=trained_metadata(trained),
    )
    if not opts.verify:
        return ExportOutcome(path, None)
    report = verify_onnx(
        trained.model, path, clips, rois, tolerance=opts.tolerance, intra_op_threads=opts.threads
    )
    return ExportOutcome(path, report)


def run_detector_export(opts: ExportOptions, out: Path, lenient: bool) -> ExportOutcome:
    """Export a person-detector checkpoint (with the metadata the streaming runner reads) and
    compare its raw outputs (heatmap, size, offset) with PyTorch on real causal clips."""

    trained = restore_detector(opts.checkpoint, "cpu")
    batches: list[Tensor] = []
    if opts.verify:  # load the clips first: a dataset problem must not leave a written model behind
        data = load_dataset(
            opts.dataset if opts.dataset is not None else trained.config.data.root, lenient=lenient
        )
        step = max(1, len(data.keyframes) // max(1, opts.num_clips))
        ds = DetectionClipDataset(
            data.recordings, data.keyframes[::step][: opts.num_clips], trained.clip, trained.norm
        )
        batches = [
            collate_detection([ds[j] for j in range(i, min(i + opts.batch_size, len(ds)))]).frames
            for i in range(0, len(ds), opts.batch_size)
        ]
    path = export_detector_onnx(trained, out)
    if not opts.verify:
        return ExportOutcome(path, None, "person_detector")
    runner = OnnxPersonDetector(path, intra_op_threads=opts.threads)
    diffs: list[float] = []
    means: list[float] = []
    rels: list[float] = [0.0]
    largest = 0.0
    agree = 0
    torch_s = onnx_s = 0.0
    with torch.no_grad():
        for frames in batches:
            t0 = time.perf_counter()
            ref = trained.model.eval()(frames)
            t1 = time.perf_counter()
            got = runner(frames)
            t2 = time.perf_counter()
            torch_s, onnx_s = torch_s + t1 - t0, onnx_s + t2 - t1
            # the strongest heatmap peak of each clip must be the same cell and class
            agree += int((ref.heatmap.flatten(1).argmax(1) == got.heatmap.flatten(1).argmax(1)).sum())
            for a, b in ((ref.heatmap, got.heatmap), (ref.size, got.size), (ref.offset, got.offset)):
                delta = (a - b).abs()
                diffs.append(float(delta.max()))
                means.append(float(delta.mean()))
                big = a.abs() > 1e-3
                if bool(big.any()):
                    rels.append(float((delta[big] / a.abs()[big]).max()))
                largest = max(largest, float(a.abs().max()))
    report = VerifyReport(
        max_abs_diff=max(diffs),
        mean_abs_diff=sum(means) / len(means),
        max_rel_diff=max(rels),
        max_abs_logit=largest,
        argmax_agreement=agree / max(1, sum(int(b.shape[0]) for b in batches)),
        num_clips=sum(int(b.shape[0]) for b in batches),
        num_boxes=0,
        tolerance=opts.tolerance,
        torch_ms=1000 * torch_s / max(1, len(batches)),
        onnx_ms=1000 * onnx_s / max(1, len(batches)),
    )
    return ExportOutcome(path, report, "person_detector")


def main(target: str | None, overrides: list[str], lenient: bool) -> int:
    """``thermact export [CHECKPOINT] [out=PATH.onnx] [verify=true] [key=value ...]``.

    Prints where the model was written and, with verification, the torch vs onnxruntime
    differences; exits 1 when the max abs difference exceeds the report's threshold
    (``tolerance * max(1, largest |logit|)``).
    """
    opts = load_export_options(target, overrides)
    outcome = run_export(opts, lenient)
    size_mb = outcome.path.stat().st_size / 1e6
    inputs = "clip [B,1,T,H,W], rois [K,5]" if outcome.kind == "action_model" else "clip [B,1,T,H,W]"
    print(f"wrote {outcome.path} ({size_mb:.2f} MB, {outcome.kind}, opset {opts.opset}, inputs {inputs})")
    if outcome.report is None:
        return 0
    print(outcome.report.summary())
    print(
        f"latency per call: torch {outcome.report.torch_ms:.1f} ms, onnxruntime {outcome.report.onnx_ms:.1f} ms"
    )
    if not outcome.report.ok:
        print(
            f"error: {outcome.path}: onnxruntime differs from torch by {outcome.report.max_abs_diff:.3g} "
            f"> threshold {outcome.report.threshold:.3g} (tolerance {opts.tolerance:g})",
            file=sys.stderr,
        )
        return 1
    return 0
