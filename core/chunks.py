"""Append-only chunks of arrays on disk: each written once, whole, with SHA-256 sums.

A chunk is a directory ``chunk-<index:09d>`` holding one ``<n>.npy`` file per key (plain
``.npy``, so it can be memory-mapped) and ``manifest.json``, written last, which maps each key
to its file, byte size and SHA-256. Keys named as `cache` at writing get a size but no
checksum: they may be rewritten in place later (the replay's start latents, refreshed by
training), and a reader takes whatever they hold. :func:`write` returns the SHA-256 of the
manifest, which a checkpoint stores to name the chunk: :func:`read` checks the manifest
against it and every checksummed file against the manifest before it returns arrays.

Writing goes through a fresh ``.tmp-chunk-*`` directory that is fsynced and renamed into
place, so a kill leaves either a whole chunk or a temporary directory
(:func:`remove_from` clears those). Removal renames to ``.old-*`` first, so a half-deleted
chunk is never taken for one. No pickles: loading a shared chunk cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np

from dreamerbench.core.checkpoint import CheckpointError
from dreamerbench.core.files import fsync_dir, writing

MANIFEST = "manifest.json"
_NAME = re.compile(r"^chunk-(\d{9})$")


def name(index: int) -> str:
    """The directory name of chunk `index`."""
    return f"chunk-{index:09d}"


def write(
    directory: Path, index: int, arrays: Mapping[str, np.ndarray], cache: Collection[str] = ()
) -> str:
    """Write chunk `index` of `arrays` (key -> array, any shapes) under `directory`; returns the
    SHA-256 (hex) of its manifest. Keys in `cache` are stored without a checksum.

    Raises FileExistsError if the chunk exists, DiskFull if the device fills up (nothing of this
    chunk is left then but a ``.tmp-chunk-*`` directory).
    """
    directory = Path(directory)
    final = directory / name(index)
    with writing(directory):
        directory.mkdir(parents=True, exist_ok=True)
        if final.exists():
            raise FileExistsError(f"{final} exists; chunks are written once")
        tmp = Path(tempfile.mkdtemp(dir=directory, prefix=f".tmp-{name(index)}-"))
        try:
            keys = {}
            for n, (key, array) in enumerate(arrays.items()):
                path = tmp / f"{n}.npy"
                with open(path, "wb") as file:
                    np.save(file, np.ascontiguousarray(array), allow_pickle=False)
                    file.flush()
                    os.fsync(file.fileno())
                keys[key] = {"file": path.name, "bytes": path.stat().st_size}
                if key not in cache:
                    keys[key]["sha256"] = _sha256(path)
            manifest = json.dumps({"keys": keys}, indent=1).encode()
            with open(tmp / MANIFEST, "wb") as file:
                file.write(manifest)
                file.flush()
                os.fsync(file.fileno())
            fsync_dir(tmp)
            os.rename(tmp, final)
            fsync_dir(directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # only this write's own temporary directory
            raise
    return hashlib.sha256(manifest).hexdigest()


def read(directory: Path, index: int, digest: str, mmap: bool = False) -> dict[str, np.ndarray]:
    """The arrays of chunk `index`, checked against `digest` (what :func:`write` returned).

    With `mmap` the arrays are memory-mapped: read-only, except the cache keys (``r+``: writes
    go to the file). Raises CheckpointError naming the missing or damaged file.
    """
    path = Path(directory) / name(index)
    try:
        manifest = (path / MANIFEST).read_bytes()
    except OSError:
        raise CheckpointError(f"replay chunk {path} is missing") from None
    if hashlib.sha256(manifest).hexdigest() != digest:
        raise CheckpointError(f"{path / MANIFEST} differs from the one the checkpoint names")
    arrays = {}
    for key, entry in json.loads(manifest)["keys"].items():
        file = path / entry["file"]
        try:
            size = file.stat().st_size
        except OSError:
            raise CheckpointError(f"{file} is missing") from None
        if size != entry["bytes"] or ("sha256" in entry and _sha256(file) != entry["sha256"]):
            raise CheckpointError(
                f"{file} is damaged: its size or SHA-256 differs from the manifest"
            )
        mode = ("r" if "sha256" in entry else "r+") if mmap else None
        arrays[key] = np.load(file, mmap_mode=mode, allow_pickle=False)
    return arrays


def indices(directory: Path) -> list[int]:
    """Indices of the complete chunks under `directory` (those with a manifest), ascending."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(
        int(m.group(1))
        for p in directory.iterdir()
        if (m := _NAME.match(p.name)) and (p / MANIFEST).is_file()
    )


def remove_from(directory: Path, index: int) -> None:
    """Delete chunks `index` and later, and what killed writes and removals left behind.

    Only for the one process that owns `directory` (it holds the logdir's lock).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return
    for leftover in [*directory.glob(".tmp-chunk-*"), *directory.glob(".old-chunk-*")]:
        shutil.rmtree(leftover, ignore_errors=True)
    for path in directory.glob("chunk-*"):
        m = _NAME.match(path.name)
        if not m or int(m.group(1)) >= index:
            _remove(path)


def remove_before(directory: Path, index: int) -> None:
    """Delete chunks before `index` (those no kept checkpoint names any more)."""
    for old in indices(directory):
        if old < index:
            _remove(Path(directory) / name(old))


def _remove(path: Path) -> None:
    doomed = path.with_name(f".old-{path.name}")
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
