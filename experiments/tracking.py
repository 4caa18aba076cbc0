"""MLflow recording of sweeps: one experiment per sweep, one MLflow run per sweep run.

Convention (the analysis package reads runs exactly this way):

- experiment name = sweep name; the launcher creates it before submitting and
  passes its id to the jobs (concurrent ``set_experiment`` calls race).
- tags: ``dreamerbench.{run_key,sweep,suite,task,seed,method}``,
  ``dreamerbench.{git_commit,git_dirty}``, ``dreamerbench.{slurm_job_id,
  slurm_array_job_id,slurm_array_task_id,host}``, ``dreamerbench.steps_done``
  (step of the newest record covered by a checkpoint: progress, updated at each flush), ``dreamerbench.resumed_at`` (set
  when a job resumed the run from a checkpoint) and ``dreamerbench.logdir``.
- params: the flattened resolved config and ``protocol.<key>`` of the suite
  protocol; logged once, when the launcher creates the run.
- metrics: ``episode/score``, ``episode/length``, ``episode/achievement_<name>``,
  ``episode/milestone_<name>``, ``train/<name>``, ``fps/<name>``; MLflow step =
  agent env steps.
- artifacts: ``config.yaml`` (resolved config) and ``summary.json`` (final summary).

Run states: the launcher creates runs as SCHEDULED; a job sets RUNNING when it
starts, FINISHED or FAILED at the end, and SCHEDULED again when it stops early
to be requeued (preemption, time-out, Ctrl-C of the local executor).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urlparse

from agent.config import flatten, to_dict

TAG = "dreamerbench."
STEPS_TAG = TAG + "steps_done"
METRICS_PER_BATCH = 1000  # MLflow's limit per log_batch call
PARAMS_PER_BATCH = 100  # MLflow's limit per log_batch call
ACTIVE_STATES = ("SCHEDULED", "RUNNING")


def default_tracking_uri(workdir: str | os.PathLike | None = None) -> str:
    """The embedded default: a sqlite file in the working directory."""
    return f"sqlite:///{Path(workdir or os.getcwd()).resolve() / 'mlflow.db'}"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the embedded default.

    Relative sqlite paths become absolute so that jobs started elsewhere (Slurm
    nodes, other working directories) write to the same store.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        if not uri.startswith("sqlite:///"):
            raise ValueError(f"tracking URI {uri!r}: expected sqlite:///PATH")
        # sqlite:///relative/path or sqlite:////absolute/path (SQLAlchemy's form).
        return f"sqlite:///{Path(uri[len('sqlite:///'):]).resolve()}"
    if parsed.scheme in ("", "file"):
        raise ValueError(
            f"tracking URI {uri!r}: MLflow 3 keeps the file store in maintenance mode; "
            "use sqlite:///PATH/mlflow.db (the default) or http://HOST:PORT of an mlflow server"
        )
    if parsed.scheme not in ("http", "https", "postgresql", "mysql", "databricks"):
        raise ValueError(
            f"tracking URI {uri!r}: unsupported scheme {parsed.scheme!r}; "
            "allowed: sqlite, http, https, postgresql, mysql, databricks"
        )
    return uri


def _artifact_root(tracking_uri: str, name: str) -> str | None:
    """Artifacts of a sqlite store go next to its database; servers choose their own."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        return (db.parent / "mlruns" / name).as_uri()
    return None


