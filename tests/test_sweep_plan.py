"""The launcher's decisions and the status table (pure functions)."""

import json

import pytest

from dreamerbench.experiments.launchers import Watch
from dreamerbench.experiments.launchers.slurm import SlurmLauncher, parse_squeue
from dreamerbench.experiments.status import StatusRow, eta_seconds, live_rate, render, run_state
from dreamerbench.experiments.sweep import decide


@pytest.mark.parametrize(
    "status, alive, rerun_failed, action",
    [
        (None, None, False, "new"),
        ("FINISHED", None, True, "skip"),
        ("FAILED", None, False, "skip"),
        ("FAILED", None, True, "resume"),
        ("KILLED", None, False, "resume"),
        ("SCHEDULED", True, False, "skip"),
        ("RUNNING", True, True, "skip"),
        ("RUNNING", None, False, "skip"),  # cannot tell: never submit twice
        ("RUNNING", False, False, "resume"),  # its job is gone
        ("SCHEDULED", False, False, "resume"),
    ],
)
def test_decide(status, alive, rerun_failed, action):
    assert decide(run_state(status, alive, 0), rerun_failed)[0] == action


def test_parse_squeue_and_liveness():
    queue = parse_squeue("17_0|RUNNING\n17_1|PENDING\n18|COMPLETED\n\n")
    assert queue == {"17_0": "RUNNING", "17_1": "PENDING", "18": "COMPLETED"}
    tag = "dreamerbench.slurm_job_id"
    alive = lambda tags, queue: SlurmLauncher.is_alive("RUNNING", tags, queue)
    assert alive({tag: "17_1"}, queue) is True
    assert alive({tag: "18"}, queue) is False
    assert alive({tag: "19_0"}, queue) is False
    assert alive({tag: "17_0"}, None) is None
    assert Watch().alive("RUNNING", {}) is False  # the local launcher's run with no worker
    # A local worker on another host cannot be checked from here.
    tags = {"dreamerbench.local_pid": "1", "dreamerbench.host": "elsewhere"}
    assert Watch().alive("RUNNING", tags) is None


def test_run_state():
    assert run_state(None, None, 0) == "not submitted"
    assert run_state("FINISHED", False, 10) == "finished"
    assert run_state("SCHEDULED", True, 0) == "queued"
    assert run_state("SCHEDULED", True, 500) == "requeued"
    assert run_state("RUNNING", True, 500) == "running"
    assert run_state("RUNNING", False, 500) == "interrupted"


EXPECTED_STATUS = """\
sweep demo: 4 runs
run                                  suite       key              state                steps / budget  steps/s     ETA     score
--------------------------------------------------------------------------------------------------------------------------------
cartpole_balance/seed0               dmc_proprio 0123456789abcdef finished            10,000 / 10,000        -       -     812.5
cartpole_balance/seed1               dmc_proprio fedcba9876543210 running              2,500 / 10,000     12.5  10m00s      -3.0
walker_walk/seed0                    dmc_proprio 00000000ffffffff queued                   0 / 10,000        -       -         -
walker_walk/seed1                    dmc_proprio 11111111ffffffff failed               1,000 / 10,000        -       -         -

[##############..........................]  33.8%  13,500 / 40,000 steps  (1 failed, 1 finished, 1 queued, 1 running)
failed walker_walk/seed1: ValueError: boom  (log: /runs/w1/job.log)"""  # noqa: E501 (the table)


def test_render_status_with_rate_eta_and_the_failed_runs_error_and_log():
    rows = [
        StatusRow(
            "cartpole_balance/seed0",
            "0123456789abcdef",
            "finished",
            10_000,
            10_000,
            812.5,
            suite="dmc_proprio",
        ),
        StatusRow(
            "cartpole_balance/seed1",
            "fedcba9876543210",
            "running",
            2_500,
            10_000,
            -3.0,
            rate=12.5,
            eta_s=eta_seconds(2_500, 10_000, 12.5),
            suite="dmc_proprio",
        ),
        StatusRow(
            "walker_walk/seed0",
            "00000000ffffffff",
            "queued",
            0,
            10_000,
            None,
            suite="dmc_proprio",
        ),
        StatusRow(
            "walker_walk/seed1",
            "11111111ffffffff",
            "failed",
            1_000,
            10_000,
            None,
            error="ValueError: boom",
            log="/runs/w1/job.log",
            suite="dmc_proprio",
        ),
    ]
    assert render("demo", rows) == EXPECTED_STATUS


def test_an_interrupted_run_says_how_to_resume():
    rows = [
        StatusRow("cartpole_balance/seed0", "0123456789abcdef", "interrupted", 500, 1_000, None)
    ]
    assert render("demo", rows, resume="dreamerbench sweep demo.yaml").splitlines()[-1] == (
        "1 run(s) interrupted; resume them with: dreamerbench sweep demo.yaml"
    )


def test_live_rate_reads_the_newest_speed_record(tmp_path, monkeypatch):
    assert live_rate(tmp_path) is None  # no metrics.jsonl yet
    lines = [
        {"kind": "fps", "step": 100, "env_steps_per_s": 5.0, "time_ms": 1},
        {"kind": "train", "step": 200, "updates": 3, "time_ms": 2},
        {"kind": "fps", "step": 200, "env_steps_per_s": 7.5, "time_ms": 3},
        {"kind": "train", "step": 300, "updates": 4, "time_ms": 4},
    ]
    text = (
        "".join(json.dumps(line) + "\n" for line in lines) + '{"kind": "fps", "st'
    )  # a line being written
    (tmp_path / "metrics.jsonl").write_text(text)
    assert live_rate(tmp_path) == (200, 7.5)
    # A run being created has no logdir tag yet: "" must not read ./metrics.jsonl of the cwd.
    monkeypatch.chdir(tmp_path)
    assert live_rate("") is None
    assert eta_seconds(200, 1_000, 0.0) is None and eta_seconds(1_200, 1_000, 2.0) == 0.0


def test_runs_waiting_in_a_running_local_launcher_are_queued_not_interrupted(tmp_path):
    """Issue 14: status called every SCHEDULED run of a running local sweep that had no worker yet
    'interrupted'."""
    import socket
    import subprocess

    from dreamerbench.experiments.launchers.local import local_launcher_alive

    logdir = tmp_path / "sweep" / "task-seed0-key" / "run_id"
    tags = {"dreamerbench.logdir": str(logdir), "dreamerbench.local_pid": "1"}
    assert local_launcher_alive(tags) is False  # no launcher.lock
    lock = tmp_path / "sweep" / "launcher.lock"
    lock.parent.mkdir(parents=True)
    launcher = subprocess.Popen(["sleep", "30"])
    try:
        lock.write_text(f"{launcher.pid}@{socket.gethostname()} since 2026-11-30 10:00:00\n")
        assert local_launcher_alive(tags) is True
        assert local_launcher_alive({**tags, "dreamerbench.slurm_job_id": "7_0"}) is False
        lock.write_text(f"{launcher.pid}@elsewhere since 2026-11-30 10:00:00\n")
        assert local_launcher_alive(tags) is None
    finally:
        launcher.kill()
        launcher.wait()
    lock.write_text(f"{launcher.pid}@{socket.gethostname()} since 2026-11-30 10:00:00\n")
    assert local_launcher_alive(tags) is False  # the launcher has exited
