"""`dreamerbench train` on a real DMC task: files, resume after SIGKILL, bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from dreamerbench.core import checkpoint

# cartpole with action repeat 8: every episode is 125 actions, i.e. 126 observations
# (the reset one included), so checkpoints every 126 steps fall on episode boundaries.
EPISODE = 126
TINY = [
    "agent.batch_size=2",
    "agent.batch_length=8",
    "agent.imag_length=3",
    "agent.train_ratio=16",
    "run.envs=1",
    "run.train_start=40",
    f"run.save_every={EPISODE}",
    "run.log_every=0",
    "replay.capacity=5000",
    "env.action_repeat=8",
]


def train_command(logdir, cache, steps=4 * EPISODE, extra=()):
    sets = [
        arg for item in (*TINY, f"run.compile_cache={cache}", *extra) for arg in ("--set", item)
    ]
    return [
        sys.executable,
        "-m",
        "dreamerbench.experiments.cli",
        "train",
        "--suite",
        "dmc_proprio",
        "--task",
        "cartpole_balance",
        "--size",
        "debug",
        "--seed",
        "3",
        "--steps",
        str(steps),
        "--logdir",
        str(logdir),
        *sets,
    ]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_train_writes_its_files_and_resumes_exactly_after_sigkill(tmp_path):
    cache = tmp_path / "jax-cache"
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = subprocess.run(train_command(whole, cache), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["finished"] and summary["steps"] == 4 * EPISODE and summary["episodes"] == 4
    # The resource plan, once the run has started (experiments/plan.py; a CPU run has no GPU).
    (plan,) = [line for line in done.stderr.splitlines() if line.startswith("resource plan: ")]
    assert "1 run(s): " in plan and "host RAM (replay " in plan and "GPU" not in plan

    config = yaml.safe_load((whole / "config.yaml").read_text())
    assert config["agent"]["size"] == "debug" and config["env"] == {"action_repeat": 8}
    episodes = read_jsonl(whole / "episodes.jsonl")
    assert [e["step"] for e in episodes] == [
        EPISODE - 1,
        2 * EPISODE - 1,
        3 * EPISODE - 1,
        4 * EPISODE - 1,
    ]
    assert all(e["length"] == EPISODE - 1 and 0 <= e["score"] <= 1000 for e in episodes)
    metrics = read_jsonl(whole / "metrics.jsonl")
    losses = [m for m in metrics if "loss/total" in m]
    assert losses and all(m["updates"] > 0 for m in losses)
    assert (whole / "summary.json").exists() and checkpoint.complete(whole / "checkpoint")

    # Same run, killed hard once its first checkpoint exists, then resumed.
    process = subprocess.Popen(
        train_command(killed, cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.time() + 300
    while not checkpoint.complete(killed / "checkpoint"):
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    interrupted = read_jsonl(killed / "episodes.jsonl")
    assert len(interrupted) < 4
    resumed = subprocess.run(
        train_command(killed, cache), capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    resumed_summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    for key in ("steps", "updates", "episodes", "finished"):
        assert resumed_summary[key] == summary[key], key
    assert [e["step"] for e in read_jsonl(killed / "episodes.jsonl")] == [
        e["step"] for e in episodes
    ]
    resumed_metrics = read_jsonl(killed / "metrics.jsonl")
    train_steps = [m["step"] for m in resumed_metrics if "loss/total" in m]
    assert train_steps == sorted(set(train_steps)), "duplicated or out-of-order metric records"

    # Finished runs stay finished; a different config on the same logdir is refused.
    again = subprocess.run(
        train_command(killed, cache), capture_output=True, text=True, timeout=600
    )
    assert (
        again.returncode == 0
        and json.loads(again.stdout.strip().splitlines()[-1])["updates"] == summary["updates"]
    )
    clash = subprocess.run(
        train_command(killed, cache, extra=["agent.lam=0.9"]), capture_output=True, text=True
    )
    assert clash.returncode == 2 and "agent.lam" in clash.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--size", "huge"], "--size='huge' is not allowed; allowed: debug, 1m, 12m"),
        (
            ["--task", "cartpole_dance"],
            "task='cartpole_dance' is not in suite 'dmc_proprio'; allowed: acrobot_swingup",
        ),
        (["--suite", "pong"], "suite='pong' is unknown; allowed:"),
        (
            ["--set", "agent.train_rate=64"],
            "unknown field 'agent.train_rate'; allowed fields at agent: size, stoch",
        ),
        (
            ["--set", "agent.batch_size=many"],
            "agent.batch_size='many' is not allowed; allowed: an integer in [1, 1024]",
        ),
        (
            ["--set", "env.frame_skip=2"],
            "env.frame_skip is not a protocol field of suite 'dmc_proprio'; allowed: action_repeat",
        ),
    ],
)
def test_bad_input_names_the_field_and_the_allowed_values(tmp_path, args, message):
    base = {"--suite": "dmc_proprio", "--task": "cartpole_balance", "--size": "debug"}
    flags = dict(zip(args[::2], args[1::2]))
    argv = [
        sys.executable,
        "-m",
        "dreamerbench.experiments.cli",
        "train",
        "--logdir",
        str(tmp_path / "run"),
    ]
    for flag, value in {**base, **{k: v for k, v in flags.items() if k != "--set"}}.items():
        argv += [flag, value]
    if "--set" in flags:
        argv += ["--set", flags["--set"]]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoint").exists()


def _delivered(uri):
    """The ``dreamerbench.delivered`` cursor of the one run of experiment ``train`` (None while
    there is none; the store may be mid-creation by the training process)."""
    from dreamerbench.experiments import tracking

    try:
        tracker = tracking.Tracker(uri, create=False)
        (run,) = tracker.runs(tracker.find_experiment("train").experiment_id)
    except Exception:  # noqa: BLE001 - not there yet
        return None
    return json.loads(run.data.tags.get(tracking.DELIVERED_TAG) or "{}")


@pytest.mark.slow
def test_a_fresh_start_after_the_only_checkpoint_is_damaged_reaches_mlflow_as_its_own_timeline(
    tmp_path,
):
    """Issue 21: the old timeline's MLflow cursor applied to the new file ("metrics.jsonl is
    damaged: the line at byte 1772") once a run whose only checkpoint was damaged started afresh.
    Now the damaged logdir is refused (its records are never emptied); moved aside, the same
    command's new timeline reaches the same MLflow run from its start."""
    from dreamerbench.experiments import tracking

    cache, logdir = tmp_path / "jax-cache", tmp_path / "run"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [*train_command(logdir, cache), "--tracking-uri", uri]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not any((_delivered(uri) or {}).values()):  # MLflow holds the first checkpoint's records
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.time() < deadline
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    (only,) = checkpoint.complete(logdir / "checkpoint")
    (only.path / "state.msgpack").write_bytes(b"damaged")
    before = (logdir / "episodes.jsonl").read_bytes()

    # The logdir's records are never emptied: the command refuses and says what to do ...
    refused = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 1 and "state.msgpack" in refused.stderr, refused.stderr
    assert "aside" in refused.stderr and (logdir / "episodes.jsonl").read_bytes() == before
    # ... and once the user moves it aside, the same command starts a new timeline there.
    logdir.rename(tmp_path / "run.damaged")
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "is not the file whose records" in again.stderr
    tracker = tracking.Tracker(uri, create=False)
    (run,) = tracker.runs(tracker.find_experiment("train").experiment_id)
    assert run.info.status == "FINISHED"
    sizes = {name: (logdir / f"{name}.jsonl").stat().st_size for name in ("episodes", "metrics")}
    assert {k: v for k, v in _delivered(uri).items() if k in sizes} == sizes
    history = tracker.client.get_metric_history(run.info.run_id, "episode/score")
    held = {(m.step, m.timestamp, m.value) for m in history}
    episodes = read_jsonl(logdir / "episodes.jsonl")
    assert len(episodes) == 4
    assert {(e["step"], e["time_ms"], e["score"]) for e in episodes} <= held