def client(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def ensure_experiment(mlflow_client, name: str, tracking_uri: str) -> str:
    """The id of the experiment called `name`, created if missing (race-safe)."""
    from mlflow.exceptions import MlflowException

    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            mlflow_client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    try:
        return mlflow_client.create_experiment(
            name, artifact_location=_artifact_root(tracking_uri, name),
            tags={TAG + "sweep": name},
        )
    except MlflowException:
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def sweep_runs(mlflow_client, experiment_id: str) -> list:
    """Every active (not deleted) run of an experiment, oldest first."""
    from mlflow.entities import ViewType

    runs, token = [], None
    while True:
        page = mlflow_client.search_runs(
            [experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000,
            order_by=["attributes.start_time ASC"], page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def runs_by_key(runs: Iterable) -> dict[str, Any]:
    """run key -> its newest MLflow run."""
    found: dict[str, Any] = {}
    for run in runs:
        key = run.data.tags.get(TAG + "run_key")
        if key and (key not in found or run.info.start_time >= found[key].info.start_time):
            found[key] = run
    return found


def git_state(directory: str | os.PathLike | None = None) -> dict[str, str]:
    """Commit and dirty flag of the project's checkout ('unknown' outside git)."""
    directory = str(directory or Path(__file__).resolve().parent.parent)
    try:
        commit = subprocess.run(
            ["git", "-C", directory, "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", directory, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": "true" if dirty else "false"}


def run_tags(run, git: Mapping[str, str]) -> dict[str, str]:
    """Tags the launcher sets on a new MLflow run (`run` is a spec.RunSpec)."""
    tags = {
        "run_key": run.key,
        "sweep": run.sweep,
        "suite": run.suite,
        "task": run.task,
        "seed": str(run.seed),
        "method": run.method,
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


def create_run(mlflow_client, experiment_id: str, run, git: Mapping[str, str], logdir: str) -> str:
    """Create the MLflow run of a sweep run, SCHEDULED, with its tags and params."""
    from mlflow.entities import Param

    tags = run_tags(run, git)
    tags[TAG + "logdir"] = logdir
    tags[STEPS_TAG] = "0"
    created = mlflow_client.create_run(
        experiment_id, tags=tags, run_name=f"{run.task}-seed{run.seed}-{run.key[:6]}"
    )
    run_id = created.info.run_id
    params = [Param(k, v) for k, v in sorted(run_params(run).items())]
    for start in range(0, len(params), PARAMS_PER_BATCH):
        mlflow_client.log_batch(run_id, params=params[start : start + PARAMS_PER_BATCH])
    mlflow_client.update_run(run_id, status="SCHEDULED")
    return run_id


def metric_name(kind: str, name: str) -> str:
    """Trainer record kind + value name -> MLflow metric name (``group/name``)."""
    if kind not in ("episode", "train", "fps"):
        raise ValueError(f"record kind={kind!r}; allowed: episode, train, fps")
    return f"{kind}/{name}"


def job_tags() -> dict[str, str]:
    """Where a job runs: host and, inside Slurm, the job id and array index."""
    tags = {TAG + "host": socket.gethostname()}
    job_id = os.environ.get("SLURM_JOB_ID")
    if job_id:
        array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
        array_task = os.environ.get("SLURM_ARRAY_TASK_ID")
        tags[TAG + "slurm_job_id"] = f"{array_job}_{array_task}" if array_job else job_id
        if array_job:
            tags[TAG + "slurm_array_job_id"] = array_job
            tags[TAG + "slurm_array_task_id"] = array_task or ""
    else:
        tags[TAG + "local_pid"] = str(os.getpid())
    return tags


class MlflowOutput:
    """A trainer Output that delivers records to one MLflow run at flush().

    The trainer calls flush() right after each checkpoint is durably written;
    delivering only then, and dropping what is pending at close(), gives every
    record exactly once across kills and preemptions (records after the last
    checkpoint of a killed process are re-generated after resume).
    """

    def __init__(self, mlflow_client, run_id: str, retries: int = 5):
        self._client = mlflow_client
        self._run_id = run_id
        self._retries = retries
        self._pending: list = []
        self._last_step = 0

    def write(self, step: int, kind: str, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for name, value in values.items():
            self._pending.append(Metric(metric_name(kind, name), float(value), now, int(step)))
        self._last_step = max(self._last_step, int(step))

    def flush(self) -> None:
        """Deliver every pending record (log_batch, at most 1000 metrics per call).

        Delivery never stops training: after a few failed attempts (e.g.
        sqlite's 'database is locked'), the rest stays pending for the next flush.
        """
        from mlflow.entities import RunTag

        while True:
            batch = self._pending[:METRICS_PER_BATCH]
            last = len(self._pending) <= METRICS_PER_BATCH
            tags = [RunTag(STEPS_TAG, str(self._last_step))] if last else []
            if not self._deliver(batch, tags):
                return
            del self._pending[: len(batch)]
            if last:
                return

    def _deliver(self, metrics: list, tags: list) -> bool:
        delay = 0.5
        for attempt in range(self._retries):
            try:
                self._client.log_batch(self._run_id, metrics=metrics, tags=tags)
                return True
            except Exception as error:  # sqlite 'database is locked', HTTP errors, ...
                if attempt == self._retries - 1:
                    print(
                        f"MlflowOutput: log_batch failed {self._retries} times; "
                        f"{len(self._pending)} records stay pending for the next flush: {error}",
                        file=sys.stderr,
                    )
                    return False
                time.sleep(delay)
                delay *= 2
        return False

    def close(self) -> None:
        # Records written after the last flush are not covered by a checkpoint:
        # the trainer re-generates them after a resume, so they are dropped here.
        self._pending = []

    @property
    def last_step(self) -> int:
        return self._last_step
