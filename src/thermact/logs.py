"""Logging of progress and information: the ``thermact`` logger hierarchy, the console, ``log.txt``.

Every module logs to ``logging.getLogger(__name__)`` (``thermact.engine.run``, ...), so the whole
hierarchy is set at its root :data:`LOGGER`. What a command prints as its *result* (final metrics,
a config, ``--help``) goes to stdout with ``print``; progress and information go through logging:

* :func:`configure_console` (called by the command line) shows the records on stderr, ``INFO`` by
  default, warnings and errors only with ``-q``, ``DEBUG`` too with ``-v``; plain messages,
  ``warning: ...`` / ``error: ...`` for those levels;
* :func:`log_file` copies the records of a block (a training run) into a file (``log.txt`` of the
  run directory), at ``INFO`` or finer, whatever the console shows; appended to, so a resumed run
  continues its log.

Used as a library without the command line, thermact adds no handler: records of ``WARNING`` and
above reach Python's last-resort handler (stderr), the others go nowhere unless the application
configures logging.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import TextIO

__all__ = ["LOGGER", "configure_console", "log_file", "progress_disabled"]

LOGGER = "thermact"
"""The root of thermact's logger hierarchy."""

LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}
"""Console level by verbosity: ``-q`` (-1), default (0), ``-v`` (1)."""


class ConsoleFormatter(logging.Formatter):
    """The message alone; ``warning: ``/``error: `` before those of higher levels."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


class StderrHandler(logging.StreamHandler[TextIO]):
    """A stream handler writing to whatever ``sys.stderr`` is at each record (so a redirected or
    captured stderr gets the records too)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_console(verbosity: int = 0) -> logging.Logger:
    """Show thermact's records on stderr at the level of ``verbosity`` (:data:`LEVELS`; replaces
    the handler of an earlier call). Returns the :data:`LOGGER` logger."""
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, StderrHandler)]:
        logger.removeHandler(handler)
    handler = StderrHandler()
    handler.setFormatter(ConsoleFormatter("%(message)s"))
    handler.setLevel(LEVELS[max(-1, min(1, verbosity))])
    logger.addHandler(handler)
    logger.setLevel(min(logging.INFO, handler.level))  # log.txt gets INFO even with -q
    logger.propagate = False
    return logger


def progress_disabled() -> bool | None:
    """The ``disable`` of a tqdm bar: ``True`` (hidden) after ``-q``, else ``None`` (shown on a
    terminal only)."""
    handlers = [h for h in logging.getLogger(LOGGER).handlers if isinstance(h, StderrHandler)]
    return True if handlers and handlers[0].level > logging.INFO else None


@contextlib.contextmanager
def log_file(path: str | os.PathLike[str]) -> Iterator[logging.Handler]:
    """Append thermact's records of ``INFO`` and above (``DEBUG`` too when the logger is set so)
    to ``path`` while the block runs; the handler is removed and the file closed after it."""
    logger = logging.getLogger(LOGGER)
    previous = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(previous)
