"""TensorBoard output: scalars, and the run's videos and open-loop reports as images (GIFs play in
TensorBoard's Images tab), in event files under ``<logdir>/tensorboard``
(``tensorboard --logdir LOGDIR``), one event file per session."""

from __future__ import annotations

from pathlib import Path

from dreamerbench.agent.config import Config
from dreamerbench.experiments.outputs.files import CursorFileOutput


class TensorBoardOutput(CursorFileOutput):
    """Scalars and media in TensorBoard event files under ``<logdir>/tensorboard`` (one file per
    session)."""

    name = "tensorboard"

    def __init__(self, logdir: str | Path, config: Config):
        super().__init__(logdir, config)
        self._writer = None

    def write(self, step: int, wall_time: float, metrics: dict[str, float]) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=tag, simple_value=value) for tag, value in metrics.items()]
        self._add(step, wall_time, values)

    def write_media(self, tag: str, step: int, path: Path) -> None:
        """The file's bytes as an encoded image (TensorBoard's image summary takes GIF and PNG),
        at the time the file was written."""
        from PIL import Image
        from tensorboard.compat.proto.summary_pb2 import Summary

        with Image.open(path) as image:
            (width, height), bands = image.size, len(image.convert().getbands())
        encoded = Summary.Image(
            height=height, width=width, colorspace=bands, encoded_image_string=path.read_bytes()
        )
        self._add(step, path.stat().st_mtime, [Summary.Value(tag=tag, image=encoded)])

    def _add(self, step: int, wall_time: float, values: list) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        if self._writer is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._writer = EventFileWriter(str(self.dir))
        self._writer.add_event(Event(wall_time=wall_time, step=step, summary=Summary(value=values)))

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def _release(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
