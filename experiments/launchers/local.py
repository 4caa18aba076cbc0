"""The local launcher: each pack trains in a worker process on this machine
(``python -m dreamerbench.experiments.job JOB.json LOG``), up to ``parallel`` at once; the
sweep command returns when they ended.

Liveness: a worker is alive while ``/proc/<pid>`` runs the job module (tag ``local_pid``,
on tag ``host``); a SCHEDULED run also counts as alive while a local launcher of its sweep
holds ``launcher.lock`` (it waits there for a worker).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dreamerbench.experiments import tracking
from dreamerbench.experiments.job import EXIT_INTERRUPTED, RunTask, SweepJob
from dreamerbench.experiments.launchers.base import Context, Launcher, Submitted


class LocalLauncher(Launcher):
    """Worker processes on this machine; Ctrl-C or SIGTERM makes each save a checkpoint and stop."""

    name = "local"
    trains_here = True
    job_word = "process"

    def describe(self, packs: int, parallel: int) -> str:
        return f"local, {parallel} process(es) at a time on this machine"

    def submit(self, packs: Sequence[Sequence[RunTask]], context: Context) -> list[Submitted]:
        context.echo(
            f"training {sum(map(len, packs))} runs locally in {len(packs)} processes, "
            f"{context.parallel} at a time"
        )
        return run_local(packs, context)

    @classmethod
    def is_alive(cls, status: str, tags: Mapping[str, str], snapshot: Any) -> bool | None:
        pid = tags.get(tracking.TAG + "local_pid")
        alive = _worker_alive(pid, tags.get(tracking.TAG + "host", "")) if pid else False
        if not alive and status == "SCHEDULED" and local_launcher_alive(tags):
            return True  # waiting in a running local launcher for a worker
        return alive

    @classmethod
    def job_tags(cls) -> dict[str, str]:
        return {"local_pid": str(os.getpid())}


def _worker_alive(pid: str, host: str) -> bool | None:
    if host != socket.gethostname():
        return None
    try:
        cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    # A sweep's worker, or a `dreamerbench train` process (issue 21 item 10: a live one showed as
    # interrupted, with advice to run it again).
    train = b"dreamerbench" in cmdline and b"\0train\0" in cmdline
    return b"dreamerbench.experiments.job" in cmdline or train


def local_launcher_alive(tags: Mapping[str, str]) -> bool | None:
    """Is a local launcher of the run's sweep alive on this host (it holds ``launcher.lock`` in the
    sweep's directory, two levels above the run's logdir, until its runs end)? Its SCHEDULED runs
    wait there for a worker. None if the lock names another host; False if there is no launcher,
    this process is it, or the run belongs to another launcher."""
    from dreamerbench.experiments.launchers import owner

    logdir = tags.get(tracking.TAG + "logdir")
    if not logdir or owner(tags) != LocalLauncher.name:
        return False
    try:
        holder = (Path(logdir).parent.parent / "launcher.lock").read_text().split()[0]
        pid, host = holder.split("@", 1)
    except (OSError, IndexError, ValueError):
        return False
    if host != socket.gethostname():
        return None
    return int(pid) != os.getpid() and Path(f"/proc/{int(pid)}").exists()


def run_local(packs: Sequence[Sequence[RunTask]], context: Context) -> list[Submitted]:
    """Train the packs in up to ``context.parallel`` worker processes (one per pack); one
    :class:`Submitted` per pack with its exit code (``EXIT_INTERRUPTED`` for packs never started).

    Ctrl-C (SIGINT reaches the workers too) or SIGTERM makes every worker save a
    checkpoint and stop; re-running the sweep resumes them.
    """
    echo = context.echo
    context.folder.mkdir(parents=True, exist_ok=True)
    waiting = [list(pack) for pack in packs]
    running: dict[str, tuple[subprocess.Popen, list[RunTask], Any]] = {}
    ended: list[Submitted] = []
    stopping: int | None = None  # the first stop signal's number
    said = False

    def forward(signum, frame):  # noqa: ARG001
        # No printing here: the signal may interrupt a print of the loop (a reentrant call).
        nonlocal stopping
        stopping = stopping or signum
        for process, _, _ in running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    total = len(packs)
    try:
        while waiting or running:
            while waiting and len(running) < context.parallel and not stopping:
                pack = waiting.pop(0)
                first = pack[0]  # names the pack's job file and holds its log
                job_file = context.folder / f"{first.key}.json"
                SweepJob([pack], context.tracking_uri, context.experiment_id).save(job_file)
                Path(first.logdir).mkdir(parents=True, exist_ok=True)
                log_path = Path(first.logdir) / "job.log"
                log = open(log_path, "ab")
                command = [sys.executable, "-u", "-m", "dreamerbench.experiments.job"]
                process = subprocess.Popen(
                    [*command, str(job_file), str(log_path)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                running[first.key] = (process, pack, log)
                if stopping:
                    # The signal came while this worker started, before `forward` could see it
                    # (issue 21: the run then trained its whole budget).
                    process.send_signal(signal.SIGTERM)
                runs = " ".join(task.run_id[:8] for task in pack)
                echo(f"  started  {_labels(pack):<40} run {runs}  log {log_path}")
            time.sleep(0.5)
            for key, (process, pack, log) in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                log.close()
                del running[key]
                ended.append(Submitted(str(process.pid), tuple(pack), code))
                outcome = worker_outcome(code, Path(pack[0].logdir) / "job.log")
                echo(f"  [{len(ended)}/{total}] {outcome:<10} {_labels(pack)}")
            if stopping and not said:
                said = True
                echo(f"  {signal.Signals(stopping).name}: the runs save a checkpoint and stop")
            if stopping and not running:
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return ended + [Submitted("", tuple(pack), EXIT_INTERRUPTED) for pack in waiting]


def worker_outcome(code: int, log: Path) -> str:
    """What a local worker's exit `code` says of its pack: finished, stopped, FAILED (the job
    marked its runs FAILED), or interrupted (a signal such as SIGKILL ended it before it could
    mark anything: its runs are left RUNNING with no job, which ``status`` calls interrupted)."""
    if code == 0:
        return "finished"
    if code == EXIT_INTERRUPTED:
        return "stopped (resumable)"
    if code < 0:
        return f"interrupted (killed by {_signal_name(-code)}; resumable; see {log})"
    return f"FAILED (exit {code}; see {log})"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _labels(pack: Sequence[RunTask]) -> str:
    return " + ".join(task.label for task in pack)
