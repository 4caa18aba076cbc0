"""The run record: a run's JSONL files, what a record is, and which of its bytes are final.

Layout of a logdir's records (written by :class:`dreamerbench.agent.rundir.RunDir`):
``episodes.jsonl``, ``metrics.jsonl``, ``eval.jsonl`` (:data:`LOGS`) and ``media/``
(``<kind>-<step>.gif|png``). Every record carries ``step`` (agent steps) and ``time_ms``
(milliseconds since the epoch, strictly increasing within its file): its identity
(:data:`IDENTITY`); every other number is a value, named ``<kind>/<field>`` in every store
(:func:`metric_name`). What a store may take is :func:`deliverable` (bytes no resume can cut
back) and :func:`deliverable_media`; ``dreamerbench.agent.rundir`` says why.

Delivery (:func:`deliver`, the one loop every store uses): a store keeps a :class:`Cursor`, the
bytes of each file it holds and the hash of that file's first line (its timeline), and the
names of the media files it holds; each delivery sends the records from the cursor up to
:func:`deliverable`, then each file of :func:`deliverable_media` it does not hold, and moves the
cursor with each batch and file the store took. A file that starts with another first line (a
run started afresh after its only checkpoint was lost) is another timeline: it is delivered
from its start, never from a cursor that counted another file.

The ground floor: imports nothing of the project but ``core``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

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


def media_kind(path: Path) -> str:
    """What a media file shows (its name's first field: ``episode``, ``openloop``)."""
    return Path(path).stem.rsplit("-", 1)[0]


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
    """(offset after the line, record) for each whole JSONL line between byte offsets `start`
    and `end`."""
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
    """(name, value) of the numbers of a record: every field but its identity and its text
    fields."""
    return [
        (key, float(value))
        for key, value in record.items()
        if key not in IDENTITY and isinstance(value, (int, float))
    ]


def metric_name(kind: str, name: str) -> str:
    """Trainer record kind + value name -> metric name (``group/name``), for MLflow and the other
    outputs."""
    if kind not in RECORD_KINDS:
        raise ValueError(f"record kind={kind!r}; allowed: {', '.join(RECORD_KINDS)}")
    return f"{kind}/{name}"


def named_values(file: str, record: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """(metric name, value) of one record of ``<file>.jsonl``, as every store names them."""
    kind = KINDS.get(file) or record.get("kind")
    for key, value in record_values(record):
        yield metric_name(kind, key), value


def head(path: Path) -> str | None:
    """The timeline of a JSONL file: a hash (16 hex digits) of its first whole line; None while
    it has none. Two files with one head start with the same record (its ``time_ms`` included),
    so they are one timeline cut at different lengths."""
    if not Path(path).exists():
        return None
    with open(path, "rb") as file:
        first = file.readline(1 << 20)
    if not first.endswith(b"\n"):
        return None
    return hashlib.sha256(first).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Cursor:
    """How much of each JSONL file of a run a store holds: ``offsets`` (file name -> bytes, whole
    lines) and ``heads`` (file name -> :func:`head` of the file those bytes were counted in);
    ``media``: the names of the media files it holds.

    A file without a head (a cursor written before heads existed) is trusted to be the same
    timeline."""

    offsets: Mapping[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(LOGS, 0))
    heads: Mapping[str, str] = dataclasses.field(default_factory=dict)
    media: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, text: str | None) -> Cursor:
        """Read :meth:`to_json`'s text (or an older cursor: only the offsets; None or "": empty)."""
        data = json.loads(text or "{}")
        offsets = data["offsets"] if isinstance(data.get("offsets"), dict) else data
        return cls(
            {name: int(offsets.get(name, 0)) for name in LOGS},
            {name: str(h) for name, h in dict(data.get("heads") or {}).items() if name in LOGS},
            frozenset(map(str, data.get("media") or ())),
        )

    def to_json(self) -> str:
        held = {"offsets": dict(self.offsets), "heads": dict(self.heads)}
        return json.dumps({**held, "media": sorted(self.media)})

    def start(self, path: Path, file: str) -> int:
        """Byte of `path` (``<file>.jsonl``) to deliver from: the offset if the store counted this
        timeline, else 0 (another timeline: :meth:`replaced`)."""
        held = self.heads.get(file)
        return int(self.offsets.get(file, 0)) if held in (None, head(path)) else 0

    def replaced(self, logdir: str | Path) -> list[str]:
        """Files of `logdir` whose records the store counted in another timeline (a different
        first line, or none any more)."""
        logdir = Path(logdir)
        return [
            name
            for name in LOGS
            if self.offsets.get(name, 0) and self.start(logdir / f"{name}.jsonl", name) == 0
        ]

    def moved(self, file: str, offset: int, file_head: str | None) -> Cursor:
        """The cursor once the store holds `file` up to `offset` of the timeline `file_head`."""
        heads = {**self.heads, file: file_head} if file_head else dict(self.heads)
        return Cursor({**self.offsets, file: offset}, heads, self.media)

    def pending(self, logdir: str | Path) -> int:
        """Bytes of `logdir`'s JSONL files the store does not hold yet (deliverable or not)."""
        total = 0
        for name in LOGS:
            path = Path(logdir) / f"{name}.jsonl"
            size = path.stat().st_size if path.exists() else 0
            total += max(0, size - self.start(path, name))
        return total


class Record(NamedTuple):
    """One JSONL record as a store takes it."""

    step: int
    """Agent steps."""
    time_ms: int
    """Milliseconds since the epoch (the record's identity with `step`)."""
    values: list[tuple[str, float]]
    """(metric name, value): :func:`named_values`."""


Send = Callable[[str, list[Record], Cursor], None]
"""``send(file, records, cursor)``: store `records` (of ``<file>.jsonl``, in file order); once it
returns, the store holds them and `cursor` counts them (a store that keeps its cursor beside
its records writes both at once)."""

SendMedia = Callable[[Path, Cursor], None]
"""``send_media(path, cursor)``: store the media file `path` (``<kind>-<step>.gif|png``); once
it returns, the store holds it and `cursor` counts it."""


def deliver(
    logdir: str | Path,
    cursor: Cursor,
    send: Send,
    max_values: int | None = None,
    send_media: SendMedia | None = None,
) -> Cursor:
    """Send each JSONL file's records from `cursor` up to :func:`deliverable`, then (with
    `send_media`) each file of :func:`deliverable_media` that `cursor` does not hold, oldest
    step first; the moved cursor.

    Records go to `send` in batches, one file at a time; a batch holds at most `max_values`
    values (None: a whole file's records at once; a single larger record is a batch of its own).
    An error of `send` propagates: what it took before is counted by the cursor it was handed.
    StorageError if a file is shorter than the cursor says its timeline was (cut back behind
    what a store holds: the logdir was replaced or changed by hand).
    """
    logdir = Path(logdir)
    limits = deliverable(logdir)
    for file in LOGS:
        path = logdir / f"{file}.jsonl"
        start = cursor.start(path, file)
        size = path.stat().st_size if path.exists() else 0
        if size < start:
            raise StorageError(
                f"{path} has {size} bytes but the store holds its records up to byte {start}: "
                "the logdir was replaced or cut back by hand"
            )
        timeline = head(path)
        batch: list[Record] = []
        count, end = 0, start
        for offset, record in read_records(path, start, limits[file]):
            values = list(named_values(file, record))
            if batch and max_values is not None and count + len(values) > max_values:
                cursor = cursor.moved(file, end, timeline)
                send(file, batch, cursor)
                batch, count = [], 0
            batch.append(Record(int(record["step"]), int(record["time_ms"]), values))
            count, end = count + len(values), offset
        if batch:
            cursor = cursor.moved(file, end, timeline)
            send(file, batch, cursor)
    for path in deliverable_media(logdir) if send_media is not None else ():
        if path.name not in cursor.media:
            cursor = dataclasses.replace(cursor, media=cursor.media | {path.name})
            send_media(path, cursor)
    return cursor
