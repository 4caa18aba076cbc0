"""The launcher's decisions and the status table (pure functions)."""

import pytest

from experiments.status import StatusRow, render, run_state
from experiments.sweep import decide, job_alive, parse_squeue


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
    assert decide(status, alive, rerun_failed)[0] == action


def test_parse_squeue_and_liveness():
    queue = parse_squeue("17_0|RUNNING\n17_1|PENDING\n18|COMPLETED\n\n")
    assert queue == {"17_0": "RUNNING", "17_1": "PENDING", "18": "COMPLETED"}
    tag = "dreamerbench.slurm_job_id"
    assert job_alive({tag: "17_1"}, queue) is True
    assert job_alive({tag: "18"}, queue) is False
    assert job_alive({tag: "19_0"}, queue) is False
    assert job_alive({tag: "17_0"}, None) is None
    assert job_alive({}, queue) is False
    # A local worker on another host cannot be checked from here.
    assert job_alive({"dreamerbench.local_pid": "1", "dreamerbench.host": "elsewhere"}, queue) is None


def test_run_state():
    assert run_state(None, None, 0) == "not submitted"
    assert run_state("FINISHED", False, 10) == "finished"
    assert run_state("SCHEDULED", True, 0) == "queued"
    assert run_state("SCHEDULED", True, 500) == "requeued"
    assert run_state("RUNNING", True, 500) == "running"
    assert run_state("RUNNING", False, 500) == "interrupted"


EXPECTED_STATUS = """\
sweep demo: 3 runs
run                                  key              state                steps / budget     score
---------------------------------------------------------------------------------------------------
cartpole_balance/seed0               0123456789abcdef finished            10,000 / 10,000     812.5
cartpole_balance/seed1               fedcba9876543210 running              2,500 / 10,000      -3.0
walker_walk/seed0                    00000000ffffffff queued                   0 / 10,000         -

[#################.......................]  41.7%  12,500 / 30,000 steps  (1 finished, 1 queued, 1 running)"""


def test_render_status():
    rows = [
        StatusRow("cartpole_balance/seed0", "0123456789abcdef", "finished", 10_000, 10_000, 812.5),
        StatusRow("cartpole_balance/seed1", "fedcba9876543210", "running", 2_500, 10_000, -3.0),
        StatusRow("walker_walk/seed0", "00000000ffffffff", "queued", 0, 10_000, None),
    ]
    assert render("demo", rows) == EXPECTED_STATUS
