"""Issue 21 item 10 through the real CLI: a ``dreamerbench train --tracking-uri`` process (the stub
agent stands in for DreamerV3) stopped by Ctrl-C or SIGTERM is KILLED in MLflow, not left
SCHEDULED, and its command resumes it to FINISHED; a hard-killed one is interrupted in ``status``,
a live one running; the run's description is its command line (credentials redacted) and its
name starts with its suite, as a sweep's runs are named."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from json import dumps

import pytest
from test_rundir import _STUB_CLI, EPISODE, TINY
from test_sweep_slurm import REPO, dreamerbench

from dreamerbench.core import checkpoint
from dreamerbench.experiments import tracking, train_tracking
from dreamerbench.experiments.spec import expand, parse_spec

STEPS = 60 * EPISODE  # the stub trains an episode in about 0.3 s: time to stop it midway


def train_argv(logdir, uri, steps=STEPS):
    """The arguments of ``dreamerbench train`` (after the program name) on the stub agent."""
    sets = [a for k, v in TINY.items() if k != "agent.size" for a in ("--set", f"{k}={dumps(v)}")]
    return [
        *("train", "--suite", "dmc_proprio", "--task", "cartpole_balance", "--size", "debug"),
        *("--steps", str(steps), "--logdir", str(logdir), "--tracking-uri", uri),
        *("--experiment", "mine", *sets),
    ]


def start(argv):
    return subprocess.Popen(
        [sys.executable, "-c", _STUB_CLI, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"},
    )


def wait_for_a_checkpoint(process, logdir):
    deadline = time.time() + 300
    while not checkpoint.complete(logdir / "checkpoint"):
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.time() < deadline
        time.sleep(0.05)


def the_run(uri):
    tracker = tracking.Tracker(uri, create=False)
    (run,) = tracker.runs(tracker.find_experiment("mine").experiment_id)
    return run


def status_row(uri):
    """``dreamerbench status mine``: (the run's row split in fields, the last line)."""
    shown = dreamerbench("status", "mine", "--tracking-uri", uri)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    (row,) = [line.split() for line in lines if line.startswith("cartpole_balance/seed0 ")]
    return row, lines[-1]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_train_run_is_killed_and_its_command_resumes_it_to_finished(tmp_path, signum):
    logdir, uri = tmp_path / "run", f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = train_argv(logdir, uri)
    process = start(argv)
    wait_for_a_checkpoint(process, logdir)
    process.send_signal(signum)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    assert "stopped at " in err and '"finished": false' in out, err[-3000:]
    run = the_run(uri)
    assert run.info.status == "KILLED"  # was SCHEDULED: no queue ever takes a train run up
    assert run.data.tags[tracking.DESCRIPTION_TAG] == train_tracking.command_line(argv)
    assert run.data.tags[tracking.DESCRIPTION_TAG].startswith("dreamerbench train --suite ")
    key = run.data.tags["dreamerbench.run_key"]
    assert run.info.run_name == f"dmc_proprio/cartpole_balance/seed0-{key[:6]}"
    row, last = status_row(uri)
    assert row[1:4] == ["dmc_proprio", key, "killed"], row
    assert last == (
        f"killed cartpole_balance/seed0: run its dreamerbench train command again "
        f"(--logdir {logdir})"
    )

    resumed = start(argv)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    run = the_run(uri)
    assert run.info.status == "FINISHED" and run.data.tags["dreamerbench.resumed_at"] != "0"
    assert run.data.tags[tracking.STEPS_TAG] == str(STEPS)
    assert status_row(uri)[0][3] == "finished"


def test_a_live_train_run_is_running_and_a_hard_killed_one_interrupted(tmp_path):
    logdir, uri = tmp_path / "run", f"sqlite:///{tmp_path / 'mlflow.db'}"
    process = start(train_argv(logdir, uri, steps=100 * STEPS))
    try:
        wait_for_a_checkpoint(process, logdir)
        row, last = status_row(uri)
        assert row[3] == "running" and "train command again" not in last, (row, last)
    finally:
        process.kill()
        process.communicate()
    assert the_run(uri).info.status == "RUNNING"  # nothing could say otherwise
    row, last = status_row(uri)
    assert row[3] == "interrupted"
    assert last == (
        f"interrupted cartpole_balance/seed0: run its dreamerbench train command again "
        f"(--logdir {logdir})"
    )


def test_the_command_line_is_quoted_and_never_shows_credentials():
    argv = ["train", "--logdir", "my runs/a", "--set", "env.url=https://me:s3cret@host/x"]
    assert train_tracking.command_line(argv) == (
        "dreamerbench train --logdir 'my runs/a' --set env.url=https://***@host/x"
    )


def test_a_sweep_names_its_runs_by_the_same_rule(tmp_path):
    spec = parse_spec(
        "name: named\nsuite: dmc_proprio\ntasks: [cartpole_swingup]\nseeds: 1\nsteps: 1000\n"
        "overrides: {agent.size: debug}\n"
    )
    (run,) = expand(spec)
    tracker = tracking.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = tracker.schedule(
        tracker.experiment("named"), run, tracking.git_state(), lambda _: str(tmp_path)
    )
    name = tracker.run(run_id).info.run_name
    assert name == f"dmc_proprio/cartpole_swingup/seed0-{run.key[:6]}"
