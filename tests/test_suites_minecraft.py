"""Minecraft adapter logic against a fake env with MineRL 0.4's spaces.

The real game is not available here (see suites/minecraft.py); the test that
needs it skips with the reason.
"""

import numpy as np
import pytest
from gymnasium import spaces

from dreamerbench.suites import get_suite
from dreamerbench.suites.minecraft import (
    ACTION_NAMES,
    MILESTONES,
    MinecraftDiamondEnv,
    action_to_minerl,
    make_minerl_env,
    minerl_to_action,
)

SUITE = get_suite("minecraft_diamond")
ITEMS = ("air", "dirt", "log", "log2", *MILESTONES[1:], "coal", "stone")
ITEM_ACTIONS = ("place", "equip", "craft", "nearbyCraft", "nearbySmelt")


class Enum(spaces.Discrete):
    """MineRL's Enum space: a Discrete with string ``values``."""

    def __init__(self, *values):
        super().__init__(len(values))
        self.values = np.array(values)

    def contains(self, x):
        return x in self.values


def _box(high, shape=()):
    return spaces.Box(0, high, shape, np.float32)


class FakeMineRL:
    """MineRL-shaped env: attack chops a log, crafting turns logs into planks, back hurts."""

    observation_space = spaces.Dict(
        {
            "pov": spaces.Box(0, 255, (64, 64, 3), np.uint8),
            "inventory": spaces.Dict({item: _box(2304) for item in ITEMS}),
            "equipped_items": spaces.Dict(
                {
                    "mainhand": spaces.Dict(
                        {
                            "type": Enum("air", "wooden_pickaxe", "other"),
                            "damage": _box(1562),
                            "maxDamage": _box(1562),
                        }
                    )
                }
            ),
            "life_stats": spaces.Dict({"life": _box(20), "food": _box(20), "air": _box(300)}),
        }
    )
    action_space = spaces.Dict(
        {
            "camera": spaces.Box(-180, 180, (2,), np.float32),
            **{
                k: spaces.Discrete(2)
                for k in ("forward", "back", "left", "right", "jump", "sneak", "sprint", "attack")
            },
            **{k: Enum("none", *ITEMS) for k in ITEM_ACTIONS},
        }
    )

    def __init__(self, die_at=None):
        self.die_at = die_at
        self.actions = []

    def reset(self):
        self.inventory = {item: 0 for item in ITEMS}
        self.life, self.t = 20.0, 0
        return self._obs()

    def step(self, action):
        assert set(action) == set(self.action_space.spaces), "action keys differ from MineRL's"
        for key, value in action.items():
            value = np.asarray(value, np.float32) if key == "camera" else value
            assert self.action_space[key].contains(value), (key, value)
        self.actions.append(action)
        self.t += 1
        if action["attack"]:
            self.inventory["log2" if self.t % 2 else "log"] += 1
        if action["craft"] == "planks" and self.inventory["log"] > 0:
            self.inventory["log"] -= 1
            self.inventory["planks"] += 4
        if action["back"]:
            self.life -= 2
        return self._obs(), 0.0, self.t == self.die_at, {}

    def close(self):
        pass

    def _obs(self):
        return {
            "pov": np.full((64, 64, 3), self.t % 256, np.uint8),
            "inventory": dict(self.inventory),
            "equipped_items": {"mainhand": {"type": "diamond_sword", "damage": 0, "maxDamage": 0}},
            "life_stats": {"life": self.life, "food": 20.0, "air": 300.0},
        }


def _env(fake=None, **overrides):
    return MinecraftDiamondEnv(fake or FakeMineRL(), SUITE.resolve_protocol(overrides))


def _act(env, name):
    return env.step(np.int32(ACTION_NAMES.index(name)))


def test_action_mapping_round_trips():
    assert len(ACTION_NAMES) == 25 and len(set(ACTION_NAMES)) == 25
    for index in range(len(ACTION_NAMES)):
        assert minerl_to_action(action_to_minerl(index)) == index
    with pytest.raises(ValueError, match="none of the actions"):
        minerl_to_action({"attack": 1, "forward": 1})
    with pytest.raises(ValueError, match="action=25 must be in 0..24"):
        action_to_minerl(25)


