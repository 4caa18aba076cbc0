"""A sweep (local executor) recorded into a real `mlflow server` on 127.0.0.1 (sqlite backend)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from experiments import tracking
from test_sweep_slurm import REPO, dreamerbench, jsonl, tiny_spec, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    log = open(tmp_path / "server.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"mlflow server did not come up: {(tmp_path / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        # SIGTERM to the server's own process group (it started it) stops its workers too.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_local_sweep_into_mlflow_server_with_interrupt_and_resume(tmp_path, mlflow_server):
    """Local executor: SIGINT makes the run checkpoint and stop; re-running resumes it."""
    spec = tiny_spec(tmp_path, "server_sweep", tasks=["cartpole_balance"], seeds=1, steps=1100)
    args = ["sweep", str(spec), "--tracking-uri", mlflow_server, "--workdir", str(tmp_path / "work")]
    tracker = tracking.Tracker(mlflow_server)
    client = tracker.client
    launcher = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", *args], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        def checkpointed():
            experiment = client.get_experiment_by_name("server_sweep")
            runs = tracker.runs(experiment.experiment_id) if experiment else []
            return [r for r in runs if int(r.data.tags.get(tracking.STEPS_TAG, "0")) > 0]

        (first,) = wait_for(checkpointed, 180, "the run's first checkpoint", poll=0.5)
        launcher.send_signal(signal.SIGINT)  # what Ctrl-C sends
        output, _ = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 1, output
    assert "stopped (resumable)" in output and "runs: 1 SCHEDULED" in output, output
    stopped = client.get_run(first.info.run_id)
    assert stopped.info.status == "SCHEDULED"
    stopped_at = int(stopped.data.tags[tracking.STEPS_TAG])
    assert 0 < stopped_at < 1100

    result = dreamerbench(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runs: 1 FINISHED" in result.stdout and mlflow_server in result.stdout
    experiment = client.get_experiment_by_name("server_sweep")
    (run,) = tracker.runs(experiment.experiment_id)
    assert run.info.run_id == first.info.run_id and run.info.status == "FINISHED"
    assert run.data.tags["dreamerbench.resumed_at"] == str(stopped_at)
    assert run.data.tags["dreamerbench.local_pid"] and run.data.tags["dreamerbench.host"]
    assert run.data.params["run.steps"] == "1100"
    # Every train record exactly once across the interruption (the trainer's own log is the truth).
    train = [r for r in jsonl(Path(run.data.tags["dreamerbench.logdir"]) / "metrics.jsonl") if "updates" in r]
    history = sorted(client.get_metric_history(run.info.run_id, "train/updates"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in history] == [(r["step"], float(r["updates"])) for r in train]
    assert {"config.yaml", "summary.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    # Idempotent against the server too.
    again = dreamerbench(*args)
    assert again.returncode == 0 and "nothing to submit" in again.stdout, again.stdout
