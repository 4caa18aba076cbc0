"""Checkpoints that survive kills, full disks and damaged bytes.

A checkpoint is a directory ``ckpt-<step:012d>-<n>`` holding

- ``state.msgpack``  the agent state, as bytes the agent made (DreamerV3: flax msgpack),
- ``replay.npz``     the replay arrays,
- ``counters.json``  counters, and what of the run's logs the checkpoint covers,
- ``manifest.json``  size and SHA-256 of the three files above, written last.

No pickles anywhere, so loading a shared checkpoint cannot run code.

Writing: the files go into a fresh ``.tmp-ckpt-*`` directory, are fsynced, and the
directory is renamed into place. No save replaces or deletes a checkpoint before the
new one is in place: a save at a step that has a checkpoint already (a re-save) takes
the next ``n``, and only afterwards are checkpoints beyond the newest ``keep`` removed
(each renamed to ``.old-*`` first, so a half-deleted one is never taken for a
checkpoint). A kill at any point therefore leaves every earlier checkpoint whole.

Reading: :func:`load` checks sizes and checksums before it parses anything and raises
:class:`CheckpointError` naming the bad file, so the caller can fall back to an older
checkpoint. A ``ckpt-*`` directory without a manifest (an empty stray one, say) is not
a checkpoint: :func:`strays` lists them, and nothing here reads or deletes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dreamerbench.core.files import StorageError, fsync_dir, umask_mode, writing

FILES = ("state.msgpack", "replay.npz", "counters.json")
MANIFEST = "manifest.json"
_NAME = re.compile(r"^ckpt-(\d{12})-(\d+)$")


class CheckpointError(StorageError):
    """A checkpoint that cannot be read; the message names the file and the fault."""


@dataclass(frozen=True, order=True)
class Checkpoint:
    """A complete checkpoint on disk; ordered oldest first (by step, then by save at that step)."""

    step: int
    """Agent steps of the run when it was saved."""
    n: int
    """1 for the first save at this step, 2 for a re-save at the same step, ..."""
    path: Path = field(compare=False)


def save(
    directory: Path,
    step: int,
    state: bytes,
    replay: Mapping[str, np.ndarray],
    counters: Mapping,
    keep: int = 2,
    before_commit: Callable[[], None] | None = None,
) -> Checkpoint:
    """Write a checkpoint of `state` (the agent's bytes), `replay` (name -> array) and `counters`
    (JSON).

    `before_commit` runs once every file is written, just before the checkpoint becomes complete
    (its temporary directory renamed into place): a caller's record that the checkpoint exists
    is then never missing beside a complete checkpoint, whatever instant a kill lands.
    Afterwards only the newest `keep` complete checkpoints remain. Raises
    :class:`dreamerbench.core.files.DiskFull` if the device fills up; the checkpoints saved
    before are then untouched.
    """
    directory = Path(directory)
    arrays = {key: np.asarray(value) for key, value in replay.items()}
    for key, array in arrays.items():
        if array.dtype == object:
            raise TypeError(f"replay[{key!r}] has dtype object; checkpoints hold plain arrays only")
    with writing(directory):
        directory.mkdir(parents=True, exist_ok=True)
        taken = [
            int(m.group(2))
            for p in directory.iterdir()
            if (m := _NAME.match(p.name)) and int(m.group(1)) == step
        ]
        final = directory / f"ckpt-{step:012d}-{max(taken, default=0) + 1}"
        tmp = Path(tempfile.mkdtemp(dir=directory, prefix=f".tmp-ckpt-{step:012d}-"))
        try:
            tmp.chmod(umask_mode(0o777))  # mkdtemp makes it 0700
            _write(tmp / "state.msgpack", lambda f: f.write(state))
            _write(tmp / "replay.npz", lambda f: np.savez(f, **arrays))
            _write(
                tmp / "counters.json", lambda f: f.write(json.dumps(counters, indent=1).encode())
            )
            manifest = {
                name: {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)}
                for name in FILES
            }
            _write(tmp / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
            fsync_dir(tmp)
            if before_commit is not None:
                before_commit()
            os.rename(tmp, final)
            fsync_dir(directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # only this save's own temporary directory
            raise
    for old in complete(directory)[:-keep]:
        remove(old)
    match = _NAME.match(final.name)
    return Checkpoint(int(match.group(1)), int(match.group(2)), final)


def _write(path: Path, fill) -> None:
    with open(path, "wb") as file:
        fill(file)
        file.flush()
        os.fsync(file.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def complete(directory: Path) -> list[Checkpoint]:
    """The complete checkpoints under `directory` (those with a manifest), oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [
        Checkpoint(int(m.group(1)), int(m.group(2)), path)
        for path in directory.iterdir()
        if (m := _NAME.match(path.name)) and (path / MANIFEST).is_file()
    ]
    return sorted(found)


def strays(directory: Path) -> list[Path]:
    """``ckpt-*`` entries under `directory` that are not complete checkpoints (no manifest, odd
    name)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    good = {c.path for c in complete(directory)}
    return sorted(p for p in directory.glob("ckpt-*") if p not in good)


def remove(checkpoint: Checkpoint) -> None:
    """Delete a checkpoint; a kill midway leaves an ``.old-*`` directory, never a damaged
    ``ckpt-*``."""
    doomed = checkpoint.path.with_name(f".old-{checkpoint.path.name}")
    os.rename(checkpoint.path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def partial_steps(directory: Path) -> set[int]:
    """Steps of the saves that a kill cut short in `directory` (their ``.tmp-ckpt-*`` left)."""
    directory = Path(directory)
    if not directory.is_dir():
        return set()
    return {int(p.name.split("-")[2]) for p in directory.glob(".tmp-ckpt-*")}


def remove_partial(directory: Path) -> None:
    """Delete what killed saves and removals left (``.tmp-ckpt-*``, ``.old-*``).

    Only for the one process that owns the logdir (it holds the logdir's lock):
    another process's save in progress would look the same.
    """
    directory = Path(directory)
    if directory.is_dir():
        for leftover in [*directory.glob(".tmp-ckpt-*"), *directory.glob(".old-*")]:
            shutil.rmtree(leftover, ignore_errors=True)


def verify(checkpoint: Checkpoint, names: tuple[str, ...] = FILES) -> None:
    """Check the size and SHA-256 of `names` against the manifest; CheckpointError names the first
    bad file."""
    path = checkpoint.path
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        expected = {
            name: {"bytes": int(manifest[name]["bytes"]), "sha256": str(manifest[name]["sha256"])}
            for name in FILES
        }
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path / MANIFEST} is damaged ({error})") from None
    for name in names:
        file = path / name
        try:
            size = file.stat().st_size
        except OSError:
            raise CheckpointError(f"{file} is missing") from None
        if size != expected[name]["bytes"]:
            raise CheckpointError(
                f"{file} has {size} bytes; its manifest says {expected[name]['bytes']}"
            )
        if _sha256(file) != expected[name]["sha256"]:
            raise CheckpointError(f"{file} is damaged: its SHA-256 differs from the manifest's")


def read_counters(checkpoint: Checkpoint) -> dict:
    """The counters (JSON) of a checkpoint, checked against its manifest, without its arrays."""
    verify(checkpoint, ("counters.json",))
    return json.loads((checkpoint.path / "counters.json").read_text())


def load_state(checkpoint: Checkpoint) -> tuple[bytes, dict]:
    """(state bytes, counters) of a checkpoint, checked against its manifest, without the replay
    (for inference: ``dreamerbench eval`` and ``export``). CheckpointError names a bad file."""
    verify(checkpoint, ("state.msgpack", "counters.json"))
    return (checkpoint.path / "state.msgpack").read_bytes(), json.loads(
        (checkpoint.path / "counters.json").read_text()
    )


def load(checkpoint: Checkpoint) -> tuple[bytes, dict[str, np.ndarray], dict]:
    """(state bytes, replay arrays, counters) of a checkpoint written by :func:`save`.

    Every file is checked against the manifest first; CheckpointError names a bad one.
    """
    verify(checkpoint)
    path = checkpoint.path
    state = (path / "state.msgpack").read_bytes()
    with np.load(path / "replay.npz", allow_pickle=False) as data:
        replay = {key: data[key] for key in data.files}
    return state, replay, json.loads((path / "counters.json").read_text())
