"""Helpers shared by the commands: dataset loading with a progress bar, output-directory checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from thermact.data.source import DatasetPaths, ThermalData, load_dataset, resolve_dataset
from thermact.errors import ConfigError


def load_with_progress(
    dataset: str | Path | None, lenient: bool, warn: Callable[[str], None] | None = None
) -> ThermalData:
    """:func:`~thermact.data.source.load_dataset` with a tqdm bar (shown after one second, on a TTY)."""
    root = resolve_dataset(dataset)
    paths = DatasetPaths(root)
    total = (
        len(paths.recording_files()) + len(paths.annotation_files()) + len(paths.raw_files())
        if root.is_dir()
        else None
    )
    with tqdm(total=total, desc="loading", unit="file", delay=1.0, disable=None, leave=False) as bar:

        def progress(name: str) -> None:
            bar.set_postfix_str(name, refresh=False)
            bar.update(1)

        return load_dataset(root, lenient=lenient, warn=warn, progress=progress)


def check_out_dir(out: Path, exist_ok: bool, key: str = "out") -> None:
    """Refuse an output directory that is a file, or non-empty unless ``exist_ok``."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"config key {key!r}: {str(out)!r} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not exist_ok:
        raise ConfigError(
            f"output directory {str(out)!r} exists and is not empty; pass exist_ok=true or another {key}=DIR"
        )
