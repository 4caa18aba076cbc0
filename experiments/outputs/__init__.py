"""A run's outputs: MLflow (a sweep's store, ``train --tracking-uri``), TensorBoard and W&B
(``run.outputs``).

Each output is a trainer :class:`dreamerbench.agent.trainer.Output`: after every save,
``publish(logdir)`` sends the run's JSONL records from its own cursor up to what
:func:`dreamerbench.core.records.deliverable` allows (what no resume can cut back) through the one
delivery loop, :func:`dreamerbench.core.records.deliver`, so a resumed run sends nothing twice
that was sent before its checkpoint; ``close()`` when the run stops. Metric names and steps are
the same in every store (``episode/score``, ``train/loss/total``, ``eval/score``, ...; step =
agent steps: :func:`dreamerbench.core.records.metric_name`).

- ``mlflow``: :class:`~dreamerbench.experiments.outputs.mlflow.RunRecorder`, its cursor in the
  MLflow run's tags.
- ``tensorboard``: event files in ``<logdir>/tensorboard`` (``tensorboard --logdir LOGDIR``).
- ``wandb``: one W&B run per logdir (:mod:`dreamerbench.experiments.outputs.wandb`).

A run's outputs are made by :func:`build` and ended by :func:`end` (every output's ``end``), for
a finished, stopped or failed run alike.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dreamerbench.agent.config import Config, ConfigError, to_dict
from dreamerbench.core.files import StorageError

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}
"""Output name -> the package it needs (the ``outputs`` extra: ``pip install -e '.[outputs]'``
in a checkout of the repository)."""


def check_available(config: Config) -> None:
    """Check ``run.outputs`` before anything is made: ConfigError naming it if an output's package
    is not installed; StorageError (one line, exit 1 like W&B's own start failure) if ``wandb``
    would send online but finds no login
    (:func:`dreamerbench.experiments.outputs.wandb.wandb_login_missing`)."""
    from dreamerbench.experiments.outputs.wandb import wandb_login_missing

    for name in config.run.outputs:
        if importlib.util.find_spec(PACKAGES[name]) is None:
            raise ConfigError(
                f"run.outputs={list(config.run.outputs)} needs the package {PACKAGES[name]!r}, "
                "which is not installed; pip install -e '.[outputs]' in a checkout of "
                "dreamerbench, or leave it out",
                "run.outputs",
            )
    if "wandb" in config.run.outputs:
        missing = wandb_login_missing()
        if missing:
            raise StorageError(
                f"run.outputs has wandb but W&B has no login here ({missing}); log in "
                "(wandb login), set WANDB_MODE=offline, or leave wandb out of run.outputs"
            )


def build(
    configs: Sequence[Config],
    logdirs: Sequence[str | Path],
    tracker=None,
    run_ids: Sequence[str] = (),
    logs: Sequence[str | Path] = (),
    queued: bool = True,
) -> list[list]:
    """The outputs of each run of a pack (one list per config, in order): its MLflow recorder
    first if `tracker` (a :class:`dreamerbench.experiments.tracking.Tracker`) and `run_ids` are
    given, then those ``config.run.outputs`` names.

    Every config is checked first (:func:`check_available`), then every MLflow run is marked
    RUNNING (:meth:`dreamerbench.experiments.tracking.Tracker.start`, with the job's `logs`;
    `queued`: a queue, not the user, resumes a run that stops early); TensorBoard and W&B start
    writing at the first record. Errors as those two.
    """
    from dreamerbench.experiments.outputs.tensorboard import TensorBoardOutput
    from dreamerbench.experiments.outputs.wandb import WandbOutput

    for config in configs:
        check_available(config)
    recorders = (
        [
            [tracker.start(run_id, to_dict(config), logdir, logs, queued)]
            for config, logdir, run_id in zip(configs, logdirs, run_ids, strict=True)
        ]
        if tracker is not None
        else [[] for _ in configs]
    )
    makers = {"tensorboard": TensorBoardOutput, "wandb": WandbOutput}
    return [
        [*mine, *(makers[name](logdir, config) for name in config.run.outputs)]
        for mine, config, logdir in zip(recorders, configs, logdirs)
    ]


def end(
    outputs: Sequence, summary: Mapping[str, Any] | None = None, error: str | None = None
) -> None:
    """End one run's outputs: ``output.end(summary, error)`` for each, from the run's `summary`
    (finished or stopped) or its `error` (failed; a traceback).

    Every output is ended even if one fails. For a failed run an output's error is a warning
    (the run's own error counts); else the first one is raised once all are ended (MLflow's
    TrackingUnavailable: a finished run whose records it could not take whole).
    """
    raised: BaseException | None = None
    for output in outputs:
        try:
            output.end(summary, error)
        except Exception as output_error:  # noqa: BLE001 - end the others first
            if error is not None:
                print(f"warning: {output_error}", file=sys.stderr, flush=True)
            elif raised is None:
                raised = output_error
    if raised is not None:
        raise raised
