"""Animation rendering: colour mapping, labels, GIF frames and durations, format choice."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from thermact.inference import render
from thermact.inference.pipeline import PersonResult
from thermact.inference.render import colorize, colour_table, render_animation, short_label, write_gif


def test_colorize_maps_the_range_onto_the_colour_table_and_upscales() -> None:
    frames = np.array([[[10.0, 20.0, 30.0], [np.nan, 19.99, 25.0]]], dtype=np.float32)  # [1, 2, 3]
    lut = colour_table("inferno", 32)
    rgb = colorize(frames, vmin=20.0, vmax=30.0, cmap="inferno", scale=4, levels=32)
    assert rgb.shape == (1, 8, 12, 3) and rgb.dtype == np.uint8
    px = rgb[0, ::4, ::4]
    np.testing.assert_array_equal(px[0, 0], lut[0])  # below vmin
    np.testing.assert_array_equal(px[0, 1], lut[0])  # vmin
    np.testing.assert_array_equal(px[0, 2], lut[31])  # vmax
    np.testing.assert_array_equal(px[1, 0], lut[0])  # NaN shows as vmin
    np.testing.assert_array_equal(px[1, 2], lut[16])  # the middle
    assert (rgb[0, :4, :4] == lut[0]).all()  # each sensor pixel is a 4x4 square
    with pytest.raises(ValueError, match="scale"):
        colorize(frames, 20.0, 30.0, scale=0)


def test_short_labels() -> None:
    assert short_label("lying down-lying with risk") == "lying with risk"
    assert short_label("sitting") == "sitting"


def test_gif_has_every_image_and_the_real_durations(tmp_path: Path) -> None:
    images = [np.full((6, 9, 3), v, np.uint8) for v in (0, 120, 250)]
    path = write_gif(tmp_path / "a.gif", images, [100, 250, 400])
    with Image.open(path) as im:
        assert sum(1 for _ in ImageSequence.Iterator(im)) == 3
        durations = []
        for i in range(3):
            im.seek(i)
            durations.append(im.info["duration"])
            assert np.asarray(im.convert("RGB"))[0, 0, 0] == images[i][0, 0, 0]
    assert durations == [100, 250, 400]
    with pytest.raises(ValueError, match="durations"):
        write_gif(tmp_path / "b.gif", images, [100])


def test_render_animation_draws_boxes_and_falls_back_to_gif_without_ffmpeg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert not render.encoder_available()
    frames = np.full((2, 40, 60), 20.0, np.float32)
    frames[:, 10:20, 10:20] = 30.0
    scores = np.zeros(14, np.float32)
    scores[3] = 1.0
    person = PersonResult(
        "s", 2, 1000, (10.0, 10.0, 20.0, 20.0), 0.9, scores, 3, "lying down-lying with risk", 1.0, True, 1000
    )
    path = render_animation(tmp_path / "anim", frames, [1000, 1500], [[person], []], scale=6, fmt="auto")
    assert path == tmp_path / "anim.gif"
    with Image.open(path) as im:
        assert sum(1 for _ in ImageSequence.Iterator(im)) == 2 and im.size == (360, 240)
        im.seek(0)
        first = np.asarray(im.convert("RGB"))
        im.seek(1)
        second = np.asarray(im.convert("RGB"))
    box_edge = first[60:120, 60]  # left edge of the box (x1 = 10 px * 6)
    assert (np.abs(box_edge.astype(int) - render.RISK_COLOUR).sum(axis=1) < 30).mean() > 0.8
    assert not (np.abs(second[60:120, 60].astype(int) - render.RISK_COLOUR).sum(axis=1) < 30).any()
    with pytest.raises(RuntimeError, match="ffmpeg"):
        render_animation(tmp_path / "anim", frames, [1000, 1500], [[person], []], fmt="mp4")


@pytest.mark.parametrize("kind", ["gif", "mp4"])
def test_animations_get_the_usual_file_mode(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0666 less the umask (0644 here), not the 0600 of the temporary file they are written to."""
    fake = tmp_path / "bin" / "ffmpeg"  # stands in for ffmpeg: reads the frames, writes the last argument
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nfor a; do out="$a"; done\ncat > "$out"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    old = os.umask(0o022)
    try:
        images = [np.zeros((12, 16, 3), np.uint8), np.full((12, 16, 3), 200, np.uint8)]
        if kind == "mp4":
            path = render.write_mp4(tmp_path / "a.mp4", images, fps=6.0)
            assert path.stat().st_size == 2 * 12 * 16 * 3  # every frame reached the encoder
        else:
            path = write_gif(tmp_path / "a.gif", images, [500, 500])
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []
