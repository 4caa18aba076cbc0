"""The run record: a run's JSONL files, what a record is, and which of its bytes are final.

Layout of a logdir's records (written by :class:`dreamerbench.agent.rundir.RunDir`):
``episodes.jsonl``, ``metrics.jsonl``, ``eval.jsonl`` (:data:`LOGS`) and ``media/``
(``<kind>-<step>.gif|png``). Every record carries ``step`` (agent steps) and ``time_ms``
(milliseconds since the epoch, strictly increasing within its file): its identity
(:data:`IDENTITY`); every other number is a value, named ``<kind>/<field>`` in every store
(:func:`metric_name`). What a store may take is :func:`deliverable` (bytes no resume can cut
back) and :func:`deliverable_media`; ``dreamerbench.agent.rundir`` says why.

The ground floor: imports nothing of the project but ``core``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dreamerbench.core import checkpoint
from dreamerbench.core.checkpoint import CheckpointError
from dreamerbench.core.files import StorageError

LOGS = ("episodes", "metrics", "eval")
"""The JSONL files of a run, by name (``<name>.jsonl``)."""

KINDS = {"episodes": "episode", "eval": "eval"}
"""JSONL file -> metric group; ``metrics.jsonl`` records name theirs (``"kind"``)."""

RECORD_KINDS = ("episode", "train", "fps", "eval")
"""The record kinds, i.e. the metric groups of every store."""

IDENTITY = ("kind", "step", "time_ms")
"""Fields of a record that are not values."""


def media_files(directory: Path) -> list[Path]:
    """The media files of a run (``<kind>-<step>.gif`` or ``.png``), oldest step first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [
        p
        for p in directory.iterdir()
        if p.suffix in (".gif", ".png") and not p.name.startswith(".")
    ]
    return sorted(found, key=lambda p: (media_step(p), p.name))


def media_step(path: Path) -> int:
    """The agent step a media file was made at (its name's last field)."""
    return int(Path(path).stem.rsplit("-", 1)[1])


def deliverable_media(logdir: str | Path) -> list[Path]:
    """Media files that no resume can delete any more: all once the run has finished; else those
    made at or before the oldest complete checkpoint's step; none before there is a checkpoint."""
    logdir = Path(logdir)
    files = media_files(logdir / "media")
    if (logdir / "summary.json").exists():
        return files
    kept = checkpoint.complete(logdir / "checkpoint")
    return [p for p in files if kept and media_step(p) <= kept[0].step]


def deliverable(logdir: str | Path) -> dict[str, int]:
    """Bytes of each JSONL file that no resume can cut back any more (see the module doc).

    The whole file once ``summary.json`` exists; else what the oldest complete
    checkpoint covers; nothing before there is a checkpoint.
    """
    logdir = Path(logdir)
    paths = {name: logdir / f"{name}.jsonl" for name in LOGS}
    if (logdir / "summary.json").exists():
        return {name: path.stat().st_size if path.exists() else 0 for name, path in paths.items()}
    kept = checkpoint.complete(logdir / "checkpoint")
    try:
        sizes = checkpoint.read_counters(kept[0])["file_sizes"] if kept else {}
        return {name: int(sizes.get(name, 0)) for name in LOGS}
    except CheckpointError:
        return dict.fromkeys(LOGS, 0)  # the next save replaces it


def read_records(path: Path, start: int = 0, end: int | None = None) -> Iterator[tuple[int, dict]]:
    """(offset after the line, record) for each whole JSONL line between byte offsets `start` and `end`."""
    if not Path(path).exists():
        return
    with open(path, "rb") as file:
        file.seek(start)
        data = file.read(None if end is None else max(0, end - start))
    offset = start
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            return  # a line cut short (by a kill or a full disk) is not a record yet
        yield offset + len(line), _parse(path, offset, line)
        offset += len(line)


def last_record(path: Path) -> dict | None:
    size = path.stat().st_size if path.exists() else 0
    if size == 0:
        return None
    with open(path, "rb") as file:
        file.seek(max(0, size - 65536))
        last = file.read().splitlines(keepends=True)[-1]
    return _parse(path, size - len(last), last)


def _parse(path: Path, offset: int, line: bytes) -> dict:
    try:
        return json.loads(line)
    except ValueError:
        raise StorageError(
            f"{path} is damaged: the line at byte {offset} is not a JSON record"
        ) from None


def record_values(record: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(name, value) of the numbers of a record: every field but its identity and its text fields."""
    return [
        (key, float(value))
        for key, value in record.items()
        if key not in IDENTITY and isinstance(value, (int, float))
    ]


def metric_name(kind: str, name: str) -> str:
    """Trainer record kind + value name -> metric name (``group/name``), for MLflow and the other outputs."""
    if kind not in RECORD_KINDS:
        raise ValueError(f"record kind={kind!r}; allowed: {', '.join(RECORD_KINDS)}")
    return f"{kind}/{name}"


def named_values(file: str, record: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """(metric name, value) of one record of ``<file>.jsonl``, as every store names them."""
    kind = KINDS.get(file) or record.get("kind")
    for key, value in record_values(record):
        yield metric_name(kind, key), value
