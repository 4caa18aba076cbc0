"""MLflow: the one module that changes MLflow state, and the schema that every reader shares.

Every MLflow write of the project goes through :class:`Tracker` here; the run's recorder
(:class:`dreamerbench.experiments.outputs.mlflow.RunRecorder`, one of a run's outputs) decides
what to send and when, and sends it through :class:`Tracker` too.

Recording a run (what ``dreamerbench sweep`` and its jobs do; a single ``train`` run
does the same with a RunSpec of its own)::

    tracker = Tracker(uri)                             # one line naming the URI if unreachable
    experiment_id = tracker.experiment(name)           # created if missing (race-safe)
    run_id = tracker.schedule(experiment_id, run, git, logdir_for)  # SCHEDULED, tags, params
    outputs = build([config], [logdir], tracker, [run_id])[0]  # RUNNING; experiments.outputs
    summary = Trainer(config, logdir, outputs).run()   # output.publish(logdir) after each save
    end(outputs, summary)                              # FINISHED once MLflow holds every record
    end(outputs, error=traceback)                      # or FAILED (after delivering), error tag

Reading runs (``dreamerbench status``, ``table``, ``plot``): ``Tracker(uri, create=False)``,
:meth:`Tracker.find_experiment`, :meth:`Tracker.runs`, :func:`runs_by_key`,
:meth:`Tracker.histories`.

Schema:

- experiment name = sweep name; the launcher creates it before submitting and
  passes its id to the jobs (concurrent ``set_experiment`` calls race).
- tags: ``dreamerbench.{run_key,sweep,suite,task,seed,method,grid.<key>}``,
  ``dreamerbench.{git_commit,git_dirty}``, ``dreamerbench.version`` (``dreamerbench.__version__``
  of the launcher, then of the newest job that trained the run), ``dreamerbench.{slurm_job_id,
  slurm_array_job_id,slurm_array_task_id,host,local_pid}``, ``dreamerbench.logdir``,
  ``dreamerbench.steps_done`` (step of the newest record MLflow holds),
  ``dreamerbench.delivered`` (bytes of each JSONL file of the logdir MLflow holds),
  ``dreamerbench.delivered_files`` (what those bytes count: the run id, the logdir and the
  :func:`dreamerbench.core.records.head` of each file; another logdir is refused, another
  timeline delivered from its start),
  ``dreamerbench.resumed_at`` (``steps_done`` when a job took the run up again),
  ``dreamerbench.budget_steps`` (``run.steps`` the newest job trains to: a larger
  ``steps`` continues a finished run, and params cannot change; :func:`budget_steps`),
  ``dreamerbench.error`` (on FAILED runs), ``dreamerbench.command`` (``train`` on runs of
  ``dreamerbench train``), ``mlflow.note.content`` (:data:`DESCRIPTION_TAG`: the run's
  description in MLflow's UI; ``train`` writes its command line there, credentials redacted).
- run name: :func:`run_name` (``SUITE/TASK/seedSEED-KEY6``).
- params: the flattened resolved config and ``protocol.<key>`` of the suite
  protocol; logged once, when the launcher creates the run.
- metrics: ``episode/<field>`` (``score``, ``length``, ``index``, ``wall_s``,
  ``achievement_<name>``, ``milestone_<name>``), ``train/<name>``, ``fps/<name>``,
  ``eval/<field>`` (evaluation episodes, ``run.eval_every``: ``score``, ``length``, ``index``);
  step = agent steps; timestamp = the record's ``time_ms``. All metrics of one record
  share its timestamp, and no two records of a file share one (``agent/rundir.py``),
  so MLflow, which keeps one row per (key, value, step, timestamp), keeps every
  record, and a reader pairs an episode's fields by (step, timestamp).
- artifacts: ``config.yaml`` (resolved config), ``summary.json`` (final summary) and
  ``media/<kind>-<step>.gif`` (episode videos and open-loop reports, ``run.video_every``),
  each uploaded once it is final (:func:`dreamerbench.core.records.deliverable_media`); a file
  MLflow holds already is not sent again; ``logs/`` (the job's ``job.log``, or Slurm's stdout and
  stderr files: uploaded at every checkpoint and when the job ends, finished, requeued or
  failed; tag ``dreamerbench.logs`` names where they are written).

Lifecycle: the launcher creates runs SCHEDULED; a job sets RUNNING when it starts,
FINISHED or FAILED at the end, and SCHEDULED again when it stops early to be requeued.
A run of ``dreamerbench train`` stopped early (Ctrl-C, SIGTERM) is KILLED: no queue takes it up,
its command resumes it (RUNNING again, then FINISHED); a hard-killed one stays RUNNING with no
process left, which ``status`` shows as interrupted.

Exactly once: records go to MLflow only from the run's JSONL files, from the byte
MLflow acknowledged (``dreamerbench.delivered``, of the timeline ``dreamerbench.delivered_files``
names) up to what :func:`dreamerbench.core.records.deliverable` allows (what no resume can cut
back any more): :func:`dreamerbench.core.records.deliver`, the loop every output uses.
A record delivered twice (a cursor update lost with the connection) has the same
(key, value, step, timestamp) and MLflow keeps it once. A store that cannot be reached
only delays delivery: the records wait on disk, and the next job of the run (a re-run
of the sweep resubmits it) delivers them; a run is FINISHED only once MLflow holds all.
A run that fails is marked FAILED after MLflow took what its resume's checkpoint covers
(:func:`dreamerbench.agent.rundir.settle_pack` makes that deliverable; what came after that
checkpoint is trained again by ``--rerun-failed`` and delivered then).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dreamerbench import __version__
from dreamerbench.agent.config import flatten, to_dict
from dreamerbench.core.files import FileLock, StorageError, file_in_the_way
from dreamerbench.core.records import Record

TAG = "dreamerbench."
STEPS_TAG = TAG + "steps_done"
DELIVERED_TAG = TAG + "delivered"
DELIVERED_FILES_TAG = TAG + "delivered_files"
LOGDIR_TAG = TAG + "logdir"
DESCRIPTION_TAG = "mlflow.note.content"
"""MLflow's own tag of a run's description (shown on the run's page of its UI)."""
METRICS_PER_BATCH = 1000  # MLflow's limit per log_batch call
PARAMS_PER_BATCH = 100  # MLflow's limit per log_batch call
ACTIVE_STATES = ("SCHEDULED", "RUNNING")

# MLflow's HTTP client retries a failed call 7 times with exponential back-off
# (about 4 minutes) and waits 120 s for an answer. These defaults (a user's own
# MLFLOW_HTTP_* settings win) make an unreachable server an error within seconds.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


def _schema_complete(db: Path) -> bool:
    """Whether the sqlite file `db` holds a finished MLflow schema: its ``alembic_version`` is
    the installed MLflow's newest revision (a store being set up passes through the older
    ones); read without writing anything."""
    import sqlite3

    from mlflow.store.db.utils import _get_latest_schema_revision  # what MLflow checks

    try:
        with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as c:
            found = c.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return False
    return found == [(_get_latest_schema_revision(),)]


class TrackingUnavailable(StorageError):
    """The MLflow store does not answer (or refuses a write); nothing on disk is lost."""


def default_tracking_uri(workdir: str | os.PathLike | None = None) -> str:
    """The embedded default: a sqlite file in the working directory."""
    return f"sqlite:///{Path(workdir or os.getcwd()).resolve() / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URI as this project writes it (PATH taken
    literally: ``?``, ``%`` and ``#`` are characters of the path); None for other URIs."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def mlflow_uri(uri: str) -> str:
    """`uri` as MLflow must be given it: SQLAlchemy reads ``?`` in a sqlite URL as the start of
    its options and percent-decodes the path, so ``%``, ``?`` and ``#`` of the path are
    percent-encoded (anything else passes as it is)."""
    path = sqlite_path(uri)
    if path is None:
        return uri
    escape = {"%": "%25", "?": "%3F", "#": "%23"}
    return "sqlite:///" + "".join(escape.get(char, char) for char in str(path))


SQLITE_MAGIC = b"SQLite format 3\x00"
"""The first 16 bytes of every sqlite 3 database file (https://sqlite.org/fileformat.html)."""


def _not_sqlite(db: Path) -> str | None:
    """Why the file at `db` cannot be a sqlite store, as a phrase naming it and what is allowed;
    None if it can: missing (a new store), empty (sqlite's own new database) or a sqlite 3 file.
    Checked before the store is opened, which would create files beside it."""
    if db.is_dir():
        return f"{db} is a folder; allowed: a sqlite database file, new or existing"
    try:
        with open(db, "rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except (FileNotFoundError, NotADirectoryError):  # a new store (or none: Tracker says why)
        return None
    except OSError as error:
        return f"{db} cannot be read ({error.strerror})"
    if head and head != SQLITE_MAGIC:
        return (
            f"{db} is not a sqlite database (it begins {head[:8]!r}); allowed: a sqlite "
            "database file, new or existing (e.g. sqlite:///mlflow.db)"
        )
    return None


def resolve_tracking_uri(uri: str | None = None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the embedded default.

    Relative sqlite paths become absolute so that jobs started elsewhere (Slurm
    nodes, other working directories) write to the same store. The path of a sqlite URI is
    taken literally (any legal file name; no ``?options``): :func:`mlflow_uri` encodes it for
    MLflow, so resolving a resolved URI changes nothing. ValueError (one line, naming the URI
    :func:`redact`-ed) for credentials in the URI (they belong in MLflow's environment
    variables), for an unsupported scheme and for a sqlite path that holds something other
    than a sqlite database (:func:`_not_sqlite`: before MLflow, which would create files
    beside it and then fail with a traceback).
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    parsed = urlparse(uri)
    shown = redact(uri)  # every message names the URI without its credentials
    if "@" in parsed.netloc:
        raise ValueError(
            f"tracking URI {shown!r}: credentials in the URI would be printed and stored in the "
            "sweep's job files; give them as MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) in the environment, which "
            "MLflow and the sweep's jobs read (a database: PGPASSWORD or ~/.pgpass)"
        )
    if parsed.scheme == "sqlite":
        if not uri.startswith("sqlite:///"):
            raise ValueError(f"tracking URI {shown!r}: expected sqlite:///PATH")
        # sqlite:///relative/path or sqlite:////absolute/path (SQLAlchemy's form).
        resolved = f"sqlite:///{sqlite_path(uri).resolve()}"
        not_sqlite = _not_sqlite(sqlite_path(resolved))
        if not_sqlite:
            raise ValueError(f"tracking URI {resolved}: {not_sqlite}")
        return resolved
    if parsed.scheme in ("", "file"):
        raise ValueError(
            f"tracking URI {shown!r}: MLflow 3 keeps the file store in maintenance mode; "
            "use sqlite:///PATH/mlflow.db (the default) or http://HOST:PORT of an mlflow server"
        )
    if parsed.scheme not in ("http", "https", "postgresql", "mysql", "databricks"):
        raise ValueError(
            f"tracking URI {shown!r}: unsupported scheme {parsed.scheme!r}; "
            "allowed: sqlite, http, https, postgresql, mysql, databricks"
        )
    return uri


_CREDENTIALS = re.compile(r"(?<=://)[^/?#\s]*@")
"""The credentials (``user:password@``) of each URI's authority in a text."""


def redact(text: str) -> str:
    """`text` (a URI, or a command line with URIs in it) with the credentials of each URI's
    authority (``user:password@``) shown as ``***@``."""
    return _CREDENTIALS.sub("***@", text)


class Tracker:
    """One MLflow tracking store; every MLflow write of the project goes through it.

    `uri` as :func:`resolve_tracking_uri`. Raises TrackingUnavailable (one line
    naming the URI) if an http(s) server does not answer within seconds, and
    FileNotFoundError if a sqlite store does not exist and `create` is False
    (readers must not create an empty store). Concurrent first uses of a new
    sqlite file are serialised (MLflow's schema creation is not safe to race).
    A reader (`create` False) needs no write access to a sqlite store (a shared results
    folder): where it may not write it takes no lock; where it may, it waits like a writer for
    a new store's schema. A writer refuses a sqlite store it may not write to
    (TrackingUnavailable, one line) before anything starts.
    """

    def __init__(self, uri: str | None = None, create: bool = True):
        self.uri = resolve_tracking_uri(uri)
        for name, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        scheme = urlparse(self.uri).scheme
        if scheme == "sqlite":
            db = sqlite_path(self.uri)
            blocked = file_in_the_way(db.parent)
            if blocked is not None:
                raise FileNotFoundError(
                    f"tracking URI {self.uri}: {blocked} is a file, not a directory"
                )
            if not create and not db.exists():
                raise FileNotFoundError(
                    f"no MLflow store at {self.uri}; run a sweep first or pass --tracking-uri"
                )
            if not db.parent.is_dir():
                raise FileNotFoundError(
                    f"tracking URI {self.uri}: directory {db.parent} does not exist"
                )
            # sqlite writes a journal beside the database: the folder must be writable too.
            if create and not all(
                os.access(path, os.W_OK) for path in (db.parent, db) if path.exists()
            ):
                raise TrackingUnavailable(
                    f"tracking URI {self.uri}: {db.parent} is read-only for this user; "
                    "pass a --tracking-uri you may write to (reading it works: status, table, "
                    "plot)"
                )
        elif scheme in ("http", "https"):
            _check_server(self.uri)
        if scheme != "sqlite":
            from mlflow import MlflowClient  # lazy: importing mlflow costs about a second

            self.client = MlflowClient(tracking_uri=self.uri)
            return
        if not create and (not os.access(db.parent, os.W_OK) or _schema_complete(db)):
            # A read-only store (a shared results folder): no lock can be taken there, and no
            # writer can be setting it up; or a store whose schema is made: nothing to wait
            # for, and a reader leaves the store's folder as it was (the lock file too).
            self.client = _sqlite_client(db)
            return
        # The client's store creates the schema of a new database file, and two
        # processes doing that at once crash (alembic): one at a time.
        lock = FileLock(Path(f"{db}.lock"))
        if not lock.acquire(wait_s=120):
            raise TrackingUnavailable(
                f"{db} is being set up by {lock.holder()} for more than 120 s"
            )
        try:
            self.client = _sqlite_client(db)
        finally:
            lock.release()

    def call(self, method: Callable, *args, **kwargs):
        """``method(*args, **kwargs)`` of the MLflow client; an unreachable store raises
        TrackingUnavailable.

        A sqlite store is tried three times over about 3 s: other jobs writing to it
        make it busy ("database is locked") for a moment.
        """
        from mlflow.exceptions import MlflowException
        from sqlalchemy.exc import OperationalError

        attempts = 3 if self.uri.startswith("sqlite:") else 1
        for attempt in range(attempts):
            try:
                return method(*args, **kwargs)
            except MlflowException as error:
                if error.error_code not in (
                    "INTERNAL_ERROR",
                    "TEMPORARILY_UNAVAILABLE",
                    "REQUEST_LIMIT_EXCEEDED",
                ):
                    raise
                reason = error
            except (OSError, OperationalError) as error:
                reason = error
            if attempt + 1 < attempts:
                time.sleep(2**attempt)
        raise TrackingUnavailable(f"MLflow at {self.uri} failed: {first_line(reason)}")

    # ------------------------------------------------------------------ reading

    def find_experiment(self, name: str):
        """The experiment called `name`; ValueError naming the ones there are if it does not
        exist."""
        experiment = self.call(self.client.get_experiment_by_name, name)
        if experiment is None:
            names = [
                e.name for e in self.call(self.client.search_experiments) if e.name != "Default"
            ]
            raise ValueError(
                f"experiment={name!r} does not exist in {self.uri}; "
                f"allowed: {', '.join(names) or '(none)'}"
            )
        return experiment

    def runs(self, experiment_id: str) -> list:
        """Every active (not deleted) run of an experiment, oldest first (all pages)."""
        from mlflow.entities import ViewType

        runs, token = [], None
        while True:
            page = self.call(
                self.client.search_runs,
                [experiment_id],
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=1000,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def run(self, run_id: str):
        return self.call(self.client.get_run, run_id)

    def histories(
        self, run_ids: list[str], keys: list[str]
    ) -> list[tuple[str, str, int, int, float]]:
        """(run_id, key, step, timestamp, value) of every value of `keys` logged by `run_ids`.

        SQL stores answer one query per key for all runs (``get_metric_history_bulk``);
        other stores (a tracking server over HTTP) take one call per run and key.
        MLflow's public client has no bulk call, hence the store lookup.
        """
        bulk = getattr(self.client._tracking_client.store, "get_metric_history_bulk", None)
        rows = []
        for key in keys:
            if bulk is not None:
                rows += [
                    (m.run_id, key, m.step, m.timestamp, m.value)
                    for m in self.call(bulk, run_ids, key, max_results=2**62)
                ]
            else:
                for run_id in run_ids:
                    rows += [
                        (run_id, key, m.step, m.timestamp, m.value)
                        for m in self.call(self.client.get_metric_history, run_id, key)
                    ]
        return rows

    # ---------------------------------------------------------------- lifecycle

    def experiment(self, name: str, tags: Mapping[str, str] | None = None) -> str:
        """The id of the experiment called `name`, created if missing (race-safe) with the
        ``dreamerbench.<name>`` `tags` (name -> value) set in the same call."""
        from mlflow.exceptions import MlflowException

        experiment = self.call(self.client.get_experiment_by_name, name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                self.call(self.client.restore_experiment, experiment.experiment_id)
            return experiment.experiment_id
        try:
            return self.call(
                self.client.create_experiment,
                name,
                artifact_location=_artifact_root(self.uri, name),
                tags={TAG + "sweep": name, **{TAG + k: v for k, v in (tags or {}).items()}},
            )
        except MlflowException:  # created by another process meanwhile
            experiment = self.call(self.client.get_experiment_by_name, name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def schedule(
        self, experiment_id: str, run, git: Mapping[str, str], logdir_for: Callable[[str], str]
    ) -> str:
        """Create the MLflow run of sweep run `run` (a spec.RunSpec), SCHEDULED; returns its id.

        `logdir_for(run_id)` names its logdir (one per MLflow run, so a new MLflow
        run never resumes another one's checkpoint).
        """
        from mlflow.entities import Param, RunTag

        created = self.call(
            self.client.create_run,
            experiment_id,
            tags=run_tags(run, git),
            run_name=run_name(run),
        )
        run_id = created.info.run_id
        tags = [RunTag(LOGDIR_TAG, logdir_for(run_id)), RunTag(STEPS_TAG, "0")]
        params = [Param(k, v) for k, v in sorted(run_params(run).items())]
        for start in range(0, max(len(params), 1), PARAMS_PER_BATCH):
            self.call(
                self.client.log_batch,
                run_id,
                params=params[start : start + PARAMS_PER_BATCH],
                tags=tags,
            )
        self.reschedule(run_id)
        return run_id

    def reschedule(self, run_id: str) -> None:
        """Mark a run SCHEDULED: a job will take it up (again)."""
        self.call(self.client.update_run, run_id, status="SCHEDULED")

    def tag_experiment(self, experiment_id: str, tags: Mapping[str, str]) -> None:
        """Set ``dreamerbench.<name>`` tags of an experiment (`tags` maps name -> value)."""
        for name, value in tags.items():
            self.call(self.client.set_experiment_tag, experiment_id, TAG + name, str(value))

    def kill(self, run_id: str) -> None:
        """Mark a run KILLED (MLflow's status of an interrupted run): it stopped early and no
        queue takes it up; its user resumes it (``dreamerbench train`` again)."""
        self.call(self.client.set_terminated, run_id, status="KILLED")

    def tag(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set ``dreamerbench.<name>`` tags of a run (`tags` maps name -> value)."""
        from mlflow.entities import RunTag

        self.call(
            self.client.log_batch, run_id, tags=[RunTag(TAG + k, str(v)) for k, v in tags.items()]
        )

    def fail(self, run_id: str, error: str, logs: Sequence[str | Path] = ()) -> None:
        """Mark a run FAILED with `error` (its last 4000 characters) as the ``dreamerbench.error``
        tag, after uploading the job's `logs` (:meth:`upload_logs`); an unreachable store is
        reported on stderr, not raised (the job is failing already)."""
        try:
            self.tag(run_id, {"error": error[-4000:]})
            self.upload_logs(run_id, logs)
            self.call(self.client.set_terminated, run_id, status="FAILED")
        except StorageError as mlflow_error:
            print(f"could not mark run {run_id} FAILED: {mlflow_error}", file=sys.stderr)

    def upload_logs(self, run_id: str, logs: Sequence[str | Path]) -> None:
        """Copy the job's log files (those that exist) to the run's artifacts under ``logs/``,
        replacing the previous copies. A failed upload is a warning: logs never stop training,
        and the next upload copies the whole file again."""
        from mlflow.exceptions import MlflowException

        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for path in map(Path, logs):
            if not path.is_file():
                continue
            try:
                self.call(self.client.log_artifact, run_id, str(path), "logs")
            except (StorageError, MlflowException, OSError) as error:
                print(
                    f"warning: could not upload {path} to MLflow run {run_id}: {first_line(error)}",
                    file=sys.stderr,
                    flush=True,
                )

    def start(
        self,
        run_id: str,
        config: Mapping[str, Any],
        logdir: str | Path,
        logs: Sequence[str | Path] = (),
        queued: bool = True,
    ):
        """Mark a run RUNNING with this job's tags and its config artifact; its recorder
        (:class:`dreamerbench.experiments.outputs.mlflow.RunRecorder`, made first: a run that
        belongs to another logdir is refused before anything is written). `queued`: a queue
        takes the run up again if it stops early (a sweep's job: SCHEDULED then), else its
        user does (``train``: KILLED then).

        A run taken up again (resumed, or a finished one continued to a larger
        ``run.steps``) keeps its id; its ``budget_steps`` tag says the budget now.
        `logs` are the files the job's output goes to (``job.log``, Slurm's stdout
        and stderr): the recorder uploads them as artifacts (:meth:`RunRecorder.upload_logs`)
        and the ``logs`` tag names them.
        """
        from dreamerbench.experiments.outputs.mlflow import RunRecorder

        recorder = RunRecorder(self, run_id, logdir, logs, queued)
        tags = job_tags()
        if logs:
            tags["logs"] = ", ".join(str(path) for path in logs)
        budget = dict(config.get("run") or {}).get("steps")
        if budget is not None:
            tags["budget_steps"] = str(budget)
        if recorder.steps_done:
            tags["resumed_at"] = str(recorder.steps_done)  # what MLflow held when the job began
        self.tag(run_id, tags)
        self.call(self.client.update_run, run_id, status="RUNNING")
        self.call(self.client.log_dict, run_id, dict(config), "config.yaml")
        return recorder

    def log_batch(
        self, run_id: str, metrics: Sequence = (), tags: Mapping[str, str] | None = None
    ) -> None:
        """One ``log_batch``: MLflow `metrics` and `tags` (full tag names) stored together."""
        from mlflow.entities import RunTag

        run_tags = [RunTag(key, value) for key, value in (tags or {}).items()]
        self.call(self.client.log_batch, run_id, metrics=list(metrics), tags=run_tags)

    def artifacts(self, run_id: str, where: str) -> set[str]:
        """Names of the files a run holds under the artifact folder `where`."""
        listed = self.call(self.client.list_artifacts, run_id, where)
        return {Path(info.path).name for info in listed}

    def upload(self, run_id: str, path: str | Path, where: str) -> None:
        """Upload the file `path` to the run's artifact folder `where`."""
        self.call(self.client.log_artifact, run_id, str(path), where)

    def finish(self, run_id: str, summary: Mapping[str, Any]) -> None:
        """Mark a run FINISHED with its `summary` (``summary.json``; its ``steps`` become
        ``steps_done``)."""
        self.call(self.client.log_dict, run_id, dict(summary), "summary.json")
        self.log_batch(run_id, tags={STEPS_TAG: str(summary["steps"])})
        self.call(self.client.set_terminated, run_id, status="FINISHED")


def record_metrics(records: Iterable[Record]) -> list:
    """The MLflow metrics of JSONL records (:class:`dreamerbench.core.records.Record`; see the
    schema above): one per value, at the record's step and ``time_ms``."""
    from mlflow.entities import Metric

    return [
        Metric(name, value, record.time_ms, record.step)
        for record in records
        for name, value in record.values
    ]


def budget_steps(run) -> int | None:
    """The budget (agent steps) an MLflow run is trained to: its ``budget_steps`` tag (set by
    every job), else its ``run.steps`` param (set when it was created); None without either."""
    value = run.data.tags.get(TAG + "budget_steps") or run.data.params.get("run.steps")
    return int(float(value)) if value not in (None, "") else None


def group_by_key(runs: Iterable) -> dict[str, list]:
    """run key -> its MLflow runs, the one that counts last (FINISHED before others, then
    newest)."""
    groups: dict[str, list] = {}
    for run in runs:
        key = run.data.tags.get(TAG + "run_key")
        if key:
            groups.setdefault(key, []).append(run)
    order = lambda run: (run.info.status == "FINISHED", run.info.start_time)  # noqa: E731
    return {key: sorted(group, key=order) for key, group in groups.items()}


def runs_by_key(runs: Iterable) -> dict[str, Any]:
    """run key -> the MLflow run that counts for it: its newest FINISHED run, else its newest run.

    One key has several active MLflow runs only after a race or a manual change;
    :func:`group_by_key` shows them.
    """
    return {key: group[-1] for key, group in group_by_key(runs).items()}


def git_state(directory: str | os.PathLike | None = None) -> dict[str, str]:
    """Commit and dirty flag of the project's checkout ('unknown' outside git)."""
    directory = str(directory or Path(__file__).resolve().parent.parent)
    try:
        commit = subprocess.run(
            ["git", "-C", directory, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", directory, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": "true" if dirty else "false"}


def run_name(run) -> str:
    """The MLflow run name of `run` (a spec.RunSpec), a sweep's or ``train``'s alike:
    ``SUITE/TASK/seedSEED-KEY6`` (the first 6 characters of its key tell grid points apart),
    e.g. ``dmc_proprio/cartpole_swingup/seed0-3fa2c1``."""
    return f"{run.suite}/{run.task}/seed{run.seed}-{run.key[:6]}"


def run_tags(run, git: Mapping[str, str]) -> dict[str, str]:
    """Tags the launcher sets on a new MLflow run (`run` is a spec.RunSpec)."""
    tags = {
        "run_key": run.key,
        "sweep": run.sweep,
        "suite": run.suite,
        "task": run.task,
        "seed": str(run.seed),
        "method": run.method,
        "version": __version__,
        **git,
    }
    for key, value in run.point.items():
        tags[f"grid.{key}"] = json.dumps(value)
    out = {TAG + k: str(v) for k, v in tags.items()}
    if git.get("git_commit") not in (None, "unknown"):
        out["mlflow.source.git.commit"] = git["git_commit"]
    return out


def run_params(run) -> dict[str, str]:
    """Flattened resolved config plus ``protocol.<key>`` (values as MLflow strings)."""
    params = {k: _param_text(v) for k, v in flatten(to_dict(run.config)).items()}
    params.update({f"protocol.{k}": _param_text(v) for k, v in run.protocol.items()})
    return params


def _param_text(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def job_tags() -> dict[str, str]:
    """Where a job runs and what (names without the tag prefix): the dreamerbench version, and
    the host and job of the launcher it runs in (:func:`dreamerbench.experiments.launchers
    .job_tags`)."""
    from dreamerbench.experiments import launchers  # they import this module

    return {**launchers.job_tags(), "version": __version__}


def _sqlite_client(db: Path):
    """An MlflowClient of the sqlite file `db`. MLflow creates the parent folders of the
    *encoded* path too (``a%3Fx/`` beside ``a?x/``: ``_make_parent_dirs_if_sqlite`` of
    mlflow/store/db/utils.py); the empty folders it made that way are removed."""
    from mlflow import MlflowClient

    uri = mlflow_uri(f"sqlite:///{db}")
    encoded = Path(uri[len("sqlite:///") :]).parent
    made = [folder for folder in (encoded, *encoded.parents) if not folder.exists()]
    client = MlflowClient(tracking_uri=uri)
    client._tracking_client.store  # noqa: B018 - the store exists once this returns
    for folder in made:  # deepest first
        with contextlib.suppress(OSError):
            folder.rmdir()
    return client


def _artifact_root(tracking_uri: str, name: str) -> str | None:
    """Artifacts of a sqlite store go next to its database; servers choose their own."""
    db = sqlite_path(tracking_uri)
    if db is not None:
        return (db.parent / "mlruns" / name).as_uri()
    return None


def _check_server(uri: str, timeout_s: float = 5.0) -> None:
    """GET ``/health`` of an MLflow server; TrackingUnavailable naming `uri` if it does not
    answer."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as response:
            if response.status == 200:
                return
            reason = f"/health answered {response.status}"
    except (urllib.error.URLError, OSError) as error:
        reason = str(getattr(error, "reason", error))
    raise TrackingUnavailable(
        f"MLflow tracking server {uri} does not answer ({reason}); start it, or pass another "
        "--tracking-uri"
    )


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type's name if it has none), at most 300
    characters."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]
