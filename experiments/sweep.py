"""The launcher: expand a spec, decide which runs to (re)submit, create their MLflow
runs, and hand them to the local or the Slurm executor in packs (:func:`pack_runs`:
up to ``seeds_per_process`` runs that differ only in seed share one trainer).

Idempotence: a run is submitted only if it has no MLflow run yet, or its run
was KILLED, or it is SCHEDULED/RUNNING but its job is gone (interrupted); a
FINISHED run, and one whose job is queued or running, is skipped; a FAILED run
is resubmitted only with ``rerun_failed``. A resubmitted run resumes from its
logdir into the same MLflow run. Keys leave bookkeeping out (``spec.BOOKKEEPING``),
so a spec whose ``steps`` grew finds its FINISHED runs and continues them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreamerbench.core.files import FileLock, StorageError
from dreamerbench.experiments import tracking
from dreamerbench.experiments.job import EXIT_INTERRUPTED, RunTask, SweepJob
from dreamerbench.experiments.profiles import SlurmProfile, executor_parameters
from dreamerbench.experiments.spec import RunSpec, SweepSpec

# squeue states in which a job will still run (or is running).
ALIVE_SLURM_STATES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "CONFIGURING",
        "COMPLETING",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SUSPENDED",
        "STOPPED",
        "SIGNALING",
        "STAGE_OUT",
        "RESV_DEL_HOLD",
    }
)


class SlurmUnavailable(RuntimeError):
    """Slurm's commands are missing or its controller does not answer."""


@dataclass(frozen=True)
class Planned:
    """What the launcher does with one run."""

    run: RunSpec
    action: str
    """'new' (create an MLflow run and submit), 'resume' (submit into the existing run) or 'skip'."""
    reason: str
    mlflow_run: Any = None
    """The existing MLflow run, if any."""


def decide(status: str | None, alive: bool | None, rerun_failed: bool) -> tuple[str, str]:
    """(action, reason) for a run with MLflow `status` whose job is `alive` (None: unknown)."""
    if status is None:
        return "new", "not started"
    if status == "FINISHED":
        return "skip", "finished"
    if status == "FAILED":
        if rerun_failed:
            return "resume", "failed; rerun (--rerun-failed)"
        return "skip", "failed (--rerun-failed reruns it)"
    if status == "KILLED":
        return "resume", "killed; resume"
    if status in tracking.ACTIVE_STATES:
        if alive is None:
            return "skip", f"{status.lower()}; its job's state is unknown here"
        if alive:
            return "skip", "queued" if status == "SCHEDULED" else "running"
        return "resume", "interrupted (its job is gone); resume"
    return "new", f"unknown MLflow status {status!r}"


# ---------------------------------------------------------------------------- Slurm queries


