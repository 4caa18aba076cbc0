"""MLflow output: the recorder of one MLflow run while a job (or ``train --tracking-uri``) trains
it.

It decides what to send and when; every MLflow write goes through
:class:`dreamerbench.experiments.tracking.Tracker` (``experiments/tracking.py`` is the one module
that changes MLflow state and holds the schema). Delivery is
:func:`dreamerbench.core.records.deliver` from the cursor MLflow holds in the run's tags:
``dreamerbench.delivered`` (bytes of each JSONL file) and ``dreamerbench.delivered_files`` (the run
id, the logdir and the head of each file those bytes were counted in), written in the same
``log_batch`` as the metrics they count (at most 1000 metrics each: MLflow's limit). The cursor
applies only to its own run, logdir and timeline: another logdir is refused when the recorder
is made (:func:`logdir_clash`), before the run is marked RUNNING; another timeline of a file
(a run started afresh after its only checkpoint was lost) is delivered from its start.

An MLflow error during delivery (any: a store that is down answers in many ways, e.g. HTTP 400
"Invalid HTTP request received" from a server that is restarting) only postpones it: the
records wait on disk, one warning says so, and the saves that follow skip MLflow for a while
(:data:`PAUSE_S`, doubling while it lasts) instead of waiting for it at each save. Ending the
run always tries at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dreamerbench.core.files import StorageError
from dreamerbench.core.records import Cursor, Record, deliver, deliverable_media
from dreamerbench.experiments.tracking import (
    DELIVERED_FILES_TAG,
    DELIVERED_TAG,
    LOGDIR_TAG,
    METRICS_PER_BATCH,
    STEPS_TAG,
    Tracker,
    TrackingUnavailable,
    first_line,
    record_metrics,
)

PAUSE_S = (30.0, 600.0)
"""Seconds the saves after a failed delivery skip MLflow: the first pause, and the longest (each
failure in a row doubles it)."""


def logdir_clash(run, logdir: str | Path) -> str | None:
    """Why MLflow run `run` (an ``mlflow.entities.Run``) cannot record `logdir`, or None if it can:
    its ``dreamerbench.logdir`` tag or its delivery cursor names another logdir (its records
    came, or will come, from there). Paths compare absolute, symlinks not followed (a Slurm
    node may reach one directory by another real path)."""
    here = os.path.abspath(logdir)
    tags = run.data.tags
    bound = json.loads(tags.get(DELIVERED_FILES_TAG) or "{}")
    for where in (tags.get(LOGDIR_TAG), bound.get("logdir")):
        if where and os.path.abspath(where) != here:
            return f"MLflow run {run.info.run_id} records the logdir {where}, not {here}"
    if bound.get("run_id") not in (None, run.info.run_id):
        return f"the delivery cursor of MLflow run {run.info.run_id} counts run {bound['run_id']}"
    return None


class RunRecorder:
    """One MLflow run while a job trains it: a trainer Output (``publish``, ``close``) and
    :meth:`end`. Made by :meth:`dreamerbench.experiments.tracking.Tracker.start`; StorageError
    if the run belongs to another logdir (:func:`logdir_clash`). `queued`: a queue takes the run
    up again if it stops early (a sweep's job), else its user does (``train``)."""

    def __init__(
        self,
        tracker: Tracker,
        run_id: str,
        logdir: str | Path,
        logs: Sequence[str | Path] = (),
        queued: bool = True,
    ):
        self.tracker, self.run_id, self.logdir = tracker, run_id, Path(logdir)
        self.queued = queued
        self.logs = [Path(path) for path in logs]
        run = tracker.run(run_id)
        clash = logdir_clash(run, self.logdir)
        if clash:
            raise StorageError(f"{clash}; train that logdir, or delete the MLflow run")
        tags = run.data.tags
        bound = json.loads(tags.get(DELIVERED_FILES_TAG) or "{}")
        offsets = Cursor.from_json(tags.get(DELIVERED_TAG)).offsets
        self.cursor = Cursor(offsets, dict(bound.get("heads") or {}))
        self.steps_done = int(tags.get(STEPS_TAG, "0") or 0)
        self._pause_s = 0.0  # 0 while MLflow takes what it is sent
        self._retry_at = 0.0  # time.monotonic() before which publish skips MLflow
        self._replaced: set[str] = set()

    def publish(self, logdir: Path) -> None:
        """Deliver what is deliverable from `logdir` (the recorder's own; the trainer names it for
        outputs that do not know it), then upload the job's logs. A delivery MLflow does not
        take only postpones it: one warning, then the saves of the next :data:`PAUSE_S` seconds
        skip MLflow (see the module doc)."""
        if time.monotonic() < self._retry_at:
            return
        try:
            self._deliver()
        except TrackingUnavailable as error:
            if not self._pause_s:
                print(
                    f"warning: {error}; the records wait in {self.logdir} and are delivered "
                    f"later (MLflow is tried again at a save after {PAUSE_S[0]:.0f} s or more)",
                    file=sys.stderr,
                    flush=True,
                )
            self._pause_s = min(2 * self._pause_s or PAUSE_S[0], PAUSE_S[1])
            self._retry_at = time.monotonic() + self._pause_s
            return
        self._pause_s = 0.0
        self.upload_logs()

    def upload_logs(self) -> None:
        """Upload the job's log files (:meth:`Tracker.upload_logs`): at every checkpoint and when
        the job ends (finished, stopped to be requeued; :meth:`Tracker.fail` when it failed)."""
        self.tracker.upload_logs(self.run_id, self.logs)

    def pending(self) -> int:
        """Bytes of the logdir's records that MLflow does not hold yet."""
        return self.cursor.pending(self.logdir)

    def close(self) -> None:
        """The trainer stopped the run: deliver what became final, at once (:meth:`end` follows)."""
        self._retry_at = 0.0
        self.publish(self.logdir)

    def end(self, summary: Mapping[str, Any] | None = None, error: str | None = None) -> None:
        """The run's end, from its `summary` (finished or stopped) or its `error` (failed).

        Finished: deliver every record, then FINISHED (TrackingUnavailable if MLflow cannot
        take them all: the run stays unfinished and a re-run delivers them). Stopped early:
        deliver what is deliverable, then SCHEDULED if its queue resumes it, else KILLED (its
        user does: :meth:`Tracker.kill`). Failed: deliver what is
        deliverable (after a failure in the loop, everything its resume's checkpoint covers:
        :func:`dreamerbench.agent.rundir.settle_pack`), then FAILED with the error
        (:meth:`Tracker.fail`); never raises, a store that cannot take the records leaves them
        on disk (a warning) for the run's next job.
        """
        self._retry_at = 0.0
        if error is not None:
            self._fail(error)
        elif not summary.get("finished"):
            self.publish(self.logdir)
            if self.queued:
                self.tracker.reschedule(self.run_id)
            else:
                self.tracker.kill(self.run_id)
        else:
            self._deliver()
            left = self.pending()
            if left:
                raise TrackingUnavailable(
                    f"MLflow at {self.tracker.uri} did not take {left} bytes of records of "
                    f"{self.logdir}"
                )
            self.upload_logs()
            self.tracker.finish(self.run_id, summary)

    def _fail(self, error: str) -> None:
        try:
            self._deliver()
        except Exception as delivery_error:  # noqa: BLE001 - the job is failing already
            print(
                f"warning: {first_line(delivery_error)}; the records wait in {self.logdir} and "
                "are delivered by the run's next job",
                file=sys.stderr,
                flush=True,
            )
        self.tracker.fail(self.run_id, error, self.logs)

    def _deliver(self) -> None:
        """Deliver the records and media; TrackingUnavailable for any MLflow error."""
        from mlflow.exceptions import MlflowException

        try:
            self._deliver_all()
        except MlflowException as error:
            raise TrackingUnavailable(
                f"MLflow at {self.tracker.uri} did not take the records: {first_line(error)}"
            ) from None

    def _deliver_all(self) -> None:
        replaced = set(self.cursor.replaced(self.logdir)) - self._replaced
        for name in sorted(replaced):
            print(
                f"warning: {self.logdir / name}.jsonl is not the file whose records MLflow run "
                f"{self.run_id} holds (the run started afresh: its checkpoint was lost); its "
                "records are delivered from its start, beside the earlier ones",
                file=sys.stderr,
                flush=True,
            )
        self._replaced |= replaced
        self._hold_media()
        self.cursor = deliver(
            self.logdir, self.cursor, self._send, METRICS_PER_BATCH, self._send_media
        )

    def _send(self, file: str, records: list[Record], cursor: Cursor) -> None:
        """One log_batch: the metrics, and the cursor that says MLflow holds them."""
        step = max(self.steps_done, *(record.step for record in records))
        bound = {"run_id": self.run_id, "logdir": os.path.abspath(self.logdir)}
        tags = {
            DELIVERED_TAG: json.dumps(dict(cursor.offsets)),
            DELIVERED_FILES_TAG: json.dumps({**bound, "heads": dict(cursor.heads)}),
            STEPS_TAG: str(step),
        }
        self.tracker.log_batch(self.run_id, record_metrics(records), tags)
        self.cursor, self.steps_done = cursor, step

    def _hold_media(self) -> None:
        """Count in the cursor the deliverable media files MLflow holds already (uploaded by an
        earlier job of the run: the run's artifacts are their record), listed only when there are
        files the cursor does not count."""
        new = {path.name for path in deliverable_media(self.logdir)} - self.cursor.media
        if new:
            held = self.tracker.artifacts(self.run_id, "media") & new
            self.cursor = dataclasses.replace(self.cursor, media=self.cursor.media | held)

    def _send_media(self, path: Path, cursor: Cursor) -> None:
        """Upload one final media file (a video, an open-loop report) under ``media/``."""
        self.tracker.upload(self.run_id, path, "media")
        self.cursor = cursor
