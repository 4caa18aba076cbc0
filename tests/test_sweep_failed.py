"""A run whose env raises mid-training, through the real local launcher and job into real MLflow:
before the run is marked FAILED, MLflow holds every record its resume's checkpoint covers
(dreamerbench.agent.rundir.settle_pack), and ``--rerun-failed`` completes it with each episode
once."""

from __future__ import annotations

import json
import os
from pathlib import Path

from custom_envs import FAIL_AFTER
from test_sweep_slurm import REPO, dreamerbench, jsonl, tiny_spec

from dreamerbench.core import checkpoint
from dreamerbench.experiments import tracking

SAVE_EVERY = 60  # custom_envs.fails_later: 20-step episodes, about 3 per checkpoint interval
FAIL_AT = 150  # after the checkpoints at 60 and 120
STEPS = 200
OVERRIDES = {
    "agent.size": "debug",
    "agent.batch_size": 2,
    "agent.batch_length": 8,
    "agent.imag_length": 4,
    "agent.train_ratio": 16,
    "run.envs": 1,
    "run.parallel_envs": False,
    "run.train_start": 40,
    "run.save_every": SAVE_EVERY,
    "run.log_every": 0,
    "run.progress": False,
}


def mlflow_records(tracker, run_id, metric):
    return sorted(
        (m.step, m.timestamp, m.value) for m in tracker.client.get_metric_history(run_id, metric)
    )


def file_records(path: Path, end: int | None = None):
    data = path.read_bytes()[:end]
    return [json.loads(line) for line in data.splitlines()]


def test_a_failed_run_holds_what_its_checkpoint_covers_and_the_rerun_adds_the_rest_once(tmp_path):
    spec = tiny_spec(
        tmp_path,
        "fails",
        suite="dm_env",
        tasks=["custom_envs:fails_later"],
        seeds=1,
        steps=STEPS,
        overrides=OVERRIDES,
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ("sweep", str(spec), "--tracking-uri", uri, "--workdir", str(tmp_path / "work"))
    path = os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])
    failed = dreamerbench(*args, env={"PYTHONPATH": path, FAIL_AFTER: str(FAIL_AT)})
    assert failed.returncode == 1 and "FAILED (exit 1; see " in failed.stdout, (
        failed.stdout + failed.stderr
    )

    tracker = tracking.Tracker(uri)
    (run,) = tracker.runs(tracker.find_experiment("fails").experiment_id)
    run_id, logdir = run.info.run_id, Path(run.data.tags["dreamerbench.logdir"])
    assert (
        run.info.status == "FAILED"
        and "the simulator crashed after 150 steps" in run.data.tags["dreamerbench.error"]
    )
    # The logdir keeps one checkpoint, the newest (a resume takes it); MLflow holds exactly the
    # records it covers, not what came after it (the rerun trains that stretch again).
    (kept,) = checkpoint.complete(logdir / "checkpoint")
    assert kept.step == 2 * SAVE_EVERY
    covered = checkpoint.read_counters(kept)["file_sizes"]
    episodes = file_records(logdir / "episodes.jsonl", covered["episodes"])
    assert [e["step"] for e in episodes] == [20, 41, 62, 83, 104]  # episodes of 21 agent steps
    assert [e["step"] for e in file_records(logdir / "episodes.jsonl")][5:] == [
        125,
        146,
    ]  # after it, before the crash
    assert mlflow_records(tracker, run_id, "episode/index") == [
        (e["step"], e["time_ms"], e["index"]) for e in episodes
    ]
    metrics = file_records(logdir / "metrics.jsonl", covered["metrics"])
    assert metrics and mlflow_records(tracker, run_id, "fps/env_steps_per_s") == [
        (m["step"], m["time_ms"], m["env_steps_per_s"]) for m in metrics if "env_steps_per_s" in m
    ]
    delivered = json.loads(run.data.tags[tracking.DELIVERED_TAG])
    assert delivered == {name: covered.get(name, 0) for name in delivered}
    assert int(run.data.tags[tracking.STEPS_TAG]) == max(r["step"] for r in episodes + metrics)

    rerun = dreamerbench(*args, "--rerun-failed", env={"PYTHONPATH": path})
    assert rerun.returncode == 0 and "runs: 1 finished" in rerun.stdout, rerun.stdout + rerun.stderr
    (done,) = tracker.runs(tracker.find_experiment("fails").experiment_id)
    assert done.info.run_id == run_id and done.info.status == "FINISHED"
    assert done.data.tags["dreamerbench.resumed_at"] == run.data.tags[tracking.STEPS_TAG]
    episodes = jsonl(logdir / "episodes.jsonl")
    # Episodes of 21 agent steps (the reset's step and 20 more); the resume at 120 starts a new one.
    assert [(e["index"], e["step"]) for e in episodes] == [
        (0, 20),
        (1, 41),
        (2, 62),
        (3, 83),
        (4, 104),
        (5, 140),
        (6, 161),
        (7, 182),
    ]
    for field in ("index", "score"):
        assert mlflow_records(tracker, run_id, f"episode/{field}") == [
            (e["step"], e["time_ms"], e[field]) for e in episodes
        ]
    assert done.data.tags[tracking.STEPS_TAG] == str(STEPS)
