"""Durable small writes, advisory locks, and the one error type for files and stores a run needs.

Every write that a later process relies on goes through :func:`atomic_write_bytes`
(temporary file, fsync, rename, fsync of the directory), so a kill or a full disk
leaves either the old content or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# errno values that mean "the disk (or the quota) is full".
_FULL = (errno.ENOSPC, errno.EDQUOT)


class StorageError(RuntimeError):
    """A file or store that a run needs cannot be used now.

    The message is one line: which file or store, what is wrong, what to do.
    The CLI prints it without a traceback (exit 1); nothing written before is lost.
    """


class DiskFull(StorageError):
    """A write failed because the device (or the quota) is full."""


def file_in_the_way(path: str | Path) -> Path | None:
    """The existing non-directory at `path` (~ expanded) or above it, which stops it being a directory; else None."""
    path = Path(path).expanduser()
    return next(
        (part for part in (path, *path.parents) if part.exists() and not part.is_dir()), None
    )


def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` (renames, new files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a full-disk OSError raised inside the block into :class:`DiskFull` naming `path`."""
    try:
        yield
    except OSError as error:
        if error.errno in _FULL:
            raise DiskFull(
                f"no space left on the device of {path}; free some space and run the same "
                "command again: it resumes from the last checkpoint"
            ) from error
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace the file at `path` with `data`: readers see the old or the new content, never a part."""
    path = Path(path)
    with writing(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode())


class FileLock:
    """An exclusive advisory lock (``flock``) on a file, held while the object is open.

    The holder writes ``pid@host since <time>`` into the file, so that whoever
    finds it taken can name who holds it. The kernel releases the lock when the
    holder exits, however it exits, so a killed holder never leaves it stuck.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, wait_s: float = 0.0) -> bool:
        """Take the lock, trying for up to `wait_s` seconds; False if another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.2)
        self._fd = fd
        with contextlib.suppress(
            OSError
        ):  # the note is for humans; a full disk must not block the lock
            os.ftruncate(fd, 0)
            os.write(
                fd,
                f"{os.getpid()}@{socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(),
            )
        return True

    def holder(self) -> str:
        """Who holds (or last held) the lock, as its holder wrote it."""
        try:
            return self.path.read_text().strip() or "another process"
        except OSError:
            return "another process"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
