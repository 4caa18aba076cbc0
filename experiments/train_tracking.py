"""MLflow recording of ``dreamerbench train --tracking-uri``: each seed becomes a run of one
MLflow experiment, recorded as a sweep records its runs (same tags, params and metrics,
through :class:`dreamerbench.experiments.tracking.Tracker`), so ``dreamerbench table/plot --runs
EXPERIMENT`` read it.

A run's key is :func:`dreamerbench.experiments.spec.run_key` of (experiment, suite, task, seed,
resolved config): training the same logdir again (a resume) continues the same MLflow
run, and its recorder (:class:`dreamerbench.experiments.outputs.mlflow.RunRecorder`) delivers
each record once. The MLflow run of a key records one logdir (its ``dreamerbench.logdir`` tag,
absolute): a ``train`` of the same key into another logdir is refused before anything is
created or trained.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from dreamerbench import suites
from dreamerbench.core.reader import refuse
from dreamerbench.experiments import tracking
from dreamerbench.experiments.outputs.mlflow import logdir_clash
from dreamerbench.experiments.spec import RunSpec, run_key

COMMAND_TAG = "command"
"""Tag (``dreamerbench.command``) that says a run is trained by ``dreamerbench train`` (value
``train``), so ``status`` tells how to resume it; sweep runs have none."""


def command_line(argv: Sequence[str]) -> str:
    """The ``dreamerbench`` command line of `argv` (its arguments after the program name),
    quoted for a POSIX shell, with any credentials in a URI redacted
    (:func:`dreamerbench.experiments.tracking.redact`)."""
    return tracking.redact(shlex.join(["dreamerbench", *argv]))


def start(
    tracking_uri: str | None,
    experiment: str,
    configs: Sequence,
    logdirs: Sequence[Path],
    command: str = "",
) -> tuple[tracking.Tracker, list[str]]:
    """(the store, one MLflow run id per config): each run found again by its key (a resume),
    else created SCHEDULED; :func:`dreamerbench.experiments.outputs.build` takes them up.
    `command` (:func:`command_line`) becomes each run's description, that of the newest train.

    ``configs`` are resolved :class:`dreamerbench.agent.config.Config` (``experiment`` a valid
    name: ``train --experiment`` reads it as :data:`dreamerbench.experiments.spec.NAME`). An
    unreachable store raises a one-line error before anything is created; a key whose MLflow
    run records another logdir raises ReadError naming ``--logdir`` (exit 2), before anything
    is created either.
    """
    tracker = tracking.Tracker(tracking_uri)
    experiment_id = tracker.experiment(experiment)
    existing = tracking.runs_by_key(tracker.runs(experiment_id))
    specs = []
    for config, logdir in zip(configs, logdirs):
        suite = suites.get_suite(config.suite)
        key = run_key(experiment, suite.name, config.task, config.seed, config)
        found = existing.get(key)
        clash = found and logdir_clash(found, logdir)
        if clash:
            raise refuse(
                "--logdir",
                str(logdir),
                f"the logdir of the MLflow run of this task, seed and config in --experiment "
                f"{experiment} ({clash}), or another --experiment",
            )
        protocol = suite.resolve_protocol(config.env)
        spec = RunSpec(
            key,
            experiment,
            suite.name,
            config.task,
            config.seed,
            "dreamerbench",
            {},
            config,
            protocol,
        )
        specs.append((found, spec, os.path.abspath(logdir)))
    git = tracking.git_state()
    run_ids = [
        found.info.run_id
        if found
        else tracker.schedule(experiment_id, spec, git, lambda _, where=logdir: str(where))
        for found, spec, logdir in specs
    ]
    tags = {tracking.TAG + COMMAND_TAG: "train"}
    if command:
        tags[tracking.DESCRIPTION_TAG] = command
    for run_id in run_ids:
        tracker.log_batch(run_id, tags=tags)
    return tracker, run_ids
