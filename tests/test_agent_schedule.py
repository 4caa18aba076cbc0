"""The loop's schedules (agent/schedule.py) on numbers small enough to check by hand."""

from __future__ import annotations

from dreamerbench.agent.config import AgentConfig
from dreamerbench.agent.rundir import Counters
from dreamerbench.agent.schedule import Every, Ratio, updates_per_step


def test_updates_per_step_is_the_train_ratio_over_the_replayed_steps_of_an_update():
    agent = AgentConfig(train_ratio=40, batch_size=2, batch_length=8)
    assert updates_per_step(agent) == 2.5  # 40 replayed steps per agent step / (2 x 8) per update


def test_ratio_earns_whole_updates_and_keeps_the_fraction_in_the_counters():
    counters = Counters()
    ratio = Ratio(2.5, counters)
    done = []
    for _ in range(4):  # 4 agent steps earn 10 updates: 2, 3, 2, 3
        due = ratio.earn(1)
        ratio.spend(due)
        done.append(due)
    assert done == [2, 3, 2, 3] and counters.update_credit == 0.0
    assert ratio.earn(4) == 10  # 4 envs step at once: 4 x 2.5
    ratio.spend(10)
    assert Ratio(0.25, counters).earn(3) == 0 and counters.update_credit == 0.75


def test_ratio_credit_cut_short_by_a_stop_is_spent_after_a_resume():
    counters = Counters()
    ratio = Ratio(2.5, counters)
    assert ratio.earn(1) == 2
    ratio.spend(2)
    assert ratio.earn(1) == 3
    ratio.spend(1)  # a stop after the first of 3 updates: 2 stay due
    assert counters.update_credit == 2.0
    resumed = Counters(**vars(counters))  # as a checkpoint restores them
    assert Ratio(2.5, resumed).earn(1) == 4  # the 2 left + 2.5 earned


def test_every_fires_at_multiples_or_after_the_last_firing():
    aligned = Every(10, step=3)
    assert [s for s in range(3, 40, 4) if aligned(s)] == [11, 23, 31]  # first steps past 10, 20, 30
    relative = Every(10, step=3, aligned=False)
    assert [s for s in range(3, 40, 4) if relative(s)] == [15, 27, 39]  # 10 or more after the last
    never = Every(0, step=0)
    assert not any(never(s) for s in range(100))
