"""MLflow recording of ``dreamerbench train --tracking-uri``: each seed becomes a run of one
MLflow experiment, recorded as a sweep records its runs (same tags, params and metrics,
through :class:`dreamerbench.experiments.tracking.Tracker`), so ``dreamerbench table/plot --runs
EXPERIMENT`` read it.

A run's key is :func:`dreamerbench.experiments.spec.run_key` of (experiment, suite, task, seed,
resolved config): training the same logdir again (a resume) continues the same MLflow
run, and its :class:`dreamerbench.experiments.tracking.RunRecorder` delivers each record once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dreamerbench import suites
from dreamerbench.agent.config import to_dict
from dreamerbench.experiments import tracking
from dreamerbench.experiments.spec import RunSpec, run_key

COMMAND_TAG = "command"
"""Tag (``dreamerbench.command``) that says a run is trained by ``dreamerbench train`` (value
``train``), so ``status`` tells how to resume it; sweep runs have none."""


def start(
    tracking_uri: str | None, experiment: str, configs: Sequence, logdirs: Sequence[Path]
) -> list:
    """One RUNNING MLflow run per config (found again on a resume); their recorders, one per config.

    ``configs`` are resolved :class:`dreamerbench.agent.config.Config` (``experiment`` a valid
    name: ``train --experiment`` reads it as :data:`dreamerbench.experiments.spec.NAME`); an
    unreachable store raises a one-line error before anything is created.
    """
    tracker = tracking.Tracker(tracking_uri)
    experiment_id = tracker.experiment(experiment)
    existing = tracking.runs_by_key(tracker.runs(experiment_id))
    git = tracking.git_state()
    recorders = []
    for config, logdir in zip(configs, logdirs):
        suite = suites.get_suite(config.suite)
        key = run_key(experiment, suite.name, config.task, config.seed, config)
        spec = RunSpec(
            key,
            experiment,
            suite.name,
            config.task,
            config.seed,
            "dreamerbench",
            {},
            config,
            suite.resolve_protocol(config.env),
        )
        found = existing.get(key)
        run_id = (
            found.info.run_id
            if found
            else tracker.schedule(experiment_id, spec, git, lambda _: str(logdir))
        )
        tracker.tag(run_id, {COMMAND_TAG: "train"})
        recorders.append(tracker.start(run_id, to_dict(config), logdir))
    return recorders


def finish(recorders: Sequence, summaries: Sequence[Mapping[str, Any]]) -> None:
    """FINISHED once MLflow holds every record of a run that reached its budget; a run stopped
    early stays resumable (training the same logdir again continues it)."""
    for recorder, summary in zip(recorders, summaries):
        recorder.end(summary)
