"""Inference-time folding of BatchNorm into the convolution before it.

In eval mode ``bn(conv(x))`` is an affine map of ``conv(x)`` per output channel, so it equals one
convolution with rescaled weights and a bias::

    s = gamma / sqrt(running_var + eps)
    W' = W * s   (per output channel)      b' = (b - running_mean) * s + beta

:func:`fold_batchnorm` applies this to a *copy* of a model wherever a BatchNorm is known to take
a convolution's output directly:

* consecutive ``Conv{1,2,3}d`` → ``BatchNorm{1,2,3}d`` children of an ``nn.Sequential``;
* attribute pairs a module declares in a class attribute ``conv_bn_pairs``, e.g.
  ``(("conv_s", "bn_s"), ("conv_t", "bn_t"))``: a promise that its ``forward`` applies that BN to
  that conv's output and to nothing else.

Each folded BatchNorm becomes ``nn.Identity``. The values match the unfolded model in eval mode up
to float rounding; training the folded copy is not meant (its BatchNorm is gone).
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

from thermact.ops.cpu_layout import to_cpu_layout

__all__ = ["fold_batchnorm", "fuse_conv_bn", "prepare_for_inference"]

_ConvBN = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d), (nn.Conv3d, nn.BatchNorm3d))


def _is_pair(conv: nn.Module, bn: nn.Module) -> bool:
    return any(
        type(conv) is c and type(bn) is b and bn.track_running_stats and conv.out_channels == bn.num_features
        for c, b in _ConvBN
    )


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv1d | nn.Conv2d | nn.Conv3d, bn: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """A new convolution equal to ``bn(conv(x))`` with ``bn`` in eval mode (inputs unchanged)."""
    assert bn.running_mean is not None and bn.running_var is not None
    fused = copy.deepcopy(conv)
    scale = (
        bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else torch.rsqrt(bn.running_var + bn.eps)
    )
    shift = bn.bias if bn.affine else torch.zeros_like(scale)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    shape = (-1,) + (1,) * (conv.weight.dim() - 1)
    fused.weight = nn.Parameter(conv.weight * scale.reshape(shape))
    fused.bias = nn.Parameter((bias - bn.running_mean) * scale + shift)
    return fused


def _fold_in_place(module: nn.Module) -> int:
    folded = 0
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for a, b in itertools.pairwise(names):
            conv, bn = module._modules[a], module._modules[b]
            if conv is not None and bn is not None and _is_pair(conv, bn):
                module._modules[a] = fuse_conv_bn(conv, bn)  # type: ignore[arg-type]
                module._modules[b] = nn.Identity()
                folded += 1
    for conv_name, bn_name in getattr(type(module), "conv_bn_pairs", ()):
        conv, bn = getattr(module, conv_name), getattr(module, bn_name)
        if _is_pair(conv, bn):
            setattr(module, conv_name, fuse_conv_bn(conv, bn))
            setattr(module, bn_name, nn.Identity())
            folded += 1
    for child in module.children():
        folded += _fold_in_place(child)
    return folded


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """An eval-mode copy of ``model`` with every known conv → BatchNorm pair folded (see the module
    docstring); returns the copy and the number of BatchNorms folded. ``model`` is not changed."""
    fused = copy.deepcopy(model).eval()
    count = _fold_in_place(fused)
    return fused, count


def prepare_for_inference(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """An eval-mode copy of ``model`` on ``device``, made faster for inference: BatchNorms folded
    into the convolutions before them (:func:`fold_batchnorm`) and, on a CPU,
    the convolutions laid out for oneDNN (:func:`thermact.ops.cpu_layout.to_cpu_layout`:
    channels-last weights, temporal 3D convolutions as 2D ones). Same values up to float rounding
    (~1e-6); ``model`` itself is not changed."""
    fused, _ = fold_batchnorm(model)
    fused = fused.to(device)
    return to_cpu_layout(fused) if device.type == "cpu" else fused
