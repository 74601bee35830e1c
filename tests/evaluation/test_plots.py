from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thermact.evaluation.frame_map import ClassAP, FrameMAP
from thermact.evaluation.plots import (
    latest_run,
    parse_training_log,
    plot_confusion_matrix,
    plot_pr_curves,
    plot_training_curves,
    pr_curves_figure,
    training_curves_figure,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAMES = ["sitting", "standing", "walking"]


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk; asserts the PNG signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _fmap() -> FrameMAP:
    return FrameMAP(
        map=0.75,
        per_class=[
            ClassAP(0, 2, 4, 1.0, [1.0, 1.0, 2 / 3, 0.5], [0.5, 1.0, 1.0, 1.0]),
            ClassAP(1, 1, 4, 0.5, [0.0, 0.5, 1 / 3, 0.25], [0.0, 1.0, 1.0, 1.0]),
            ClassAP(2, 0, 4, None, [], []),
        ],
        iou_threshold=0.5,
    )


def _no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_pr_curves_png(tmp_path: Path) -> None:
    path = tmp_path / "pr.png"
    plot_pr_curves(_fmap(), NAMES, path)
    width, height = png_size(path)
    assert width > 400 and height > 300
    assert path.stat().st_size > 10_000
    assert _no_temp_files(tmp_path)


def test_plots_are_deterministic_and_depend_on_the_data(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    plot_confusion_matrix([[3, 1, 0], [0, 2, 0], [0, 0, 0]], NAMES, a)
    plot_confusion_matrix([[3, 1, 0], [0, 2, 0], [0, 0, 0]], NAMES, b)
    plot_confusion_matrix([[1, 3, 0], [2, 0, 0], [0, 0, 0]], NAMES, c)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def _dark_fraction(path: Path) -> float:
    """Fraction of the image in the darkest blue of the colour map (rate ≈ 1)."""
    import matplotlib.image

    pixels = np.asarray(matplotlib.image.imread(path))[..., :3]
    dark = (pixels[..., 2] > 0.3) & (pixels[..., 0] < 0.1) & (pixels[..., 1] < 0.3)
    return float(dark.mean())


def test_confusion_matrix_colours_rows_by_rate(tmp_path: Path) -> None:
    """Colour is the row-normalised rate: 50:1 counts on the diagonal look like 1:1."""
    fractions = []
    for i, cm in enumerate(([[50, 0], [0, 1]], [[1, 0], [0, 1]], [[50, 0], [0, 0]], [[1, 1], [1, 1]])):
        path = tmp_path / f"cm{i}.png"
        plot_confusion_matrix(cm, ["a", "b"], path)
        fractions.append(_dark_fraction(path))
    skewed, identity, one_row, uniform = fractions
    assert identity > 0.1
    assert skewed == pytest.approx(identity, abs=0.02)  # a count-normalised map would halve it
    assert one_row == pytest.approx(identity / 2, abs=0.02)  # the row without GT is grey
    assert uniform < 0.01  # rates 0.5: no cell at the darkest colour


def test_confusion_matrix_shape_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"shape \[2, 2\] for 3 classes"):
        plot_confusion_matrix([[1, 0], [0, 1]], NAMES, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


RECORDS: list[dict[str, Any]] = [
    {"step": 1, "epoch": 1, "loss": 2.0, "lr": 0.001},
    {"step": 2, "epoch": 1, "loss": 1.5, "lr": 0.002},
    {"step": 2, "epoch": 1, "train_loss": 1.8},
    {"step": 2, "epoch": 1, "val": {"frame_map": 0.2, "accuracy": 0.5, "macro_f1": None, "val_loss": 2.5}},
    {"step": 4, "epoch": 2, "loss": 1.0, "lr": 0.001},
    {"step": 4, "epoch": 2, "train_loss": 1.1},
    {"step": 4, "epoch": 2, "val": {"frame_map": 0.3, "accuracy": 0.6, "macro_f1": 0.25, "val_loss": 2.25}},
    {"something": "else"},
]


def test_parse_training_log() -> None:
    log = parse_training_log(RECORDS)
    assert log.steps == [1, 2, 4]
    assert log.loss == [2.0, 1.5, 1.0]
    assert log.lr == [0.001, 0.002, 0.001]
    assert log.val_epochs == [1, 2] and log.val_steps == [2, 4]
    assert log.val == {
        "frame_map": [0.2, 0.3],
        "accuracy": [0.5, 0.6],
        "macro_f1": [None, 0.25],
        "val_loss": [2.5, 2.25],
    }
    assert (log.epoch_steps, log.epoch_loss) == ([2, 4], [1.8, 1.1])


def test_latest_run_of_an_appended_log() -> None:
    first = [{"step": s, "loss": 9.0, "lr": 0.1} for s in (10, 20, 30, 40)]
    resumed = [{"step": 30, "loss": 1.0, "lr": 0.2}, {"step": 40, "loss": 0.5, "lr": 0.2}]
    assert latest_run([*first, *resumed]) == [first[0], first[1], *resumed]
    rerun = [{"step": 10, "loss": 2.0, "lr": 0.3}]
    assert latest_run([*first, {"note": "x"}, *rerun]) == [{"note": "x"}, *rerun]
    log = parse_training_log([*first, *resumed])
    assert (log.steps, log.loss) == ([10, 20, 30, 40], [9.0, 9.0, 1.0, 0.5])


def test_training_curves_png(tmp_path: Path) -> None:
    full, empty = tmp_path / "full.png", tmp_path / "empty.png"
    plot_training_curves(RECORDS, full)
    plot_training_curves([], empty)
    width, height = png_size(full)
    assert width > 2 * height  # three panels side by side
    assert full.stat().st_size > 10_000
    assert png_size(empty)[0] > 0
    assert full.read_bytes() != empty.read_bytes()


def test_training_curves_show_epoch_means_and_the_validation_loss() -> None:
    fig = training_curves_figure(RECORDS)
    ax_loss, _, ax_val = fig.axes
    lines = {line.get_label(): line for line in ax_loss.get_lines()}
    assert set(lines) == {"batch (logged)", "train (epoch mean)", "validation"}
    assert list(lines["train (epoch mean)"].get_xdata()) == [2, 4]
    assert list(lines["train (epoch mean)"].get_ydata()) == [1.8, 1.1]
    assert list(lines["validation"].get_ydata()) == [2.5, 2.25]
    assert lines["batch (logged)"].get_alpha() < 0.5  # single batches drawn faint
    assert {line.get_label() for line in ax_val.get_lines()} == {"frame_map", "accuracy", "macro_f1"}
    assert ax_val.get_ylim() == (0.0, 1.0)


def test_pr_curves_one_panel_per_class() -> None:
    """Each class with ground truth gets its own 0..1 panel titled with its AP and GT count, in a
    grid of 4 columns: a class with 3 boxes is as legible as one with 300."""
    names = [f"class {i}" for i in range(14)]
    per_class = [
        ClassAP(i, 3 if i % 2 else 300, 5, 0.1 * (i % 10), [1.0, 0.5], [0.5, 1.0]) for i in range(13)
    ]
    fig = pr_curves_figure(FrameMAP(0.4, [*per_class, ClassAP(13, 0, 2, None, [], [])], 0.5), names)
    assert len(fig.axes) == 13
    assert {ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes} == {(4, 4)}
    assert [ax.get_title() for ax in fig.axes[:2]] == ["class 0\nAP 0.00, n=300", "class 1\nAP 0.10, n=3"]
    assert all(ax.get_xlim() == (0.0, 1.0) and ax.get_ylim() == (0.0, 1.02) for ax in fig.axes)
    assert list(fig.axes[1].get_lines()[0].get_ydata()) == [1.0, 1.0, 0.5]  # starts at recall 0
    assert fig.get_suptitle() == "frame-mAP@0.5 = 0.400\nN/A (no ground truth): class 13"
