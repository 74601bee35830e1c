"""Annotated animations of thermal frames: colour-mapped, upscaled, with tracked boxes, ids and labels.

Frames are mapped to colours with a matplotlib colour map over one fixed temperature range per
animation (``vmin`` .. ``vmax``, by default the 1st and 99.5th percentiles of the frames shown), so
colours mean the same temperature throughout; they are upscaled ``scale`` times by pixel
replication (each sensor pixel stays a visible square). Each tracked person gets a box in a colour
of its id (red when its label is the lying-with-risk class) and ``"<id> <label> <score>"``.

Output: GIF with Pillow (:func:`write_gif`), or MP4 through an ``ffmpeg`` executable when one is
on ``PATH`` (:func:`write_mp4`); both written atomically. GIF frame durations follow the real frame
times, so the animation plays at real speed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from thermact.io import atomic_open, give_usual_mode

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from thermact.inference.pipeline import PersonResult

__all__ = [
    "colorize",
    "colour_table",
    "draw_persons",
    "encoder_available",
    "render_animation",
    "short_label",
    "write_gif",
    "write_mp4",
]

RISK_LABEL = "lying down-lying with risk"
TRACK_COLOURS = (
    (0, 255, 255),
    (0, 255, 0),
    (255, 255, 255),
    (80, 160, 255),
    (255, 0, 255),
    (160, 255, 160),
    (255, 200, 0),
)
RISK_COLOUR = (255, 40, 40)
AnimationFormat = Literal["auto", "gif", "mp4"]


def short_label(name: str) -> str:
    """``"lying down-lying with risk"`` → ``"lying with risk"`` (the part after the last ``-``)."""
    return name.rsplit("-", 1)[-1].strip()


def colorize(
    frames: npt.NDArray[np.floating[Any]],
    vmin: float,
    vmax: float,
    cmap: str = "inferno",
    scale: int = 6,
    levels: int = 32,
) -> npt.NDArray[np.uint8]:
    """``[N, H, W]`` °C → ``[N, H * scale, W * scale, 3]`` uint8 RGB in ``levels`` colours of ``cmap``
    (:func:`colour_table`); ``vmin`` and below get the first colour, ``vmax`` and above the last."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    lut = colour_table(cmap, levels)
    span = max(float(vmax) - float(vmin), 1e-6)
    x = np.nan_to_num(np.asarray(frames, dtype=np.float64), nan=float(vmin))
    idx = np.clip(np.floor((x - vmin) / span * levels), 0, levels - 1).astype(np.int64)
    rgb = lut[idx]
    return np.repeat(np.repeat(rgb, scale, axis=1), scale, axis=2)


def colour_table(cmap: str = "inferno", levels: int = 32) -> npt.NDArray[np.uint8]:
    """``[levels, 3]`` uint8 RGB colours evenly spaced along matplotlib colour map ``cmap``.

    Few levels (0.3 °C apart over a 10 °C range with 32) keep sensor noise from changing every
    pixel of every frame, which makes GIFs much smaller, and leave palette room for the overlays.
    """
    import matplotlib

    if not 2 <= levels <= 240:
        raise ValueError(f"levels must be in 2..240, got {levels}")
    values = np.asarray(matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, levels)))[:, :3]
    return np.asarray((values * 255).round(), dtype=np.uint8)


def draw_persons(
    image: PILImage.Image, persons: Sequence[PersonResult], scale: int, header: str = ""
) -> None:
    """Draw boxes (pixel XYXY of the sensor frame, scaled), ids and labels onto ``image`` in place."""
    from PIL import ImageDraw, ImageFont

    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    if header:
        draw.text((3, 2), header, fill=(255, 255, 255), font=font)
    for p in persons:
        colour = RISK_COLOUR if p.top_label == RISK_LABEL else TRACK_COLOURS[p.track_id % len(TRACK_COLOURS)]
        x1, y1, x2, y2 = (v * scale for v in p.box)
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=colour, width=2)
        text = f"{p.track_id} {short_label(p.top_label)} {p.top_score:.2f}"
        ty = y1 - 12 if y1 >= 14 else y2 + 1
        bbox = draw.textbbox((x1, ty), text, font=font)
        draw.rectangle(bbox, fill=(0, 0, 0))
        draw.text((x1, ty), text, fill=colour, font=font)


