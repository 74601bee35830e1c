"""Box format conversions.

Formats used in thermact:

* **XYXY pixels** (internal): ``[x1, y1, x2, y2]`` in pixel units of the 60×40 sensor frame,
  continuous coordinates where the frame spans ``[0, W] × [0, H]`` (pixel ``i`` covers
  ``[i, i+1)``), as in torchvision.
* **YOLO normalised** (annotation files): ``[cx, cy, w, h]`` divided by the frame width/height.
* **XYXY normalised** (AVA CSV): ``[x1, y1, x2, y2]`` divided by the frame width/height.

The conversions are exact inverses up to floating-point rounding (tested to 1e-9 in float64).
They work on NumPy arrays of shape ``[..., 4]``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating]


def yolo_to_xyxy(boxes: npt.ArrayLike, width: float, height: float) -> npt.NDArray[np.float64]:
    """YOLO-normalised ``[cx, cy, w, h]`` → pixel ``[x1, y1, x2, y2]``. Shape ``[..., 4]``."""
    b = np.asarray(boxes, dtype=np.float64)
    cx, cy, w, h = b[..., 0] * width, b[..., 1] * height, b[..., 2] * width, b[..., 3] * height
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def xyxy_to_yolo(boxes: npt.ArrayLike, width: float, height: float) -> npt.NDArray[np.float64]:
    """Pixel ``[x1, y1, x2, y2]`` → YOLO-normalised ``[cx, cy, w, h]``. Shape ``[..., 4]``."""
    b = np.asarray(boxes, dtype=np.float64)
    x1, y1, x2, y2 = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return np.stack(
        [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height], axis=-1
    )


def xyxy_to_normalized(boxes: npt.ArrayLike, width: float, height: float) -> npt.NDArray[np.float64]:
    """Pixel XYXY → XYXY divided by frame size (AVA CSV convention). Shape ``[..., 4]``."""
    b = np.asarray(boxes, dtype=np.float64)
    return b / np.array([width, height, width, height], dtype=np.float64)


def normalized_to_xyxy(boxes: npt.ArrayLike, width: float, height: float) -> npt.NDArray[np.float64]:
    """Normalised XYXY (AVA CSV convention) → pixel XYXY. Shape ``[..., 4]``."""
    b = np.asarray(boxes, dtype=np.float64)
    return b * np.array([width, height, width, height], dtype=np.float64)


def box_area_np(boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Area of pixel XYXY boxes ``[..., 4]`` (negative extents count as zero)."""
    b = np.asarray(boxes, dtype=np.float64)
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
