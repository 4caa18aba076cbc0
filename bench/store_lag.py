"""How far MLflow lags a training run: seconds from an episode's record to MLflow holding it.

The outputs take a run's records at its checkpoints (``run.save_every`` agent steps, or
``run.save_every_s`` seconds, whichever comes first), so the lag is bounded by the save
cadence. This trains one ``dreamerbench train --tracking-uri`` run in a subprocess, polls the
MLflow store once a second, and for every episode record (its ``time_ms``) notes when
``episode/score`` at its step first appears there. Prints one JSON object:
``{"save_every_s": ..., "episodes": N, "lag_s_median": ..., "lag_s_max": ..., ...}``.

    python -m bench.store_lag --save-every-s 30 --steps 4000   (from the repository root)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def run(save_every_s: float, steps: int, workdir: Path) -> dict:
    """Train `steps` agent steps of dmc_proprio cartpole_balance (debug size, one env, train
    ratio 64: an episode every 1,000 steps) into `workdir` and measure the lag of each episode
    record; the JSON record described above."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    logdir = workdir / "run"
    command = [
        sys.executable, "-m", "dreamerbench", "train", "--suite", "dmc_proprio",
        "--task", "cartpole_balance", "--size", "debug", "--steps", str(steps),
        "--logdir", str(logdir), "--tracking-uri", uri, "--experiment", "lag",
        "--set", f"run.save_every_s={save_every_s}", "--set", "run.save_every=1000000",
        "--set", "run.progress=false", "--set", "run.envs=1",
        "--set", "agent.train_ratio=64",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: dict[int, float] = {}  # episode step -> first time MLflow held it
    client, run_id = None, None
    while True:
        done = process.poll() is not None
        # The trainer creates the store before it writes config.yaml: opening it earlier races
        # MLflow's table creation.
        if client is None and (logdir / "config.yaml").exists():
            client = MlflowClient(uri)
        if client is not None and run_id is None:
            experiment = client.get_experiment_by_name("lag")
            runs = client.search_runs([experiment.experiment_id]) if experiment else []
            run_id = runs[0].info.run_id if runs else None
        if run_id is not None:
            now = time.time()
            for metric in client.get_metric_history(run_id, "episode/score"):
                seen.setdefault(metric.step, now)
        if done:
            break
        time.sleep(1.0)
    if process.returncode != 0:
        raise SystemExit(f"train failed: {process.stderr.read().decode()[-2000:]}")
    records = [json.loads(line) for line in (logdir / "episodes.jsonl").read_text().splitlines()]
    # Episodes MLflow first saw only after the run ended were delivered by its last save.
    lags = [seen[r["step"]] - r["time_ms"] / 1000 for r in records if r["step"] in seen]
    return {
        "save_every_s": save_every_s,
        "steps": steps,
        "episodes": len(records),
        "delivered": len(lags),
        "lag_s_median": round(float(np.median(lags)), 1) if lags else None,
        "lag_s_max": round(float(np.max(lags)), 1) if lags else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--save-every-s", type=float, default=30.0)
    parser.add_argument("--steps", type=int, default=4000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        print(json.dumps(run(args.save_every_s, args.steps, Path(workdir))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
