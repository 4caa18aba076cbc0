"""Real Crafter worlds: observations, achievements per episode, termination."""

import numpy as np
import pytest

from dreamerbench.suites import get_suite
from dreamerbench.suites.crafter import ACHIEVEMENTS

CRAFTER = get_suite("crafter")


@pytest.fixture(scope="module")
def env():
    env = CRAFTER.make_env("reward", 0, CRAFTER.resolve_protocol({"max_steps": 60}))
    yield env
    env.close()


def test_achievement_list_matches_crafter():
    crafter = pytest.importorskip("crafter")
    assert ACHIEVEMENTS == tuple(crafter.constants.achievements)
    assert len(ACHIEVEMENTS) == 22


def test_observation_and_action_spaces(env):
    obs = env.reset()
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    assert env.act_space.num_actions == 17
    assert {k for k in obs if k.startswith("log/")} == {
        f"log/achievement_{a}" for a in ACHIEVEMENTS
    }
    assert all(obs[f"log/achievement_{a}"] == 0 for a in ACHIEVEMENTS)


def _collect_wood_episode(env):
    """Walk until facing a tree and hit it: 'collect_wood' unlocks."""
    crafter_env = env._env
    obs = env.reset()
    noop, do = 0, 5
    # Move the player next to the closest tree with Crafter's own world map.
    world = crafter_env._world
    trees = np.argwhere(world._mat_map == world._mat_ids["tree"])
    player = np.array(crafter_env._player.pos)
    target = trees[np.abs(trees - player).sum(1).argmin()]
    crafter_env._player.move(target + np.array([0, 1]) - player)
    crafter_env._player.facing = (0, -1)
    flags = []
    for _ in range(5):
        obs = env.step(np.int32(do))
        flags.append(obs["log/achievement_collect_wood"])
    obs = env.step(np.int32(noop))
    flags.append(obs["log/achievement_collect_wood"])
    return flags


def test_achievements_are_counted_per_episode(env):
    flags = _collect_wood_episode(env)
    # Once unlocked the flag stays 1 for the rest of the episode ...
    assert flags[-1] == 1 and flags == sorted(flags)
    # ... and a new episode starts with every flag at 0 again.
    obs = env.reset()
    assert obs["log/achievement_collect_wood"] == 0
    obs = env.step(np.int32(0))
    assert obs["log/achievement_collect_wood"] == 0


def test_time_limit_is_truncation(env):
    env.reset()
    for step in range(1, 61):
        obs = env.step(np.int32(0))
        if obs["is_last"]:
            break
    assert step == 60 and obs["is_last"] and not obs["is_terminal"]


def test_death_is_termination(env):
    env.reset()
    env._env._player.health = 0
    obs = env.step(np.int32(0))
    assert obs["is_last"] and obs["is_terminal"]


def test_bad_protocol_value_is_named():
    with pytest.raises(ValueError, match="env.action_repeat=4 .*allowed: 1"):
        CRAFTER.make_env("reward", 0, CRAFTER.resolve_protocol({"action_repeat": 4}))
