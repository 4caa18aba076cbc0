"""The sweep: expand a spec, decide which runs to (re)submit, create their MLflow runs, and
hand them to a launcher (:mod:`dreamerbench.experiments.launchers`) in packs (:func:`pack_runs`:
up to ``seeds_per_process`` runs that differ only in seed share one trainer).

Idempotence: a run is submitted only if it has no MLflow run yet, or its run
was KILLED, or it is SCHEDULED/RUNNING but its job is gone (interrupted); a
FINISHED run, and one whose job is queued or running, is skipped; a FAILED run
is resubmitted only with ``rerun_failed``. A resubmitted run resumes from its
logdir into the same MLflow run; that logdir is derived from the sweep's workdir, the run's
key and its MLflow run id (:func:`logdir_for`), never read from a tag, and one workdir owns a
sweep (:func:`claim`). Keys leave bookkeeping out (``spec.BOOKKEEPING``),
so a spec whose ``steps`` grew finds its FINISHED runs and continues them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreamerbench.core.files import FileLock, StorageError
from dreamerbench.core.reader import ReadError, refuse
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


WORKDIR_TAG = "workdir"
"""MLflow experiment tag (``dreamerbench.workdir``) naming the workdir that owns the sweep: the
one its runs' logdirs lie under (:func:`logdir_for`)."""


def workdir_refusal(experiment, target: Target) -> ReadError | None:
    """The one-line refusal of ``--workdir`` when the sweep's MLflow `experiment` (None: not
    created yet) is owned by another workdir than `target`'s, else None.

    One sweep, one workdir (issue 23, item 7): launchers of one spec and store with two
    workdirs would plan the same MLflow runs, each train them in its own folder, and each
    report FAILED for what the other finished. Paths compare as resolved absolute paths."""
    owner = experiment and experiment.tags.get(tracking.TAG + WORKDIR_TAG)
    if not owner or owner == str(target.workdir):
        return None
    return refuse(
        "--workdir",
        str(target.workdir),
        f"{owner}, the workdir of sweep {experiment.name!r} in {target.tracking_uri} (its runs' "
        "logdirs are there; a second workdir would train the same MLflow runs again)",
    )


def claim(tracker: tracking.Tracker, sweep: str, target: Target) -> str:
    """The id of the sweep's MLflow experiment, owned by `target`'s workdir: created with it
    (two launchers creating it at once: one creation wins, :meth:`tracking.Tracker.experiment`),
    or an experiment made before issue 23 adopted by it. ReadError naming ``--workdir`` (exit 2)
    if another workdir owns it (:func:`workdir_refusal`); nothing is created in the workdir."""
    experiment_id = tracker.experiment(sweep, {WORKDIR_TAG: str(target.workdir)})
    experiment = tracker.call(tracker.client.get_experiment, experiment_id)
    refused = workdir_refusal(experiment, target)
    if refused is not None:
        raise refused
    if tracking.TAG + WORKDIR_TAG not in experiment.tags:
        tracker.tag_experiment(experiment_id, {WORKDIR_TAG: str(target.workdir)})
    return experiment_id


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
        # Derived from the sweep, never read from the run's tags: anyone who may write to the
        # tracking store (often without authentication) could point a tag at any folder, and
        # the job would write there (issue 23, item 5).
        run_id = item.mlflow_run.info.run_id
        logdir = logdir_for(target, item.run, run_id)
        tagged = item.mlflow_run.data.tags.get(tracking.LOGDIR_TAG)
        if tagged != logdir:
            print(
                f"warning: MLflow run {run_id} ({item.run.label}) has its tag "
                f"{tracking.LOGDIR_TAG}={tagged!r}, not its logdir in the sweep's folder; "
                f"it resumes in {logdir} and the tag is set back to it",
                file=sys.stderr,
                flush=True,
            )
        # status shows the new budget at once
        tracker.tag(
            run_id,
            {
                "budget_steps": item.run.config.run.steps,
                LAUNCHER_TAG: launcher,
                "logdir": logdir,
            },
        )
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
