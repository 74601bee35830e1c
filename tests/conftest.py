"""Shared fixtures: the bundled real datasets, and writable copies of one to break on purpose."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from thermact.data.source import BUNDLED_DATASET, ThermalData, bundled_datasets, load_dataset


@pytest.fixture(scope="session")
def bundled_root() -> Path:
    return BUNDLED_DATASET


@pytest.fixture(scope="session")
def real_data() -> ThermalData:
    """The bundled dataset, loaded once per test session (read-only use)."""
    return load_dataset(BUNDLED_DATASET)


@pytest.fixture(scope="session")
def real_data_v2() -> ThermalData:
    """The bundled ``thermal_v2`` (19 recordings, 3 sessions), loaded once per test session."""
    return load_dataset(bundled_datasets()["thermal_v2"])


@pytest.fixture()
def dataset_copy(tmp_path: Path) -> Path:
    """A writable copy of the bundled dataset (without generated split files)."""
    dest = tmp_path / "thermal_copy"
    shutil.copytree(BUNDLED_DATASET, dest, ignore=shutil.ignore_patterns("splits", "*.md"))
    return dest
