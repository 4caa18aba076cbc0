"""Every suite (but minecraft_diamond, which needs MineRL) trains end to end in the real trainer.

Tiny budgets: 64 agent steps, updates from step 32, a debug-size agent. Where the
protocol allows it cheaply, episodes are shortened so that at least one ends
inside the budget and the episode path (``episodes.jsonl``) is exercised too.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from dreamerbench.agent.config import resolve_config
from dreamerbench.agent.trainer import Trainer
from dreamerbench.core import checkpoint

pytestmark = pytest.mark.slow

STEPS = 64
TINY = {
    "agent.size": "debug",
    "agent.batch_size": 2,
    "agent.batch_length": 8,
    "agent.imag_length": 3,
    "agent.train_ratio": 16,
    "run.envs": 1,
    "run.parallel_envs": False,
    "run.train_start": 32,
    "run.steps": STEPS,
    "run.save_every": 1000,
    "run.log_every": 0,
    "run.progress": False,
    "replay.capacity": 10_000,
    "run.compile_cache": "",
}

# suite -> (task, protocol overrides that end an episode within the budget).
CASES = {
    "atari100k": ("pong", {"env.max_frames": 80, "env.noop_max": 0}),  # 20 agent steps
    "atari57": ("pong", {"env.max_frames": 80, "env.noop_max": 0}),
    "dmc_proprio": ("cartpole_balance", {}),  # 1000-step episodes: no protocol knob
    "dmc_vision": ("cartpole_balance", {}),
    "crafter": ("reward", {"env.max_steps": 20}),
}


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("suite", list(CASES))
def test_trainer_runs_suite_end_to_end(suite, tmp_path):
    task, protocol = CASES[suite]
    config = resolve_config(suite, task, 0, {**TINY, **protocol})
    summary = Trainer(config, tmp_path).run()

    assert summary["finished"] is True
    assert summary["steps"] == STEPS
    # train_ratio 16 / (2 x 8) = 1 update per env step from step 32 on.
    assert summary["updates"] >= STEPS - config.run.train_start - 1 > 0
    assert json.loads((tmp_path / "summary.json").read_text()) == summary

    train = [r for r in _records(tmp_path / "metrics.jsonl") if "loss/total" in r]
    assert train, "metrics.jsonl holds no training record"
    assert train[-1]["updates"] == summary["updates"]
    for record in train:
        losses = {k: v for k, v in record.items() if k.startswith("loss/")}
        assert {"loss/total", "loss/rec", "loss/rew", "loss/con"} <= set(losses)
        assert all(math.isfinite(v) for v in losses.values()), losses

    saved = checkpoint.complete(tmp_path / "checkpoint")
    assert saved and saved[-1].step == summary["steps"]
    checkpoint.verify(saved[-1])  # every file whole, as its manifest says

    episodes = _records(tmp_path / "episodes.jsonl")
    assert len(episodes) == summary["episodes"]
    if protocol:  # shortened episodes: at least one ended inside the budget
        assert episodes and all(math.isfinite(e["score"]) for e in episodes)
    if suite == "crafter":  # the per-episode max of the log/achievement_* flags
        assert all(e["achievement_collect_wood"] in (0.0, 1.0) for e in episodes)


# What a 300-step `dreamerbench train` of a new suite sets: updates from step 100, a tiny batch.
CLI_SETS = (
    "run.train_start=100",
    "agent.batch_size=2",
    "agent.batch_length=8",
    "agent.imag_length=3",
    "agent.train_ratio=16",
    "replay.capacity=5000",
    "run.log_every=0",
)


def cli_train(
    logdir: Path, suite: str, task: str, steps: int, *sets: str, flags: tuple[str, ...] = ()
) -> dict:
    """``dreamerbench train --size debug`` of `task` through the real CLI in a subprocess, with
    :data:`CLI_SETS` and `sets` (compile cache beside `logdir`) and further `flags` (e.g.
    ``--tracking-uri``); asserts it exits 0 and returns its summary."""
    sets = (*CLI_SETS, f"run.compile_cache={logdir.parent / 'cache'}", *sets)
    command = [
        *(sys.executable, "-m", "dreamerbench.experiments.cli", "train"),
        *("--suite", suite, "--task", task, "--size", "debug", "--steps", str(steps)),
        *("--logdir", str(logdir), *[arg for item in sets for arg in ("--set", item)]),
        *flags,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
