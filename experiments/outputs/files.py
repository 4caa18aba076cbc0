"""The part TensorBoard and W&B share: a cursor file in the logdir, and the end of an output.

Each keeps its :class:`dreamerbench.core.records.Cursor` in ``<logdir>/<name>/delivered.json``
and delivers with :func:`dreamerbench.core.records.deliver`: the records, then the media files
(episode videos and open-loop reports, ``media/<kind>-<step>.gif|png``, as MLflow gets them),
each as ``media/<kind>`` at its step. The cursor is written after the records are flushed; a
crash between the two sends those records and media again (TensorBoard shows both copies at the
same step, W&B keeps the later one).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dreamerbench.agent.config import Config
from dreamerbench.core.files import atomic_write_text
from dreamerbench.core.records import Cursor, Record, deliver, media_kind, media_step


class CursorFileOutput:
    """Delivers a run's records from a cursor file in ``<logdir>/<name>/`` (see the module doc)."""

    name = ""

    def __init__(self, logdir: str | Path, config: Config):
        self.logdir = Path(logdir)
        self.dir = self.logdir / self.name
        self.config = config
        self.cursor_path = self.dir / "delivered.json"

    def publish(self, logdir: Path) -> None:
        """Send the deliverable records not sent yet, then move the cursor."""
        path = self.cursor_path
        cursor = Cursor.from_json(path.read_text() if path.exists() else None)
        moved = deliver(self.logdir, cursor, self._send, send_media=self._send_media)
        if moved != cursor:
            self.flush()
            atomic_write_text(path, moved.to_json())

    def _send(self, file: str, records: list[Record], cursor: Cursor) -> None:
        for record in records:
            self.write(record.step, record.time_ms / 1000, dict(record.values))

    def _send_media(self, path: Path, cursor: Cursor) -> None:
        self.write_media(f"media/{media_kind(path)}", media_step(path), path)

    def write(self, step: int, wall_time: float, metrics: dict[str, float]) -> None:
        """One record: `metrics` (metric name -> value) at agent step `step`, `wall_time` in
        seconds since the epoch."""
        raise NotImplementedError

    def write_media(self, tag: str, step: int, path: Path) -> None:
        """One media file `path` (a GIF video or a PNG image) as `tag` at agent step `step`."""
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """The run stopped (the trainer calls it): deliver what became final (all of it once
        ``summary.json`` exists), then release the writer. Closing twice is a no-op the second
        time (nothing left to deliver, nothing held)."""
        self.publish(self.logdir)
        self._release()

    def end(self, summary: Mapping[str, Any] | None = None, error: str | None = None) -> None:
        """The run's end (finished, stopped or failed): as :meth:`close`; the records say the
        rest."""
        self.close()

    def _release(self) -> None:
        raise NotImplementedError
