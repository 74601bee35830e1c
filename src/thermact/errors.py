"""Exceptions raised on bad input.

Every error a user can cause derives from :class:`ThermactError`; the command-line entry point
prints its message (which names the file, record or key at fault) and exits non-zero, never with
a bare traceback from inside h5py, json or torch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class ThermactError(Exception):
    """Base class of all user-facing errors."""


class ConfigError(ThermactError):
    """An unknown or mistyped configuration key or value."""


class DataError(ThermactError):
    """A missing, corrupt or inconsistent data file or record."""


class CheckpointError(ThermactError):
    """A checkpoint that cannot be loaded into the requested model."""


class OutputError(ThermactError):
    """An output that cannot be written (a directory in use, read-only, full, ...)."""


class ProblemLog:
    """Collects problems found while reading input, strictly or leniently.

    In strict mode (the default) the first problem raises :class:`DataError`. In lenient mode
    (``--lenient`` on the command line) each problem is recorded, reported as a warning through
    ``warn`` (default: print to stderr) and the offending record is skipped by the caller.
    """

    def __init__(self, lenient: bool = False, warn: Callable[[str], None] | None = None) -> None:
        self.lenient = lenient
        self.problems: list[str] = []
        """Each problem as warned (with what lenient mode did about it)."""
        self.messages: list[str] = []
        """Each problem as a strict error would have said it."""
        self._warn = warn if warn is not None else _print_warning

    def report(self, message: str, consequence: str | None = None) -> None:
        """Raise ``DataError(message)``, or record it and warn when lenient.

        ``consequence`` says what lenient mode does about it (``"dropping the frame"``); it is
        added to the warning only, so that a strict error never claims an action it does not take.
        """
        if not self.lenient:
            raise DataError(message)
        text = f"{message}; {consequence}" if consequence else message
        self.messages.append(message)
        self.problems.append(text)
        self._warn(text)

    @property
    def count(self) -> int:
        return len(self.problems)

    def summary(self) -> str:
        return f"{self.count} record(s) skipped because of problems" if self.problems else "no problems found"


def _print_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
