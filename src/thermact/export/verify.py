"""Torch vs onnxruntime on the same real inputs: does the exported graph compute what the model does?"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from thermact.export.onnx import restore_modes, training_modes
from thermact.export.runtime import OnnxActionModel, OnnxRunner

__all__ = ["VerifyReport", "verify_onnx"]


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """Torch vs onnxruntime on the same inputs.

    Attributes:
        max_abs_diff: largest ``|torch - onnxruntime|`` over all logits.
        mean_abs_diff: mean of ``|torch - onnxruntime|``.
        max_rel_diff: largest ``|diff| / |torch|`` over the logits with ``|torch| > 1e-3`` (0 when
            there are none).
        max_abs_logit: largest ``|torch|`` logit (the scale the differences compare to).
        argmax_agreement: fraction of boxes whose top class is the same.
        num_clips: clips compared.
        num_boxes: boxes (logit rows) compared.
        tolerance: the tolerance :attr:`ok` was judged with (see :attr:`threshold`).
        torch_ms: mean torch forward time per call (ms).
        onnx_ms: mean onnxruntime time per call (ms).
    """

    max_abs_diff: float
    mean_abs_diff: float
    max_rel_diff: float
    max_abs_logit: float
    argmax_agreement: float
    num_clips: int
    num_boxes: int
    tolerance: float
    torch_ms: float
    onnx_ms: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.threshold

    @property
    def threshold(self) -> float:
        """``tolerance * max(1, max_abs_logit)``: absolute for logits within ±1, else relative to their
        scale (float32 rounding grows with the logits; SlowFast's can reach ~100)."""
        return self.tolerance * max(1.0, self.max_abs_logit)

    def to_dict(self) -> dict[str, float | int | bool]:
        d: dict[str, float | int | bool] = dataclasses.asdict(self)
        d["threshold"] = self.threshold
        d["ok"] = self.ok
        return d

    def summary(self) -> str:
        return (
            f"onnxruntime vs torch on {self.num_clips} clip(s), {self.num_boxes} box(es): "
            f"max |diff| {self.max_abs_diff:.3g}, mean {self.mean_abs_diff:.3g}, max rel {self.max_rel_diff:.3g} "
            f"(logits up to {self.max_abs_logit:.3g}), top-1 agreement {self.argmax_agreement:.1%}, "
            f"{'OK' if self.ok else 'FAILED'} at tolerance {self.tolerance:g} (threshold {self.threshold:.3g})"
        )


def _as_outputs(out: Any) -> list[Tensor]:
    """A model's output as a list of tensors (a tensor, a tuple, or a dataclass of tensors)."""
    if isinstance(out, Tensor):
        return [out]
    if dataclasses.is_dataclass(out):
        return [getattr(out, f.name) for f in dataclasses.fields(out)]
    return list(out)


def verify_onnx(
    model: nn.Module,
    onnx_model: str | os.PathLike[str] | OnnxRunner | OnnxActionModel,
    inputs: Sequence[tuple[Tensor | npt.NDArray[np.float32], ...]],
    tolerance: float = 1e-4,
    intra_op_threads: int = 1,
) -> VerifyReport:
    """Run ``model`` (eval mode, no grad) and the exported graph on the same inputs; compare outputs.

    Works for any exported model: the action model (``(clip, rois) -> logits``; the top-1 agreement
    is per box) and the person detector (``clip -> heatmap, size, offset``; the agreement is the
    strongest heatmap peak per clip). All outputs are compared element-wise.

    Args:
        model: the torch model that was exported.
        onnx_model: its ``.onnx`` file, or an already open runner.
        inputs: batches, each the tuple of the model's inputs (one call per batch).
        tolerance: max abs difference per unit of output scale accepted by :attr:`VerifyReport.ok`.
        intra_op_threads: onnxruntime threads (when a path is given).
    """
    if isinstance(onnx_model, OnnxActionModel):
        onnx_model = onnx_model.runner
    runner = onnx_model if isinstance(onnx_model, OnnxRunner) else OnnxRunner(onnx_model, intra_op_threads)
    if not inputs:
        raise ValueError("verify_onnx needs at least one batch of inputs")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    modes = training_modes(model)
    model.eval()
    ref: list[list[npt.NDArray[Any]]] = []
    got: list[list[npt.NDArray[Any]]] = []
    torch_s = onnx_s = 0.0
    try:
        with torch.no_grad():
            for batch in inputs:
                arrays = [
                    np.ascontiguousarray(
                        x.detach().cpu().numpy() if isinstance(x, Tensor) else x, dtype=np.float32
                    )
                    for x in batch
                ]
                t0 = time.perf_counter()
                out = _as_outputs(model(*(torch.from_numpy(x).to(device) for x in arrays)))
                t1 = time.perf_counter()
                got.append(runner(*arrays))
                onnx_s += time.perf_counter() - t1
                torch_s += t1 - t0
                ref.append([o.float().cpu().numpy() for o in out])
    finally:
        restore_modes(modes)
    return _compare(ref, got, int(sum(int(np.shape(b[0])[0]) for b in inputs)), tolerance, torch_s, onnx_s)


def _compare(
    ref: list[list[npt.NDArray[Any]]],
    got: list[list[npt.NDArray[Any]]],
    num_clips: int,
    tolerance: float,
    torch_s: float,
    onnx_s: float,
) -> VerifyReport:
    first_ref = np.concatenate([r[0].reshape(r[0].shape[0], -1) for r in ref]).astype(np.float64)
    first_got = np.concatenate([g[0].reshape(g[0].shape[0], -1) for g in got]).astype(np.float64)
    if first_ref.shape != first_got.shape:
        raise AssertionError(f"torch output {first_ref.shape} but onnxruntime output {first_got.shape}")
    a = np.concatenate([o.ravel() for r in ref for o in r]).astype(np.float64)
    b = np.concatenate([o.ravel() for g in got for o in g]).astype(np.float64)
    diff = np.abs(a - b)
    big = np.abs(a) > 1e-3
    rows = first_ref.shape[0]
    return VerifyReport(
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        max_rel_diff=float((diff[big] / np.abs(a[big])).max()) if big.any() else 0.0,
        max_abs_logit=float(np.abs(a).max()) if a.size else 0.0,
        argmax_agreement=float((first_ref.argmax(1) == first_got.argmax(1)).mean()) if rows else 1.0,
        num_clips=num_clips,
        num_boxes=rows,
        tolerance=float(tolerance),
        torch_ms=1000.0 * torch_s / len(ref),
        onnx_ms=1000.0 * onnx_s / len(ref),
    )