def test_every_action_is_valid_in_minerl_action_space():
    fake = FakeMineRL()
    env = _env(fake, sticky_jump=0)
    env.reset()
    for name in ACTION_NAMES:
        _act(env, name)  # The fake asserts keys and values.


def test_observation_spaces():
    env = _env()
    obs = env.reset()
    for key, space in env.obs_space.items():
        assert obs[key].shape == space.shape and obs[key].dtype == space.dtype, key
    assert env.act_space.num_actions == 25
    # log2 is merged into log, so the inventory has one entry less than MineRL's.
    assert env.obs_space["inventory"].shape == (len(ITEMS) - 1,)
    assert obs["equipped"].tolist() == [0, 0, 1]  # Unknown item -> "other".
    # The reference's model inputs (minecraft_flat.py MinecraftBase.obs_space), the life
    # stats as three keys, so each gets a decoder head of its own.
    assert {k for k in env.obs_space if not k.startswith("log/")} == {
        "image",
        "inventory",
        "inventory_max",
        "equipped",
        "health",
        "hunger",
        "breath",
    }
    assert [obs[k].tolist() for k in ("health", "hunger", "breath")] == [[1.0]] * 3


def test_milestone_rewards_fire_once_per_episode():
    env = _env()
    assert env.reset()["log/milestone_log"] == 0
    first = _act(env, "attack")  # First log (as log2: counts as log).
    assert first["reward"] == 1.0 and first["log/milestone_log"] == 1
    assert first["inventory"][env._items.index("log")] == 1
    again = _act(env, "attack")
    assert again["reward"] == 0.0 and again["log/milestone_log"] == 1
    planks = _act(env, "craft_planks")
    assert planks["reward"] == 1.0 and planks["log/milestone_planks"] == 1
    assert _act(env, "craft_planks")["reward"] == 0.0
    # A new episode pays each milestone again.
    assert env.reset()["log/milestone_log"] == 0
    assert _act(env, "attack")["reward"] == 1.0


def test_health_change_reward_and_inventory_max():
    env = _env()
    env.reset()
    obs = _act(env, "back")  # Life 20 -> 18.
    assert obs["reward"] == pytest.approx(0.01 * (18 - 20) / 20)
    assert obs["health"][0] == pytest.approx(0.9)


def test_time_limit_is_truncation_and_death_is_termination():
    env = _env(max_steps=3)
    env.reset()
    lasts = [_act(env, "noop") for _ in range(3)]
    assert [bool(o["is_last"]) for o in lasts] == [False, False, True]
    assert not lasts[-1]["is_terminal"]
    env = _env(FakeMineRL(die_at=2))
    env.reset()
    _act(env, "noop")
    dead = _act(env, "noop")
    assert dead["is_last"] and dead["is_terminal"]


def test_sticky_jump_and_pitch_limit():
    fake = FakeMineRL()
    env = _env(fake, sticky_jump=3)
    env.reset()
    _act(env, "jump")
    _act(env, "noop")
    _act(env, "noop")
    _act(env, "noop")
    assert [a["jump"] for a in fake.actions] == [1, 1, 1, 0]
    fake.actions.clear()
    for _ in range(6):
        _act(env, "turn_up")  # 15 degrees each; the limit is 60.
    assert [float(a["camera"][0]) for a in fake.actions] == [-15] * 4 + [0, 0]


def test_bad_protocol_value_is_named():
    with pytest.raises(
        ValueError,
        match=r"env.pitch_limit=120.0 is not allowed; "
        r"allowed: a finite number in \(0, 90\] \(degrees\)",
    ):
        _env(pitch_limit=120.0)


def test_real_game():
    pytest.importorskip(
        "minerl",
        reason="MineRL is not installed (cannot be built here); see README.md 'Suites' "
        "for install instructions on a machine with internet",
    )
    env = SUITE.make_env("diamond", 0, SUITE.resolve_protocol({}))
    try:
        obs = env.reset()
        assert obs["image"].shape == (64, 64, 3)
        obs = _act(env, "attack")
        assert obs["inventory"].shape == env.obs_space["inventory"].shape
    finally:
        env.close()


def test_missing_minerl_gives_install_instructions():
    try:
        import minerl  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="openjdk-8-jdk"):
            make_minerl_env(64, 100.0)
    else:
        pytest.skip("MineRL is installed")
