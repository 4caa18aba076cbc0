"""Records reach a real MLflow store (sqlite) exactly once: identity, delivery from disk, batching,
naming.

Each test names the fault of issue 11 it covers.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from stub_agent import StubAgent
from test_rundir import EPISODE, _StopAfter, config, records

from dreamerbench.agent.rundir import Counters, RunDir
from dreamerbench.agent.trainer import Trainer
from dreamerbench.analysis import load_runs
from dreamerbench.core.records import Record, named_values
from dreamerbench.experiments import tracking
from dreamerbench.experiments.outputs.mlflow import RunRecorder
from dreamerbench.experiments.spec import expand, parse_spec

REPO = Path(__file__).resolve().parent.parent
SPEC = """\
name: records
suite: dmc_proprio
tasks: [cartpole_balance]
seeds: 2
steps: 1000
overrides: {agent.size: debug, env.action_repeat: 8}
"""


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    """One sqlite store for the module (a new store costs MLflow's schema migrations)."""
    return tracking.Tracker(f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}")


@pytest.fixture
def store(tracker, request):
    """(tracker, experiment id) of an experiment of this test's own, named after it."""
    return tracker, tracker.experiment(request.node.name)


def experiment(store) -> str:
    return store[0].client.get_experiment(store[1]).name


def scheduled(store, logdir, seed=0):
    """An MLflow run for sweep run `seed` of SPEC, as the launcher creates it, started as a job
    does."""
    tracker, experiment_id = store
    run = expand(parse_spec(SPEC))[seed]
    run_id = tracker.schedule(experiment_id, run, tracking.git_state(), lambda _: str(logdir))
    return run, tracker.start(run_id, {"seed": seed}, logdir)


def history(store, run_id, key):
    client = store[0].client
    return [
        (m.step, m.timestamp, m.value)
        for m in sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    ]


def test_sixteen_equal_episodes_at_one_step_reach_mlflow_as_sixteen(store, tmp_path):
    """Issue 11, fault 1: MLflow kept 2 of 16 episodes that ended at one step (ten scored 1000, six
    0)."""
    logdir = tmp_path / "run"
    _, recorder = scheduled(store, logdir)
    with RunDir(logdir) as run:
        run.start()
        for env in range(16):  # 16 envs end their episodes at one step, within one millisecond
            won = env < 10
            run.record_episode(
                {
                    "score": 1000.0 if won else 0.0,
                    "length": 1000,
                    "achievement_balance": float(won),
                    "step": 16_000,
                    "wall_s": 60.0,
                }
            )
        summary = run.summary(Counters(steps=16_000), finished=True)
    recorder.end(summary)
    scores = history(store, recorder.run_id, "episode/score")
    assert len(scores) == 16 and np.mean([value for _, _, value in scores]) == 625.0
    assert store[0].run(recorder.run_id).info.status == "FINISHED"
    table = load_runs(store[0].uri, experiment(store))
    assert len(table) == 16 and table["score"].mean() == 625.0
    # Each score pairs with its own episode's achievement, not with another's by position.
    assert ((table["score"] == 1000.0) == (table["achievement_balance"] == 1.0)).all()


def test_delivering_a_record_twice_is_a_no_op(store, tmp_path):
    """A cursor update lost with the connection makes the next job deliver records again: MLflow
    keeps one."""
    logdir = tmp_path / "run"
    _, recorder = scheduled(store, logdir)
    with RunDir(logdir) as run:
        run.start()
        for step in (100, 100, 200):
            run.record_episode({"score": 5.0, "length": 100, "step": step})
        summary = run.summary(Counters(steps=200), finished=True)
    recorder.end(summary)
    before = history(store, recorder.run_id, "episode/score")
    store[0].tag(recorder.run_id, {"delivered": "{}"})  # MLflow "forgot" that it holds them
    again = RunRecorder(store[0], recorder.run_id, logdir)
    assert again.pending() > 0
    again.end(summary)
    assert history(store, recorder.run_id, "episode/score") == before and len(before) == 3
    assert again.pending() == 0


def test_records_reach_mlflow_only_once_no_resume_can_cut_them_back(store, tmp_path):
    """Records covered by the newest checkpoint only wait: a resume may still fall back behind
    them."""
    logdir = tmp_path / "run"
    _, recorder = scheduled(store, logdir)
    stop = threading.Event()
    trainer = Trainer(
        config(4 * EPISODE), logdir, [recorder, _StopAfter(2, stop)], make_agent=StubAgent
    )
    stopped = trainer.run(stop)  # saves at 126 and 252, then stops (Ctrl-C)
    recorder.end(stopped)
    run = store[0].run(recorder.run_id)
    assert run.info.status == "SCHEDULED"
    # MLflow holds what the older checkpoint (126) covers: the episode at 125, train records to 126.
    assert [s for s, _, _ in history(store, recorder.run_id, "episode/score")] == [EPISODE - 1]
    assert max(s for s, _, _ in history(store, recorder.run_id, "train/loss")) == EPISODE
    assert run.data.tags[tracking.STEPS_TAG] == str(EPISODE)

    resumed = store[0].start(recorder.run_id, {}, logdir)
    summary = Trainer(config(4 * EPISODE), logdir, [resumed], make_agent=StubAgent).run()
    resumed.end(summary)
    run = store[0].run(recorder.run_id)
    assert run.info.status == "FINISHED" and run.data.tags[tracking.STEPS_TAG] == str(4 * EPISODE)
    assert run.data.tags["dreamerbench.resumed_at"] == str(EPISODE)
    for file, key, kind in (
        ("episodes", "episode/score", None),
        ("metrics", "train/loss", "train"),
    ):
        expected = [
            (r["step"], r["time_ms"], r["score" if kind is None else "loss"])
            for r in records(logdir / f"{file}.jsonl")
            if kind is None or r["kind"] == kind
        ]
        assert history(store, recorder.run_id, key) == expected, key
    assert {a.path for a in store[0].client.list_artifacts(recorder.run_id)} == {
        "config.yaml",
        "summary.json",
    }


def test_sixteen_envs_of_the_real_loop_deliver_sixteen_episodes_at_one_step(store, tmp_path):
    """Fault 1 through the training loop: 16 DMC envs whose episodes all end at the same step."""
    logdir = tmp_path / "run"
    _, recorder = scheduled(store, logdir)
    summary = Trainer(
        config(16 * EPISODE, **{"run.envs": 16, "agent.train_ratio": 1}),
        logdir,
        [recorder],
        make_agent=StubAgent,
    ).run()
    recorder.end(summary)
    assert summary["episodes"] == 16
    table = load_runs(store[0].uri, experiment(store))
    assert table.groupby("step").size().to_dict() == {16 * (EPISODE - 1): 16}
    assert sorted(table["score"]) == sorted(r["score"] for r in records(logdir / "episodes.jsonl"))


def test_a_large_delivery_is_split_into_batches(store, tmp_path):
    logdir = tmp_path / "run"
    _, recorder = scheduled(store, logdir)
    with RunDir(logdir) as run:
        run.start()
        for step in range(2500):
            run.append("metrics", {"kind": "train", "step": step, "loss/total": float(step)})
        summary = run.summary(Counters(steps=2500), finished=True)
    recorder.end(summary)
    assert [(s, v) for s, _, v in history(store, recorder.run_id, "train/loss/total")] == [
        (s, float(s)) for s in range(2500)
    ]
    assert store[0].run(recorder.run_id).data.tags[tracking.STEPS_TAG] == "2500"


def test_table_warns_when_a_run_key_has_several_mlflow_runs(store, tmp_path):
    """Issue 11, fault 3: a race left two MLflow runs for one key; the table counted both
    silently."""
    for index, scores in enumerate(([100.0, 300.0], [])):
        logdir = tmp_path / f"run{index}"
        _, recorder = scheduled(store, logdir)
        with RunDir(logdir) as run:
            run.start()
            for step, score in enumerate(scores, 1):
                run.record_episode({"score": score, "length": 10, "step": 100 * step})
            if scores:
                recorder.end(run.summary(Counters(steps=200), finished=True))
    finished = [r for r in store[0].runs(store[1]) if r.info.status == "FINISHED"]
    table = load_runs(store[0].uri, experiment(store), notes := [])
    assert len(table) == 2 and sorted(table["score"]) == [100.0, 300.0]
    assert (
        len(notes) == 1
        and f"has 2 MLflow runs; using {finished[0].info.run_id} (FINISHED)" in notes[0]
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dreamerbench.experiments.cli",
            "table",
            "--suite",
            "dmc_proprio",
            "--runs",
            experiment(store),
            "--tracking-uri",
            store[0].uri,
            "--budget-frames",
            "1600",
            "--window-frames",
            "1600",
            "--reps",
            "100",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert f"warning: {notes[0]}" in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", ["sweep", "status", "table"])
def test_an_unreachable_server_is_one_line_naming_it_within_seconds(tmp_path, command):
    """Issue 11, fault 2: a down server made `sweep` hang about 4 minutes per call, then a
    traceback."""
    uri = f"http://127.0.0.1:{_free_port()}"
    spec = tmp_path / "records.yaml"
    spec.write_text(SPEC)
    args = {
        "sweep": ["sweep", str(spec), "--workdir", str(tmp_path / "work")],
        "status": ["status", "records"],
        "table": ["table", "--suite", "dmc_proprio", "--runs", "records"],
    }[command]
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "dreamerbench.experiments.cli", *args, "--tracking-uri", uri],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert time.monotonic() - start < 30
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(
        f"dreamerbench {command}: error: MLflow tracking server {uri} does not answer"
    )
    assert not (tmp_path / "work").exists()


def test_unknown_record_kind():
    with pytest.raises(ValueError, match="kind='video'; allowed: episode, train, fps, eval"):
        list(named_values("metrics", {"kind": "video", "step": 1, "time_ms": 1, "score": 1.0}))
    record = {"index": 0, "step": 1, "time_ms": 1, "score": 2.0, "mode": "greedy"}
    (metric,) = tracking.record_metrics([Record(1, 1, list(named_values("eval", record)))])[1:]
    assert (metric.key, metric.value, metric.step) == ("eval/score", 2.0, 1)


def test_tracking_uri_resolution(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert (
        tracking.resolve_tracking_uri("sqlite:///x/m.db")
        == f"sqlite:///{tmp_path.resolve()}/x/m.db"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.resolve_tracking_uri() == "http://127.0.0.1:5000"
    with pytest.raises(ValueError, match="file store in maintenance mode"):
        tracking.resolve_tracking_uri("file:///tmp/mlruns")
    with pytest.raises(ValueError, match="unsupported scheme 'ftp'"):
        tracking.resolve_tracking_uri("ftp://x")
    with pytest.raises(FileNotFoundError, match="no MLflow store at"):
        tracking.Tracker(f"sqlite:///{tmp_path / 'none.db'}", create=False)
    assert not (tmp_path / "none.db").exists()
