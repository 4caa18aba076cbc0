"""The loop as the reference's (issue 20, item 2), through the real loop with the stub agent on
DMC cartpole: an episode abandoned by a resume ends with ``is_last`` in every sampled window, so
no return bootstraps across the cut, and the first update comes when the reference's would.

cartpole at action repeat 8: every episode is 126 observations per env, the reset one included.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from stub_agent import StubAgent

from dreamerbench.agent import behavior
from dreamerbench.agent import distributions as dist
from dreamerbench.agent.config import resolve_config
from dreamerbench.agent.replay import Replay
from dreamerbench.agent.schedule import train_start
from dreamerbench.agent.trainer import Trainer
from dreamerbench.core import checkpoint

TINY = {
    "agent.size": "debug",
    "agent.batch_size": 2,
    "agent.batch_length": 8,
    "agent.train_ratio": 16,
    "run.envs": 2,
    "run.save_every": 10_000,
    "run.log_every": 0,
    "run.progress": False,
    "replay.capacity": 5000,
    "env.action_repeat": 8,
}


def config(steps, **extra):
    return resolve_config(
        "dmc_proprio", "cartpole_balance", 0, {**TINY, "run.steps": steps, **extra}
    )


def records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_an_episode_abandoned_by_a_resume_ends_with_is_last_and_no_return_crosses_it(
    tmp_path, monkeypatch
):
    """Stopped 150 policy steps in (24 into each env's second episode), the run resumes with
    fresh envs: step 149 of each env is the abandoned episode's last stored step, 150 the next
    one's first. Every window sampled after the resume has ``is_last`` on the step before each
    ``is_first`` inside it (the reference: ``embodied/core/replay.py:L283-291``), so the
    replay-value loss weighs the abandoned step 0 and the returns before it do not depend on
    anything after the cut."""
    Trainer(config(300), tmp_path, make_agent=StubAgent).run()
    sampled = []
    sample = Replay.sample

    def recording(replay, batch_size):
        out = sample(replay, batch_size)
        sampled.append((replay, *out))
        return out

    monkeypatch.setattr(Replay, "sample", recording)
    summary = Trainer(config(600), tmp_path, make_agent=StubAgent).run()
    assert summary["steps"] == 600 and sampled

    replay = sampled[0][0]
    stored = {
        key: replay.data[key][:, np.arange(148, 152) % replay.size]
        for key in ("is_first", "is_last")
    }
    assert not stored["is_last"].any()  # the cut as stored: no end before the next start
    np.testing.assert_array_equal(stored["is_first"], [[0, 0, 1, 0]] * 2)

    crossing = []  # (window, abandoned step's index in the trained steps 1..T)
    for _, batch, _, starts in sampled:
        first, last = batch["is_first"], batch["is_last"]
        assert (last[:, :-1] | ~first[:, 1:]).all()  # is_last before every interior is_first
        for b, start in enumerate(starts):
            abandoned = 149 - int(start) - 1  # index among batch[:, 1:]
            if 1 <= abandoned <= TINY["agent.batch_length"] - 2:
                crossing.append(({k: v[b : b + 1, 1:] for k, v in batch.items()}, abandoned))
    assert len(crossing) >= 3, len(crossing)

    cfg = config(600).agent
    bins = dist.symexp_bins(cfg.bins)
    rng = np.random.default_rng(0)
    for data, k in crossing:
        T = data["reward"].shape[1]
        logits = jnp.asarray(rng.normal(size=(1, T, cfg.bins)), jnp.float32)
        slow = jnp.asarray(rng.normal(size=(1, T)), jnp.float32)
        boot = rng.normal(size=(1, T)).astype(np.float32)
        reward = data["reward"].astype(np.float32)

        def loss(reward, boot, data=data, logits=logits, slow=slow):
            return np.asarray(
                behavior.replay_value_loss(
                    data["is_last"], data["is_terminal"], reward, boot, logits, slow, bins, cfg
                )
            )

        before = loss(reward, boot)
        assert before[0, k] == 0.0  # the abandoned step trains no value
        after_cut = np.arange(T) > k  # the next episode: its rewards and values
        changed = loss(
            np.where(after_cut, reward + 100.0, reward), np.where(after_cut, boot + 9, boot)
        )
        np.testing.assert_array_equal(changed[0, : k + 1], before[0, : k + 1])


@pytest.mark.parametrize("envs", [1, 16])
def test_the_first_update_comes_when_the_reference_replay_holds_a_batch_of_windows(tmp_path, envs):
    """At the reference's batch 16 x 64 the first update is at (E + B) x T agent steps: 1,088
    with one env, 2,048 with 16 (what the reference's own replay and loop gave, see
    test_agent_schedule). Then the train ratio: 32 / (16 x 64) per step, 2 more in 64 steps."""
    start = (envs + 16) * 64
    reference = {"agent.batch_size": 16, "agent.batch_length": 64, "agent.train_ratio": 32}
    cfg = config(start + 64, **reference, **{"run.envs": envs, "replay.capacity": 10_000})
    assert cfg.run.train_start is None and train_start(cfg) == start
    summary = Trainer(cfg, tmp_path, make_agent=StubAgent).run()
    (first,) = [r for r in records(tmp_path / "metrics.jsonl") if "time_to_first_update_s" in r]
    assert first["step"] == start
    assert summary["updates"] == 1 + 64 * 32 // (16 * 64) == 3


def test_a_checkpoint_with_the_former_update_credit_resumes(tmp_path):
    """Checkpoints saved before the updates due followed the steps carry ``update_credit`` in
    their counters; they resume, and the updates due follow from the steps."""
    Trainer(config(100), tmp_path, make_agent=StubAgent).run()
    (ckpt,) = checkpoint.complete(tmp_path / "checkpoint")
    state, replay, counters = checkpoint.load(ckpt)
    counters["counters"]["update_credit"] = 0.5
    checkpoint.remove(ckpt)
    checkpoint.save(tmp_path / "checkpoint", 100, state, replay, counters)
    summary = Trainer(config(200), tmp_path, make_agent=StubAgent).run()
    assert summary["steps"] == 200
    assert summary["updates"] == 1 + (200 - train_start(config(200))) * 16 // (2 * 8)
