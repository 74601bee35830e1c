"""ThermalNet: a small (2+1)D residual backbone made for 40x60 ceiling thermal clips.

The published video backbones (SlowFast, X3D, ...) downsample by 16-32 before their last stage
and need their input upsampled 6x to make sense of a 40x60 thermal frame, where a person is only
7-19 pixels wide. ThermalNet instead works at the native resolution:

* total spatial stride 4 (a person still covers 2-5 feature cells);
* factorised (2+1)D convolutions: a spatial ``1x3x3`` conv, BN, ReLU, then a temporal ``kx1x1``
  conv, BN, with a residual connection and a final ReLU (no in-place op anywhere);
* temporal dilations and one temporal stride to reach a long temporal receptive field cheaply;
* fewer than 2 M parameters and a few hundred MMACs per 16-frame clip, so it trains on a CPU.

Input and output follow the :class:`thermact.models.base.Backbone` protocol: one pathway,
``forward([x]) -> [y]`` with ``x`` of shape ``[B, in_chans, T, H, W]`` and ``y`` of shape
``[B, widths[-1], T / prod(temporal_strides), H / 4, W / 4]`` (sizes rounded up).

Temporal receptive field of :func:`thermal_net_s` (k = 3, in input frames; see
:meth:`ThermalNet.temporal_receptive_field`):

==========  ========  ==========  ==========  =========
layer       dilation  t-stride    frame jump  RF after
==========  ========  ==========  ==========  =========
stem        1         1           1           3
stage1 x1   1         1           1           5
stage2 x2   1         2 (first)   1, then 2   7, 11
stage3 x2   2         1           2           19, 27
==========  ========  ==========  ==========  =========

so every output frame sees 27 input frames, 4.5 s at 6 fps: the whole default clip of 16
frames (2.7 s) contributes to the centre output frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["Conv2Plus1dBlock", "ThermalNet", "thermal_net_m", "thermal_net_s", "thermal_net_t"]


class Conv2Plus1dBlock(nn.Module):
    """Residual (2+1)D block: ``relu(bn(tconv(relu(bn(sconv(x))))) + shortcut(x))``.

    Args:
        in_channels: channels of the input ``[B, in_channels, T, H, W]``.
        out_channels: channels of the output.
        spatial_stride: stride of the ``1x3x3`` spatial conv (1 or 2).
        temporal_kernel: odd size ``k`` of the ``kx1x1`` temporal conv.
        temporal_dilation: dilation of the temporal conv.
        temporal_stride: stride of the temporal conv.

    Output: ``[B, out_channels, ceil(T / temporal_stride), ceil(H / spatial_stride),
    ceil(W / spatial_stride)]``. The shortcut is the identity when shapes match, else a strided
    ``1x1x1`` conv followed by BN.
    """

    conv_bn_pairs = (("conv_s", "bn_s"), ("conv_t", "bn_t"))
    """``forward`` applies each BN to that conv's output only (see :mod:`thermact.ops.fuse`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial_stride: int = 1,
        temporal_kernel: int = 3,
        temporal_dilation: int = 1,
        temporal_stride: int = 1,
    ) -> None:
        super().__init__()
        if temporal_kernel % 2 != 1:
            raise ValueError(f"temporal_kernel must be odd, got {temporal_kernel}")
        self.temporal_kernel = temporal_kernel
        self.temporal_dilation = temporal_dilation
        self.temporal_stride = temporal_stride
        self.conv_s = nn.Conv3d(
            in_channels,
            out_channels,
            kernel_size=(1, 3, 3),
            stride=(1, spatial_stride, spatial_stride),
            padding=(0, 1, 1),
            bias=False,
        )
        self.bn_s = nn.BatchNorm3d(out_channels)
        self.conv_t = nn.Conv3d(
            out_channels,
            out_channels,
            kernel_size=(temporal_kernel, 1, 1),
            stride=(temporal_stride, 1, 1),
            padding=(temporal_dilation * (temporal_kernel - 1) // 2, 0, 0),
            dilation=(temporal_dilation, 1, 1),
            bias=False,
        )
        self.bn_t = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=False)
        self.shortcut: nn.Module
        if in_channels != out_channels or spatial_stride != 1 or temporal_stride != 1:
            self.shortcut = nn.Sequential(
                nn.Conv3d(
                    in_channels,
                    out_channels,
                    kernel_size=1,
                    stride=(temporal_stride, spatial_stride, spatial_stride),
                    bias=False,
                ),
                nn.BatchNorm3d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn_s(self.conv_s(x)))
        out = self.bn_t(self.conv_t(out))
        result: Tensor = self.relu(out + self.shortcut(x))
        return result


