"""Inference-time layout of convolutions for a CPU: the same model, computed faster.

oneDNN runs the small-channel convolutions of thermact's networks fastest on channels-last
tensors, and a *temporal* 3D convolution (kernel ``k x 1 x 1``) 3-5x faster as a 2D convolution
than as a 3D one: with the pixels of a frame flattened into one axis, ``[B, C, T, H, W]`` is
``[B, C, T, H * W]`` (a view, no copy, in both memory formats) and the ``k x 1 x 1`` kernel is a
``k x 1`` kernel over it. Measured on one core (Zen 4), batch of 4 clips: 16 channels, 8 x 20 x 30:
1.64 ms as a channels-last Conv3d, 0.29 ms as this Conv2d.

:func:`to_cpu_layout` rewrites a model in place:

* every ``Conv3d`` with a ``k x 1 x 1`` kernel (spatial stride 1, no spatial padding) becomes a
  :class:`TemporalConv` holding the same weights;
* every convolution's weights become channels-last (``channels_last`` for 2D, ``channels_last_3d``
  for 3D), so oneDNN keeps the activations channels-last from layer to layer.

The values are those of the original model up to float rounding (a different summation order,
~1e-6 relative); parameters keep their names, so a state dict still loads after a reshape of the
temporal weights (see :class:`TemporalConv`). Meant for inference copies
(:func:`thermact.ops.fuse.prepare_for_inference`), not for training.
"""

from __future__ import annotations

from typing import TypeGuard

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SpatialConv", "TemporalConv", "is_spatial", "is_temporal", "to_cpu_layout"]


def _padding(conv: nn.Conv3d) -> tuple[int, ...] | None:
    """The padding of ``conv`` per dimension, None for ``padding="same"`` / ``"valid"`` (left as
    Conv3d: rare here, and the 2D computation would need the padding spelled out)."""
    return None if isinstance(conv.padding, str) else tuple(int(p) for p in conv.padding)


def is_temporal(conv: nn.Module) -> TypeGuard[nn.Conv3d]:
    """Whether ``conv`` is a ``Conv3d`` over time only: kernel ``k x 1 x 1``, spatial stride 1,
    no spatial padding (what :class:`TemporalConv` computes)."""
    if not isinstance(conv, nn.Conv3d) or conv.padding_mode != "zeros":
        return False
    padding = _padding(conv)
    return (
        conv.kernel_size[1:] == (1, 1)
        and conv.stride[1:] == (1, 1)
        and padding is not None
        and padding[1:] == (0, 0)
    )


def is_spatial(conv: nn.Module) -> TypeGuard[nn.Conv3d]:
    """Whether ``conv`` is a ``Conv3d`` over space only: kernel ``1 x kh x kw``, temporal stride 1,
    no temporal padding (what :class:`SpatialConv` computes)."""
    if not isinstance(conv, nn.Conv3d) or conv.padding_mode != "zeros":
        return False
    padding = _padding(conv)
    return conv.kernel_size[0] == 1 and conv.stride[0] == 1 and padding is not None and padding[0] == 0


class _Conv3dAs2d(nn.Module):
    """The weights of a ``Conv3d`` with one kernel axis of size 1, dropped, for ``F.conv2d``
    (channels-last): ``axis`` 2 (time) or 4 (width: the kernel is ``k x 1`` over ``(T, H * W)``)."""

    def __init__(self, conv: nn.Conv3d, axis: int, dims: slice) -> None:
        super().__init__()
        weight = conv.weight.detach().select(axis, 0).contiguous(memory_format=torch.channels_last)
        self.weight = nn.Parameter(weight, requires_grad=False)
        bias = conv.bias
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)
        padding = _padding(conv)
        assert padding is not None
        self.stride = tuple(conv.stride[dims])
        self.padding = padding[dims]
        self.dilation = tuple(conv.dilation[dims])
        self.groups = conv.groups

    def conv2d(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class TemporalConv(_Conv3dAs2d):
    """A ``k x 1 x 1`` ``Conv3d`` computed as a ``k x 1`` ``Conv2d`` over ``[B, C, T, H * W]``.

    Args:
        conv: the 3D convolution (see :func:`is_temporal`); its weights are kept as
            ``weight [O, I / groups, k, 1]`` (channels-last) and ``bias [O]``.

    Shapes: ``x [B, C, T, H, W]`` → ``[B, O, T', H, W]``, ``T'`` as the 3D convolution gives it.
    """

    def __init__(self, conv: nn.Conv3d) -> None:
        if not is_temporal(conv):
            raise ValueError(
                f"TemporalConv needs a k x 1 x 1 Conv3d without spatial stride or padding, got {conv}"
            )
        super().__init__(conv, axis=4, dims=slice(0, 2))  # (T, H) of the kernel: (k, 1)

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        out = self.conv2d(x.flatten(3))
        return out.view(*out.shape[:3], height, width)


class SpatialConv(_Conv3dAs2d):
    """A ``1 x kh x kw`` ``Conv3d`` computed as a ``kh x kw`` ``Conv2d`` over the ``B * T`` frames.

    Args:
        conv: the 3D convolution (see :func:`is_spatial`); its weights are kept as
            ``weight [O, I / groups, kh, kw]`` (channels-last) and ``bias [O]``.

    Shapes: ``x [B, C, T, H, W]`` → ``[B, O, T, H', W']``, ``H', W'`` as the 3D convolution gives
    them. A channels-last ``x`` is read and the result written without a copy.
    """

    def __init__(self, conv: nn.Conv3d) -> None:
        if not is_spatial(conv):
            raise ValueError(
                f"SpatialConv needs a 1 x kh x kw Conv3d without temporal stride or padding, got {conv}"
            )
        super().__init__(conv, axis=2, dims=slice(1, 3))

    def forward(self, x: Tensor) -> Tensor:
        batch, _, frames = x.shape[:3]
        out = self.conv2d(x.transpose(1, 2).flatten(0, 1))  # over [B * T, C, H, W]
        return out.view(batch, frames, *out.shape[1:]).transpose(1, 2)


def _channels_last(conv: nn.Conv2d | nn.Conv3d) -> None:
    fmt = torch.channels_last if isinstance(conv, nn.Conv2d) else torch.channels_last_3d
    conv.weight = nn.Parameter(conv.weight.detach().contiguous(memory_format=fmt), requires_grad=False)


def to_cpu_layout(model: nn.Module) -> nn.Module:
    """``model`` (changed in place and returned) with its temporal 3D convolutions as
    :class:`TemporalConv` and every convolution's weights channels-last (module docstring)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if is_temporal(child):
                setattr(parent, name, TemporalConv(child))
            elif is_spatial(child) and child.in_channels > 1:  # one channel: Conv3d is faster
                setattr(parent, name, SpatialConv(child))
            elif isinstance(child, (nn.Conv2d, nn.Conv3d)):
                _channels_last(child)
    return model
