"""Logging: the console levels of -q / default / -v, the message format, log files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from thermact.logs import LOGGER, configure_console, log_file, progress_disabled

log = logging.getLogger("thermact.some.module")  # a module's logger, below the thermact root


def _emit_all() -> None:
    log.debug("a debug detail")
    log.info("epoch 1: loss 0.5")
    log.warning("a class is missing")
    log.error("it broke")


@pytest.mark.parametrize(
    ("verbosity", "shown"),
    [
        (-1, ["warning: a class is missing", "error: it broke"]),
        (0, ["epoch 1: loss 0.5", "warning: a class is missing", "error: it broke"]),
        (1, ["a debug detail", "epoch 1: loss 0.5", "warning: a class is missing", "error: it broke"]),
    ],
)
def test_console_levels(verbosity: int, shown: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    configure_console(verbosity)
    configure_console(verbosity)  # a second call replaces the handler: no line is doubled
    _emit_all()
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == shown
    assert progress_disabled() is (True if verbosity < 0 else None)


def test_log_file_gets_info_whatever_the_console_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_console(-1)
    path = tmp_path / "log.txt"
    with log_file(path):
        _emit_all()
    log.info("after the block")
    lines = path.read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "INFO thermact.some.module: epoch 1: loss 0.5",
        "WARNING thermact.some.module: a class is missing",
        "ERROR thermact.some.module: it broke",
    ]
    assert capsys.readouterr().err.splitlines() == ["warning: a class is missing", "error: it broke"]
    with log_file(path):  # appended to (a resumed run continues its log)
        log.info("resumed")
    assert path.read_text().splitlines()[:3] == lines and path.read_text().endswith("resumed\n")
    assert not [h for h in logging.getLogger(LOGGER).handlers if isinstance(h, logging.FileHandler)]


def test_log_file_without_the_command_line(tmp_path: Path) -> None:
    """As a library (no console configured) thermact's INFO records still reach the log file, and
    the logger's level is restored after."""
    logger = logging.getLogger(LOGGER)
    logger.handlers.clear()
    logger.setLevel(logging.NOTSET)
    with log_file(tmp_path / "log.txt"):
        log.info("started")
    assert "INFO thermact.some.module: started" in (tmp_path / "log.txt").read_text()
    assert logger.level == logging.NOTSET
