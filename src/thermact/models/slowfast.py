"""SlowFast ResNet-50 / ResNet-101 backbones for spatio-temporal action detection.

Architecture (Feichtenhofer et al., "SlowFast Networks for Video Recognition", ICCV 2019) in the
detection setting used by AlphAction and PySlowFast's AVA configs: the last stage (res5) keeps
spatial stride 1 and uses spatial dilation 2, so the total spatial stride is 16.

Two pathways see the same clip of ``T`` frames (``T`` is the data's clip length, a multiple of
``alpha``; ``model.num_frames`` in the config):

* slow (pathway 0): every ``alpha``-th frame, ``T / alpha`` frames, full width (64 stem channels);
* fast (pathway 1): every frame, ``T`` frames, ``1 / beta_inv`` of the width (8 stem channels).

After the stem and after res2, res3 and res4 a lateral connection (``s{i}_fuse``) maps the fast
features to the slow time base with a temporal convolution (kernel ``fusion_kernel`` x 1 x 1,
stride ``alpha``, ``2 * C_fast`` output channels) and concatenates them to the slow features.
Temporal kernel sizes of the bottlenecks' first (1x1x1 / 3x1x1) convolution: slow 1, 1, 3, 3 and
fast 3, 3, 3, 3 for res2..res5; stem kernels 1x7x7 (slow) and 5x7x7 (fast), then a 1x3x3 max pool
with stride 2 and spatial padding ``stem_pool_padding`` (1 in PySlowFast and PyTorchVideo, 0 in
AlphAction). No temporal striding or pooling anywhere.

Shapes (``B`` batch, ``C_in`` = ``in_chans``, 1 for temperature frames)::

    input  [slow [B, C_in, T / alpha, H, W], fast [B, C_in, T, H, W]]
    output [slow [B, 2048, T / alpha, H / 16, W / 16], fast [B, 256, T, H / 16, W / 16]]

(``H`` and ``W`` multiples of 16; otherwise each stride-2 step rounds up.)

Parameter names mirror PySlowFast (``slowfast/models/video_model_builder.py``) so its ``.pyth``
checkpoints load with the identity map; the maps from the other formats, applied by
:mod:`thermact.models.pretrained`, are (``p`` pathway 0 slow / 1 fast, ``i`` stage 2..5,
``j`` block, ``x`` in a, b, c)::

    ours                              PySlowFast .pyth  Caffe2 .pkl (slow / fast "t_" prefix)
    s1.pathway{p}_stem.conv           same              [t_]conv1_w
    s1.pathway{p}_stem.bn.*           same              [t_]res_conv1_bn_{s,b,rm,riv}
    s{i}.pathway{p}_res{j}.branch1    same              [t_]res{i}_{j}_branch1_w
    s{i}.pathway{p}_res{j}.branch1_bn same              [t_]res{i}_{j}_branch1_bn_*
    s{i}.pathway{p}_res{j}.branch2.x  same              [t_]res{i}_{j}_branch2{x}_w
    s{i}.pathway{p}_res{j}.branch2.x_bn same            [t_]res{i}_{j}_branch2{x}_bn_*
    s1_fuse.conv_f2s / .bn            same              t_pool1_subsample_w / _bn_*
    s{i}_fuse.conv_f2s / .bn          same              t_res{i}_{last}_branch2c_bn_subsample_w / _bn_*

    ours                              AlphAction .pth (after "module."/"backbone.")
    s1.pathway{p}_stem.conv / .bn     {slow,fast}.conv1 / .bn1
    s{i}.pathway{p}_res{j}.branch1    {slow,fast}.res_nl{i-1}.res_{j}.shortcut.conv  (.bn -> branch1_bn)
    s{i}.pathway{p}_res{j}.branch2.x  {slow,fast}.res_nl{i-1}.res_{j}.btnk.conv{1,2,3}.conv (.bn -> x_bn)
    s{i}_fuse.conv_f2s (with bias)    fast.Tconv{i}.conv

    ours                              PyTorchVideo (``slowfast_r50``, ``slowfast_r101``;
                                      ``slowfast_r50_detection`` adds a "model." prefix)
    s1.pathway{p}_stem.conv / .bn     blocks.0.multipathway_blocks.{p}.conv / .norm
    s{i}.pathway{p}_res{j}.branch1    blocks.{i-1}.multipathway_blocks.{p}.res_blocks.{j}.branch1_conv
    s{i}.pathway{p}_res{j}.branch1_bn ....res_blocks.{j}.branch1_norm
    s{i}.pathway{p}_res{j}.branch2.x  ....res_blocks.{j}.branch2.conv_{x} (norm_{x} -> x_bn)
    s{i}_fuse.conv_f2s / .bn          blocks.{i-1}.multipathway_fusion.conv_fast_to_slow / .norm

Lateral-connection styles (``fusion_style``): ``"conv_bn_relu"`` (PySlowFast, PyTorchVideo,
Caffe2: bias-free conv, BatchNorm, ReLU) and ``"conv_bias"`` (AlphAction: conv with bias, no
normalisation or activation). A checkpoint only loads into a model of its own style.

The factories (``pathway_strides`` (alpha, 1); slow frames of a 32-frame clip): R50 4x16
(AlphAction ``resnet50_4x16f``, PySlowFast ``SLOWFAST_4x16_R50``: alpha 8, 4 frames), R50 8x8
(PySlowFast ``SLOWFAST_8x8_R50``, PyTorchVideo ``slowfast_r50`` / ``slowfast_r50_detection``:
alpha 4, 8 frames) and R101 8x8 (AlphAction ``resnet101_8x8f``, PyTorchVideo ``slowfast_r101``:
alpha 4, 8 frames).
AlphAction and PySlowFast 4x16 use 5-tap lateral convs, PySlowFast 8x8 and PyTorchVideo
``slowfast_r50`` 7-tap; the factories default to 7 taps, which loads every published checkpoint
exactly: every temporal kernel is padded by ``k // 2``, so a checkpoint with a shorter temporal
kernel (5-tap lateral convs, the 1-tap res4 blocks of "R101_50_50" models) is loaded exactly by
zero-padding it. What the tensors do not tell (stem pool padding, lateral style, alpha) is part of
what :mod:`thermact.models.pretrained` knows about each source.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FusionStyle = Literal["conv_bn_relu", "conv_bias"]
StemPoolPadding = Literal[0, 1]

_STAGE_DEPTHS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class FrozenBatchNorm3d(nn.Module):
    """BatchNorm3d with fixed statistics and affine parameters, all stored as buffers.

    ``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`` per channel; nothing is
    trained and nothing is updated. State-dict keys match :class:`torch.nn.BatchNorm3d` except
    ``num_batches_tracked``. Input and output ``[B, C, T, H, W]``.
    """

    weight: Tensor
    bias: Tensor
    running_mean: Tensor
    running_var: Tensor

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1, 1) + shift.view(1, -1, 1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def _norm(num_features: int, frozen: bool) -> nn.Module:
    return FrozenBatchNorm3d(num_features) if frozen else nn.BatchNorm3d(num_features)


class _Stem(nn.Module):
    """Conv (t x 7 x 7, spatial stride 2) + BN + ReLU + 1x3x3 max pool (stride 2, padding ``pool_padding``).

    ``[B, C_in, T, H, W] -> [B, C_out, T, H', W']`` with ``H' = ceil(H / 4)`` for ``pool_padding`` 1
    and ``H' = floor((ceil(H / 2) - 3) / 2) + 1`` for 0 (64 -> 16 and 15).
    """

    def __init__(
        self, in_chans: int, out_chans: int, temporal_kernel: int, pool_padding: int, frozen_bn: bool
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(
            in_chans,
            out_chans,
            kernel_size=(temporal_kernel, 7, 7),
            stride=(1, 2, 2),
            padding=(temporal_kernel // 2, 3, 3),
            bias=False,
        )
        self.bn = _norm(out_chans, frozen_bn)
        self.relu = nn.ReLU(inplace=False)
        self.pool = nn.MaxPool3d(
            kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, pool_padding, pool_padding)
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.pool(self.relu(self.bn(self.conv(x))))
        return out


class _StemPair(nn.Module):
    """Stems of both pathways: slow 1x7x7 conv, fast 5x7x7 conv (``pathway{p}_stem``)."""

    def __init__(
        self, in_chans: int, slow_chans: int, fast_chans: int, pool_padding: int, frozen_bn: bool
    ) -> None:
        super().__init__()
        self.pathway0_stem = _Stem(in_chans, slow_chans, 1, pool_padding, frozen_bn)
        self.pathway1_stem = _Stem(in_chans, fast_chans, 5, pool_padding, frozen_bn)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        return [self.pathway0_stem(xs[0]), self.pathway1_stem(xs[1])]


class _Bottleneck(nn.Module):
    """Bottleneck transform ``a`` (t x 1 x 1) -> ``b`` (1 x 3 x 3, strided, dilated) -> ``c`` (1x1x1).

    ``[B, C_in, T, H, W] -> [B, C_out, T, H / stride, W / stride]`` (without the residual).
    """

    def __init__(
        self,
        in_chans: int,
        inner_chans: int,
        out_chans: int,
        temporal_kernel: int,
        stride: int,
        dilation: int,
        frozen_bn: bool,
    ) -> None:
        super().__init__()
        self.a = nn.Conv3d(
            in_chans, inner_chans, (temporal_kernel, 1, 1), padding=(temporal_kernel // 2, 0, 0), bias=False
        )
        self.a_bn = _norm(inner_chans, frozen_bn)
        self.b = nn.Conv3d(
            inner_chans,
            inner_chans,
            (1, 3, 3),
            stride=(1, stride, stride),
            padding=(0, dilation, dilation),
            dilation=(1, dilation, dilation),
            bias=False,
        )
        self.b_bn = _norm(inner_chans, frozen_bn)
        self.c = nn.Conv3d(inner_chans, out_chans, 1, bias=False)
        self.c_bn = _norm(out_chans, frozen_bn)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.a_bn(self.a(x)))
        x = F.relu(self.b_bn(self.b(x)))
        out: Tensor = self.c_bn(self.c(x))
        return out


class _ResBlock(nn.Module):
    """Residual bottleneck block; ``branch1`` (1x1x1 projection) when channels or stride change."""

    def __init__(
        self,
        in_chans: int,
        inner_chans: int,
        out_chans: int,
        temporal_kernel: int,
        stride: int,
        dilation: int,
        frozen_bn: bool,
    ) -> None:
        super().__init__()
        self.branch1: nn.Conv3d | None = None
        self.branch1_bn: nn.Module | None = None
        if in_chans != out_chans or stride != 1:
            self.branch1 = nn.Conv3d(in_chans, out_chans, 1, stride=(1, stride, stride), bias=False)
            self.branch1_bn = _norm(out_chans, frozen_bn)
        self.branch2 = _Bottleneck(
            in_chans, inner_chans, out_chans, temporal_kernel, stride, dilation, frozen_bn
        )

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        if self.branch1 is not None and self.branch1_bn is not None:
            shortcut = self.branch1_bn(self.branch1(x))
        return F.relu(shortcut + self.branch2(x))


class _Stage(nn.Module):
    """One ResNet stage for both pathways: blocks ``pathway{p}_res{j}``."""

    def __init__(
        self,
        in_chans: tuple[int, int],
        inner_chans: tuple[int, int],
        out_chans: tuple[int, int],
        temporal_kernels: tuple[int, int],
        depth: int,
        stride: int,
        dilation: int,
        frozen_bn: bool,
    ) -> None:
        super().__init__()
        self.depth = depth
        for p in range(2):
            for j in range(depth):
                block = _ResBlock(
                    in_chans[p] if j == 0 else out_chans[p],
                    inner_chans[p],
                    out_chans[p],
                    temporal_kernels[p],
                    stride if j == 0 else 1,
                    dilation,
                    frozen_bn,
                )
                self.add_module(f"pathway{p}_res{j}", block)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        outs = []
        for p, x in enumerate(xs):
            for j in range(self.depth):
                x = getattr(self, f"pathway{p}_res{j}")(x)
            outs.append(x)
        return outs


class _FuseFastToSlow(nn.Module):
    """Lateral connection: ``slow <- cat(slow, conv_f2s(fast))`` along channels.

    ``conv_f2s``: kernel ``k x 1 x 1``, temporal stride ``alpha``, padding ``k // 2``,
    ``C_fast -> ratio * C_fast`` channels; followed by BN + ReLU in the ``conv_bn_relu`` style.
    ``[slow [B, Cs, T/alpha, H, W], fast [B, Cf, T, H, W]] -> [slow [B, Cs + ratio*Cf, ...], fast]``.
    """

    def __init__(
        self, fast_chans: int, ratio: int, kernel: int, alpha: int, style: FusionStyle, frozen_bn: bool
    ) -> None:
        super().__init__()
        self.conv_f2s = nn.Conv3d(
            fast_chans,
            fast_chans * ratio,
            kernel_size=(kernel, 1, 1),
            stride=(alpha, 1, 1),
            padding=(kernel // 2, 0, 0),
            bias=style == "conv_bias",
        )
        self.bn: nn.Module | None = _norm(fast_chans * ratio, frozen_bn) if style == "conv_bn_relu" else None

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        slow, fast = xs
        lateral = self.conv_f2s(fast)
        if self.bn is not None:
            lateral = F.relu(self.bn(lateral))
        if lateral.shape[2] != slow.shape[2]:
            raise ValueError(
                f"lateral connection gives {lateral.shape[2]} frames but the slow pathway has "
                f"{slow.shape[2]}: the fast clip must have alpha times as many frames as the slow one"
            )
        return [torch.cat([slow, lateral], dim=1), fast]


class SlowFast(nn.Module):
    """Two-pathway SlowFast ResNet backbone (see the module docstring for the layout).

    Args:
        depth: 50 or 101 (stage depths 3-4-6-3 / 3-4-23-3).
        alpha: frame-rate ratio fast / slow; also the lateral convs' temporal stride.
        beta_inv: channel ratio slow / fast (8: the fast pathway has 1/8 of the channels).
        fusion_kernel: temporal kernel of the lateral convs (odd).
        fusion_channel_ratio: output / input channels of the lateral convs.
        fusion_style: ``"conv_bn_relu"`` (PySlowFast, PyTorchVideo) or ``"conv_bias"`` (AlphAction).
        in_chans: input channels of both pathways (1 for temperature frames).
        frozen_bn: use :class:`FrozenBatchNorm3d` (buffers only) instead of BatchNorm3d.
        res5_stride: spatial stride of res5 (1 for detection, 2 for classification).
        res5_dilation: spatial dilation of res5's 3x3 convs (2 for detection).
        stem_pool_padding: spatial padding of the stems' 1x3x3 max pool: 1 (PySlowFast,
            PyTorchVideo) or 0 (AlphAction). The same weights compute different features with the
            other value, so it must be the checkpoint source's.

    Attributes:
        out_channels: channels of the (slow, fast) outputs, (2048, 256) for beta_inv 8.
        spatial_stride: total spatial stride of both outputs, 16 when ``res5_stride`` is 1.
        pathway_strides: temporal subsampling of each pathway relative to the clip, (alpha, 1).
    """

    def __init__(
        self,
        depth: int = 50,
        alpha: int = 8,
        beta_inv: int = 8,
        fusion_kernel: int = 7,
        fusion_channel_ratio: int = 2,
        fusion_style: FusionStyle = "conv_bn_relu",
        in_chans: int = 1,
        frozen_bn: bool = False,
        res5_stride: int = 1,
        res5_dilation: int = 2,
        stem_pool_padding: StemPoolPadding = 1,
    ) -> None:
        super().__init__()
        if depth not in _STAGE_DEPTHS:
            raise ValueError(f"depth must be one of {sorted(_STAGE_DEPTHS)}, got {depth}")
        if fusion_kernel % 2 != 1:
            raise ValueError(f"fusion_kernel must be odd, got {fusion_kernel}")
        if fusion_style not in ("conv_bn_relu", "conv_bias"):
            raise ValueError(f"fusion_style must be 'conv_bn_relu' or 'conv_bias', got {fusion_style!r}")
        if stem_pool_padding not in (0, 1):
            raise ValueError(f"stem_pool_padding must be 0 or 1, got {stem_pool_padding}")
        self.depth = depth
        self.alpha = alpha
        self.beta_inv = beta_inv
        self.in_chans = in_chans
        self.frozen_bn = frozen_bn
        self.fusion_style: FusionStyle = fusion_style
        self.stem_pool_padding: StemPoolPadding = stem_pool_padding
        self.res5_stride = res5_stride
        self.res5_dilation = res5_dilation
        self.pathway_strides: tuple[int, int] = (alpha, 1)
        self.spatial_stride: int = 16 * res5_stride

        width = 64
        fast_width = width // beta_inv
        ratio = fusion_channel_ratio
        self.s1 = _StemPair(in_chans, width, fast_width, stem_pool_padding, frozen_bn)
        self.s1_fuse = _FuseFastToSlow(fast_width, ratio, fusion_kernel, alpha, fusion_style, frozen_bn)

        slow_kernels = (1, 1, 3, 3)
        fast_kernels = (3, 3, 3, 3)
        strides = (1, 2, 2, res5_stride)
        dilations = (1, 1, 1, res5_dilation)
        slow_in, fast_in = width + ratio * fast_width, fast_width
        stages: list[_Stage] = []
        fuses: list[_FuseFastToSlow] = []
        for k, n_blocks in enumerate(_STAGE_DEPTHS[depth]):
            inner_slow = width * 2**k
            out_slow, out_fast = 4 * inner_slow, 4 * inner_slow // beta_inv
            stages.append(
                _Stage(
                    in_chans=(slow_in, fast_in),
                    inner_chans=(inner_slow, inner_slow // beta_inv),
                    out_chans=(out_slow, out_fast),
                    temporal_kernels=(slow_kernels[k], fast_kernels[k]),
                    depth=n_blocks,
                    stride=strides[k],
                    dilation=dilations[k],
                    frozen_bn=frozen_bn,
                )
            )
            if k < 3:
                fuses.append(_FuseFastToSlow(out_fast, ratio, fusion_kernel, alpha, fusion_style, frozen_bn))
            slow_in, fast_in = out_slow + ratio * out_fast, out_fast
        # Registered in PySlowFast's order: s2, s2_fuse, s3, s3_fuse, s4, s4_fuse, s5 (no s5_fuse).
        self.s2 = stages[0]
        self.s2_fuse = fuses[0]
        self.s3 = stages[1]
        self.s3_fuse = fuses[1]
        self.s4 = stages[2]
        self.s4_fuse = fuses[2]
        self.s5 = stages[3]
        self.out_channels: tuple[int, int] = (out_slow, out_fast)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, pathways: list[Tensor]) -> list[Tensor]:
        """``[slow [B, C_in, T/alpha, H, W], fast [B, C_in, T, H, W]]`` -> ``[slow, fast]`` features.

        Outputs: slow ``[B, out_channels[0], T/alpha, H/16, W/16]``, fast
        ``[B, out_channels[1], T, H/16, W/16]`` (for ``spatial_stride`` 16).
        """
        if len(pathways) != 2:
            raise ValueError(f"SlowFast expects [slow, fast] inputs, got {len(pathways)} tensors")
        for name, x in zip(("slow", "fast"), pathways, strict=True):
            if x.dim() != 5 or x.shape[1] != self.in_chans:
                raise ValueError(f"{name} input must be [B, {self.in_chans}, T, H, W], got {list(x.shape)}")
        xs = self.s1_fuse(self.s1(pathways))
        xs = self.s2_fuse(self.s2(xs))
        xs = self.s3_fuse(self.s3(xs))
        xs = self.s4_fuse(self.s4(xs))
        out: list[Tensor] = self.s5(xs)
        return out


def slowfast_r50_4x16(
    in_chans: int = 1,
    frozen_bn: bool = False,
    fusion_style: FusionStyle = "conv_bn_relu",
    fusion_kernel: int = 7,
    stem_pool_padding: StemPoolPadding = 1,
) -> SlowFast:
    """SlowFast R50 4x16 (AlphAction ``resnet50_4x16f``, PySlowFast ``SLOWFAST_4x16_R50``): alpha 8,
    a 32-frame clip gives the slow pathway 4 frames. Detection setting: res5 stride 1, dilation 2."""
    return SlowFast(
        depth=50,
        alpha=8,
        fusion_kernel=fusion_kernel,
        fusion_style=fusion_style,
        in_chans=in_chans,
        frozen_bn=frozen_bn,
        stem_pool_padding=stem_pool_padding,
    )


def slowfast_r50_8x8(
    in_chans: int = 1,
    frozen_bn: bool = False,
    fusion_style: FusionStyle = "conv_bn_relu",
    fusion_kernel: int = 7,
    stem_pool_padding: StemPoolPadding = 1,
) -> SlowFast:
    """SlowFast R50 8x8 (PySlowFast ``SLOWFAST_8x8_R50``, PyTorchVideo ``slowfast_r50`` and
    ``slowfast_r50_detection``): alpha 4, a 32-frame clip gives the slow pathway 8 frames.
    Detection setting: res5 stride 1, dilation 2."""
    return SlowFast(
        depth=50,
        alpha=4,
        fusion_kernel=fusion_kernel,
        fusion_style=fusion_style,
        in_chans=in_chans,
        frozen_bn=frozen_bn,
        stem_pool_padding=stem_pool_padding,
    )


def slowfast_r101_8x8(
    in_chans: int = 1,
    frozen_bn: bool = False,
    fusion_style: FusionStyle = "conv_bn_relu",
    fusion_kernel: int = 7,
    stem_pool_padding: StemPoolPadding = 1,
) -> SlowFast:
    """SlowFast R101 8x8 (AlphAction ``resnet101_8x8f``, PyTorchVideo ``slowfast_r101``): alpha 4,
    a 32-frame clip gives the slow pathway 8 frames. Detection setting: res5 stride 1, dilation 2."""
    return SlowFast(
        depth=101,
        alpha=4,
        fusion_kernel=fusion_kernel,
        fusion_style=fusion_style,
        in_chans=in_chans,
        frozen_bn=frozen_bn,
        stem_pool_padding=stem_pool_padding,
    )
