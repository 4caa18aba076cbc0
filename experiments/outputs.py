"""TensorBoard and Weights & Biases outputs, optional, beside MLflow (``run.outputs``).

Each is a trainer :class:`dreamerbench.agent.trainer.Output`: after every save, ``publish(logdir)``
reads the run's JSONL records from its own cursor up to what
:func:`dreamerbench.core.records.deliverable` allows (what no resume can cut back), so a resumed run
sends nothing twice that was sent before its checkpoint. Metric names and steps are
MLflow's (``episode/score``, ``train/loss/total``, ``eval/score``, ...; step = agent
steps: :func:`dreamerbench.core.records.metric_name`). The cursor is written after the
records are flushed; a crash between the two sends those records again (TensorBoard
shows both copies at the same step, W&B keeps the later one).

- ``tensorboard``: event files in ``<logdir>/tensorboard`` (``tensorboard --logdir LOGDIR``).
- ``wandb``: one W&B run per logdir, its id kept in ``<logdir>/wandb/run_id``, resumed by a
  resumed run; ``WANDB_MODE=offline`` keeps it in ``<logdir>/wandb`` for ``wandb sync``.
  ``WANDB_PROJECT`` names the project (default: dreamerbench).
"""

from __future__ import annotations

import importlib.util
import json
import netrc
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from dreamerbench.agent.config import Config, ConfigError, to_dict
from dreamerbench.core.files import StorageError, atomic_write_text
from dreamerbench.core.records import LOGS, deliverable, named_values, read_records

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}
"""Output name -> the package it needs (``pip install 'dreamerbench[outputs]'``)."""


def check_available(config: Config) -> None:
    """Check ``run.outputs`` before anything is made: ConfigError naming it if an output's package
    is not installed; StorageError (one line, exit 1 like W&B's own start failure) if ``wandb``
    would send online but finds no login (:func:`wandb_login_missing`)."""
    for name in config.run.outputs:
        if importlib.util.find_spec(PACKAGES[name]) is None:
            raise ConfigError(
                f"run.outputs={list(config.run.outputs)} needs the package {PACKAGES[name]!r}, which is not installed; "
                "pip install 'dreamerbench[outputs]', or leave it out",
                "run.outputs",
            )
    if "wandb" in config.run.outputs:
        missing = wandb_login_missing()
        if missing:
            raise StorageError(
                f"run.outputs has wandb but W&B has no login here ({missing}); log in (wandb login), "
                "set WANDB_MODE=offline, or leave wandb out of run.outputs"
            )


OFFLINE_MODES = ("offline", "dryrun", "disabled")
"""``WANDB_MODE`` values that need no W&B login."""


def wandb_login_missing(environ: Mapping[str, str] = os.environ) -> str | None:
    """What is missing for W&B to send online, or None if it needs no login or has one.

    W&B takes its key from ``WANDB_API_KEY``, ``WANDB_IDENTITY_TOKEN_FILE``, or the
    ``.netrc`` entry of its host (``NETRC``, else ``~/.netrc``; host of ``WANDB_BASE_URL``,
    default api.wandb.ai) that ``wandb login`` writes; this checks the same places without
    the network.
    """
    mode = environ.get("WANDB_MODE") or "online"
    if (
        mode in OFFLINE_MODES
        or environ.get("WANDB_API_KEY")
        or environ.get("WANDB_IDENTITY_TOKEN_FILE")
    ):
        return None
    host = (
        urlparse(environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    )
    path = (
        Path(environ["NETRC"]).expanduser()
        if environ.get("NETRC")
        else Path("~/.netrc").expanduser()
    )
    try:
        if netrc.netrc(path).authenticators(host):
            return None
    except (OSError, netrc.NetrcParseError):
        pass
    return f"WANDB_MODE={mode}, no WANDB_API_KEY, no {host} entry in {path}"


def make_outputs(config: Config, logdir: str | Path) -> list:
    """The outputs ``config.run.outputs`` names, for the run in `logdir` (checked first:
    :func:`check_available`); the trainer closes them when the run stops."""
    check_available(config)
    makers = {"tensorboard": TensorBoardOutput, "wandb": WandbOutput}
    return [makers[name](logdir, config) for name in config.run.outputs]


class _CursorOutput:
    """Delivers JSONL records from a cursor file in ``<logdir>/<name>/`` (see the module doc)."""

    name = ""

    def __init__(self, logdir: str | Path, config: Config):
        self.logdir = Path(logdir)
        self.dir = self.logdir / self.name
        self.config = config
        self.cursor_path = self.dir / "delivered.json"

    def publish(self, logdir: Path) -> None:
        """Send the deliverable records not sent yet, then move the cursor."""
        cursor = json.loads(self.cursor_path.read_text()) if self.cursor_path.exists() else {}
        limits = deliverable(self.logdir)
        moved = dict(cursor)
        for file in LOGS:
            start = min(int(cursor.get(file, 0)), limits[file])
            for offset, record in read_records(self.logdir / f"{file}.jsonl", start, limits[file]):
                self.write(
                    int(record["step"]),
                    int(record["time_ms"]) / 1000,
                    dict(named_values(file, record)),
                )
                moved[file] = offset
        if moved != cursor:
            self.flush()
            atomic_write_text(self.cursor_path, json.dumps(moved))

    def write(self, step: int, wall_time: float, metrics: dict[str, float]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Deliver what became final when the run stopped (all of it once ``summary.json`` exists),
        then release the writer; the trainer calls it when the run stops."""
        self.publish(self.logdir)
        self._release()

    def _release(self) -> None:
        raise NotImplementedError


class TensorBoardOutput(_CursorOutput):
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


class WandbOutput(_CursorOutput):
    """A W&B run per logdir (resumed with its id); metrics against ``agent_step``."""

    name = "wandb"

    def __init__(self, logdir: str | Path, config: Config):
        super().__init__(logdir, config)
        self._run = None
        self._failed = False

    def close(self) -> None:
        """As :meth:`_CursorOutput.close`; nothing to deliver if W&B did not start (the error says so)."""
        if not self._failed:
            super().close()

    def _start(self):
        import wandb

        self.dir.mkdir(parents=True, exist_ok=True)
        id_path = self.dir / "run_id"
        if not id_path.exists():
            atomic_write_text(id_path, uuid.uuid4().hex[:16])
        try:
            run = wandb.init(
                dir=str(self.logdir),
                id=id_path.read_text().strip(),
                resume="allow",
                project=os.environ.get("WANDB_PROJECT", "dreamerbench"),
                config=to_dict(self.config),
                name=f"{self.config.task}-seed{self.config.seed}",
                reinit="create_new",
                mode=os.environ.get("WANDB_MODE")
                or None,  # read now: W&B keeps the first process setting
            )
        except Exception as error:  # noqa: BLE001 - W&B raises many kinds (no login, no network, ...)
            self._failed = True
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise StorageError(
                f"W&B did not start a run for {self.logdir} ({reason}); log in (wandb login), set "
                "WANDB_MODE=offline, or leave wandb out of run.outputs; the run resumes where it stopped"
            ) from None
        # Records of different files interleave in step; W&B needs one rising step, so
        # every metric is plotted against agent_step instead.
        run.define_metric("agent_step")
        run.define_metric("*", step_metric="agent_step")
        return run

    def write(self, step: int, wall_time: float, metrics: dict[str, float]) -> None:
        if self._run is None:
            self._run = self._start()
        self._run.log({"agent_step": step, **metrics})

    def flush(self) -> None:
        """W&B sends as it goes; the run's files are complete once it is closed."""

    def _release(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None