class ThermalNet(nn.Module):
    """Thermal-native (2+1)D ResNet-style backbone (one pathway).

    Args:
        widths: output channels of each stage.
        depths: number of :class:`Conv2Plus1dBlock` per stage.
        spatial_strides: spatial stride of the first block of each stage.
        temporal_strides: temporal stride of the first block of each stage.
        temporal_dilations: temporal dilation of every block of a stage.
        temporal_kernel: odd temporal kernel size of all temporal convs.
        stem_widths: channels of the two stem spatial convs (full resolution ``3x3``, then a
            stride-``stem_stride`` ``3x3``); a ``kx1x1`` temporal conv to ``widths[0]`` follows.
        stem_stride: spatial stride of the stem (1 or 2).
        in_chans: input channels (1 for thermal).
        dropout: dropout probability applied to the output features (0 disables it).

    Attributes (the :class:`~thermact.models.base.Backbone` protocol):
        out_channels: ``(widths[-1],)``.
        spatial_stride: ``stem_stride * prod(spatial_strides)``.
        pathway_strides: ``(1,)``.
        temporal_stride: ``prod(temporal_strides)`` (output frames ``T' = ceil(T / temporal_stride)``).

    Shapes: ``forward([x])`` with ``x: [B, in_chans, T, H, W]`` returns
    ``[y]`` with ``y: [B, widths[-1], T', H', W']``.
    """

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 128),
        depths: Sequence[int] = (1, 2, 2),
        spatial_strides: Sequence[int] = (1, 2, 1),
        temporal_strides: Sequence[int] = (1, 2, 1),
        temporal_dilations: Sequence[int] = (1, 1, 2),
        temporal_kernel: int = 3,
        stem_widths: tuple[int, int] = (16, 32),
        stem_stride: int = 2,
        in_chans: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        n = len(widths)
        if not (len(depths) == len(spatial_strides) == len(temporal_strides) == len(temporal_dilations) == n):
            raise ValueError(
                "widths, depths, spatial_strides, temporal_strides and temporal_dilations must have the "
                f"same length, got {len(widths)}, {len(depths)}, {len(spatial_strides)}, "
                f"{len(temporal_strides)}, {len(temporal_dilations)}"
            )
        if temporal_kernel % 2 != 1:
            raise ValueError(f"temporal_kernel must be odd, got {temporal_kernel}")
        if any(d < 1 for d in depths):
            raise ValueError(f"every stage needs at least one block, got depths={tuple(depths)}")
        self.in_chans = in_chans
        self.temporal_kernel = temporal_kernel
        self.stem = nn.Sequential(
            nn.Conv3d(in_chans, stem_widths[0], kernel_size=(1, 3, 3), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(stem_widths[0]),
            nn.ReLU(inplace=False),
            nn.Conv3d(
                stem_widths[0],
                stem_widths[1],
                kernel_size=(1, 3, 3),
                stride=(1, stem_stride, stem_stride),
                padding=(0, 1, 1),
                bias=False,
            ),
            nn.BatchNorm3d(stem_widths[1]),
            nn.ReLU(inplace=False),
            nn.Conv3d(
                stem_widths[1],
                widths[0],
                kernel_size=(temporal_kernel, 1, 1),
                padding=((temporal_kernel - 1) // 2, 0, 0),
                bias=False,
            ),
            nn.BatchNorm3d(widths[0]),
            nn.ReLU(inplace=False),
        )
        stages: list[nn.Module] = []
        in_ch = widths[0]
        for i in range(n):
            blocks: list[nn.Module] = []
            for j in range(depths[i]):
                blocks.append(
                    Conv2Plus1dBlock(
                        in_ch,
                        widths[i],
                        spatial_stride=spatial_strides[i] if j == 0 else 1,
                        temporal_kernel=temporal_kernel,
                        temporal_dilation=temporal_dilations[i],
                        temporal_stride=temporal_strides[i] if j == 0 else 1,
                    )
                )
                in_ch = widths[i]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.dropout = nn.Dropout(p=dropout, inplace=False)

        self.out_channels: tuple[int, ...] = (int(widths[-1]),)
        stride = stem_stride
        for s in spatial_strides:
            stride *= s
        self.spatial_stride: int = int(stride)
        self.temporal_stride: int = int(math.prod(temporal_strides))
        self.pathway_strides: tuple[int, ...] = (1,)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def temporal_receptive_field(self) -> int:
        """Temporal receptive field of one output frame, in input frames (analytic).

        Walks the temporal convs along the main (deepest) path: each adds
        ``(k - 1) * dilation * jump`` frames, where ``jump`` is the product of the temporal
        strides before it. Shortcut convs are ``1x1x1`` and add nothing.
        """
        rf = 1 + (self.temporal_kernel - 1)  # stem temporal conv, dilation 1, jump 1
        jump = 1
        for stage in self.stages:
            for block in stage.children():
                assert isinstance(block, Conv2Plus1dBlock)
                rf += (block.temporal_kernel - 1) * block.temporal_dilation * jump
                jump *= block.temporal_stride
        return rf

    def forward(self, pathways: list[Tensor]) -> list[Tensor]:
        """``[x: [B, in_chans, T, H, W]] -> [y: [B, C, T', H/4, W/4]]``."""
        if len(pathways) != 1:
            raise ValueError(f"ThermalNet takes one pathway, got {len(pathways)}")
        x = pathways[0]
        if x.dim() != 5 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected input [B, {self.in_chans}, T, H, W], got {list(x.shape)}")
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return [self.dropout(x)]


def thermal_net_t(in_chans: int = 1, dropout: float = 0.0) -> ThermalNet:
    """ThermalNet-T (tiny, for live use): widths 16-32-64, depths 1-2-2, stride 4, temporal RF 27
    frames, 0.11 M params.

    About 0.09 GMACs per ``[1, 1, 8, 40, 60]`` clip (the live config's 8 frames over 2.7 s), an
    eighth of ThermalNet-S on its 16 frames; output ``[B, 64, T/2, H/4, W/4]``.
    """
    return ThermalNet(
        widths=(16, 32, 64),
        depths=(1, 2, 2),
        spatial_strides=(1, 2, 1),
        temporal_strides=(1, 2, 1),
        temporal_dilations=(1, 1, 2),
        temporal_kernel=3,
        stem_widths=(8, 16),
        stem_stride=2,
        in_chans=in_chans,
        dropout=dropout,
    )


def thermal_net_s(in_chans: int = 1, dropout: float = 0.0) -> ThermalNet:
    """ThermalNet-S: widths 32-64-128, depths 1-2-2, stride 4, temporal RF 27 frames, 0.43 M params.

    About 0.71 GMACs per ``[1, 1, 16, 40, 60]`` clip; output ``[B, 128, T/2, H/4, W/4]``.
    """
    return ThermalNet(
        widths=(32, 64, 128),
        depths=(1, 2, 2),
        spatial_strides=(1, 2, 1),
        temporal_strides=(1, 2, 1),
        temporal_dilations=(1, 1, 2),
        temporal_kernel=3,
        stem_widths=(16, 32),
        stem_stride=2,
        in_chans=in_chans,
        dropout=dropout,
    )


def thermal_net_m(in_chans: int = 1, dropout: float = 0.0) -> ThermalNet:
    """ThermalNet-M: widths 48-96-192, depths 1-2-3, stride 4, temporal RF 35 frames, 1.41 M params.

    About 2.1 GMACs per ``[1, 1, 16, 40, 60]`` clip; output ``[B, 192, T/2, H/4, W/4]``.
    """
    return ThermalNet(
        widths=(48, 96, 192),
        depths=(1, 2, 3),
        spatial_strides=(1, 2, 1),
        temporal_strides=(1, 2, 1),
        temporal_dilations=(1, 1, 2),
        temporal_kernel=3,
        stem_widths=(24, 48),
        stem_stride=2,
        in_chans=in_chans,
        dropout=dropout,
    )