def write_gif(
    path: str | os.PathLike[str],
    images: Sequence[npt.NDArray[np.uint8]],
    durations_ms: Sequence[int],
    palette: npt.NDArray[np.uint8] | None = None,
) -> Path:
    """Write RGB ``images`` ``[h, w, 3]`` as a looping GIF (atomically); ``durations_ms`` per image.

    ``palette`` ``[P <= 256, 3]``: map every pixel to its nearest colour of this one palette (no
    dithering); default: Pillow's adaptive palette per image.
    """
    from PIL import Image

    if not images:
        raise ValueError("no images to write")
    if len(durations_ms) != len(images):
        raise ValueError(f"{len(durations_ms)} durations for {len(images)} images")
    pil = [Image.fromarray(np.ascontiguousarray(im)) for im in images]
    if palette is not None:
        if palette.ndim != 2 or palette.shape[1] != 3 or not 1 <= palette.shape[0] <= 256:
            raise ValueError(f"palette must be [P <= 256, 3], got {list(palette.shape)}")
        pal = Image.new("P", (1, 1))
        flat = np.zeros(768, dtype=np.uint8)
        flat[: palette.size] = palette.reshape(-1)
        pal.putpalette(flat.tolist())
        pil = [im.quantize(palette=pal, dither=Image.Dither.NONE) for im in pil]
    out = Path(path)
    with atomic_open(out, "wb") as handle:
        pil[0].save(
            handle,
            format="GIF",
            save_all=True,
            append_images=pil[1:],
            duration=[max(20, int(d)) for d in durations_ms],
            loop=0,
        )
    return out


def encoder_available() -> bool:
    """True when an ``ffmpeg`` executable is on ``PATH`` (MP4 output)."""
    return shutil.which("ffmpeg") is not None


def write_mp4(path: str | os.PathLike[str], images: Sequence[npt.NDArray[np.uint8]], fps: float) -> Path:
    """Write RGB images as H.264 MP4 with ``ffmpeg`` (atomically: a temporary file, then renamed).

    Raises:
        RuntimeError: no ``ffmpeg`` on ``PATH`` or it failed.
    """
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("ffmpeg not found on PATH")
    if not images:
        raise ValueError("no images to write")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    h, w = images[0].shape[:2]
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".mp4", dir=out.parent)
    os.close(fd)
    cmd = [exe, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}"]
    cmd += ["-r", f"{fps:.3f}", "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", tmp]
    try:
        data = b"".join(np.ascontiguousarray(im).tobytes() for im in images)
        proc = subprocess.run(cmd, input=data, capture_output=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg failed: {proc.stderr.decode(errors='replace').strip()[-300:]}")
        give_usual_mode(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def render_animation(
    path_stem: str | os.PathLike[str],
    frames: npt.NDArray[np.float32],
    timestamps_ms: npt.NDArray[np.int64] | Sequence[int],
    persons: Sequence[Sequence[PersonResult]],
    scale: int = 6,
    cmap: str = "inferno",
    fmt: AnimationFormat = "auto",
    title: str = "",
    vrange: tuple[float, float] | None = None,
) -> Path:
    """Render annotated frames to ``<path_stem>.gif`` (or ``.mp4``); returns the path written.

    Args:
        frames: ``[N, H, W]`` °C, the frames to show.
        timestamps_ms: their times (GIF durations and the header's seconds).
        persons: per frame, the tracked persons to draw.
        fmt: ``"gif"``, ``"mp4"`` (needs ``ffmpeg``) or ``"auto"`` (MP4 when ``ffmpeg`` exists).
        vrange: colour-map range in °C (default: 1st / 99.5th percentile of ``frames``).
    """
    from PIL import Image

    ts = np.asarray(timestamps_ms, dtype=np.int64)
    n = int(frames.shape[0])
    if n == 0 or ts.shape[0] != n or len(persons) != n:
        raise ValueError(
            f"need as many (>0) frames, timestamps and person lists, got {n}, {ts.shape[0]}, {len(persons)}"
        )
    lo, hi = (
        vrange
        if vrange is not None
        else (float(np.percentile(frames, 1)), float(np.percentile(frames, 99.5)))
    )
    levels = 32
    rgb = colorize(frames, lo, hi, cmap, scale, levels)
    images: list[npt.NDArray[np.uint8]] = []
    for i in range(n):
        im = Image.fromarray(rgb[i])
        header = f"{title} t={(ts[i] - ts[0]) / 1000.0:6.1f}s".strip()
        draw_persons(im, persons[i], scale, header)
        images.append(np.asarray(im))
    diffs = np.diff(ts)
    step = int(np.median(diffs)) if diffs.size else 500
    durations = [int(d) for d in diffs] + [step]
    use_mp4 = fmt == "mp4" or (fmt == "auto" and encoder_available())
    stem = Path(path_stem)
    if use_mp4:
        span_s = (ts[-1] - ts[0]) / 1000.0
        fps = (n - 1) / span_s if n > 1 and span_s > 0 else 2.0
        return write_mp4(stem.with_name(stem.name + ".mp4"), images, fps)
    overlay = np.array([*TRACK_COLOURS, RISK_COLOUR, (0, 0, 0)], dtype=np.uint8)
    palette = np.concatenate([colour_table(cmap, levels), overlay])
    return write_gif(stem.with_name(stem.name + ".gif"), images, durations, palette)
