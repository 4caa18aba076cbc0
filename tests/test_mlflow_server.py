"""A sweep (local executor) recorded into a real `mlflow server` on 127.0.0.1 (sqlite backend)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from custom_envs import FAIL_AFTER, KILL_ON_FAIL
from test_sweep_failed import FAIL_AT, OVERRIDES, STEPS
from test_sweep_slurm import QUICKSTART, REPO, dreamerbench, jsonl, launched, tiny_spec, wait_for

from dreamerbench.core import checkpoint
from dreamerbench.experiments import tracking

EPISODE = 126  # cartpole with action repeat 8: 125 actions per episode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1 (sqlite backend) that a test can stop and start
    again."""

    def __init__(self, root: Path):
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> None:
        self.log = open(self.root / "server.log", "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.root / 'server.db'}",
                "--artifacts-destination",
                str(self.root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    "mlflow server did not come up: "
                    f"{(self.root / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is None:
            return
        # SIGTERM to the server's own process group (it started it) stops its workers too.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None
        self.log.close()


@pytest.fixture
def mlflow_server(tmp_path):
    server = MlflowServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_local_sweep_into_mlflow_server_with_interrupt_and_resume(tmp_path, mlflow_server):
    """Local executor: SIGINT makes the run checkpoint and stop; re-running resumes it."""
    spec = tiny_spec(tmp_path, "server_sweep", tasks=["cartpole_balance"], seeds=1, steps=1100)
    args = [
        "sweep",
        str(spec),
        "--tracking-uri",
        mlflow_server.url,
        "--workdir",
        str(tmp_path / "work"),
    ]
    tracker = tracking.Tracker(mlflow_server.url)
    client = tracker.client
    with launched(*args) as launcher:

        def checkpointed():
            experiment = client.get_experiment_by_name("server_sweep")
            runs = tracker.runs(experiment.experiment_id) if experiment else []
            # A run is created before its logdir tag is logged: poll only runs that have it.
            logdirs = [(r, r.data.tags.get("dreamerbench.logdir")) for r in runs]
            return [
                r
                for r, logdir in logdirs
                if logdir and checkpoint.complete(Path(logdir) / "checkpoint")
            ]

        (first,) = wait_for(checkpointed, 600, "the run's first checkpoint", poll=0.5)
        launcher.send_signal(signal.SIGINT)  # what Ctrl-C sends
        output, _ = launcher.communicate(timeout=120)
    assert launcher.returncode == 1, output
    assert "stopped (resumable)" in output and "runs: 1 interrupted" in output, output
    assert f"stopped early; resume with: dreamerbench sweep {spec}" in output, output
    stopped = client.get_run(first.info.run_id)
    assert stopped.info.status == "SCHEDULED"
    stopped_at = int(stopped.data.tags[tracking.STEPS_TAG])
    assert 0 < stopped_at < 1100

    result = dreamerbench(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runs: 1 finished" in result.stdout and mlflow_server.url in result.stdout
    experiment = client.get_experiment_by_name("server_sweep")
    (run,) = tracker.runs(experiment.experiment_id)
    assert run.info.run_id == first.info.run_id and run.info.status == "FINISHED"
    assert run.data.tags["dreamerbench.resumed_at"] == str(stopped_at)
    assert run.data.tags["dreamerbench.local_pid"] and run.data.tags["dreamerbench.host"]
    assert run.data.params["run.steps"] == "1100"
    # Every train record exactly once across the interruption (the trainer's own log is the truth).
    train = [
        r
        for r in jsonl(Path(run.data.tags["dreamerbench.logdir"]) / "metrics.jsonl")
        if "updates" in r
    ]
    history = sorted(
        client.get_metric_history(run.info.run_id, "train/updates"), key=lambda m: m.step
    )
    assert [(m.step, m.value) for m in history] == [(r["step"], float(r["updates"])) for r in train]
    assert {"config.yaml", "summary.json", "logs"} <= {
        a.path for a in client.list_artifacts(run.info.run_id)
    }
    # The job's log went to the server's artifact store too (both jobs append to one job.log).
    logdir = Path(run.data.tags["dreamerbench.logdir"])
    uploaded = Path(
        client.download_artifacts(run.info.run_id, "logs/job.log", str(tmp_path / "dl"))
    ).read_text()
    assert uploaded and (logdir / "job.log").read_text().startswith(uploaded)
    # Idempotent against the server too.
    again = dreamerbench(*args)
    assert again.returncode == 0 and "nothing to submit" in again.stdout, again.stdout


def test_records_of_an_outage_to_the_end_arrive_after_a_restart_and_only_then_finished(
    tmp_path, mlflow_server
):
    """Issue 11, fault 2: with the server down from mid-run to the end, MLflow kept 0 of 8 episode
    scores, never got them, and the run later showed FINISHED."""
    quickstart = yaml.safe_load(QUICKSTART.read_text())["overrides"]
    spec = tiny_spec(
        tmp_path,
        "outage",
        tasks=["cartpole_balance"],
        seeds=1,
        steps=8 * EPISODE,
        overrides={
            **quickstart,
            "env.action_repeat": 8,
            "run.save_every": EPISODE,
            "run.train_start": 64,
        },
    )
    args = [
        "sweep",
        str(spec),
        "--tracking-uri",
        mlflow_server.url,
        "--workdir",
        str(tmp_path / "work"),
    ]
    tracker = tracking.Tracker(mlflow_server.url)
    with launched(*args) as launcher:

        def delivered():
            experiment = tracker.client.get_experiment_by_name("outage")
            runs = tracker.runs(experiment.experiment_id) if experiment else []
            return [r for r in runs if int(r.data.tags.get(tracking.STEPS_TAG, "0")) > 0]

        (run,) = wait_for(delivered, 600, "the run's first records in MLflow", poll=0.5)
        mlflow_server.stop()  # down from mid-run to the end of the job
        output, _ = launcher.communicate(timeout=600)
    assert launcher.returncode == 1, output
    assert "stopped (resumable)" in output, output
    assert (
        output.strip()
        .splitlines()[-1]
        .startswith(f"dreamerbench sweep: error: MLflow at {mlflow_server.url}")
    )
    logdir = Path(run.data.tags["dreamerbench.logdir"])
    episodes = jsonl(logdir / "episodes.jsonl")
    assert len(episodes) == 8 and json.loads((logdir / "summary.json").read_text())["finished"]

    # While it is down, a launcher says so in one line, within seconds.
    start = time.monotonic()
    down = dreamerbench(*args)
    assert down.returncode == 1 and time.monotonic() - start < 60
    (line,) = down.stderr.strip().splitlines()
    assert f"MLflow tracking server {mlflow_server.url} does not answer" in line

    mlflow_server.start()  # the same store again
    held = tracker.run(run.info.run_id)
    assert held.info.status == "RUNNING"  # not FINISHED: MLflow lacks records
    assert len(tracker.client.get_metric_history(run.info.run_id, "episode/score")) < 8
    again = dreamerbench(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "runs: 1 finished" in again.stdout, again.stdout
    (done,) = tracker.runs(tracker.find_experiment("outage").experiment_id)
    assert done.info.run_id == run.info.run_id and done.info.status == "FINISHED"
    history = sorted(
        tracker.client.get_metric_history(run.info.run_id, "episode/score"),
        key=lambda m: m.timestamp,
    )
    assert [(m.step, m.timestamp, m.value) for m in history] == [
        (e["step"], e["time_ms"], e["score"]) for e in episodes
    ]
    train = [r for r in jsonl(logdir / "metrics.jsonl") if r["kind"] == "train"]
    history = sorted(
        tracker.client.get_metric_history(run.info.run_id, "train/updates"), key=lambda m: m.step
    )
    assert [(m.step, m.value) for m in history] == [(r["step"], float(r["updates"])) for r in train]


def test_a_run_failing_while_the_server_is_down_delivers_its_records_once_on_resume(
    tmp_path, mlflow_server
):
    """Issue 15 (A): the failure path must not crash when MLflow cannot take the failed run's
    records, and the next job of the run delivers them, each once (tests/test_sweep_failed.py has
    the same run with the server up)."""
    spec = tiny_spec(
        tmp_path,
        "fails",
        suite="dm_env",
        tasks=["custom_envs:fails_later"],
        seeds=1,
        steps=STEPS,
        overrides=OVERRIDES,
    )
    args = [
        "sweep",
        str(spec),
        "--tracking-uri",
        mlflow_server.url,
        "--workdir",
        str(tmp_path / "work"),
    ]
    path = os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])
    failed = dreamerbench(
        *args,
        env={
            "PYTHONPATH": path,
            FAIL_AFTER: str(FAIL_AT),
            KILL_ON_FAIL: str(mlflow_server.process.pid),
        },
    )
    assert failed.returncode == 1 and "FAILED (exit 1; see " in failed.stdout, (
        failed.stdout + failed.stderr
    )
    mlflow_server.stop()  # reap the killed server
    mlflow_server.start()  # the same store again
    tracker = tracking.Tracker(mlflow_server.url)
    (run,) = tracker.runs(tracker.find_experiment("fails").experiment_id)
    logdir = Path(run.data.tags["dreamerbench.logdir"])
    log = (logdir / "job.log").read_text()
    assert (
        f"could not mark run {run.info.run_id} FAILED" in log
        and "the simulator crashed after 150 steps" in log
    ), log
    # Not FAILED (the server was down), so the next sweep resumes it; MLflow holds what it took at
    # the last save (what the older checkpoint covered); the logdir keeps the checkpoint the resume
    # takes.
    assert run.info.status == "RUNNING"
    assert [
        int(m.step) for m in tracker.client.get_metric_history(run.info.run_id, "episode/index")
    ] == [20, 41]
    assert [c.step for c in checkpoint.complete(logdir / "checkpoint")] == [120]

    again = dreamerbench(*args, env={"PYTHONPATH": path})
    assert again.returncode == 0 and "runs: 1 finished" in again.stdout, again.stdout + again.stderr
    (done,) = tracker.runs(tracker.find_experiment("fails").experiment_id)
    assert done.info.run_id == run.info.run_id and done.info.status == "FINISHED"
    episodes = jsonl(logdir / "episodes.jsonl")
    assert [e["step"] for e in episodes] == [20, 41, 62, 83, 104, 140, 161, 182]
    for field in ("index", "score"):
        history = sorted(
            (m.step, m.timestamp, m.value)
            for m in tracker.client.get_metric_history(run.info.run_id, f"episode/{field}")
        )
        assert history == [(e["step"], e["time_ms"], e[field]) for e in episodes], field
