"""A per-pixel background model of a recording: the room without its people.

Every room differs in what the sensor sees when nobody moves: warm furniture, a kettle, a radiator,
cold walls, and the sensor's own pixel offsets and vignetting (the corners of the bundled sensor
read up to 8 °C colder than its centre). A network trained on two rooms learns those rooms; given
the heat *above* the room instead, it sees people, whichever room they are in.

:func:`background_image` estimates the room per pixel as a low quantile ``q`` of the pixel's valid
values over the recording: a person is warmer than the floor, bed or chair under them, so the
quantile ignores them unless they cover that pixel for more than ``1 - q`` of the recording
(someone lying in the same spot for the whole recording would fade into the background). Pixels
never valid take the median of the image.

With ``data.normalize: background`` (:class:`~thermact.data.transforms.NormStats` reference
``"background"``) a clip's frames have their recording's background subtracted before
augmentation and scaling. It is computed from the recording's frames only, without labels, but
from the *whole* recording (future frames included): the live pipeline has no such estimate and
refuses a background-normalised model (:class:`thermact.inference.runners.ActionRunner`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["BACKGROUND_QUANTILE", "background_image"]

BACKGROUND_QUANTILE = 0.1
"""The quantile of each pixel's values over time taken as the room's temperature there."""


def background_image(
    frames: npt.NDArray[np.floating], valid: npt.NDArray[np.bool_], q: float = BACKGROUND_QUANTILE
) -> npt.NDArray[np.float32]:
    """The room's temperature per pixel, ``[H, W]`` float32 (see the module docstring).

    Args:
        frames: ``[T, H, W]`` °C.
        valid: ``[T, H, W]`` True where the sensor value was valid.
        q: the quantile, in ``(0, 1)``.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    if frames.ndim != 3 or valid.shape != frames.shape:
        raise ValueError(
            f"frames and valid must be [T, H, W] of one shape, got {frames.shape}, {valid.shape}"
        )
    masked = np.where(valid, frames.astype(np.float64), np.nan)
    seen = valid.any(axis=0)
    image = np.zeros(frames.shape[1:], dtype=np.float64)
    if seen.any():
        image[seen] = np.nanquantile(masked[:, seen], q, axis=0)
        image[~seen] = np.median(image[seen])
    return image.astype(np.float32)