def test_a_second_logdir_for_one_mlflow_run_is_refused_before_training(tmp_path):
    """Issue 21: two `train --tracking-uri` of one task, seed and config into different logdirs
    mapped to one MLflow run, and the second failed after training its whole budget."""
    from dreamerbench.agent.config import resolve_config
    from dreamerbench.experiments import tracking, train_tracking

    cache, uri = tmp_path / "jax-cache", f"sqlite:///{tmp_path / 'mlflow.db'}"
    sets = ["agent.size=debug", f"run.steps={4 * EPISODE}", *TINY, f"run.compile_cache={cache}"]
    config = resolve_config("dmc_proprio", "cartpole_balance", 3, sets)  # as the CLI resolves it
    tracker, (run_id,) = train_tracking.start(uri, "train", [config], [tmp_path / "a"])
    assert tracker.run(run_id).data.tags[tracking.LOGDIR_TAG] == str(tmp_path / "a")

    refused = subprocess.run(
        [*train_command(tmp_path / "b", cache), "--tracking-uri", uri],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2, refused.stderr[-3000:]
    (line,) = refused.stderr.strip().splitlines()
    assert f"--logdir='{tmp_path / 'b'}' is not allowed" in line
    assert f"MLflow run {run_id} records the logdir {tmp_path / 'a'}" in line
    assert not (tmp_path / "b").exists()
    assert tracker.run(run_id).info.status == "SCHEDULED"


@pytest.mark.slow
def test_ctrl_c_marks_the_mlflow_run_killed_and_the_same_command_finishes_it(tmp_path):
    """Issue 21 item 10 with DreamerV3 itself: a stopped ``train --tracking-uri`` run stayed
    SCHEDULED in MLflow; now KILLED, then RUNNING again and FINISHED when its command resumes it,
    its description the command line."""
    from mlflow import MlflowClient

    from dreamerbench.experiments import tracking, train_tracking

    cache, logdir = tmp_path / "jax-cache", tmp_path / "run"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [*train_command(logdir, cache, steps=8 * EPISODE), "--tracking-uri", uri]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 600
    while not checkpoint.complete(logdir / "checkpoint"):
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.time() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err.decode()[-3000:]

    def run():
        client = MlflowClient(tracking.mlflow_uri(uri))
        (only,) = client.search_runs([client.get_experiment_by_name("train").experiment_id])
        return only

    stopped = run()
    assert stopped.info.status == "KILLED"
    assert stopped.data.tags["mlflow.note.content"] == train_tracking.command_line(command[3:])
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert run().info.status == "FINISHED"
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["finished"]
