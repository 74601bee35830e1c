"""Per-person action classification head on top of a video backbone (AlphAction-style).

For each pathway feature map ``[B, C_i, T_i, H', W']`` the head pools over time, concatenates
the pathways along channels (``[B, sum(C_i), H', W']``), RoIAligns every person box to
``roi_size x roi_size``, pools that spatially to one vector per person, and runs a two-layer MLP
(``Linear -> ReLU -> Dropout``, twice) and a linear classifier.

The head returns *logits*; turning them into scores (softmax or sigmoid) is the job of
:mod:`thermact.models.postprocess`, and the loss lives in :mod:`thermact.models.losses`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from thermact.ops.roi_align import roi_align, roi_align_static

__all__ = ["RoIActionHead"]


def _is_tracing() -> bool:
    """True while ``torch.jit.trace`` / ``torch.onnx.export`` records the graph."""
    return bool(torch._C._get_tracing_state())


class RoIActionHead(nn.Module):
    """RoIAlign + MLP + linear classifier over pooled backbone features.

    Args:
        in_channels: channels of each pathway feature map.
        spatial_scale: feature cells per input pixel, i.e. ``1 / backbone.spatial_stride``.
        num_classes: number of action classes ``C``.
        roi_size: side of the RoIAlign output grid.
        mlp_dim: width of the two hidden layers (the per-person feature size).
        dropout: dropout probability after each hidden layer.
        temporal_pool: ``"avg"`` or ``"max"`` pooling over the time axis of each pathway.
        spatial_pool: ``"max"`` (as AlphAction) or ``"avg"`` pooling over the RoI grid.
        sampling_ratio: RoIAlign sampling points per bin and axis (``<= 0``: adaptive).
        aligned: RoIAlign half-pixel alignment (``True``: pixel ``i`` is centred at ``i + 0.5``).
        extra_dim: size of extra per-person features (e.g. the box cues of
            :class:`~thermact.models.box_cues.BoxCueEncoder`) appended to the pooled RoI features
            before the MLP (0: none).

    Shapes:
        features: list of ``[B, C_i, T_i, H', W']`` (same ``B``, ``H'``, ``W'`` for all ``i``).
        boxes: ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` in input-pixel coordinates.
        extra: ``[K, extra_dim]`` (required when ``extra_dim > 0``, else None).
        output of :meth:`forward`: logits ``[K, num_classes]``.
        output of :meth:`features`: ``[K, mlp_dim]``.
        output of :meth:`pooled`: ``[K, sum(C_i)]`` (with ``extra``, the input of the MLP).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        spatial_scale: float,
        num_classes: int,
        roi_size: int = 7,
        mlp_dim: int = 1024,
        dropout: float = 0.2,
        temporal_pool: Literal["avg", "max"] = "avg",
        spatial_pool: Literal["max", "avg"] = "max",
        sampling_ratio: int = -1,
        aligned: bool = True,
        extra_dim: int = 0,
    ) -> None:
        super().__init__()
        if temporal_pool not in ("avg", "max"):
            raise ValueError(f"temporal_pool must be 'avg' or 'max', got {temporal_pool!r}")
        if spatial_pool not in ("avg", "max"):
            raise ValueError(f"spatial_pool must be 'avg' or 'max', got {spatial_pool!r}")
        if len(in_channels) == 0:
            raise ValueError("in_channels is empty")
        if extra_dim < 0:
            raise ValueError(f"extra_dim must be >= 0, got {extra_dim}")
        if num_classes < 1 or roi_size < 1 or mlp_dim < 1:
            raise ValueError(
                f"num_classes, roi_size and mlp_dim must be positive, got {num_classes}, {roi_size}, {mlp_dim}"
            )
        self.in_channels: tuple[int, ...] = tuple(int(c) for c in in_channels)
        self.spatial_scale = float(spatial_scale)
        self.num_classes = num_classes
        self.roi_size = roi_size
        self.mlp_dim = mlp_dim
        self.temporal_pool = temporal_pool
        self.spatial_pool = spatial_pool
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.extra_dim = int(extra_dim)
        self.mlp = nn.Sequential(
            nn.Linear(sum(self.in_channels) + self.extra_dim, mlp_dim),
            nn.ReLU(inplace=False),
            nn.Dropout(dropout, inplace=False),
            nn.Linear(mlp_dim, mlp_dim),
            nn.ReLU(inplace=False),
            nn.Dropout(dropout, inplace=False),
        )
        self.classifier = nn.Linear(mlp_dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def pool_time(self, features: Sequence[Tensor]) -> Tensor:
        """``[[B, C_i, T_i, H', W']] -> [B, sum(C_i), H', W']`` by temporal pooling and concat."""
        if len(features) != len(self.in_channels):
            raise ValueError(f"expected {len(self.in_channels)} pathway features, got {len(features)}")
        pooled: list[Tensor] = []
        for i, f in enumerate(features):
            if f.dim() != 5 or int(f.shape[1]) != self.in_channels[i]:
                raise ValueError(
                    f"pathway {i}: expected features [B, {self.in_channels[i]}, T, H, W], got {list(f.shape)}"
                )
            pooled.append(f.mean(dim=2) if self.temporal_pool == "avg" else f.amax(dim=2))
        shapes = {(int(p.shape[0]), int(p.shape[2]), int(p.shape[3])) for p in pooled}
        if len(shapes) != 1:
            raise ValueError(
                f"pathway features differ in batch or spatial size: {[list(p.shape) for p in pooled]}"
            )
        return pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=1)

    @property
    def dim_in(self) -> int:
        """Size of the pooled per-person features (``sum(in_channels)``)."""
        return sum(self.in_channels)

    def pooled(self, features: Sequence[Tensor], boxes: Tensor) -> Tensor:
        """Per-person pooled features ``[K, sum(C_i)]`` (RoIAlign + spatial pooling, before the MLP)."""
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(f"boxes must be [K, 5] (batch_index, x1, y1, x2, y2), got {list(boxes.shape)}")
        fmap = self.pool_time(features)
        # tracing (ONNX export) records the static-shape variant: same values for any boxes
        align = roi_align_static if _is_tracing() else roi_align
        rois = align(
            fmap,
            boxes.to(dtype=fmap.dtype),
            output_size=self.roi_size,
            spatial_scale=self.spatial_scale,
            sampling_ratio=self.sampling_ratio,
            aligned=self.aligned,
        )  # [K, C, roi, roi]
        x: Tensor = rois.amax(dim=(2, 3)) if self.spatial_pool == "max" else rois.mean(dim=(2, 3))
        return x

    def _with_extra(self, pooled: Tensor, extra: Tensor | None) -> Tensor:
        """The MLP input: ``pooled [K, sum(C_i)]`` followed by ``extra [K, extra_dim]``."""
        if (extra is None) != (self.extra_dim == 0):
            given = "none" if extra is None else str(int(extra.shape[-1]))
            raise ValueError(f"this head takes {self.extra_dim} extra features per person, got {given}")
        return pooled if extra is None else torch.cat([pooled, extra.to(pooled.dtype)], dim=1)

    def features(self, features: Sequence[Tensor], boxes: Tensor, extra: Tensor | None = None) -> Tensor:
        """Per-person MLP features ``[K, mlp_dim]`` (after the second ReLU and dropout)."""
        out: Tensor = self.mlp(self._with_extra(self.pooled(features, boxes), extra))
        return out

    def classify_pooled(self, pooled: Tensor, extra: Tensor | None = None) -> Tensor:
        """Logits ``[K, num_classes]`` of pooled features ``[K, sum(C_i)]`` (MLP + classifier)."""
        logits: Tensor = self.classifier(self.mlp(self._with_extra(pooled, extra)))
        return logits

    def forward(self, features: Sequence[Tensor], boxes: Tensor, extra: Tensor | None = None) -> Tensor:
        """Logits ``[K, num_classes]`` for the ``K`` person boxes."""
        logits: Tensor = self.classifier(self.features(features, boxes, extra))
        return logits

    def extra_repr(self) -> str:
        return (
            f"spatial_scale={self.spatial_scale}, roi_size={self.roi_size}, temporal_pool={self.temporal_pool!r}, "
            f"spatial_pool={self.spatial_pool!r}"
            + (f", extra_dim={self.extra_dim}" if self.extra_dim else "")
        )
