"""``thermact export [CHECKPOINT] [out=PATH.onnx] [verify=true] [key=value ...]``: ONNX export of an
action model or a person detector (:mod:`thermact.export.onnx`), checked against PyTorch on real
clips with onnxruntime; ``format=weights`` writes an inference checkpoint instead (weights, config,
classes, normalisation; no optimiser or RNG state: the form of the shipped models)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from torch import Tensor

from thermact.commands._common import TASKS
from thermact.config import build_options
from thermact.data.source import load_dataset
from thermact.engine.checkpoint import inference_state, load_checkpoint, save_checkpoint
from thermact.engine.restore import checkpoint_task
from thermact.errors import ConfigError, DataError
from thermact.export.onnx import DEFAULT_OPSET, check_out_path, export_action_onnx, export_detector_onnx
from thermact.export.verify import VerifyReport, verify_onnx

__all__ = ["ExportOptions", "ExportOutcome", "load_export_options", "main", "run_export"]


@dataclasses.dataclass
class ExportOptions:
    """Options of ``thermact export`` (``key=value`` on the command line)."""

    checkpoint: str = ""
    """The checkpoint to export (required; also accepted as the positional argument)."""
    format: Literal["onnx", "weights"] = "onnx"
    """onnx, or weights: an inference checkpoint (.pt) without the training state."""
    out: str | None = None
    """Output file; None: the checkpoint path with the suffix .onnx (format=weights: .weights.pt)."""
    exist_ok: bool = False
    """Replace an existing output file (otherwise it is refused and left untouched)."""
    verify: bool = True
    """Compare onnxruntime with torch on real clips of the dataset."""
    dataset: str | None = None
    """Dataset of the verification clips; None: the checkpoint's ``data.root`` (else the bundled one)."""
    num_clips: int = 16
    """Real clips the export is verified on."""
    batch_size: int = 4
    """Clips per verification call."""
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


EXPORTERS: dict[str, tuple[Callable[..., Path], Literal["action_model", "person_detector"]]] = {
    "action": (export_action_onnx, "action_model"),
    "detector": (export_detector_onnx, "person_detector"),
}


def run_export(opts: ExportOptions, lenient: bool = False) -> ExportOutcome:
    """Restore ``opts.checkpoint`` (action model or person detector), export it to ONNX with the
    metadata its runner reads and (``opts.verify``) compare onnxruntime with PyTorch on real clips
    of the dataset (the task's :meth:`~thermact.engine.task.Task.export_inputs`).

    Raises:
        CheckpointError: the checkpoint cannot be restored.
        ConfigError: bad options or output path.
        DataError: the verification dataset cannot be loaded or has other frame sizes.
    """
    if opts.format == "weights":
        return export_weights(opts)
    out = _new_file(
        opts, check_out_path(opts.out if opts.out is not None else Path(opts.checkpoint).with_suffix(".onnx"))
    )
    task = TASKS[checkpoint_task(load_checkpoint(opts.checkpoint))]
    trained = task.restore(opts.checkpoint, "cpu")
    exporter, kind = EXPORTERS[task.name]
    frame_size = (int(opts.frame_size[0]), int(opts.frame_size[1]))
    inputs: list[tuple[Tensor, ...]] = []
    if opts.verify:  # load the clips first: a dataset problem must not leave a written model behind
        root = opts.dataset if opts.dataset is not None else trained.config.data.root
        data = load_dataset(root, lenient=lenient)
        sizes = {rec.frame_size for rec in data.recordings.values()}
        if sizes != {frame_size}:
            raise DataError(
                f"{data.root}: frames are {sorted(sizes)} but the model is exported for {list(frame_size)} "
                "(set frame_size=[H,W])"
            )
        inputs = task.export_inputs(trained, data, opts.num_clips, opts.batch_size)
    path = exporter(trained, out, frame_size=frame_size, opset=opts.opset)
    if not opts.verify:
        return ExportOutcome(path, None, kind)
    report = verify_onnx(trained.model, path, inputs, tolerance=opts.tolerance, intra_op_threads=opts.threads)
    return ExportOutcome(path, report, kind)


def _new_file(opts: ExportOptions, out: Path) -> Path:
    """``out``, unless it exists and ``opts.exist_ok`` is false (ConfigError: nothing is replaced)."""
    if out.exists() and not opts.exist_ok:
        raise ConfigError(f"output path {str(out)!r} exists; pass exist_ok=true to replace it")
    return out


def export_weights(opts: ExportOptions) -> ExportOutcome:
    """Write ``opts.checkpoint`` as an inference checkpoint (:func:`inference_state`), after
    checking that it rebuilds its model; the written file is rebuilt too.

    Raises:
        CheckpointError: the checkpoint cannot be restored.
        ConfigError: the output path is not a writable ``.pt`` file or is the checkpoint itself.
    """
    default = Path(opts.checkpoint).with_suffix(".weights.pt")
    out = check_out_path(opts.out if opts.out is not None else default, ".pt")
    if out.exists() and out.resolve() == Path(opts.checkpoint).resolve():
        raise ConfigError(f"output path {str(out)!r} is the checkpoint itself")
    out = _new_file(opts, out)
    ckpt = load_checkpoint(opts.checkpoint)
    task = TASKS[checkpoint_task(ckpt)]
    task.restore(opts.checkpoint, "cpu")
    save_checkpoint(out, inference_state(ckpt))
    task.restore(out, "cpu")
    return ExportOutcome(out, None, EXPORTERS[task.name][1])


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
    if opts.format == "weights":
        print(f"wrote {outcome.path} ({size_mb:.2f} MB, {outcome.kind}, inference checkpoint)")
        return 0
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
