"""The sweep: expand a spec, decide which runs to (re)submit, create their MLflow runs, and
hand them to a launcher (:mod:`dreamerbench.experiments.launchers`) in packs (:func:`pack_runs`:
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
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreamerbench.core.files import FileLock, StorageError
from dreamerbench.experiments import tracking
from dreamerbench.experiments.job import RunTask
from dreamerbench.experiments.launchers import LAUNCHER_TAG, Watch
from dreamerbench.experiments.spec import RunSpec
from dreamerbench.experiments.status import state_of


@dataclass(frozen=True)
class Planned:
    """What the launcher does with one run."""

    run: RunSpec
    action: str
    """'new' (create an MLflow run and submit), 'resume' (submit into the existing run) or
    'skip'."""
    reason: str
    mlflow_run: Any = None
    """The existing MLflow run, if any."""


ACTIONS = {
    "not submitted": ("new", "not started"),
    "finished": ("skip", "finished"),
    "killed": ("resume", "killed; resume"),
    "interrupted": ("resume", "interrupted (its job is gone); resume"),
    "queued": ("skip", "queued"),
    "requeued": ("skip", "requeued"),
    "running": ("skip", "running"),
}
"""Run state (:func:`dreamerbench.experiments.status.run_state`) -> (action, reason); failed
runs: :func:`decide`."""


def decide(state: str, rerun_failed: bool) -> tuple[str, str]:
    """(action, reason) for a run in `state` (``status.run_state``, the rule ``status`` shows):
    'new', 'resume' or 'skip'. A failed run is resumed only with `rerun_failed`."""
    if state == "failed":
        if rerun_failed:
            return "resume", "failed; rerun (--rerun-failed)"
        return "skip", "failed (--rerun-failed reruns it)"
    return ACTIONS[state]


def plan(
    runs: Sequence[RunSpec], existing: Mapping[str, Any], rerun_failed: bool, watch: Watch
) -> list[Planned]:
    """Decide each run's action from its MLflow run (by key) and whether its job is alive."""
    planned = []
    for run in runs:
        found = existing.get(run.key)
        action, reason = decide(state_of(found, watch), rerun_failed)
        if found is not None and found.info.status == "FINISHED":
            done = int(float(found.data.tags.get(tracking.STEPS_TAG, 0) or 0))
            if done < run.config.run.steps:  # a larger budget continues the run from its checkpoint
                action = "resume"
                reason = (
                    f"finished at {done:,} steps; continues to {run.config.run.steps:,} "
                    "(steps raised)"
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
    launcher: str,
) -> list[list[RunTask]]:
    """Create MLflow runs for new runs and mark resumed ones SCHEDULED, each tagged with the
    name of the `launcher` that will train it (whose ``is_alive`` answers for its job); the
    jobs' packs of tasks."""
    git = tracking.git_state()
    return [
        [_prepare_one(item, tracker, experiment_id, target, git, launcher) for item in pack]
        for pack in packs
    ]


def _prepare_one(
    item: Planned,
    tracker: tracking.Tracker,
    experiment_id: str,
    target: Target,
    git: Mapping[str, str],
    launcher: str,
) -> RunTask:
    from dreamerbench.agent.config import to_dict

    if item.action == "new":
        run_id = tracker.schedule(
            experiment_id, item.run, git, lambda run_id: logdir_for(target, item.run, run_id)
        )
        logdir = logdir_for(target, item.run, run_id)
        tracker.tag(run_id, {LAUNCHER_TAG: launcher})
    else:
        run_id = item.mlflow_run.info.run_id
        logdir = item.mlflow_run.data.tags.get(tracking.TAG + "logdir") or logdir_for(
            target, item.run, run_id
        )
        # status shows the new budget at once
        tracker.tag(run_id, {"budget_steps": item.run.config.run.steps, LAUNCHER_TAG: launcher})
        tracker.reschedule(run_id)
    return RunTask(run_id, item.run.key, item.run.label, logdir, to_dict(item.run.config))


def unsubmit(
    packs: Sequence[Sequence[Planned]],
    tasks: Sequence[Sequence[RunTask]],
    started: Sequence[Any],
    tracker: tracking.Tracker,
) -> int:
    """After a refused submission: leave every run whose job did not start as it was before
    :func:`prepare` (`packs` and their `tasks` in the same order; `started`: the ``Submitted``
    jobs that did start). A new run's MLflow run is deleted (the run is "not submitted" again),
    a resumed run gets its earlier status back; so none looks interrupted, and the next sweep
    submits exactly these. Returns how many runs were left unsubmitted."""
    done = {task.run_id for job in started for task in job.tasks}
    count = 0
    for pack, pack_tasks in zip(packs, tasks):
        for item, task in zip(pack, pack_tasks):
            if task.run_id in done:
                continue
            if item.action == "new":
                tracker.call(tracker.client.delete_run, task.run_id)
            else:
                status = item.mlflow_run.info.status
                tracker.call(tracker.client.update_run, task.run_id, status=status)
            count += 1
    return count
