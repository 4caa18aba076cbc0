"""What runs inside a job: one or more packs of training runs, checkpointable and requeueable.

A pack is up to ``seeds_per_process`` runs that differ only in seed, trained by
one vmapped train step (``Trainer.packed``); each run keeps its own MLflow run
and logdir. :class:`SweepJob` is a submitit ``Checkpointable``. Its packs train
in threads (several when a profile puts ``runs_per_job`` packs onto one GPU) so
that the main thread stays free for submitit's signal handler: on USR2 (preemption or time-out),
:meth:`SweepJob.checkpoint` sets the trainers' stop event, waits until each has
saved its checkpoint and delivered its records to MLflow, and returns a
``DelayedSubmission`` of the unfinished runs. After the requeue they resume
from their logdirs into the same MLflow runs (the run ids travel with the job).

The local executor starts the same job as ``python -m dreamerbench.experiments.job FILE``;
there SIGINT / SIGTERM play the part of USR2.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from dreamerbench.agent.rundir import LogdirBusy
from dreamerbench.experiments import tracking

EXIT_INTERRUPTED = 3
"""Exit code of ``python -m dreamerbench.experiments.job`` when it stopped early; re-running
resumes."""


@dataclass(frozen=True)
class RunTask:
    """One run as a job sees it."""

    run_id: str
    """MLflow run id (created by the launcher)."""
    key: str
    """The run's stable key."""
    label: str
    """task/seed[/grid point], for humans."""
    logdir: str
    """Checkpoints and replay; the trainer resumes from here."""
    config: Mapping[str, Any]
    """Resolved config as a plain dict (dreamerbench.agent.config.to_dict)."""


