"""The launcher interface: how a sweep's jobs are submitted, watched and run.

A launcher plays the three roles of a submitit plugin (``submitit/core/core.py``):

- Executor: :meth:`Launcher.submit` turns packs of runs into jobs (``SweepJob``) and starts
  them (and :meth:`Launcher.wait` waits for them where the launcher does not train here);
- InfoWatcher: :meth:`Launcher.snapshot` and :meth:`Launcher.is_alive` tell whether the job
  of an MLflow run is queued or running;
- JobEnvironment: :meth:`Launcher.activated`, :meth:`Launcher.job_tags` and
  :meth:`Launcher.log_files` describe, inside a job, the job this process runs in.

A new launcher is one module in this package and one line in the registry
(``dreamerbench.experiments.launchers.LAUNCHERS``); ``docs/launchers.md`` walks through one.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from dreamerbench.experiments.job import RunTask


class LauncherUnavailable(RuntimeError):
    """A launcher cannot take jobs now (its service is missing or does not answer); the message
    says how to fix it. Raised by :meth:`Launcher.check` before anything is created."""


class SubmitRefused(RuntimeError):
    """The cluster refused a submission (e.g. sbatch's own error); the message is one line
    quoting it. :attr:`submitted` are the jobs that did start before it (a sweep split into
    several submissions), so the sweep can mark every other run as not submitted."""

    def __init__(self, message: str, submitted: Sequence[Submitted] = ()):
        super().__init__(message)
        self.submitted = list(submitted)


@dataclass(frozen=True)
class Context:
    """What the sweep hands a launcher along with the packs it submits."""

    sweep: str
    """Sweep name: the MLflow experiment's name and the jobs' name."""
    folder: Path
    """The launcher's own files (job files, logs): ``<workdir>/<sweep>/<launcher name>``."""
    tracking_uri: str
    experiment_id: str
    tracker: Any
    """The sweep's ``tracking.Tracker``: a launcher may tag its runs (:meth:`Launcher.submit`)."""
    parallel: int = 1
    """Jobs at once, for a launcher that trains here (the spec's ``parallel``). Range: >= 1."""
    echo: Callable[[str], None] = print
    """Where progress lines go."""


@dataclass(frozen=True)
class Submitted:
    """One job a launcher started."""

    job_id: str
    """The launcher's name for the job ('' for packs it never started)."""
    tasks: tuple[RunTask, ...]
    """The runs it trains."""
    code: int | None = None
    """Exit code, where the launcher saw the job end (``job.EXIT_INTERRUPTED``: stopped early,
    resumable); None if it ends elsewhere."""


class Launcher(abc.ABC):
    """Where a sweep's jobs run. Class attributes and classmethods need no instance (a job and
    ``status`` use them); an instance holds the profile a sweep submits with."""

    name: ClassVar[str]
    """The registry name (spec field ``executor``, ``--executor``)."""
    profile_type: ClassVar[type | None] = None
    """The frozen dataclass a profile of this launcher reads into (``--profile`` / spec
    ``profile``); None: the launcher takes no profile."""
    trains_here: ClassVar[bool] = False
    """Whether :meth:`submit` returns only after its jobs ended (it trains on this machine)."""
    job_word: ClassVar[str] = "job"
    """What one job is called in the dry run's packing lines ('job', 'process')."""

    def __init__(self, profile: Any = None):
        self.profile = profile

    # ------------------------------------------------------------------------ Executor

    @classmethod
    def read_profile(cls, name_or_path: str) -> Any:
        """The profile named `name_or_path` (a ``profile_type`` instance), or None without a
        profile type. ValueError (``SpecError``) names the file, line and field at fault."""
        return None

    @property
    def workdir(self) -> str | None:
        """Run logdirs and launcher files, if the profile says (else the sweep's default)."""
        return getattr(self.profile, "workdir", None)

    @property
    def packs_per_job(self) -> int:
        """Packs of runs one job trains (threads of one process). Range: >= 1."""
        return 1

    @abc.abstractmethod
    def describe(self, packs: int, parallel: int) -> str:
        """One line: where `packs` packs go (after ``N runs (suite) ->``)."""

    def check(self) -> None:
        """Raise :class:`LauncherUnavailable` if jobs cannot be submitted now."""

    @abc.abstractmethod
    def submit(self, packs: Sequence[Sequence[RunTask]], context: Context) -> list[Submitted]:
        """Start jobs training `packs` (each a list of runs that one trainer trains together);
        a launcher with ``trains_here`` returns when they ended, with their exit codes. Raises
        :class:`SubmitRefused` (naming the jobs started before) where the cluster refuses."""

    def wait(self, jobs: Sequence[Submitted]) -> None:
        """Block until none of `jobs` is queued or running (``trains_here`` launchers: no-op)."""

    # ------------------------------------------------------------------------ InfoWatcher

    @classmethod
    def snapshot(cls) -> Any:
        """What :meth:`is_alive` needs to know of all jobs at once (e.g. the queue), read once
        per ``status`` or plan; None if it cannot be read."""
        return None

    @classmethod
    @abc.abstractmethod
    def is_alive(cls, status: str, tags: Mapping[str, str], snapshot: Any) -> bool | None:
        """Is the job of an MLflow run queued or running? `status` is the run's MLflow status,
        `tags` its tags (``dreamerbench.``-prefixed), `snapshot` :meth:`snapshot`'s answer.
        None: it cannot be told from here (the run is never submitted twice then)."""

    # ------------------------------------------------------------------------ JobEnvironment

    @classmethod
    def activated(cls) -> bool:
        """Does this process run inside one of this launcher's jobs (from its environment)?"""
        return False

    @classmethod
    @abc.abstractmethod
    def job_tags(cls) -> dict[str, str]:
        """Tags (names without the ``dreamerbench.`` prefix) that say which job of this
        launcher this process runs in; what :meth:`is_alive` reads back."""

    @classmethod
    def log_files(cls, local_log: str | None) -> list[str]:
        """Where this job's output goes (existing files); `local_log` is the log the job was
        started with, if any."""
        return [local_log] if local_log else []
