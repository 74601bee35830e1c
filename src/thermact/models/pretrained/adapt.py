"""Steps 5-6: exact adaptations of remapped tensors to the model's shapes."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["adapt_input_channels", "pad_temporal_kernels"]


def adapt_input_channels(
    tensors: Mapping[str, Tensor], model_shapes: Mapping[str, torch.Size]
) -> tuple[dict[str, Tensor], list[str]]:
    """Sum RGB stem kernels over the input-channel axis where the model has one input channel.

    A kernel ``w [C_out, 3, t, kh, kw]`` becomes ``w.sum(1, keepdim=True)``: the 1-channel conv of
    ``x`` equals the RGB conv of ``(x, x, x)``. Other tensors pass through unchanged.
    """
    out = dict(tensors)
    notes: list[str] = []
    for name, value in tensors.items():
        target = model_shapes.get(name)
        if (
            target is not None
            and re.match(r"^s1\.pathway\d_stem\.conv\.weight$", name)
            and value.dim() == 5
            and len(target) == 5
            and target[1] == 1
            and value.shape[1] != 1
            and value.shape[0] == target[0]
            and value.shape[2:] == target[2:]
        ):
            out[name] = value.sum(dim=1, keepdim=True)
            notes.append(f"{name}: summed {value.shape[1]} input channels to 1")
    return out, notes


def pad_temporal_kernels(
    tensors: Mapping[str, Tensor], model_shapes: Mapping[str, torch.Size]
) -> tuple[dict[str, Tensor], list[str]]:
    """Zero-pad odd temporal kernels ``[.., t, 1, 1]`` that are shorter than the model's.

    Both convolutions pad by ``k // 2``, so a kernel of ``t`` taps centred in ``T > t`` taps gives
    the same output (e.g. AlphAction's 5-tap lateral convs in a 7-tap model, the 1-tap res4
    blocks of "R101_50_50" checkpoints in a 3-tap model).
    """
    out = dict(tensors)
    notes: list[str] = []
    for name, value in tensors.items():
        target = model_shapes.get(name)
        if target is None or value.dim() != 5 or len(target) != 5:
            continue
        t_src, t_dst = value.shape[2], target[2]
        same_rest = value.shape[:2] == target[:2] and value.shape[3:] == target[3:]
        if same_rest and t_src < t_dst and t_src % 2 == 1 and t_dst % 2 == 1:
            half = (t_dst - t_src) // 2
            out[name] = F.pad(value, (0, 0, 0, 0, half, half))
            notes.append(f"{name}: temporal kernel {t_src} zero-padded to {t_dst}")
    return out, notes
