"""Issue 14 on a real local sweep recorded in real MLflow: a larger ``steps`` continues a
finished run into the same MLflow run without recording anything twice, the dry run says
why keys are new, ``status`` shows a running run's rate and ETA, and the job's log is an
artifact of its run."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import yaml
from test_sweep_slurm import QUICKSTART, REPO, dreamerbench, jsonl, launched, tiny_spec, wait_for

from dreamerbench.experiments import tracking
from dreamerbench.experiments.sweep_cli import run_status
from dreamerbench.suites.vector import env_seeds

EPISODE = 126  # cartpole with action repeat 8: 125 actions per episode


def spec_for(tmp_path, steps, **overrides):
    """The sweep 'grow' (one run) in a file of its own."""
    quickstart = yaml.safe_load(QUICKSTART.read_text())["overrides"]
    directory = tmp_path / f"spec{len(list(tmp_path.glob('spec*')))}"
    directory.mkdir()
    return tiny_spec(
        directory,
        "grow",
        tasks=["cartpole_balance"],
        seeds=1,
        steps=steps,
        overrides={
            **quickstart,
            "env.action_repeat": 8,
            "run.save_every": EPISODE,
            "run.train_start": 64,
            **overrides,
        },
    )


def test_larger_steps_continue_the_finished_run_once_and_logs_reach_mlflow(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    where = ("--tracking-uri", uri, "--workdir", str(tmp_path / "work"))
    first = dreamerbench("sweep", str(spec_for(tmp_path, EPISODE)), *where)
    assert first.returncode == 0, first.stdout + first.stderr
    tracker = tracking.Tracker(uri)
    experiment_id = tracker.find_experiment("grow").experiment_id
    (run,) = tracker.runs(experiment_id)
    run_id, key, logdir = (
        run.info.run_id,
        run.data.tags["dreamerbench.run_key"],
        Path(run.data.tags["dreamerbench.logdir"]),
    )
    assert run.info.status == "FINISHED" and len(jsonl(logdir / "episodes.jsonl")) == 1

    # The job's log is an artifact of its run (uploaded at checkpoints and at the end).
    assert run.data.tags["dreamerbench.logs"] == str(logdir / "job.log")
    assert [a.path for a in tracker.client.list_artifacts(run_id, "logs")] == ["logs/job.log"]
    uploaded = Path(
        tracker.client.download_artifacts(run_id, "logs/job.log", str(tmp_path / "dl"))
    ).read_text()
    assert (logdir / "job.log").read_text().startswith(uploaded)
    assert f"cartpole_balance/seed0: finished at {EPISODE} steps" in uploaded, uploaded

    # Bookkeeping edits and a larger budget keep the key; the dry run says the run continues.
    grown = spec_for(tmp_path, 3 * EPISODE, **{"run.log_every": 0, "run.save_every": 2 * EPISODE})
    dry = dreamerbench("sweep", str(grown), *where, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert re.search(
        rf"{key}  cartpole_balance/seed0 .* resume \(finished at {EPISODE} steps; continues to "
        rf"{3 * EPISODE} \(steps raised\)\)",
        dry.stdout,
    ), dry.stdout
    # A changed hyperparameter is a new key, and the dry run names the field.
    other = dreamerbench(
        "sweep", str(spec_for(tmp_path, EPISODE, **{"agent.imag_length": 5})), *where, "--dry-run"
    )
    assert f"differs from recorded run {key} in agent.imag_length: 4 -> 5" in other.stdout, (
        other.stdout
    )

    # Continue it; while it trains, status shows its rate and ETA.
    with launched("sweep", str(grown), *where) as launcher:

        def running_row():
            if launcher.poll() is not None:
                raise AssertionError(
                    f"the sweep ended before status saw it running:\n{launcher.stdout.read()}"
                )
            lines = []  # in this process: a new one per poll would take seconds to start
            run_status(argparse.Namespace(sweep="grow", tracking_uri=uri), echo=lines.append)
            rows = [
                line
                for line in "\n".join(lines).splitlines()
                if line.startswith("cartpole_balance/seed0")
            ]
            return (
                rows
                and " running " in rows[0]
                and re.search(r" (\d+\.\d) +(\d+s|\d+m\d\ds) ", rows[0])
                and rows[0]
            )

        row = wait_for(
            running_row, 300, "status showing the running run's steps/s and ETA", poll=0.2
        )
        assert key in row and f"/ {3 * EPISODE:,}" in row, row
        out, _ = launcher.communicate(timeout=600)
    assert launcher.returncode == 0, out

    (again,) = tracker.runs(experiment_id)
    assert again.info.run_id == run_id and again.info.status == "FINISHED"
    assert int(again.data.tags["dreamerbench.resumed_at"]) == EPISODE
    assert again.data.tags["dreamerbench.budget_steps"] == str(3 * EPISODE)
    assert again.data.tags[tracking.STEPS_TAG] == str(3 * EPISODE)
    episodes = jsonl(logdir / "episodes.jsonl")
    assert [e["index"] for e in episodes] == list(range(len(episodes))) and len(episodes) >= 2
    for metric, expected in (
        ("episode/index", [(e["step"], e["index"]) for e in episodes]),
        ("episode/score", [(e["step"], e["score"]) for e in episodes]),
    ):
        history = sorted(
            (m.step, m.value) for m in tracker.client.get_metric_history(run_id, metric)
        )
        assert history == [(s, float(v)) for s, v in expected], metric
    status = dreamerbench("status", "grow", "--tracking-uri", uri)
    assert f"{3 * EPISODE:,} / {3 * EPISODE:,}" in status.stdout and "100.0%" in status.stdout, (
        status.stdout
    )


def test_status_shows_a_failed_runs_last_error_line_and_its_log(tmp_path):
    """A dm_env factory (tests/custom_envs.py) that raises when the job makes the env."""
    spec = tiny_spec(
        tmp_path,
        "broken",
        suite="dm_env",
        tasks=["custom_envs:broken"],
        seeds=1,
        steps=100,
        overrides={"agent.size": "debug"},
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    result = dreamerbench(
        "sweep", str(spec), "--tracking-uri", uri, "--workdir", str(tmp_path / "work"), env=env
    )
    assert result.returncode == 1 and "FAILED (exit 1; see " in result.stdout, (
        result.stdout + result.stderr
    )
    status = dreamerbench("status", "broken", "--tracking-uri", uri, env=env)
    tracker = tracking.Tracker(uri)
    (run,) = tracker.runs(tracker.find_experiment("broken").experiment_id)
    log = Path(run.data.tags["dreamerbench.logdir"]) / "job.log"
    assert status.stdout.splitlines()[-1] == (
        "failed custom_envs:broken/seed0: RuntimeError: the simulator did not start "
        f"(seed {env_seeds(0, 1)[0]})  "
        f"(log: {log})"
    ), status.stdout
    # The log, with the traceback, is an artifact of the failed run.
    uploaded = Path(
        tracker.client.download_artifacts(run.info.run_id, "logs/job.log", str(tmp_path / "dl"))
    ).read_text()
    assert "Traceback" in uploaded and "the simulator did not start" in uploaded, uploaded
