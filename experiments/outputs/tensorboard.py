"""TensorBoard output: scalars in event files under ``<logdir>/tensorboard``
(``tensorboard --logdir LOGDIR``), one event file per session."""

from __future__ import annotations

from pathlib import Path

from dreamerbench.agent.config import Config
from dreamerbench.experiments.outputs.files import CursorFileOutput


class TensorBoardOutput(CursorFileOutput):
    """Scalars in TensorBoard event files under ``<logdir>/tensorboard`` (one file per session)."""

    name = "tensorboard"

    def __init__(self, logdir: str | Path, config: Config):
        super().__init__(logdir, config)
        self._writer = None

    def write(self, step: int, wall_time: float, metrics: dict[str, float]) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        if self._writer is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._writer = EventFileWriter(str(self.dir))
        values = [Summary.Value(tag=tag, simple_value=value) for tag, value in metrics.items()]
        self._writer.add_event(Event(wall_time=wall_time, step=step, summary=Summary(value=values)))

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def _release(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
