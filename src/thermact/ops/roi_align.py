"""RoIAlign in plain PyTorch, with exactly the semantics of ``torchvision.ops.roi_align``.

Each RoI output bin is the mean of a ``grid_h × grid_w`` grid of bilinearly interpolated samples.
Both the bilinear kernel and torchvision's border rules factorise over the two axes (a sample counts
only if its ``y`` *and* its ``x`` lie inside the valid band), so for RoI ``k`` the pooled map is

    out[k] = Wy[k] @ feat[b_k] @ Wx[k]^T

where ``Wy[k]`` (``[oh, H]``) and ``Wx[k]`` (``[ow, W]``) hold the interpolation weights of each output
row/column averaged over that bin's sampling points. The weight matrices are built without autograd
(boxes get no gradient, as in torchvision); the two matrix products carry the gradient to the input.

Box format: pixel XYXY ``[x1, y1, x2, y2]`` in the coordinate frame of the *original* image; they are
multiplied by ``spatial_scale`` to reach feature-map coordinates. With ``aligned=True`` a half-pixel
offset is subtracted so that pixel ``i`` of the feature map is centred at continuous coordinate
``i + 0.5`` (the convention of :mod:`thermact.ops.boxes`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["RoIAlign", "roi_align"]


def _pair(output_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(output_size, int):
        size = (output_size, output_size)
    else:
        size = (int(output_size[0]), int(output_size[1]))
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"roi_align: output_size must be positive, got {output_size!r}")
    return size


def _to_rois(
    boxes: Tensor | list[Tensor] | tuple[Tensor, ...], dtype: torch.dtype, device: torch.device
) -> Tensor:
    """Boxes as ``Tensor[K, 5]`` or a per-image list of ``Tensor[K_i, 4]`` → ``Tensor[K, 5]``."""
    if isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(
                f"roi_align: boxes tensor must have shape [K, 5] (batch_index, x1, y1, x2, y2), "
                f"got {list(boxes.shape)}"
            )
        return boxes.detach().to(device=device, dtype=dtype)
    parts: list[Tensor] = []
    for i, b in enumerate(boxes):
        if b.dim() != 2 or b.shape[1] != 4:
            raise ValueError(
                f"roi_align: boxes[{i}] must have shape [K_i, 4] (x1, y1, x2, y2), got {list(b.shape)}"
            )
        b = b.detach().to(device=device, dtype=dtype)
        parts.append(torch.cat([torch.full_like(b[:, :1], float(i)), b], dim=1))
    if not parts:
        return torch.zeros(0, 5, dtype=dtype, device=device)
    return torch.cat(parts, dim=0)


def _roi_extents(rois: Tensor, spatial_scale: float, aligned: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x1, y1, width, height)`` of ``rois [K, 5]`` in feature-map units (torchvision's rules:
    half-pixel offset when ``aligned``, else extents forced to at least 1)."""
    offset = 0.5 if aligned else 0.0
    x1 = rois[:, 1] * spatial_scale - offset
    y1 = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - x1
    roi_h = rois[:, 4] * spatial_scale - offset - y1
    if not aligned:
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    return x1, y1, roi_w, roi_h


def _axis_weights(start: Tensor, length: Tensor, pooled: int, size: int, sampling_ratio: int) -> Tensor:
    """Interpolation weights of one axis for every RoI.

    Args:
        start: ``[K]`` RoI start coordinate on this axis (feature-map units, offset already applied).
        length: ``[K]`` RoI extent on this axis (already forced ``>= 1`` when ``aligned=False``).
        pooled: number of output bins on this axis.
        size: feature-map extent on this axis (``H`` or ``W``).
        sampling_ratio: samples per bin, or ``<= 0`` for adaptive ``ceil(length / pooled)``.

    Returns:
        ``[K, pooled, size]``: row ``p`` is the mean over the bin's sampling points of their bilinear
        weights on the ``size`` feature positions (samples outside ``[-1, size]`` contribute zero).
    """
    K = start.shape[0]
    dtype, device = start.dtype, start.device
    bin_size = length / pooled
    if sampling_ratio > 0:
        grid = torch.full((K,), sampling_ratio, dtype=torch.int64, device=device)
    else:
        grid = torch.ceil(length / pooled).clamp(min=0).to(torch.int64)
    n_max = int(grid.max().item()) if K > 0 else 0
    weights = torch.zeros(K, pooled, size, dtype=dtype, device=device)
    if n_max == 0:
        return weights
    grid_f = grid.clamp(min=1).to(dtype)
    p = torch.arange(pooled, device=device, dtype=dtype)
    i = torch.arange(n_max, device=device, dtype=dtype)
    # Same operation order as torchvision: start + p * bin + (i + 0.5) * bin / grid.
    coord = (
        start[:, None, None]
        + p[None, :, None] * bin_size[:, None, None]
        + (i + 0.5)[None, None, :] * bin_size[:, None, None] / grid_f[:, None, None]
    )  # [K, pooled, n_max]
    in_grid = torch.arange(n_max, device=device)[None, None, :] < grid[:, None, None]
    valid = in_grid & (coord >= -1.0) & (coord <= size)
    low, high, w_low, w_high = _bilinear_taps(coord, valid, size)
    weights.scatter_add_(2, low.to(torch.int64), w_low)
    weights.scatter_add_(2, high.to(torch.int64), w_high)
    return weights / grid_f[:, None, None]


