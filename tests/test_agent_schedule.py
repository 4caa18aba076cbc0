"""The loop's schedules (agent/schedule.py) on numbers small enough to check by hand."""

from __future__ import annotations

from dreamerbench.agent.config import resolve_config
from dreamerbench.agent.schedule import Every, train_start, updates_due


def config(**overrides):
    return resolve_config("dmc_proprio", "cartpole_balance", 0, overrides)


def test_training_starts_when_the_reference_replay_holds_a_batch_of_windows():
    """The reference (e3f0224, run/train.py:L70-71) updates once len(replay) >= B x T, its
    replay counting windows of T + 1 steps: E x T steps, then one window per step, so the first
    update is at (E + B) x T agent steps. Its own Replay and loop (driven env by env, as its
    driver does, in its venv) gave 1,088, 2,048 and 1,216 for 1, 16 and 3 envs at B 16, T 64,
    and 24 for one env at B 2, T 8."""
    assert train_start(config(**{"run.envs": 1})) == 1088 == (1 + 16) * 64
    assert train_start(config(**{"run.envs": 16})) == 2048 == (16 + 16) * 64
    assert train_start(config(**{"run.envs": 3})) == 1216
    tiny = {"agent.batch_size": 2, "agent.batch_length": 8}
    assert train_start(config(**tiny, **{"run.envs": 1})) == 24
    # A set run.train_start is kept, but never before every env holds a window of T + 1 steps.
    assert train_start(config(**tiny, **{"run.envs": 1, "run.train_start": 32})) == 32
    assert train_start(config(**tiny, **{"run.envs": 4, "run.train_start": 0})) == 4 * 9


def test_updates_due_are_one_at_the_start_then_the_train_ratio_over_the_replayed_steps():
    # 40 replayed steps per agent step / (2 x 8) per update: 2.5 updates per agent step.
    tiny = {"agent.train_ratio": 40, "agent.batch_size": 2, "agent.batch_length": 8}
    cfg = config(**tiny, **{"run.envs": 1})
    start = train_start(cfg)
    due = [updates_due(cfg, start + k) for k in range(-1, 5)]
    assert due == [0, 1, 3, 6, 8, 11]  # bursts of 2, 3, 2, 3 after the first update
    assert updates_due(cfg, start + 4) - updates_due(cfg, start) == 10  # 4 envs at once: 4 x 2.5
    slow = config(**{"agent.train_ratio": 4, "agent.batch_size": 2, "agent.batch_length": 8})
    start = train_start(slow)  # 0.25 per step: the fraction waits for whole updates
    assert [updates_due(slow, start + k) for k in (0, 3, 4, 7, 8)] == [1, 1, 2, 2, 3]


def test_updates_cut_short_by_a_stop_stay_due_after_a_resume():
    cfg = config(**{"agent.train_ratio": 40, "agent.batch_size": 2, "agent.batch_length": 8})
    start = train_start(cfg)
    done = 4  # a stop after the 4th of the 6 updates due at start + 2; the counters keep 4
    assert updates_due(cfg, start + 2) - done == 2
    assert updates_due(cfg, start + 3) - done == 4  # resumed: the 2 left + 2 earned


def test_every_fires_at_multiples_or_after_the_last_firing():
    aligned = Every(10, step=3)
    assert [s for s in range(3, 40, 4) if aligned(s)] == [11, 23, 31]  # first steps past 10, 20, 30
    relative = Every(10, step=3, aligned=False)
    assert [s for s in range(3, 40, 4) if relative(s)] == [15, 27, 39]  # 10 or more after the last
    never = Every(0, step=0)
    assert not any(never(s) for s in range(100))
