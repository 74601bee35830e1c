"""Atomic file writing: a reader never sees a half-written output.

Everything thermact writes (JSON reports, CSV, split files, checkpoints) goes through these
helpers: the bytes go to a temporary file in the destination directory, are flushed and fsynced,
and the file is then renamed over the destination, which is atomic on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from thermact.errors import OutputError


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on clean exit rename it to ``path``.

    If the body raises, the temporary file is removed and ``path`` is left untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', got {mode!r}")
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        give_usual_mode(tmp_name)
        os.replace(tmp_name, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def give_usual_mode(path: str | os.PathLike[str]) -> None:
    """Set ``path`` to the mode a plain ``open(path, "w")`` would create (0666 less the umask,
    usually 0644): :func:`tempfile.mkstemp` creates its files 0600, readable by their owner only."""
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    """Serialise ``obj`` as JSON (UTF-8, trailing newline) to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def check_writable(path: str | os.PathLike[str], key: str) -> Path:
    """Check, before any work, that ``path`` (a file or directory to be written) can be created:
    nothing in the way is a file, and the nearest existing directory above it is writable.
    Raises :class:`~thermact.errors.OutputError` naming ``key`` and the path; creates nothing."""
    target = Path(path)
    for parent in [target, *target.parents]:
        if not parent.exists():
            continue
        if parent != target and not parent.is_dir():
            raise OutputError(
                f"config key {key!r}: {str(target)!r} cannot be created: {str(parent)!r} is a file"
            )
        if parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(
                f"config key {key!r}: {str(target)!r} cannot be written: {str(parent)!r} is not writable"
            )
        break
    return target


class DirectoryLock:
    """An exclusive lock on a directory for as long as a process writes into it.

    A second process that tries to take it gets :class:`~thermact.errors.OutputError` at once (no
    waiting). The lock is an ``flock`` on the directory itself, so it leaves no file behind and the
    operating system releases it when its process ends, even after ``kill -9``. On systems without
    ``fcntl`` it is a no-op.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._fd: int | None = None

    def __enter__(self) -> DirectoryLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutputError(
                f"{self.directory}: in use by another thermact process; wait for it to finish or use another directory"
            ) from None
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files :func:`atomic_open` left in ``directory`` when its process was
    killed mid-write (``.<name>.<random>.tmp``); call only while holding the directory's lock."""
    removed = []
    for path in Path(directory).glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed
