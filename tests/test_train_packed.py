"""Several seeds in one process: the vmapped steps, packed training, resume, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from stub_agent import StubAgent

from dreamerbench.agent.config import Config, ConfigError, apply_overrides, resolve_config
from dreamerbench.agent.dreamer import Dreamer, over_runs
from dreamerbench.agent.synthetic import random_batch
from dreamerbench.agent.trainer import Trainer
from dreamerbench.core import checkpoint
from dreamerbench.suites.base import Space


def _stack(trees):
    return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *trees)


def test_vmapped_train_step_equals_separate_steps_per_seed():
    config = apply_overrides(Config(), {"agent.size": "debug"})
    agent = Dreamer(config, {"vector": Space(np.float32, (5,))}, Space(np.float32, (2,), -1.0, 1.0))
    seeds = [0, 1]
    states = [jax.jit(agent.init)(jax.random.PRNGKey(seed)) for seed in seeds]
    batches = [random_batch(agent, 2, 8, seed=seed) for seed in seeds]
    keys = [jax.random.PRNGKey(10 + seed) for seed in seeds]

    step = jax.jit(agent.train_step)
    separate = [step(s, b, k) for s, b, k in zip(states, batches, keys)]
    packed_state, packed_out = jax.jit(over_runs(agent.train_step, 2))(
        _stack(states), _stack(batches), _stack(keys)
    )

    for index, (state, out) in enumerate(separate):
        for got, want in zip(
            jax.tree_util.tree_leaves(packed_state.params), jax.tree_util.tree_leaves(state.params)
        ):
            np.testing.assert_allclose(got[index], want, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(
            packed_out.metrics["loss/total"][index], out.metrics["loss/total"], rtol=1e-4
        )
    # Different seeds really trained differently (the test would pass trivially otherwise).
    assert not np.allclose(packed_out.metrics["loss/total"][0], packed_out.metrics["loss/total"][1])

    single_state, single_out = jax.jit(over_runs(agent.train_step, 1))(
        _stack(states[:1]), _stack(batches[:1]), _stack(keys[:1])
    )
    assert jax.tree_util.tree_structure(single_state) == jax.tree_util.tree_structure(packed_state)
    for got, want in zip(
        jax.tree_util.tree_leaves(single_state.params),
        jax.tree_util.tree_leaves(separate[0][0].params),
    ):
        assert got.shape == (1, *want.shape)
        np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)


# cartpole with action repeat 8: 125 actions per episode, 126 observations.
EPISODE = 126
TINY = {
    "agent.size": "debug",
    "agent.batch_size": 2,
    "agent.batch_length": 8,
    "agent.imag_length": 3,
    "agent.train_ratio": 16,
    "run.envs": 1,
    "run.train_start": 32,
    "run.save_every": 64,
    "run.log_every": 0,
    "run.progress": False,
    "replay.capacity": 5000,
    "env.action_repeat": 8,
}


def _config(seed, steps, cache, **extra):
    return resolve_config(
        "dmc_proprio",
        "cartpole_balance",
        seed,
        {**TINY, "run.steps": steps, "run.compile_cache": str(cache), **extra},
    )


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _steps(logdir):
    return [c.step for c in checkpoint.complete(logdir / "checkpoint")]


def _metric_steps(logdir):
    return [r["step"] for r in _records(logdir / "metrics.jsonl") if "loss/total" in r]


@pytest.mark.slow
def test_packed_seeds_train_resume_together_and_alone(tmp_path):
    cache = tmp_path / "jax-cache"
    # 1. `dreamerbench train --seeds-per-process 2`: one process, two runs, two logdirs.
    sets = [
        arg
        for key, value in {**TINY, "run.compile_cache": cache}.items()
        for arg in ("--set", f"{key}={value}")
    ]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dreamerbench.experiments.cli",
            "train",
            "--suite",
            "dmc_proprio",
            "--task",
            "cartpole_balance",
            "--seed",
            "4",
            "--seeds-per-process",
            "2",
            "--steps",
            "128",
            "--logdir",
            str(tmp_path / "runs"),
            *sets,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [json.loads(line) for line in done.stdout.strip().splitlines()[-2:]]
    assert [s["steps"] for s in summaries] == [128, 128] and all(s["finished"] for s in summaries)
    assert summaries[0]["updates"] == summaries[1]["updates"] == 128 - 32 + 1
    logdirs = [tmp_path / "runs" / "seed4", tmp_path / "runs" / "seed5"]
    for seed, logdir in zip((4, 5), logdirs):
        assert f"seed: {seed}" in (logdir / "config.yaml").read_text()
        assert _steps(logdir) == [64, 128]  # the last two are kept
        assert [r["step"] for r in _records(logdir / "episodes.jsonl")] == [EPISODE - 1]
    scores = [_records(logdir / "episodes.jsonl")[0]["score"] for logdir in logdirs]
    assert scores[0] != scores[1], "the two seeds acted identically"

    # 2. A kill between the two runs' saves at step 128: seed5 never wrote it.
    # The group resumes both from 64, the newest step they both hold.
    for ckpt in checkpoint.complete(logdirs[1] / "checkpoint"):
        if ckpt.step == 128:
            checkpoint.remove(ckpt)
    packed = Trainer.packed([_config(seed, 192, cache) for seed in (4, 5)], logdirs)
    summaries = packed.run_all()
    assert [s["steps"] for s in summaries] == [192, 192]
    assert summaries[0]["updates"] == summaries[1]["updates"] == 192 - 32 + 1
    for logdir in logdirs:
        steps = _metric_steps(logdir)
        assert steps == sorted(set(steps)) and steps[-1] == 192  # no record twice, none lost
        assert len(_records(logdir / "episodes.jsonl")) == 1

    # 3. One of the packed runs goes on alone, from its own checkpoint.
    alone = Trainer(_config(5, 256, cache), logdirs[1]).run()
    # Its env restarts at 192, so no second episode ends by 256.
    assert alone["steps"] == 256 and alone["updates"] == 256 - 32 + 1 and alone["episodes"] == 1
    assert (
        _steps(logdirs[1])[-1] == 256 and len(_steps(logdirs[1])) == 2
    )  # a lone run keeps two as well

    # 4. Now the two runs share no checkpoint step: packing them again is refused, not guessed.
    with pytest.raises(ConfigError, match="no common step"):
        Trainer.packed([_config(seed, 320, cache) for seed in (4, 5)], logdirs).run_all()


def test_a_pack_restarts_only_when_its_own_first_save_was_cut_short(tmp_path):
    logdirs = [tmp_path / "a", tmp_path / "b"]

    def pack(steps):
        return Trainer.packed(
            [_config(0, steps, ""), _config(1, steps, "")], logdirs, make_agent=StubAgent
        )

    assert [s["steps"] for s in pack(64).run_all()] == [64, 64]
    # Killed between the runs' first saves: a holds this pack's one checkpoint, b none.
    for ckpt in checkpoint.complete(logdirs[0] / "checkpoint")[1:]:
        checkpoint.remove(ckpt)
    shutil.rmtree(logdirs[1] / "checkpoint")
    (logdirs[1] / ".checkpointed").unlink()  # b never had a complete checkpoint
    (logdirs[0] / "summary.json").unlink()
    (logdirs[1] / "summary.json").unlink()
    restarted = pack(64).run_all()
    assert [s["steps"] for s in restarted] == [64, 64] and restarted[0]["updates"] == 64 - 32 + 1
    # b trained on alone: its checkpoint is not this pack's to discard.
    Trainer(_config(1, 128, ""), logdirs[1], make_agent=StubAgent).run()
    with pytest.raises(ConfigError, match="no common step"):
        pack(192).run_all()


def test_packed_runs_must_differ_only_in_seed(tmp_path):
    configs = [_config(0, 64, ""), _config(1, 64, "", **{"agent.train_ratio": 32})]
    with pytest.raises(ConfigError, match="agent.train_ratio"):
        Trainer.packed(configs, [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ConfigError, match="distinct seeds"):
        Trainer.packed([_config(0, 64, ""), _config(0, 64, "")], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(TypeError, match="run_all"):
        Trainer.packed(
            [_config(0, 64, ""), _config(1, 64, "")], [tmp_path / "a", tmp_path / "b"]
        ).run()


def test_train_command_rejects_a_bad_seeds_per_process(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dreamerbench.experiments.cli",
            "train",
            "--suite",
            "dmc_proprio",
            "--task",
            "cartpole_balance",
            "--seeds-per-process",
            "0",
            "--logdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--seeds-per-process=0 is not allowed; allowed: an integer in [1, 256]" in done.stderr
