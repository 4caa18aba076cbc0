"""Durable small writes, advisory locks, and the one error type for files and stores a run needs.

Every write that a later process relies on goes through :func:`atomic_write_bytes`
(temporary file, fsync, rename, fsync of the directory), so a kill or a full disk
leaves either the old content or the new one, never a mix.

Files and folders get the mode the umask gives (:func:`umask_mode`), as ``open`` and ``mkdir``
would give them: ``tempfile`` makes its files 0600 and its folders 0700, which would keep a
run's results from the group on a lab's shared file system (umask 022: 0644 and 0755;
umask 002: 0664 and 0775).
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
    """The existing non-directory at `path` (~ expanded) or above it, which stops it being a
    directory; else None. A part the system cannot look up (a name too long) counts as absent."""
    path = Path(path).expanduser()
    return next(
        (part for part in (path, *path.parents) if _exists(part) and not part.is_dir()), None
    )


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # ENAMETOOLONG, ELOOP, EACCES: nothing there this process can use
        return False


# Kernel file systems that look like folders but hold no files a run could write.
_PSEUDO_FILE_SYSTEMS = frozenset(
    "proc sysfs devtmpfs devpts cgroup cgroup2 debugfs tracefs securityfs configfs pstore bpf "
    "efivarfs fusectl mqueue binfmt_misc autofs".split()
)


def unusable_directory(path: str | Path) -> str | None:
    """Why `path` (~ expanded) cannot be a directory this process writes in, as a phrase naming
    the culprit (for ``allowed: a directory, new or existing (PHRASE)``); None if it can.

    Checked without creating anything: an empty path (it would mean the current folder), a name
    longer than the file system allows (``NAME_MAX``, 255 bytes on Linux) or a path longer than
    ``PATH_MAX`` less room for the files a run writes inside, a file at or above it, and the
    nearest existing folder: on a kernel file system (``/proc``, ``/sys``), read-only, or not
    writable by this process.
    """
    if not str(path).strip():
        return f"{str(path)!r} names no directory; give one, e.g. runs/first (. for this folder)"
    path = Path(path).expanduser()
    existing = next(p for p in (path, *path.parents) if _exists(p))  # "." or "/" at worst
    name_max = os.pathconf(existing, "PC_NAME_MAX")
    too_long = next((part for part in path.parts if len(os.fsencode(part)) > name_max), None)
    if too_long is not None:
        return f"a name in it has {len(os.fsencode(too_long))} bytes; at most {name_max} allowed"
    size = len(os.fsencode(str(path.absolute())))
    room = os.pathconf(existing, "PC_PATH_MAX") - 256  # checkpoint/.tmp-ckpt-.../replay.npz
    if size > room:
        return f"its full path has {size} bytes; at most {room} leave room for the run's files"
    blocker = file_in_the_way(path)
    if blocker is not None:
        return f"{path} is a file" if blocker == path else f"{path} lies under the file {blocker}"
    if _file_system(existing) in _PSEUDO_FILE_SYSTEMS:
        return f"{existing} is on the kernel's {_file_system(existing)} file system, not a disk"
    if os.statvfs(existing).f_flag & os.ST_RDONLY or not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} cannot be written by this process"
    return None


def _file_system(path: Path) -> str:
    """The type of the file system `path` lies on (Linux ``/proc/self/mounts``), or ''."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return ""
    best, kind = "", ""
    resolved = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def current_umask() -> int:
    """This process's umask, e.g. ``0o022``: read from ``/proc/self/status`` on Linux, where
    reading changes nothing; elsewhere set and at once restored (not safe against threads that
    create files in between)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umask_mode(mode: int) -> int:
    """`mode` (0o666 for a file, 0o777 for a folder) less this process's umask: the mode ``open``
    or ``mkdir`` gives a new file or folder."""
    return mode & ~current_umask()


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
    """Replace the file at `path` with `data`: readers see the old or the new content, never a
    part. The file gets the mode the umask gives (:func:`umask_mode`)."""
    path = Path(path)
    with writing(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            os.fchmod(fd, umask_mode(0o666))  # mkstemp makes it 0600
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
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # less the umask
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
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        # The note is for humans; a full disk must not block the lock.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}@{socket.gethostname()} since {since}\n".encode())
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
