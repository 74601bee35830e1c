"""Size, cost and shape summary of a configured model (printed by ``thermact model info CONFIG``).

* parameters: total and trainable, and split into backbone / head (/ box cues);
* MACs of one forward pass for the configured input, counted with
  :class:`torch.utils.flop_counter.FlopCounterMode` (which counts the FLOPs of convolutions and
  matrix products, including RoIAlign's two interpolation matmuls; MACs = FLOPs / 2; BN, ReLU,
  pooling and the bilinear resize are not counted);
* the output shape of every top-level child of the backbone (forward hooks);
* the temporal receptive field, measured empirically: in eval mode, with every BatchNorm reset
  to the identity (so that zero-initialised residual BNs do not hide a branch), the gradient of the
  centre output frame (summed over channels and space) with respect to a long probe clip; the
  receptive field is the span of input frames with a non-zero gradient. A clip frame is
  ``window_s / num_frames`` seconds of the recording (the clip's time grid, see
  :mod:`thermact.data.clips`), so seconds = frames x that spacing; a field longer than the clip
  means every output frame sees the whole clip.

:func:`detector_info` gives the same summary of a person detector (:mod:`thermact.models.person_detector`),
whose first convolution fuses all ``num_frames`` frames (its temporal receptive field is the clip).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from thermact.models.base import make_pathways
from thermact.models.factory import ModelConfig, build_model
from thermact.models.person_detector import DetectorModelConfig, build_detector

__all__ = [
    "DEFAULT_FRAME_SPACING_S",
    "ModelInfo",
    "detector_info",
    "format_model_info",
    "model_info",
    "temporal_receptive_field",
]

DEFAULT_FRAME_SIZE: tuple[int, int] = (40, 60)
DEFAULT_FRAME_SPACING_S: float = 1.0 / 6.0
"""Seconds per clip frame when the clip's window is not known: the sensor's ~6 fps."""


@dataclass
class ModelInfo:
    """What :func:`model_info` measured (MACs for the whole batch of ``input_shape``)."""

    name: str
    input_shape: tuple[int, ...]
    backbone_input_shape: tuple[int, ...]
    num_rois: int
    total_params: int
    trainable_params: int
    backbone_params: int
    head_params: int
    macs: int
    stages: list[tuple[str, list[tuple[int, ...]]]]
    output_shape: tuple[int, ...]
    spatial_stride: int
    pathway_strides: tuple[int, ...]
    receptive_field_frames: int
    frame_spacing_s: float
    """Seconds between two clip frames (``window_s / num_frames``)."""
    cue_params: int = 0
    """Parameters of the box-cue encoder (0 without box cues)."""

    @property
    def receptive_field_s(self) -> float:
        return self.receptive_field_frames * self.frame_spacing_s

    @property
    def clip_frames(self) -> int:
        return self.input_shape[2]

    @property
    def macs_per_clip(self) -> float:
        return self.macs / max(1, self.input_shape[0])


def _shapes(obj: Any) -> list[tuple[int, ...]]:
    if isinstance(obj, Tensor):
        return [tuple(obj.shape)]
    if isinstance(obj, (list, tuple)):
        return [s for item in obj for s in _shapes(item)]
    return []


def _reset_norms(module: nn.Module) -> None:
    """Make every (frozen) BatchNorm the identity: weight 1, bias 0, mean 0, var 1."""
    with torch.no_grad():
        for m in module.modules():
            if "BatchNorm" not in type(m).__name__:
                continue
            for attr, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
                t = getattr(m, attr, None)
                if isinstance(t, Tensor):
                    t.fill_(value)


def temporal_receptive_field(
    backbone: nn.Module,
    pathway_strides: Sequence[int],
    frame_size: tuple[int, int] = (64, 64),
    start_frames: int = 64,
    max_frames: int = 512,
) -> int:
    """Temporal receptive field of the centre output frame, in clip frames (empirical).

    Runs a copy of ``backbone`` (eval mode, BNs reset to identity, random normal input) on a probe
    clip of ``start_frames`` frames, doubling the length while the non-zero gradient reaches both
    ends of the clip (up to ``max_frames``). The centre output of the *last* pathway (the one with
    the finest time base, e.g. SlowFast's fast pathway) is used; all pathways feed it after fusion.
    """
    probe = copy.deepcopy(backbone).float().eval()
    _reset_norms(probe)
    for p in probe.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    T = start_frames
    lcm = 1
    for s in pathway_strides:
        lcm = max(lcm, int(s))
    while True:
        T = ((T + lcm - 1) // lcm) * lcm
        clip = torch.randn(1, 1, T, frame_size[0], frame_size[1], generator=gen, requires_grad=True)
        outs = probe(make_pathways(clip, pathway_strides))
        out = outs[-1]
        centre = out[:, :, out.shape[2] // 2].sum()
        (grad,) = torch.autograd.grad(centre, clip)
        hit = (grad.abs().sum(dim=(0, 1, 3, 4)) > 0).nonzero().flatten()
        if hit.numel() == 0:
            return 0
        first, last = int(hit[0]), int(hit[-1])
        if (first > 0 and last < T - 1) or max_frames <= T:
            return last - first + 1
        T *= 2


def model_info(
    cfg: ModelConfig,
    batch_size: int = 1,
    frame_size: tuple[int, int] = DEFAULT_FRAME_SIZE,
    frame_spacing_s: float = DEFAULT_FRAME_SPACING_S,
    rois_per_clip: int = 2,
) -> ModelInfo:
    """Measure the model of ``cfg`` (built with random weights: ``cfg.pretrained`` is ignored).

    The input is ``[batch_size, 1, cfg.num_frames, *frame_size]`` with ``rois_per_clip`` person
    boxes per clip; the model resizes it to ``cfg.input_size`` when that is set.
    ``frame_spacing_s``: seconds per clip frame (``data.window_s / model.num_frames``).
    """
    if not frame_spacing_s > 0:
        raise ValueError(f"frame_spacing_s must be > 0, got {frame_spacing_s}")
    model = build_model(dataclasses.replace(cfg, pretrained=None), verbose=False).eval()
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    backbone_params = sum(p.numel() for p in model.backbone.parameters())
    head_params = sum(p.numel() for p in model.head.parameters())
    cue_params = 0 if model.cues is None else sum(p.numel() for p in model.cues.parameters())

    H, W = frame_size
    clip = torch.randn(batch_size, 1, cfg.num_frames, H, W, generator=torch.Generator().manual_seed(0))
    rows = []
    for b in range(batch_size):
        for r in range(rois_per_clip):
            x1 = (r * W / max(1, rois_per_clip)) % max(1.0, W - 12.0)
            rows.append([float(b), x1, H / 4, x1 + 12.0, H / 4 + 16.0])
    rois = torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)

    children: list[tuple[str, nn.Module]] = []
    for name, child in model.backbone.named_children():
        if isinstance(child, (nn.ModuleList, nn.ModuleDict)):  # containers are never called themselves
            children.extend((f"{name}.{sub}", grandchild) for sub, grandchild in child.named_children())
        else:
            children.append((name, child))
    stages, handles = _stage_hooks(children)
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            logits = model(clip, rois)
    finally:
        for h in handles:
            h.remove()
    resized, _ = model.resize(clip, rois)
    rf = temporal_receptive_field(model.backbone, model.pathway_strides)
    return ModelInfo(
        name=cfg.name,
        input_shape=tuple(clip.shape),
        backbone_input_shape=tuple(resized.shape),
        num_rois=int(rois.shape[0]),
        total_params=total,
        trainable_params=trainable,
        backbone_params=backbone_params,
        head_params=head_params,
        macs=int(counter.get_total_flops()) // 2,
        stages=stages,
        output_shape=tuple(logits.shape),
        spatial_stride=model.spatial_stride,
        pathway_strides=model.pathway_strides,
        receptive_field_frames=rf,
        frame_spacing_s=frame_spacing_s,
        cue_params=cue_params,
    )


def _stage_hooks(children: Sequence[tuple[str, nn.Module]]) -> tuple[list[Any], list[Any]]:
    """Forward hooks that record the output shapes of ``children``: (the records, the handles)."""
    stages: list[tuple[str, list[tuple[int, ...]]]] = []
    handles = []
    for name, child in children:

        def hook(_m: nn.Module, _inp: Any, out: Any, name: str = name) -> None:
            stages.append((name, _shapes(out)))

        handles.append(child.register_forward_hook(hook))
    return stages, handles


def detector_info(
    cfg: DetectorModelConfig,
    batch_size: int = 1,
    frame_size: tuple[int, int] = DEFAULT_FRAME_SIZE,
    frame_spacing_s: float = DEFAULT_FRAME_SPACING_S,
) -> ModelInfo:
    """:func:`model_info` of a person detector: the input ``[batch_size, 1, cfg.num_frames,
    *frame_size]``, "backbone" = everything before the three output heads, "logits" = the heatmap.
    The temporal receptive field is measured as for the action models (all ``num_frames``)."""
    if not frame_spacing_s > 0:
        raise ValueError(f"frame_spacing_s must be > 0, got {frame_spacing_s}")
    model = build_detector(cfg).eval()
    heads = (model.heatmap_head, model.size_head, model.offset_head)
    total = sum(p.numel() for p in model.parameters())
    head_params = sum(p.numel() for h in heads for p in h.parameters())
    H, W = frame_size
    clip = torch.randn(batch_size, 1, cfg.num_frames, H, W, generator=torch.Generator().manual_seed(0))
    stages, handles = _stage_hooks(list(model.named_children()))
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            out = model(clip)
    finally:
        for h in handles:
            h.remove()
    probe = copy.deepcopy(model).float().eval()
    _reset_norms(probe)
    x = clip[:1].clone().requires_grad_(True)
    heat = probe(x).heatmap
    (grad,) = torch.autograd.grad(heat[..., heat.shape[-2] // 2, heat.shape[-1] // 2].sum(), x)
    rf = int((grad.abs().sum(dim=(0, 1, 3, 4)) > 0).sum())
    return ModelInfo(
        name=cfg.name,
        input_shape=tuple(clip.shape),
        backbone_input_shape=tuple(clip.shape),
        num_rois=0,
        total_params=total,
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        backbone_params=total - head_params,
        head_params=head_params,
        macs=int(counter.get_total_flops()) // 2,
        stages=stages,
        output_shape=tuple(out.heatmap.shape),
        spatial_stride=model.stride,
        pathway_strides=(1,),
        receptive_field_frames=rf,
        frame_spacing_s=frame_spacing_s,
    )


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def format_model_info(info: ModelInfo) -> str:
    """A readable multi-line table of ``info``."""
    lines = [
        f"model            {info.name}",
        f"input            {list(info.input_shape)}"
        + (f"  ({info.num_rois} boxes)" if info.num_rois else ""),
        f"backbone input   {list(info.backbone_input_shape)}  pathway strides {list(info.pathway_strides)}",
        f"parameters       {info.total_params:,} total, {info.trainable_params:,} trainable "
        f"(backbone {info.backbone_params:,}, head {info.head_params:,}"
        + (f", box cues {info.cue_params:,})" if info.cue_params else ")"),
        f"MACs             {_human(info.macs)} per batch, {_human(info.macs_per_clip)} per clip",
        f"spatial stride   {info.spatial_stride}",
        f"temporal RF      {info.receptive_field_frames} frames = {info.receptive_field_s:.2f} s "
        f"({info.frame_spacing_s:.3f} s per clip frame; the clip: {info.clip_frames} frames = "
        f"{info.clip_frames * info.frame_spacing_s:.2f} s)",
        f"{'logits' if info.num_rois else 'heatmap':<17}{list(info.output_shape)}",
        "",
        f"{'backbone stage' if info.num_rois else 'layer':<16} output shape(s)",
    ]
    for name, shapes in info.stages:
        lines.append(f"{name:<16} " + ", ".join(str(list(s)) for s in shapes))
    return "\n".join(lines)
