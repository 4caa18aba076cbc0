"""Atomic checkpoints of plain arrays: msgpack for the agent state, .npz for replay, JSON for counters.

No pickles anywhere, so loading a shared checkpoint cannot run code. A
checkpoint is written into a temporary directory, renamed into place, and
only then does `latest` (itself replaced atomically) point at it; a crash at
any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import flax.serialization
import numpy as np


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
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


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save(
    directory: Path, step: int, state: Any, replay: Mapping[str, np.ndarray], counters: Mapping, keep: int = 1,
) -> Path:
    """Write checkpoint `ckpt-<step>` under `directory`, point `latest` at it, keep the newest `keep`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = path_for(directory, step)
    tmp = Path(tempfile.mkdtemp(dir=directory, prefix=".tmp-ckpt-"))
    try:
        (tmp / "state.msgpack").write_bytes(flax.serialization.to_bytes(state))
        arrays = {key: np.asarray(value) for key, value in replay.items()}
        for key, array in arrays.items():
            if array.dtype == object:
                raise TypeError(f"replay[{key!r}] has dtype object; checkpoints hold plain arrays only")
        with open(tmp / "replay.npz", "wb") as file:
            np.savez(file, **arrays)
        (tmp / "counters.json").write_text(json.dumps(counters, indent=1))
        for name in ("state.msgpack", "replay.npz", "counters.json"):
            with open(tmp / name, "rb") as file:
                os.fsync(file.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(directory / "latest", final.name)
    for old in steps(directory)[:-keep]:
        shutil.rmtree(path_for(directory, old), ignore_errors=True)
    for stale in directory.glob(".tmp-ckpt-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def path_for(directory: Path, step: int) -> Path:
    return Path(directory) / f"ckpt-{step:012d}"


def steps(directory: Path) -> list[int]:
    """Steps of the complete checkpoints under `directory`, oldest first (a `ckpt-*` exists only once complete)."""
    return sorted(int(path.name[len("ckpt-"):]) for path in Path(directory).glob("ckpt-*"))


def latest(directory: Path) -> Path | None:
    pointer = Path(directory) / "latest"
    if not pointer.exists():
        return None
    path = Path(directory) / pointer.read_text().strip()
    return path if path.exists() else None


def read_counters(path: Path) -> dict:
    """The counters (JSON) of the checkpoint at `path`, without loading its arrays."""
    return json.loads((Path(path) / "counters.json").read_text())


def load(path: Path, state_template: Any) -> tuple[Any, dict[str, np.ndarray], dict]:
    """Read a checkpoint written by :func:`save`; `state_template` gives the pytree structure."""
    path = Path(path)
    state = flax.serialization.from_bytes(state_template, (path / "state.msgpack").read_bytes())
    with np.load(path / "replay.npz", allow_pickle=False) as data:
        replay = {key: data[key] for key in data.files}
    return state, replay, read_counters(path)