def _now() -> str:
    """UTC time for the job's log lines."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


def _jsonable(value: Any) -> Any:
    return json.loads(
        json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    )


class SweepJob(submitit.helpers.Checkpointable):
    """Train `packs` of runs (one thread per pack) and record each run into its MLflow run.

    A pack is a list of runs that differ only in seed; its runs train in lockstep
    with one vmapped train step (``Trainer.packed``), so they finish, stop and
    fail together.
    """

    def __init__(self, packs: list[list[RunTask]], tracking_uri: str, experiment_id: str):
        self.packs = [list(pack) for pack in packs]
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.local_log: str | None = None
        """The local launcher's ``job.log`` (set by :func:`main`); inside Slurm submitit's files
        count."""
        self._reset()

    def log_files(self) -> list[str]:
        """Where this job's output goes: the files of the launcher whose job this process runs
        (``launchers.current().log_files``; inside Slurm submitit's stdout and stderr), else the
        local launcher's ``job.log``."""
        from dreamerbench.experiments import launchers  # they import this module

        return launchers.current().log_files(self.local_log)

    def _reset(self) -> None:
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._results: dict[str, dict[str, Any]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {
            "packs": self.packs,
            "tracking_uri": self.tracking_uri,
            "experiment_id": self.experiment_id,
            "local_log": self.local_log,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def save(self, path: str | os.PathLike) -> None:
        """Write the job as JSON to `path` (atomically: a reader never sees half a file).

        The local executor's job file; plain data, so reading it cannot run code
        (unlike a pickle). Raises OSError if it cannot be written.
        """
        state = {
            **self.__getstate__(),
            "packs": [[dataclasses.asdict(task) for task in pack] for pack in self.packs],
        }
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(_jsonable(state), indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SweepJob:
        """The job :meth:`save` wrote to `path`."""
        state = json.loads(Path(path).read_text())
        packs = [[RunTask(**task) for task in pack] for pack in state["packs"]]
        return cls(packs, state["tracking_uri"], state["experiment_id"])

    def __call__(self) -> dict[str, dict[str, Any]]:
        """Train every run to its budget (or until stopped); return key -> summary."""
        self._threads = [
            threading.Thread(target=self._run_pack, args=(pack,), name=f"pack-{pack[0].key}")
            for pack in self.packs
        ]
        for thread in self._threads:
            thread.start()
        # Short joins keep the main thread responsive to signal handlers.
        while any(thread.is_alive() for thread in self._threads):
            for thread in self._threads:
                thread.join(timeout=0.2)
        failed = {k: r["error"] for k, r in self._results.items() if "error" in r}
        if failed:
            raise RuntimeError(
                "runs failed: "
                + "; ".join(f"{k}: {e.strip().splitlines()[-1]}" for k, e in failed.items())
            )
        return dict(self._results)

    def request_stop(self) -> None:
        """Ask every trainer to save a checkpoint at its next safe point and return."""
        self._stop.set()

    @property
    def stopped_early(self) -> bool:
        return any(not r.get("finished") and "error" not in r for r in self._results.values())

    def checkpoint(self) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on USR2: stop, wait for the checkpoints, requeue what is left.

        The unfinished runs keep their packs: they hold checkpoints at the same step.
        """
        self.request_stop()
        for thread in self._threads:
            thread.join()
        remaining = [[task for task in pack if self._unfinished(task)] for pack in self.packs]
        return submitit.helpers.DelayedSubmission(
            SweepJob([pack for pack in remaining if pack], self.tracking_uri, self.experiment_id)
        )

    def _unfinished(self, task: RunTask) -> bool:
        result = self._results.get(task.key, {})
        return not result.get("finished") and "error" not in result

    def _run_pack(self, pack: list[RunTask]) -> None:
        outputs: list[list] = []
        tracker = None
        try:
            from dreamerbench.agent.config import from_dict, validate
            from dreamerbench.agent.trainer import Trainer
            from dreamerbench.experiments.outputs import build

            tracker = tracking.Tracker(self.tracking_uri)
            configs = [validate(from_dict(task.config)) for task in pack]  # before RUNNING
            logdirs = [task.logdir for task in pack]
            run_ids = [task.run_id for task in pack]
            outputs = build(configs, logdirs, tracker, run_ids, self.log_files())
            for task in pack:
                print(
                    f"{_now()} {task.label}: training to {task.config['run']['steps']:,} steps "
                    f"(MLflow run {task.run_id}, logdir {task.logdir})",
                    flush=True,
                )
            summaries = Trainer.packed(configs, logdirs, outputs).run_all(stop=self._stop)
        except LogdirBusy as error:  # another job trains these runs: their MLflow runs are its own
            self._record_error(pack, str(error), None)
            return
        except BaseException:  # noqa: BLE001 - recorded, then reported by __call__
            self._record_error(pack, traceback.format_exc(), tracker, outputs)
            return
        from dreamerbench.experiments.outputs import end

        for task, run_outputs, summary in zip(pack, outputs, summaries):
            summary = _jsonable(dict(summary))
            state = "finished" if summary.get("finished") else "stopped (resumable)"
            print(
                f"{_now()} {task.label}: {state} at {summary.get('steps', 0):,} steps, "
                f"{summary.get('updates', 0):,} updates, {summary.get('episodes', 0)} episodes, "
                f"last score {summary.get('last_score')}",
                flush=True,
            )
            try:
                end(run_outputs, summary)
            except tracking.TrackingUnavailable as error:
                # The records wait in the logdir; the run stays unfinished, and the
                # next job of it (a re-run of the sweep) delivers them.
                print(
                    f"run {task.label} ({task.key}): {error}; re-run the sweep to deliver them",
                    file=sys.stderr,
                    flush=True,
                )
                summary = {**summary, "finished": False}
            self._results[task.key] = summary

    def _record_error(
        self,
        pack: list[RunTask],
        error: str,
        tracker: tracking.Tracker | None,
        outputs: list[list] = (),
    ) -> None:
        """Report a failed pack; mark each of its MLflow runs FAILED through `tracker` (None: leave
        them): those whose outputs were built (`outputs`, in pack order) are ended with the error
        (:func:`dreamerbench.experiments.outputs.end`: once MLflow holds their deliverable
        records; the trainer settled the logdirs for that), the others by `tracker` alone."""
        from dreamerbench.experiments.outputs import end

        labels = ", ".join(f"{task.label} ({task.key})" for task in pack)
        print(f"runs {labels} failed:\n{error}", file=sys.stderr, flush=True)
        for i, task in enumerate(pack):
            self._results[task.key] = {"error": error, "finished": False}
            if i < len(outputs):
                end(outputs[i], error=error)
            elif tracker is not None:
                tracker.fail(task.run_id, error, self.log_files())


def main(argv: list[str] | None = None) -> int:
    """``python -m dreamerbench.experiments.job JOB.json [LOG]``: the worker process of a launcher
    such as the local one, whose output goes to LOG (uploaded to the runs' MLflow artifacts)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (1, 2):
        print("usage: python -m dreamerbench.experiments.job JOB.json [LOG]", file=sys.stderr)
        return 2
    job = SweepJob.load(argv[0])
    job.local_log = argv[1] if len(argv) == 2 else None

    def stop(signum, frame):  # noqa: ARG001
        print(
            f"dreamerbench.experiments.job: {signal.Signals(signum).name}: "
            "checkpointing, then exiting",
            file=sys.stderr,
            flush=True,
        )
        job.request_stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        job()
    except RuntimeError as error:
        print(f"dreamerbench.experiments.job: {error}", file=sys.stderr)
        return 1
    return EXIT_INTERRUPTED if job.stopped_early else 0


if __name__ == "__main__":
    sys.exit(main())
