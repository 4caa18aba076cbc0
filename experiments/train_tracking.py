"""MLflow recording of ``dreamerbench train --tracking-uri``: each seed becomes a run of one
MLflow experiment, recorded as a sweep records its runs (same tags, params and metrics,
see :mod:`experiments.tracking`), so ``dreamerbench table/plot --runs EXPERIMENT`` read it.

A run's key is :func:`experiments.spec.run_key` of (experiment, suite, task, seed,
resolved config): training the same logdir again (a resume) continues the same MLflow
run, and :class:`experiments.tracking.MlflowOutput` delivers each record once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import suites
from experiments import tracking
from experiments.spec import NAME_PATTERN, RunSpec, run_key


@dataclass
class TrackedRun:
    """One seed's MLflow run and the trainer output that delivers its records."""

    client: Any
    run_id: str
    output: tracking.MlflowOutput


def start(tracking_uri: str | None, experiment: str, configs: Sequence, logdirs: Sequence[str]) -> list[TrackedRun]:
    """Create (or find, on a resume) one MLflow run per config and mark it RUNNING.

    ``configs`` are resolved :class:`agent.config.Config`; raises ValueError for a
    bad experiment name or tracking URI before anything is created.
    """
    from mlflow.entities import RunTag

    if not NAME_PATTERN.match(experiment):
        raise ValueError(f"--experiment={experiment!r} may only use letters, digits and _.- ")
    uri = tracking.resolve_tracking_uri(tracking_uri)
    client = tracking.client(uri)
    experiment_id = tracking.ensure_experiment(client, experiment, uri)
    existing = tracking.runs_by_key(tracking.sweep_runs(client, experiment_id))
    git = tracking.git_state()
    runs = []
    for config, logdir in zip(configs, logdirs):
        suite = suites.get_suite(config.suite)
        key = run_key(experiment, suite.name, config.task, config.seed, config)
        spec = RunSpec(key, experiment, suite.name, config.task, config.seed, "dreamerbench", {}, config,
                       suite.resolve_protocol(config.env))
        found = existing.get(key)
        run_id = found.info.run_id if found else tracking.create_run(client, experiment_id, spec, git, str(logdir))
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tracking.job_tags().items()])
        client.update_run(run_id, status="RUNNING")
        runs.append(TrackedRun(client, run_id, tracking.MlflowOutput(client, run_id)))
    return runs


def finish(runs: Sequence[TrackedRun], summaries: Sequence[Mapping[str, Any]]) -> None:
    """FINISHED with ``summary.json`` for runs that reached their budget, KILLED for the others
    (stopped early: training the same logdir again resumes them)."""
    for run, summary in zip(runs, summaries):
        if summary.get("finished"):
            run.client.log_dict(run.run_id, dict(summary), "summary.json")
            run.client.set_terminated(run.run_id, status="FINISHED")
        else:
            run.client.set_terminated(run.run_id, status="KILLED")
