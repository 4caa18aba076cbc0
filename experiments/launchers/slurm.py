"""The Slurm launcher: one submitit job array per sweep (``runs_per_job`` packs per array task),
resources from a :class:`~dreamerbench.experiments.profiles.SlurmProfile`.

Liveness comes from ``squeue`` (tag ``slurm_job_id``); inside a job, the job id and array index
come from Slurm's ``SLURM_*`` environment and the output goes to submitit's log files.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dreamerbench.experiments import tracking
from dreamerbench.experiments.job import RunTask, SweepJob
from dreamerbench.experiments.launchers.base import (
    Context,
    Launcher,
    LauncherUnavailable,
    SubmitRefused,
    Submitted,
)
from dreamerbench.experiments.profiles import SlurmProfile, executor_parameters, load_profile

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


class SlurmUnavailable(LauncherUnavailable):
    """Slurm's commands are missing or its controller does not answer."""


class SlurmLauncher(Launcher):
    """Job arrays through submitit; each job is checkpointed and requeued on USR2."""

    name = "slurm"
    profile_type = SlurmProfile

    @classmethod
    def read_profile(cls, name_or_path: str) -> SlurmProfile:
        return load_profile(name_or_path)

    @property
    def packs_per_job(self) -> int:
        return self.profile.runs_per_job

    def describe(self, packs: int, parallel: int) -> str:
        jobs = -(-packs // self.profile.runs_per_job)
        return (
            f"slurm, profile {self.profile.name}: {jobs} array jobs, each {self.profile.describe()}"
        )

    def check(self) -> None:
        check_slurm(self.profile)

    def submit(self, packs: Sequence[Sequence[RunTask]], context: Context) -> list[Submitted]:
        """Job arrays for the sweep (``runs_per_job`` packs per array task), each at most the
        cluster's ``MaxArraySize`` tasks (:func:`max_array_size`); tags each run with its job's
        ``slurm_job_id``. An array that sbatch refuses raises :class:`SubmitRefused` quoting
        sbatch, with the jobs of the arrays submitted before it."""
        import submitit
        from submitit.core.utils import FailedJobError, FailedSubmissionError

        profile = self.profile
        executor = submitit.SlurmExecutor(
            folder=context.folder / "%j", max_num_timeout=profile.max_requeues
        )
        executor.update_parameters(**executor_parameters(profile, context.sweep))
        groups = [
            packs[i : i + profile.runs_per_job] for i in range(0, len(packs), profile.runs_per_job)
        ]
        limit = max_array_size()
        arrays = [groups[i : i + limit] for i in range(0, len(groups), limit)]
        submitted: list[Submitted] = []
        for number, array in enumerate(arrays, 1):
            try:
                # submitit prints sbatch's stderr before raising it: the error says it once.
                with contextlib.redirect_stderr(io.StringIO()):
                    with executor.batch():
                        jobs = [
                            executor.submit(
                                SweepJob(group, context.tracking_uri, context.experiment_id)
                            )
                            for group in array
                        ]
            except (FailedJobError, FailedSubmissionError) as error:
                lines = str(error).strip().splitlines() or ["(no message)"]
                raise SubmitRefused(
                    f"sbatch refused array {number} of {len(arrays)} ({len(array)} jobs): "
                    f"{lines[-1].strip()}",
                    submitted,
                ) from None
            for job, group in zip(jobs, array):
                tasks = tuple(task for pack in group for task in pack)
                for task in tasks:
                    context.tracker.tag(task.run_id, {"slurm_job_id": job.job_id})
                submitted.append(Submitted(job.job_id, tasks))
        ids = sorted({s.job_id.split("_")[0] for s in submitted}, key=int)
        context.echo(
            f"submitted {sum(len(s.tasks) for s in submitted)} runs as {len(submitted)} Slurm "
            f"jobs in {len(arrays)} array(s) of at most {limit} (MaxArraySize): {', '.join(ids)}"
        )
        return submitted

    def wait(self, jobs: Sequence[Submitted]) -> None:
        wait_slurm([job.job_id for job in jobs])

    @classmethod
    def snapshot(cls) -> dict[str, str] | None:
        return slurm_queue()

    @classmethod
    def is_alive(cls, status: str, tags: Mapping[str, str], snapshot: Any) -> bool | None:
        job_id = tags.get(tracking.TAG + "slurm_job_id")
        if not job_id:
            return False  # not submitted yet
        if snapshot is None:
            return None
        return snapshot.get(job_id) in ALIVE_SLURM_STATES

    @classmethod
    def activated(cls) -> bool:
        return "SLURM_JOB_ID" in os.environ

    @classmethod
    def job_tags(cls) -> dict[str, str]:
        """The job id (``ARRAYJOB_TASK`` inside an array, as squeue names it) and array index."""
        job_id = os.environ["SLURM_JOB_ID"]
        array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
        if not array_job:
            return {"slurm_job_id": job_id}
        array_task = os.environ.get("SLURM_ARRAY_TASK_ID") or ""
        return {
            "slurm_job_id": f"{array_job}_{array_task}",
            "slurm_array_job_id": array_job,
            "slurm_array_task_id": array_task,
        }

    @classmethod
    def log_files(cls, local_log: str | None) -> list[str]:
        """submitit's stdout and stderr files (``<folder>/<job>_<task>_log.{out,err}``; Slurm
        creates them when the job starts, and the ``.err`` file only without
        ``stderr_to_stdout``); `local_log` outside submitit."""
        if "SUBMITIT_FOLDER" not in os.environ:
            return super().log_files(local_log)
        import submitit

        paths = submitit.JobEnvironment().paths
        return [str(path) for path in (paths.stdout, paths.stderr) if path.exists()]


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


SLURM_DEFAULT_MAX_ARRAY_SIZE = 1001
"""Slurm's default ``MaxArraySize`` (``slurm.conf``): array indices 0 .. 1000."""


def parse_max_array_size(text: str) -> int | None:
    """``MaxArraySize = 1001`` in ``scontrol show config`` output -> 1001 (None if absent)."""
    match = re.search(r"^\s*MaxArraySize\s*=\s*(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def max_array_size() -> int:
    """The most tasks one job array may have here: ``MaxArraySize`` of ``scontrol show config``
    (indices 0 .. MaxArraySize - 1), or Slurm's default where it cannot be read."""
    try:
        result = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return SLURM_DEFAULT_MAX_ARRAY_SIZE
    found = parse_max_array_size(result.stdout) if result.returncode == 0 else None
    return found if found else SLURM_DEFAULT_MAX_ARRAY_SIZE


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
