"""Issue "A lab's first week", items 7 and 10, through the real CLI: ``dreamerbench status`` shows
a failed run's checkpointed steps (not 0 because MLflow holds none of its records) and its last
error; a run of ``dreamerbench train --tracking-uri`` gets the train command's resume advice,
not the sweep's; every run shows its suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from custom_envs import FAIL_AFTER
from test_rundir import _STUB_CLI
from test_sweep_slurm import REPO, dreamerbench, tiny_spec

from dreamerbench.core import checkpoint
from dreamerbench.experiments import tracking
from dreamerbench.suites.vector import env_seeds

SAVE_EVERY = 10  # custom_envs.fails_later: 20-step episodes, so the first ends after the crash
FAIL_AT = 15
STEPS = 100
OVERRIDES = {
    "agent.size": "debug",
    "agent.batch_size": 2,
    "agent.batch_length": 8,
    "run.envs": 1,
    "run.parallel_envs": False,
    "run.train_start": 40,
    "run.save_every": SAVE_EVERY,
    "run.log_every": 100_000,  # seconds: no speed record either, so nothing reaches MLflow
    "run.progress": False,
}
# The env's seed is the run's first training-env seed (seed 0's stream).
ERROR = f"RuntimeError: the simulator crashed after {FAIL_AT} steps (seed {env_seeds(0, 1)[0]})"


def test_status_shows_a_failed_runs_checkpointed_steps_and_its_last_error(tmp_path):
    spec = tiny_spec(
        tmp_path,
        "crash",
        suite="dm_env",
        tasks=["custom_envs:fails_later"],
        seeds=1,
        steps=STEPS,
        overrides=OVERRIDES,
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])
    failed = dreamerbench(
        *("sweep", str(spec), "--tracking-uri", uri, "--workdir", str(tmp_path / "work")),
        env={"PYTHONPATH": path, FAIL_AFTER: str(FAIL_AT)},
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    tracker = tracking.Tracker(uri)
    (run,) = tracker.runs(tracker.find_experiment("crash").experiment_id)
    logdir = Path(run.data.tags["dreamerbench.logdir"])
    assert run.info.status == "FAILED" and run.data.tags[tracking.STEPS_TAG] == "0"  # none sent
    assert [c.step for c in checkpoint.complete(logdir / "checkpoint")] == [SAVE_EVERY]

    status = dreamerbench("status", "crash", "--tracking-uri", uri)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    (row,) = [line for line in lines if line.startswith("custom_envs:fails_later/seed0 ")]
    assert row.split()[1:4] == ["dm_env", run.data.tags["dreamerbench.run_key"], "failed"], row
    assert f" {SAVE_EVERY} / {STEPS} " in row, row
    assert lines[1].split()[:3] == ["run", "suite", "key"]
    assert f"{SAVE_EVERY} / {STEPS} steps  (1 failed)" in status.stdout
    assert lines[-1] == (
        f"failed custom_envs:fails_later/seed0: {ERROR}  (log: {logdir / 'job.log'})"
    ), status.stdout


def test_status_tells_a_train_run_to_run_its_train_command_again(tmp_path):
    """``dreamerbench train --tracking-uri`` whose env raises after its first checkpoint (the stub
    agent stands in for DreamerV3): its MLflow run is no sweep's, so ``dreamerbench sweep SPEC``
    cannot resume it."""
    logdir, uri = tmp_path / "run", f"sqlite:///{tmp_path / 'mlflow.db'}"
    sets = [a for k, v in OVERRIDES.items() for a in ("--set", f"{k}={str(v).lower()}")]
    train = subprocess.run(
        [
            *(sys.executable, "-c", _STUB_CLI, "train", "--suite", "dm_env"),
            *("--task", "custom_envs:fails_later", "--steps", str(STEPS), "--logdir", str(logdir)),
            *("--tracking-uri", uri, "--experiment", "mine", *sets),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={
            **os.environ,
            "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}",
            FAIL_AFTER: str(FAIL_AT),
        },
    )
    assert train.returncode != 0 and ERROR in train.stderr, train.stderr[-3000:]
    tracker = tracking.Tracker(uri)
    (run,) = tracker.runs(tracker.find_experiment("mine").experiment_id)
    assert run.data.tags["dreamerbench.command"] == "train"

    status = dreamerbench("status", "mine", "--tracking-uri", uri)
    assert status.returncode == 0, status.stderr
    assert f" {SAVE_EVERY} / {STEPS} " in status.stdout and " dm_env " in status.stdout
    state = next(line.split()[3] for line in status.stdout.splitlines() if "seed0 " in line)
    assert status.stdout.splitlines()[-1] == (
        f"{state} custom_envs:fails_later/seed0: run its dreamerbench train command again "
        f"(--logdir {logdir})"
    ), status.stdout
    assert "dreamerbench sweep" not in status.stdout
