"""A sweep (local executor) recorded into a real `mlflow server` on 127.0.0.1 (sqlite backend)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from experiments import tracking
from test_sweep_slurm import dreamerbench, tiny_spec


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


def test_local_sweep_into_mlflow_server(tmp_path, mlflow_server):
    spec = tiny_spec(tmp_path, "server_sweep", tasks=["cartpole_balance"], seeds=1, steps=1100)
    result = dreamerbench("sweep", str(spec), "--tracking-uri", mlflow_server,
                          "--workdir", str(tmp_path / "work"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runs: 1 FINISHED" in result.stdout and mlflow_server in result.stdout
    client = tracking.client(mlflow_server)
    experiment = client.get_experiment_by_name("server_sweep")
    (run,) = tracking.sweep_runs(client, experiment.experiment_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["dreamerbench.local_pid"] and run.data.tags["dreamerbench.host"]
    assert run.data.params["run.steps"] == "1100"
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "episode/length")] == [
        (1000, 1000.0)
    ]
    assert {"config.yaml", "summary.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    # Idempotent against the server too.
    again = dreamerbench("sweep", str(spec), "--tracking-uri", mlflow_server,
                         "--workdir", str(tmp_path / "work"))
    assert again.returncode == 0 and "nothing to submit" in again.stdout, again.stdout
