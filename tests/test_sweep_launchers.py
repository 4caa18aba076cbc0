"""One launcher per sweep: two `dreamerbench sweep` commands started together on a new store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from test_sweep_slurm import QUICKSTART, REPO, dreamerbench, jsonl, launched, tiny_spec, wait_for

from dreamerbench.experiments import tracking

EPISODE = 126  # cartpole with action repeat 8: 125 actions per episode


def test_two_launchers_started_together_make_one_set_of_runs_and_record_each_episode_once(tmp_path):
    """Issue 11, fault 3: two launchers of one sweep trained the same runs twice (4 MLflow runs for
    2 keys, every episode recorded twice, 2 runs stuck SCHEDULED), or crashed creating the store."""
    quickstart = yaml.safe_load(QUICKSTART.read_text())["overrides"]
    spec = tiny_spec(
        tmp_path,
        "twice",
        tasks=["cartpole_balance"],
        seeds=2,
        steps=2 * EPISODE,
        overrides={
            **quickstart,
            "env.action_repeat": 8,
            "run.save_every": EPISODE,
            "run.train_start": 64,
        },
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # a new database file: both create its schema
    command = [
        sys.executable,
        "-m",
        "dreamerbench.experiments.cli",
        "sweep",
        str(spec),
        "--tracking-uri",
        uri,
        "--workdir",
        str(tmp_path / "work"),
    ]
    launchers = [
        subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [launcher.communicate(timeout=900) for launcher in launchers]
    codes = [launcher.returncode for launcher in launchers]
    assert sorted(codes) == [0, 1], outputs
    (won, _), (_, refused) = outputs[codes.index(0)], outputs[codes.index(1)]
    assert "runs: 2 finished" in won, won
    # (Above it, MLflow may log that it created the new store's tables.)
    line = refused.strip().splitlines()[-1]
    assert (
        line.startswith("dreamerbench sweep: error: sweep 'twice' is being launched by ")
        and "launcher.lock" in line
    )
    assert "Traceback" not in refused, refused

    tracker = tracking.Tracker(uri)
    runs = tracker.runs(tracker.find_experiment("twice").experiment_id)
    assert len(runs) == 2 and len({r.data.tags["dreamerbench.run_key"] for r in runs}) == 2
    for run in runs:
        assert run.info.status == "FINISHED"
        episodes = jsonl(Path(run.data.tags["dreamerbench.logdir"]) / "episodes.jsonl")
        assert [e["step"] for e in episodes] == [EPISODE - 1, 2 * EPISODE - 1]
        history = tracker.client.get_metric_history(run.info.run_id, "episode/score")
        assert sorted((m.step, m.value) for m in history) == [
            (e["step"], e["score"]) for e in episodes
        ]


def test_a_worker_killed_with_sigkill_is_interrupted_in_the_launchers_summary_as_in_status(
    tmp_path,
):
    """Issue 15 (B): after kill -9 of a worker the launcher said '[1/1] FAILED (exit -9; ...)' and
    'runs: 1 RUNNING' while `status` said 'interrupted' with a resume hint: one rule for both."""
    spec = tiny_spec(tmp_path, "killed", tasks=["cartpole_balance"], seeds=1, steps=4000)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with launched(
        "sweep", str(spec), "--tracking-uri", uri, "--workdir", str(tmp_path / "work")
    ) as launcher:

        def worker_pid():  # the worker tags its run when it takes it up (RUNNING)
            try:
                tracker = tracking.Tracker(uri, create=False)
                runs = tracker.runs(tracker.find_experiment("killed").experiment_id)
            except (FileNotFoundError, ValueError):
                return None
            return (
                runs
                and runs[0].info.status == "RUNNING"
                and runs[0].data.tags.get("dreamerbench.local_pid")
            )

        os.kill(int(wait_for(worker_pid, 300, "the worker taking its run up")), signal.SIGKILL)
        output, _ = launcher.communicate(timeout=120)
    assert launcher.returncode == 1, output
    assert "[1/1] interrupted (killed by SIGKILL; resumable; see " in output, output
    assert "runs: 1 interrupted\n" in output, output
    status = dreamerbench("status", "killed", "--tracking-uri", uri)
    assert " interrupted " in status.stdout and "(1 interrupted)" in status.stdout, status.stdout
    assert "1 run(s) interrupted; resume them with: " in status.stdout, status.stdout


def test_a_stop_signal_that_comes_while_the_next_worker_starts_reaches_that_worker(
    tmp_path, monkeypatch
):
    """Issue 21 item 4: a SIGTERM to a local launcher within ~0.1 s after '[1/2] finished' was
    ignored (4 of 4) and the next run trained its whole budget: it came while the launcher
    started the next worker, before the launcher held it among the workers it forwards signals
    to. Here it comes at exactly that point (the worker exists, the launcher has not yet
    registered it); stand-in workers keep the test fast: the first ends at once, the second
    waits for SIGTERM (exiting like a job stopped at a checkpoint) or 30 s."""
    from dreamerbench.experiments.job import EXIT_INTERRUPTED, RunTask
    from dreamerbench.experiments.launchers import local
    from dreamerbench.experiments.launchers.base import Context

    workers = [
        "pass",
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *a: sys.exit({EXIT_INTERRUPTED}))\n"
        "time.sleep(30)",
    ]
    popen = subprocess.Popen

    def start(command, **kwargs):
        process = popen([sys.executable, "-c", workers.pop(0)], **kwargs)
        if not workers:  # the second worker
            os.kill(os.getpid(), signal.SIGTERM)
        return process

    monkeypatch.setattr(local.subprocess, "Popen", start)
    packs = [
        [RunTask(f"run{i}", f"key{i}", f"task/seed{i}", str(tmp_path / str(i)), {})] for i in (0, 1)
    ]
    lines: list[str] = []
    context = Context("s", tmp_path / "local", "sqlite:///unused.db", "0", None, 1, lines.append)
    before = signal.getsignal(signal.SIGTERM)
    start_s = time.monotonic()
    ended = local.run_local(packs, context)
    assert time.monotonic() - start_s < 20, lines  # not the second worker's 30 s
    assert [job.code for job in ended][0] == 0, lines
    assert ended[1].code in (EXIT_INTERRUPTED, -signal.SIGTERM), lines
    assert "  SIGTERM: the runs save a checkpoint and stop" in lines, lines
    assert signal.getsignal(signal.SIGTERM) is before