def check_slurm(profile: SlurmProfile | None = None) -> None:
    """Raise SlurmUnavailable with the fix if Slurm cannot take jobs (and the partition exists)."""
    missing = [
        c for c in ("sbatch", "squeue", "sinfo", "scontrol", "srun") if shutil.which(c) is None
    ]
    hint = (
        "start the local test cluster with `bash slurm/local/start.sh` and "
        "`export SLURM_CONF=/tmp/dreamerbench-slurm/slurm.conf`, or use --executor local"
    )
    if missing:
        raise SlurmUnavailable(
            f"Slurm is not installed here (missing {', '.join(missing)}); {hint}"
        )
    conf = os.environ.get("SLURM_CONF")
    if conf and not Path(conf).is_file():
        # sinfo would retry reading it for 60 s before giving up.
        raise SlurmUnavailable(f"SLURM_CONF={conf} does not exist; {hint}")
    try:
        result = subprocess.run(
            ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable(
            f"Slurm's controller did not answer sinfo within 20 s; {hint}"
        ) from None
    if result.returncode != 0:
        conf = os.environ.get("SLURM_CONF", "(SLURM_CONF is unset)")
        detail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no output"
        raise SlurmUnavailable(
            f"Slurm does not answer (sinfo: {detail}; SLURM_CONF={conf}); {hint}"
        )
    partitions = [p.rstrip("*") for p in result.stdout.split()]
    if profile is not None and profile.partition and profile.partition not in partitions:
        raise SlurmUnavailable(
            f"Slurm profile {profile.name!r}: partition={profile.partition!r} is not a partition "
            f"of this cluster; allowed: {', '.join(partitions)}"
        )


def parse_squeue(text: str) -> dict[str, str]:
    """'123_4|RUNNING' lines (squeue -h -r -o '%i|%T') -> {'123_4': 'RUNNING'}."""
    states = {}
    for line in text.splitlines():
        if "|" in line:
            job_id, state = line.strip().split("|", 1)
            states[job_id] = state
    return states


def slurm_queue() -> dict[str, str] | None:
    """Job id -> state of every job in the queue, or None if Slurm cannot be asked."""
    if shutil.which("squeue") is None:
        return None
    try:
        result = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return None
    return parse_squeue(result.stdout) if result.returncode == 0 else None


def _local_alive(pid: str, host: str) -> bool | None:
    if host != socket.gethostname():
        return None
    try:
        cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return b"dreamerbench.experiments.job" in cmdline


def job_alive(tags: Mapping[str, str], queue: Mapping[str, str] | None) -> bool | None:
    """Is the job of an MLflow run (by its tags) queued or running? None if it cannot be told."""
    slurm_id = tags.get(tracking.TAG + "slurm_job_id")
    if slurm_id:
        if queue is None:
            return None
        return queue.get(slurm_id) in ALIVE_SLURM_STATES
    pid = tags.get(tracking.TAG + "local_pid")
    if pid:
        return _local_alive(pid, tags.get(tracking.TAG + "host", ""))
    return False


def local_launcher_alive(tags: Mapping[str, str]) -> bool | None:
    """Is a local launcher of the run's sweep alive on this host (it holds ``launcher.lock`` in the
    sweep's directory, two levels above the run's logdir, until its runs end)? Its SCHEDULED runs
    wait there for a worker. None if the lock names another host; False if there is no launcher,
    or this process is it."""
    logdir = tags.get(tracking.TAG + "logdir")
    if not logdir or tracking.TAG + "slurm_job_id" in tags:
        return False
    try:
        holder = (Path(logdir).parent.parent / "launcher.lock").read_text().split()[0]
        pid, host = holder.split("@", 1)
    except (OSError, IndexError, ValueError):
        return False
    if host != socket.gethostname():
        return None
    return int(pid) != os.getpid() and Path(f"/proc/{int(pid)}").exists()


def plan(
    runs: Sequence[RunSpec],
    existing: Mapping[str, Any],
    rerun_failed: bool,
    queue: Mapping[str, str] | None,
) -> list[Planned]:
    """Decide each run's action from its MLflow run (by key) and the Slurm queue."""
    planned = []
    for run in runs:
        found = existing.get(run.key)
        status = found.info.status if found is not None else None
        alive = job_alive(found.data.tags, queue) if found is not None else None
        action, reason = decide(status, alive, rerun_failed)
        if status == "FINISHED":
            done = int(float(found.data.tags.get(tracking.STEPS_TAG, 0) or 0))
            if done < run.config.run.steps:  # a larger budget continues the run from its checkpoint
                action, reason = (
                    "resume",
                    f"finished at {done:,} steps; continues to {run.config.run.steps:,} (steps raised)",
                )
        planned.append(Planned(run, action, reason, found))
    return planned


# ---------------------------------------------------------------------------- launching


@dataclass(frozen=True)
class Target:
    """Where results go."""

    tracking_uri: str
    workdir: Path
    """Run logdirs and executor files: <workdir>/<sweep>/..."""


def sweep_dir(target: Target, sweep: str) -> Path:
    return target.workdir / sweep


class SweepBusy(StorageError):
    """Another launcher is launching (or, locally, running) the same sweep."""


@contextlib.contextmanager
def launcher_lock(target: Target, sweep: str) -> Iterator[None]:
    """Hold the sweep's launcher lock (``<workdir>/<sweep>/launcher.lock``) or raise SweepBusy.

    Two launchers of one sweep at once would plan the same runs twice (two MLflow
    runs per key, both training one logdir). The lock is held from planning to the
    end of submission (Slurm) or of training (local executor); the kernel drops it
    when the holder exits, however it exits.
    """
    lock = FileLock(sweep_dir(target, sweep) / "launcher.lock")
    if not lock.acquire():
        raise SweepBusy(
            f"sweep {sweep!r} is being launched by {lock.holder()} ({lock.path}); "
            "wait until that launcher ends, then run this command again"
        )
    try:
        yield
    finally:
        lock.release()


def logdir_for(target: Target, run: RunSpec, run_id: str) -> str:
    """A logdir per MLflow run: a new MLflow run never resumes another run's checkpoint.

    The task's name is one path component (a gym task such as ``my_envs:my_envs/Corridor-v0``
    has its ``/`` and ``:`` replaced by ``_``)."""
    task = re.sub(r"[^A-Za-z0-9_.-]", "_", run.task)
    return str(sweep_dir(target, run.sweep) / f"{task}-seed{run.seed}-{run.key}" / run_id)


def chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def pack_runs(planned: Sequence[Planned], seeds_per_process: int) -> list[list[Planned]]:
    """The runs to train (skipped ones left out) in packs that one trainer trains together.

    Runs whose resolved configs differ only in seed go, in order, into packs of
    at most `seeds_per_process`. New and resumed runs never share a pack: a
    packed trainer resumes its runs from a checkpoint step they all hold.
    """
    groups: list[tuple[Any, list[Planned]]] = []
    for item in planned:
        if item.action == "skip":
            continue
        # Config is unhashable (it holds dicts): groups are found by equality.
        key = (item.action, dataclasses.replace(item.run.config, seed=0))
        group = next((members for known, members in groups if known == key), None)
        if group is None:
            group = []
            groups.append((key, group))
        group.append(item)
    return [pack for _, members in groups for pack in chunks(members, seeds_per_process)]


def prepare(
    packs: Sequence[Sequence[Planned]],
    tracker: tracking.Tracker,
    experiment_id: str,
    target: Target,
) -> list[list[RunTask]]:
    """Create MLflow runs for new runs and mark resumed ones SCHEDULED; the jobs' packs of tasks."""
    git = tracking.git_state()
    return [
        [_prepare_one(item, tracker, experiment_id, target, git) for item in pack] for pack in packs
    ]


def _prepare_one(
    item: Planned,
    tracker: tracking.Tracker,
    experiment_id: str,
    target: Target,
    git: Mapping[str, str],
) -> RunTask:
    from dreamerbench.agent.config import to_dict

    if item.action == "new":
        run_id = tracker.schedule(
            experiment_id, item.run, git, lambda run_id: logdir_for(target, item.run, run_id)
        )
        logdir = logdir_for(target, item.run, run_id)
    else:
        run_id = item.mlflow_run.info.run_id
        logdir = item.mlflow_run.data.tags.get(tracking.TAG + "logdir") or logdir_for(
            target, item.run, run_id
        )
        tracker.tag(
            run_id, {"budget_steps": item.run.config.run.steps}
        )  # status shows the new budget at once
        tracker.reschedule(run_id)
    return RunTask(run_id, item.run.key, item.run.label, logdir, to_dict(item.run.config))


def submit_slurm(
    packs: Sequence[Sequence[RunTask]],
    profile: SlurmProfile,
    spec: SweepSpec,
    target: Target,
    experiment_id: str,
    tracker: tracking.Tracker,
) -> list[Any]:
    """One job array for the sweep (runs_per_job packs per array task); returns submitit jobs."""
    import submitit

    folder = sweep_dir(target, spec.name) / "slurm" / "%j"
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=profile.max_requeues)
    executor.update_parameters(**executor_parameters(profile, spec.name))
    groups = chunks(packs, profile.runs_per_job)
    with executor.batch():
        jobs = [
            executor.submit(SweepJob(group, target.tracking_uri, experiment_id)) for group in groups
        ]
    for job, group in zip(jobs, groups):
        for task in (task for pack in group for task in pack):
            tracker.tag(task.run_id, {"slurm_job_id": job.job_id})
    return jobs


