"""Launchers: where a sweep's jobs run (:class:`base.Launcher`), one module each, and the
registry that names them (spec field ``executor``, ``dreamerbench sweep --executor``).

Adding a launcher is one module here and one line in :data:`LAUNCHERS` (``docs/launchers.md``).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from dreamerbench.experiments import tracking
from dreamerbench.experiments.launchers.base import Launcher, LauncherUnavailable
from dreamerbench.experiments.launchers.local import LocalLauncher
from dreamerbench.experiments.launchers.slurm import SlurmLauncher

LAUNCHERS: dict[str, type[Launcher]] = {
    LocalLauncher.name: LocalLauncher,
    SlurmLauncher.name: SlurmLauncher,
}
"""Name -> launcher class, one line per launcher; the first is the default (spec ``executor``)
and the one a job falls back to when no other launcher's environment is activated."""

LAUNCHER_TAG = "launcher"
"""MLflow tag (``dreamerbench.launcher``) naming the launcher a run was last submitted with."""

__all__ = ["LAUNCHERS", "Launcher", "LauncherUnavailable", "Watch", "current", "get", "owner"]


def get(name: str) -> type[Launcher]:
    """The launcher class registered as `name`; ValueError naming the registered ones."""
    try:
        return LAUNCHERS[name]
    except KeyError:
        raise ValueError(
            f"executor={name!r} is not allowed; allowed: {', '.join(LAUNCHERS)}"
        ) from None


def current() -> type[Launcher]:
    """The launcher whose job this process runs in: the first registered one whose environment
    is activated (:meth:`Launcher.activated`), else the first (default) one."""
    launchers = list(LAUNCHERS.values())
    return next((cls for cls in launchers if cls.activated()), launchers[0])


def job_tags() -> dict[str, str]:
    """Where this job runs (names without the tag prefix): host, and the tags of the launcher
    whose job it is (:func:`current`)."""
    return {"host": socket.gethostname(), **current().job_tags()}


def owner(tags: Mapping[str, str]) -> str:
    """Name of the launcher whose job trains (or trained) an MLflow run with `tags`. Runs
    recorded before the ``launcher`` tag existed: Slurm's if they hold a Slurm job id."""
    named = tags.get(tracking.TAG + LAUNCHER_TAG)
    if named:
        return named
    return SlurmLauncher.name if tracking.TAG + "slurm_job_id" in tags else LocalLauncher.name


class Watch:
    """Whether runs' jobs are alive, each launcher asked for its :meth:`Launcher.snapshot` once
    (at the first of its runs): one ``squeue`` per ``status`` or plan, none without Slurm runs."""

    def __init__(self) -> None:
        self._snapshots: dict[str, Any] = {}

    def alive(self, status: str, tags: Mapping[str, str]) -> bool | None:
        """:meth:`Launcher.is_alive` of the run's launcher (:func:`owner`); None if that
        launcher is not registered here."""
        cls = LAUNCHERS.get(owner(tags))
        if cls is None:
            return None
        if cls.name not in self._snapshots:
            self._snapshots[cls.name] = cls.snapshot()
        return cls.is_alive(status, tags, self._snapshots[cls.name])
