"""Weights & Biases output: one W&B run per logdir, its id kept in ``<logdir>/wandb/run_id``,
resumed by a resumed run; ``WANDB_MODE=offline`` keeps it in ``<logdir>/wandb`` for ``wandb sync``.
``WANDB_PROJECT`` names the project (default: dreamerbench). Metrics are plotted against
``agent_step`` (records of different files interleave in step); the run's videos and open-loop
reports are logged as ``media/<kind>`` (``wandb.Video`` for GIFs, ``wandb.Image`` for PNGs).
"""

from __future__ import annotations

import netrc
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from dreamerbench.agent.config import Config, to_dict
from dreamerbench.core.files import StorageError, atomic_write_text
from dreamerbench.experiments.outputs.files import CursorFileOutput

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


class WandbOutput(CursorFileOutput):
    """A W&B run per logdir (resumed with its id); metrics against ``agent_step``."""

    name = "wandb"

    def __init__(self, logdir: str | Path, config: Config):
        super().__init__(logdir, config)
        self._run = None
        self._failed = False

    def close(self) -> None:
        """As :meth:`CursorFileOutput.close`; nothing to deliver if W&B did not start (the error
        says so)."""
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
                "WANDB_MODE=offline, or leave wandb out of run.outputs; the run resumes where it "
                "stopped"
            ) from None
        # Records of different files interleave in step; W&B needs one rising step, so
        # every metric is plotted against agent_step instead.
        run.define_metric("agent_step")
        run.define_metric("*", step_metric="agent_step")
        return run

    def write(self, step: int, wall_time: float, metrics: dict[str, float]) -> None:
        self._log({"agent_step": step, **metrics})

    def write_media(self, tag: str, step: int, path: Path) -> None:
        import wandb

        media = wandb.Video(str(path)) if path.suffix == ".gif" else wandb.Image(str(path))
        self._log({"agent_step": step, tag: media})

    def _log(self, data: dict) -> None:
        if self._run is None:
            self._run = self._start()
        self._run.log(data)

    def flush(self) -> None:
        """W&B sends as it goes; the run's files are complete once it is closed."""

    def _release(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None