def wait_slurm(job_ids: Sequence[str], poll_s: float = 3.0, timeout_s: float | None = None) -> None:
    """Block until none of `job_ids` is queued or running any more."""
    start = time.monotonic()
    remaining = set(job_ids)
    while remaining:
        queue = slurm_queue()
        if queue is not None:
            remaining = {j for j in remaining if queue.get(j) in ALIVE_SLURM_STATES}
        if not remaining:
            return
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(
                f"jobs still queued or running after {timeout_s:.0f} s: {sorted(remaining)}"
            )
        time.sleep(poll_s)


def run_local(
    packs: Sequence[Sequence[RunTask]],
    parallel: int,
    spec: SweepSpec,
    target: Target,
    experiment_id: str,
    echo: Callable[[str], None] = print,
) -> dict[str, int]:
    """Train the packs in up to `parallel` worker processes (one per pack); returns run key -> exit code.

    Ctrl-C (SIGINT reaches the workers too) or SIGTERM makes every worker save a
    checkpoint and stop; re-running the sweep resumes them.
    """
    folder = sweep_dir(target, spec.name) / "local"
    folder.mkdir(parents=True, exist_ok=True)
    waiting = [list(pack) for pack in packs]
    running: dict[str, tuple[subprocess.Popen, list[RunTask], Any]] = {}
    codes: dict[str, int] = {}
    stopping = False

    def forward(signum, frame):  # noqa: ARG001
        nonlocal stopping
        if not stopping:
            echo(f"  {signal.Signals(signum).name}: the runs save a checkpoint and stop")
        stopping = True
        for process, _, _ in running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    total, done = len(packs), 0
    try:
        while waiting or running:
            while waiting and len(running) < parallel and not stopping:
                pack = waiting.pop(0)
                first = pack[0]  # names the pack's job file and holds its log
                job_file = folder / f"{first.key}.json"
                SweepJob([pack], target.tracking_uri, experiment_id).save(job_file)
                Path(first.logdir).mkdir(parents=True, exist_ok=True)
                log_path = Path(first.logdir) / "job.log"
                log = open(log_path, "ab")
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-u",
                        "-m",
                        "dreamerbench.experiments.job",
                        str(job_file),
                        str(log_path),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                running[first.key] = (process, pack, log)
                runs = " ".join(task.run_id[:8] for task in pack)
                echo(f"  started  {_labels(pack):<40} run {runs}  log {log_path}")
            time.sleep(0.5)
            for key, (process, pack, log) in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                log.close()
                del running[key]
                codes.update((task.key, code) for task in pack)
                done += 1
                outcome = worker_outcome(code, Path(pack[0].logdir) / "job.log")
                echo(f"  [{done}/{total}] {outcome:<10} {_labels(pack)}")
            if stopping and not running:
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for task in (task for pack in waiting for task in pack):
        codes.setdefault(task.key, EXIT_INTERRUPTED)
    return codes


def worker_outcome(code: int, log: Path) -> str:
    """What a local worker's exit `code` says of its pack: finished, stopped, FAILED (the job
    marked its runs FAILED), or interrupted (a signal such as SIGKILL ended it before it could mark
    anything: its runs are left RUNNING with no job, which ``status`` calls interrupted)."""
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