def _bilinear_taps(coord: Tensor, valid: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Bilinear neighbours of samples at ``coord`` on an axis of ``size`` cells, torchvision's rules.

    Coordinates ``<= 0`` clamp to 0, those at or past the last cell clamp to it. Returns the lower
    and upper neighbour positions (whole numbers, in ``coord``'s dtype) and their weights, zero
    where ``valid`` is False.
    """
    c = coord.clamp(min=0.0)
    low = torch.floor(c)
    last = float(size - 1)
    at_edge = low >= last
    low = torch.where(at_edge, torch.full_like(low, last), low)
    high = torch.where(at_edge, low, low + 1.0)
    c = torch.where(at_edge, low, c)
    frac_high = c - low
    zero = torch.zeros_like(frac_high)
    return low, high, torch.where(valid, 1.0 - frac_high, zero), torch.where(valid, frac_high, zero)


def _group_by_image(rois: Tensor, num_images: int) -> tuple[list[int], Tensor | None]:
    """Check ``rois [K, 5]`` (finite, integer batch indices in range); return the RoI count of each
    image and the order that groups them by image (None when they already are, the usual case)."""
    if not bool(torch.isfinite(rois).all()):
        raise ValueError("roi_align: boxes contain non-finite values")
    batch_f = rois[:, 0]
    b_min, b_max = float(batch_f.min()), float(batch_f.max())
    if b_min < 0 or b_max > num_images - 1 or not bool((batch_f == torch.round(batch_f)).all()):
        raise ValueError(
            f"roi_align: batch indices must be integers in [0, {num_images - 1}], got range [{b_min}, {b_max}]"
        )
    batch_idx = batch_f.to(torch.int64)
    counts: list[int] = torch.bincount(batch_idx, minlength=num_images).tolist()
    if rois.shape[0] > 1 and not bool((batch_idx[1:] >= batch_idx[:-1]).all()):
        return counts, torch.argsort(batch_idx, stable=True)
    return counts, None


def roi_align(
    input: Tensor,
    boxes: Tensor | list[Tensor] | tuple[Tensor, ...],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = True,
) -> Tensor:
    """RoIAlign (Mask R-CNN) with the semantics of ``torchvision.ops.roi_align``.

    Args:
        input: feature map ``[N, C, H, W]`` (float32, float64, bfloat16 or float16; any device).
        boxes: either ``Tensor[K, 5]`` with rows ``(batch_index, x1, y1, x2, y2)``, or a list of ``N``
            (or fewer) tensors ``[K_i, 4]`` with rows ``(x1, y1, x2, y2)`` for image ``i``. Coordinates
            are pixel XYXY in the input-image frame. Boxes receive no gradient.
        output_size: ``oh`` / ``(oh, ow)`` output bins per RoI.
        spatial_scale: factor mapping box coordinates to feature-map coordinates (e.g. ``1/16``).
        sampling_ratio: sampling points per bin along each axis; ``<= 0`` means adaptive,
            ``ceil(roi_height / oh)`` × ``ceil(roi_width / ow)`` per RoI, as in torchvision.
        aligned: subtract half a pixel from the scaled box coordinates (pixel-centre convention). When
            ``False`` the RoI width/height are forced to be at least 1 (legacy behaviour).

    Returns:
        ``[K, C, oh, ow]`` in ``input.dtype``, RoIs in the order given.

    Sampling rules (torchvision's): a sample at ``(y, x)`` contributes zero if ``y < -1``, ``y > H``,
    ``x < -1`` or ``x > W``; otherwise coordinates ``<= 0`` clamp to 0 and coordinates at or past the
    last row/column clamp to it, then bilinear interpolation is applied. Each bin is the mean over its
    ``grid_h × grid_w`` samples (an empty grid gives 0).

    Cost: two matrix products per image (``C·H·W·K_n·ow + K_n·C·H·oh·ow`` multiply-adds); building the
    weights takes ``O(K · (oh + ow) · grid)`` memory, so absurdly large boxes with adaptive sampling are
    expensive, as they are in torchvision. Differentiable w.r.t. ``input`` only.
    """
    if input.dim() != 4:
        raise ValueError(f"roi_align: input must have shape [N, C, H, W], got {list(input.shape)}")
    if not (input.is_floating_point()):
        raise ValueError(f"roi_align: input must be a floating-point tensor, got {input.dtype}")
    oh, ow = _pair(output_size)
    N, C, H, W = input.shape
    compute_dtype = torch.float64 if input.dtype == torch.float64 else torch.float32
    rois = _to_rois(boxes, compute_dtype, input.device)
    K = rois.shape[0]
    if K == 0:
        # Empty, but still attached to the graph of ``input`` (zero gradient), as torchvision's output is.
        return input.reshape(-1)[:0].reshape(0, C, oh, ow)
    if H == 0 or W == 0:
        return input.new_zeros(K, C, oh, ow)

    with torch.no_grad():
        counts, order = _group_by_image(rois, N)
        r = rois if order is None else rois[order]
        x1, y1, roi_w, roi_h = _roi_extents(r, spatial_scale, aligned)
        wy = _axis_weights(y1, roi_h, oh, H, sampling_ratio).to(input.dtype)  # [K, oh, H]
        wx = _axis_weights(x1, roi_w, ow, W, sampling_ratio).to(input.dtype)  # [K, ow, W]

    outs: list[Tensor] = []
    start = 0
    # unbind (rather than input[n] per image) so that backward assembles one gradient tensor.
    images = input.unbind(0)
    for n, k_n in enumerate(counts):
        if k_n == 0:
            continue
        wy_n = wy[start : start + k_n]
        wx_n = wx[start : start + k_n]
        start += k_n
        # Contract W with every RoI of this image in one matmul: [C*H, W] @ [W, k_n*ow].
        t = images[n].reshape(C * H, W) @ wx_n.reshape(k_n * ow, W).t()
        t = t.reshape(C, H, k_n, ow)
        # Contract H per RoI (batched over k): out[k, c, i, j] = sum_h wy[k, i, h] t[c, h, k, j].
        outs.append(torch.einsum("kih,chkj->kcij", wy_n, t))
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)
    if order is None:
        return out
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(K, device=order.device)
    return out[inverse]


# ---------------------------------------------------------------------------------------------
# Trace-safe RoIAlign (what an ONNX export records)


def _static_axis_weights(
    start: Tensor, length: Tensor, pooled: int, size: int, sampling_ratio: int
) -> Tensor:
    """Interpolation weights ``[K, pooled, size]`` of one axis, with static shapes only.

    Same result as :func:`_axis_weights` (torchvision's sampling rules), built
    from a fixed number ``M`` of sample slots per bin instead of ``max(grid)``:

    * fixed ``sampling_ratio = s > 0``: ``M = s`` slots, samples ``0 .. s - 1``;
    * adaptive: bin ``p`` has ``n = ceil(length / pooled)`` samples spaced ``step = bin / n``
      apart; ``step >= 0.5`` whenever ``n > 1``, so at most ``2 * size + 3`` of them lie in the band
      ``[-1, size]`` where a sample can contribute. The slots start ``2`` before the first sample at
      or after ``-1`` (a margin for float rounding) and ``M = 2 * size + 6``; slots past ``n`` or
      outside the band are masked exactly as eager masks them. Exact for boxes within about
      ``±1e5`` feature cells (beyond that the float32 start index can be off by more than 2).

    The sample coordinates are computed with the eager operation order, so validity, clamping and
    bilinear fractions are bit-identical; only the summation order of the weights differs.
    """
    dtype = start.dtype
    bin_size = length / pooled  # [K]
    if sampling_ratio > 0:
        grid = torch.full_like(length, float(sampling_ratio))
        slots = sampling_ratio
    else:
        grid = torch.ceil(length / pooled).clamp(min=0.0)
        slots = 2 * size + 6
    grid_f = grid.clamp(min=1.0)
    p = torch.arange(pooled, dtype=dtype, device=start.device)
    base = start[:, None] + p[None, :] * bin_size[:, None]  # [K, pooled]
    if sampling_ratio > 0:
        first = torch.zeros_like(base)
    else:
        step = (bin_size / grid_f)[:, None].expand_as(base)
        positive = step > 0
        safe_step = torch.where(positive, step, torch.ones_like(step))
        first = torch.floor((-1.0 - base) / safe_step - 0.5) - 2.0
        first = torch.where(positive, first, torch.zeros_like(first))
        first = first.clamp(min=0.0).minimum(grid[:, None])
    j = torch.arange(slots, dtype=dtype, device=start.device)
    i = first[:, :, None] + j[None, None, :]  # [K, pooled, M] sample index within the bin
    coord = base[:, :, None] + (i + 0.5) * bin_size[:, None, None] / grid_f[:, None, None]
    valid = (i < grid[:, None, None]) & (coord >= -1.0) & (coord <= float(size))
    low, high, w_low, w_high = _bilinear_taps(coord, valid, size)
    positions = torch.arange(size, dtype=dtype, device=start.device)  # [size]
    onehot_low = (low[..., None] == positions).to(dtype)  # [K, pooled, M, size]
    onehot_high = (high[..., None] == positions).to(dtype)
    weights = (w_low[..., None] * onehot_low + w_high[..., None] * onehot_high).sum(dim=2)
    return weights / grid_f[:, None, None]


def roi_align_static(
    input: Tensor,
    rois: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = True,
) -> Tensor:
    """RoIAlign with the semantics of :func:`roi_align`, traceable to ONNX.

    Args:
        input: feature map ``[N, C, H, W]`` (``H``, ``W`` become constants of a traced graph).
        rois: ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)``, pixel XYXY of the input image.
        output_size: ``oh`` / ``(oh, ow)`` bins per RoI.
        spatial_scale: box → feature-map coordinate factor.
        sampling_ratio: samples per bin and axis; ``<= 0``: adaptive ``ceil(roi_extent / bins)``.
        aligned: half-pixel offset (pixel ``i`` centred at ``i + 0.5``).

    Returns:
        ``[K, C, oh, ow]`` in ``input.dtype``.

    No Python control flow depends on the box values or on ``K``/``N``, so tracing gives a graph that
    is correct for any boxes (see :func:`_static_axis_weights` for the sample slots). Unlike the
    eager op it does not validate its inputs (batch indices are truncated towards zero, non-finite
    boxes give NaN): ``thermact.export.onnx.OnnxActionModel`` validates before running. Each RoI gathers its
    image's feature map (``K·C·H·W`` floats) and applies ``Wy @ F @ Wxᵀ`` as two batched matmuls.
    """
    if isinstance(output_size, int):
        oh, ow = output_size, output_size
    else:
        oh, ow = int(output_size[0]), int(output_size[1])
    H, W = int(input.shape[2]), int(input.shape[3])
    compute = torch.float64 if input.dtype == torch.float64 else torch.float32
    r = rois.detach().to(compute)
    x1, y1, roi_w, roi_h = _roi_extents(r, spatial_scale, aligned)
    wy = _static_axis_weights(y1, roi_h, oh, H, sampling_ratio).to(input.dtype)  # [K, oh, H]
    wx = _static_axis_weights(x1, roi_w, ow, W, sampling_ratio).to(input.dtype)  # [K, ow, W]
    batch = r[:, 0].to(torch.int64)
    feats = input.index_select(0, batch)  # [K, C, H, W]
    t = torch.matmul(feats, wx.transpose(1, 2)[:, None])  # [K, C, H, ow]
    out: Tensor = torch.matmul(wy[:, None], t)  # [K, C, oh, ow]
    return out


class RoIAlign(nn.Module):
    """Module wrapper of :func:`roi_align`.

    Forward: ``input [N, C, H, W]``, ``boxes Tensor[K, 5] (batch_index, x1, y1, x2, y2)`` or
    ``list[Tensor[K_i, 4]]`` (pixel XYXY) → ``[K, C, oh, ow]``.
    """

    def __init__(
        self,
        output_size: int | tuple[int, int],
        spatial_scale: float = 1.0,
        sampling_ratio: int = -1,
        aligned: bool = True,
    ) -> None:
        super().__init__()
        self.output_size = _pair(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)

    def forward(self, input: Tensor, boxes: Tensor | list[Tensor]) -> Tensor:
        return roi_align(
            input, boxes, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )
