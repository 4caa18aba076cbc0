"""Minecraft ObtainDiamond through MineRL, as DreamerV3 used it. NOT VERIFIED HERE.

The adapter targets MineRL 0.4.4's herobraine API in the patched build that
the reference installs (danijar/dreamerv3 Dockerfile; the patch adds the
break-speed handler). MineRL cannot be built on the machines this project
was developed on (no Java 8, no access to Minecraft's servers), so only the
adapter's logic is tested, against a fake env with MineRL's observation and
action spaces (tests/test_suites_minecraft.py); it has never run against the
real game. See :data:`INSTALL`.

Protocol (danijar/dreamerv3 ``embodied/envs/minecraft_flat.py``, ``Diamond``):
64x64 POV plus inventory, a flat categorical action space of 25 actions,
reward +1 the first time in an episode that each of 12 milestone items is
in the inventory plus 0.01 x the change of health/20, 36,000-step episodes
(a truncation), block breaking 100x faster, jump held for 10 steps once
pressed, camera pitch limited to +-60 degrees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import numpy as np

from dreamerbench.core.reader import PositiveFloat, PositiveInt, Range
from dreamerbench.suites.base import Space, Suite, step_obs
from dreamerbench.suites.scores import dreamerv3_scores

INSTALL = (
    "On a Linux x86-64 machine with internet access and Python 3.11: "
    "`apt-get install openjdk-8-jdk xvfb` (MineRL runs Minecraft 1.11 on Java 8), then "
    "`pip install -e '.[minecraft]'` (the patched MineRL 0.4.4 build used by the DreamerV3 "
    "reference; its first start downloads and builds Minecraft), and run headless under "
    "`xvfb-run`. Then `python -m pytest tests/test_suites_minecraft.py` also runs the "
    "real-game test."
)

MILESTONES = (
    "log",
    "planks",
    "stick",
    "crafting_table",
    "wooden_pickaxe",
    "cobblestone",
    "stone_pickaxe",
    "iron_ore",
    "furnace",
    "iron_ingot",
    "iron_pickaxe",
    "diamond",
)

# Every MineRL action key with its no-op value, as the herobraine action
# handlers of the env spec below define them (camera: pitch, yaw in degrees).
NOOP_ACTION: dict[str, Any] = {
    "camera": (0.0, 0.0),
    "forward": 0,
    "back": 0,
    "left": 0,
    "right": 0,
    "jump": 0,
    "sneak": 0,
    "sprint": 0,
    "attack": 0,
    "place": "none",
    "equip": "none",
    "craft": "none",
    "nearbyCraft": "none",
    "nearbySmelt": "none",
}

# The flat categorical action space: name -> the MineRL keys it changes.
ACTIONS: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("noop", {}),
    ("attack", {"attack": 1}),
    ("turn_up", {"camera": (-15.0, 0.0)}),
    ("turn_down", {"camera": (15.0, 0.0)}),
    ("turn_left", {"camera": (0.0, -15.0)}),
    ("turn_right", {"camera": (0.0, 15.0)}),
    ("forward", {"forward": 1}),
    ("back", {"back": 1}),
    ("left", {"left": 1}),
    ("right", {"right": 1}),
    ("jump", {"jump": 1, "forward": 1}),
    ("place_dirt", {"place": "dirt"}),
    ("craft_planks", {"craft": "planks"}),
    ("craft_stick", {"craft": "stick"}),
    ("craft_crafting_table", {"craft": "crafting_table"}),
    ("place_crafting_table", {"place": "crafting_table"}),
    ("craft_wooden_pickaxe", {"nearbyCraft": "wooden_pickaxe"}),
    ("craft_stone_pickaxe", {"nearbyCraft": "stone_pickaxe"}),
    ("craft_iron_pickaxe", {"nearbyCraft": "iron_pickaxe"}),
    ("equip_stone_pickaxe", {"equip": "stone_pickaxe"}),
    ("equip_wooden_pickaxe", {"equip": "wooden_pickaxe"}),
    ("equip_iron_pickaxe", {"equip": "iron_pickaxe"}),
    ("craft_furnace", {"nearbyCraft": "furnace"}),
    ("place_furnace", {"place": "furnace"}),
    ("smelt_iron_ingot", {"nearbySmelt": "iron_ingot"}),
)
ACTION_NAMES = tuple(name for name, _ in ACTIONS)
_HELD_KEYS = ("attack", "forward", "back", "left", "right")


def action_to_minerl(index: int) -> dict[str, Any]:
    """The full MineRL action dict of flat action ``index``."""
    if not 0 <= int(index) < len(ACTIONS):
        raise ValueError(f"action={index} must be in 0..{len(ACTIONS) - 1}")
    return {**NOOP_ACTION, **ACTIONS[int(index)][1]}


def minerl_to_action(action: Mapping[str, Any]) -> int:
    """Inverse of :func:`action_to_minerl`: the flat index of a MineRL action dict."""
    full = {**NOOP_ACTION, **action}
    for index, (_, changes) in enumerate(ACTIONS):
        if all(_same(full[key], value) for key, value in {**NOOP_ACTION, **changes}.items()):
            return index
    raise ValueError(f"MineRL action {dict(action)!r} is none of the actions {ACTION_NAMES}")


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, tuple):
        return np.allclose(np.asarray(a, np.float64), b)
    return a == b


# Observation key -> (MineRL life_stats entry, its maximum), as the reference scales them.
LIFE_STATS = {"health": ("life", 20.0), "hunger": ("food", 20.0), "breath": ("air", 300.0)}


def _life(raw) -> dict[str, np.float32]:
    """The life stats of a MineRL observation, each divided by its maximum (:data:`LIFE_STATS`)."""
    stats = raw["life_stats"]
    return {key: np.float32(stats[name] / top) for key, (name, top) in LIFE_STATS.items()}


class MinecraftDiamondEnv:
    """ObtainDiamond over a MineRL gym env (``reset() -> obs``, ``step(a) -> obs, r, done, info``).

    ``minerl_env`` is the real env from :func:`make_minerl_env` or a fake
    with the same spaces. Observations: ``image`` (POV), ``inventory`` and
    ``inventory_max`` (item counts, float32), ``equipped`` (one-hot of the
    main-hand item), ``health`` (life/20), ``hunger`` (food/20) and ``breath``
    (air/300), each a key of its own of shape (1,) as in the reference
    (``minecraft_flat.py`` ``MinecraftBase``: one decoder head each), and
    per-episode flags ``log/milestone_<item>``.
    """

    def __init__(self, minerl_env, protocol: Mapping[str, Any]):
        protocol = MINECRAFT_DIAMOND.resolve_protocol(protocol)
        self._env = minerl_env
        self._max_steps = protocol["max_steps"]
        self._sticky_jump = protocol["sticky_jump"]
        self._pitch_limit = protocol["pitch_limit"]
        self._repeat = protocol["action_repeat"]
        spaces = minerl_env.observation_space
        # MC 1.11 has two log blocks (log2: acacia and dark oak); both count as log.
        self._items = [k for k in spaces["inventory"].spaces if k != "log2"]
        missing = [m for m in MILESTONES if m not in self._items]
        if missing:
            raise ValueError(f"MineRL inventory lacks the milestone items {missing}")
        self._equip = [str(v) for v in spaces["equipped_items"]["mainhand"]["type"].values]
        size = protocol["image_size"]
        self.obs_space = {
            "image": Space(np.uint8, (size, size, 3), 0, 255),
            "inventory": Space(np.float32, (len(self._items),), 0),
            "inventory_max": Space(np.float32, (len(self._items),), 0),
            "equipped": Space(np.float32, (len(self._equip),), 0, 1),
            **{key: Space(np.float32, (1,), 0) for key in LIFE_STATS},
        }
        self.act_space = Space(np.int32, (), 0, len(ACTIONS))
        self._done = True

    def reset(self) -> dict[str, np.ndarray]:
        """New world; milestones already in the inventory earn nothing."""
        raw = self._env.reset()
        self._steps = 0
        self._jump_left = 0
        self._pitch = 0.0
        inventory = self._inventory(raw)
        self._max_inventory = inventory.copy()
        # Items held at the start (none in ObtainDiamond) count as reached.
        self._reached = {m: bool(inventory[self._items.index(m)] > 0) for m in MILESTONES}
        self._health = _life(raw)["health"]
        self._done = False
        return self._obs(raw, inventory, 0.0, is_first=True, is_last=False, is_terminal=False)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """Take flat action ``action``; reward = new milestones + 0.01 x health change."""
        if self._done:
            raise RuntimeError("step() after the episode ended; call reset() first")
        command = self._shape_action(action_to_minerl(int(action)))
        done = False
        for repeat in range(self._repeat):
            raw, _, done, _ = self._env.step(command)
            if done:
                break
            # Only held keys continue over repeats: crafting or turning twice
            # would change what the action means.
            command = {**NOOP_ACTION, **{k: command[k] for k in _HELD_KEYS}}
        self._steps += 1
        inventory = self._inventory(raw)
        self._max_inventory = np.maximum(self._max_inventory, inventory)
        reward = self._milestone_reward(inventory)
        health = _life(raw)["health"]
        reward += 0.01 * (health - self._health)
        self._health = health
        truncated = self._steps >= self._max_steps
        self._done = bool(done) or truncated
        # MineRL ends an episode early only when the player dies.
        return self._obs(
            raw, inventory, reward, is_first=False, is_last=self._done, is_terminal=bool(done)
        )

    def close(self) -> None:
        """Stop the Minecraft instance."""
        self._env.close()

    def _shape_action(self, command: dict[str, Any]) -> dict[str, Any]:
        # Jumping onto a block needs the key held for several ticks.
        if command["jump"]:
            self._jump_left = self._sticky_jump
        if self._jump_left > 0:
            command["jump"], command["forward"] = 1, 1
            self._jump_left -= 1
        # Looking straight up or down shows nothing useful; refuse to turn there.
        pitch, yaw = command["camera"]
        if pitch and abs(self._pitch + pitch) > self._pitch_limit:
            pitch = 0.0
        self._pitch += pitch
        command["camera"] = np.array([pitch, yaw], np.float32)
        return command

    def _milestone_reward(self, inventory: np.ndarray) -> float:
        reward = 0.0
        for milestone in MILESTONES:
            if not self._reached[milestone] and inventory[self._items.index(milestone)] > 0:
                self._reached[milestone] = True
                reward += 1.0
        return reward

    def _inventory(self, raw) -> np.ndarray:
        counts = dict(raw["inventory"])
        counts["log"] = counts["log"] + counts.get("log2", 0)
        return np.array([counts[item] for item in self._items], np.float32)

    def _obs(self, raw, inventory, reward, is_first, is_last, is_terminal):
        equipped = np.zeros(len(self._equip), np.float32)
        item = str(raw["equipped_items"]["mainhand"]["type"])
        equipped[self._equip.index(item if item in self._equip else "other")] = 1.0
        values = {
            "image": np.asarray(raw["pov"], np.uint8),
            "inventory": inventory,
            "inventory_max": self._max_inventory.copy(),
            "equipped": equipped,
            **{key: np.array([value], np.float32) for key, value in _life(raw).items()},
            **{f"log/milestone_{m}": np.float32(self._reached[m]) for m in MILESTONES},
        }
        return step_obs(values, reward, is_first, is_last, is_terminal)


def make_minerl_env(image_size: int, break_speed: float):
    """The real MineRL env of the reference's flat env spec (needs ``[minecraft]``)."""
    # MineRL 0.4.4 still uses the NumPy aliases removed in NumPy 1.24.
    for alias, builtin in (("float", float), ("int", int), ("bool", bool)):
        if not hasattr(np, alias):
            setattr(np, alias, builtin)
    try:
        from minerl.herobraine.env_spec import EnvSpec
        from minerl.herobraine.hero import handler, handlers, mc
    except ImportError as error:
        raise ImportError(
            f"suite minecraft_diamond needs MineRL, which is not installed. {INSTALL}"
        ) from error

    class BreakSpeed(handler.Handler):
        """Agent-start handler of the patched MineRL: blocks break ``multiplier`` x faster."""

        def to_string(self):
            return f"break_speed({break_speed})"

        def xml_template(self):
            return f"<BreakSpeedMultiplier>{break_speed}</BreakSpeedMultiplier>"

    class FlatDiamondSpec(EnvSpec):
        """POV, full inventory, main hand and life stats; keyboard, camera and item actions."""

        def __init__(self):
            super().__init__(name="DreamerbenchFlatDiamond-v0")

        def create_observables(self):
            return [
                handlers.POVObservation((image_size, image_size)),
                handlers.FlatInventoryObservation(mc.ALL_ITEMS),
                handlers.EquippedItemObservation(mc.ALL_ITEMS, _default="air", _other="other"),
                handlers.ObservationFromLifeStats(),
            ]

        def create_actionables(self):
            keys = [
                handlers.KeybasedCommandAction(key, mc.INVERSE_KEYMAP[key])
                for key, value in NOOP_ACTION.items()
                if isinstance(value, int)
            ]
            items = ["none"] + mc.ALL_ITEMS
            return keys + [
                handlers.CameraAction(),
                handlers.PlaceBlock(items, _other="none", _default="none"),
                handlers.EquipAction(items, _other="none", _default="none"),
                handlers.CraftAction(items, _other="none", _default="none"),
                handlers.CraftNearbyAction(items, _other="none", _default="none"),
                handlers.SmeltItemNearby(items, _other="none", _default="none"),
            ]

        def create_agent_start(self):
            return [BreakSpeed()]

        def create_server_world_generators(self):
            return [handlers.DefaultWorldGenerator(force_reset=True)]

        def create_server_quit_producers(self):
            return [handlers.ServerQuitWhenAnyAgentFinishes()]

        def create_server_initial_conditions(self):
            return [
                handlers.TimeInitialCondition(allow_passage_of_time=True, start_time=0),
                handlers.SpawningInitialCondition(allow_spawning=True),
            ]

        def create_agent_handlers(self):
            return []

        def create_rewardables(self):
            return []  # Rewards are computed by MinecraftDiamondEnv.

        def create_server_decorators(self):
            return []

        def create_mission_handlers(self):
            return []

        def create_monitors(self):
            return []

        def determine_success_from_rewards(self, rewards):
            return True

        def is_from_folder(self, folder):
            return folder == "none"

        def get_docstring(self):
            return FlatDiamondSpec.__doc__

    return FlatDiamondSpec().make()


DIAMOND_RETURN = 11.5
"""An episode with a return of at least 11.5 obtained a diamond. The milestones give
+1 each and a diamond needs the other eleven first, so an episode that reached k
milestones returns k + 0.01 x (its health change / 20), within 0.01 of k: twelve
give at least 11.99, eleven at most 11.01. ("Above 11" is not a safe test: the
published DreamerV3 file holds 59 episodes of eleven milestones that return
11.0000000003 in floating point.)"""


def diamond_episodes(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{"diamond obtained": score >= DIAMOND_RETURN}`` per episode.

    ``columns["score"]`` are the episodes' returns."""
    return {"diamond obtained": np.asarray(columns["score"], dtype=np.float64) >= DIAMOND_RETURN}


def make_minecraft(task: str, seed: int, protocol: Mapping[str, Any]) -> MinecraftDiamondEnv:
    """ObtainDiamond on the real game (MineRL seeds worlds itself; ``seed`` is recorded only)."""
    MINECRAFT_DIAMOND.check_task(task)
    protocol = MINECRAFT_DIAMOND.resolve_protocol(protocol)
    env = make_minerl_env(protocol["image_size"], protocol["break_speed"])
    return MinecraftDiamondEnv(env, protocol)


MINECRAFT_DIAMOND = Suite(
    name="minecraft_diamond",
    tasks=("diamond",),
    default_protocol={
        "action_repeat": 1,
        "image_size": 64,
        "max_steps": 36_000,
        "break_speed": 100.0,
        "sticky_jump": 10,
        "pitch_limit": 60.0,
    },
    protocol_fields={
        "action_repeat": PositiveInt,
        "image_size": PositiveInt,
        "max_steps": PositiveInt,
        "break_speed": PositiveFloat,
        "sticky_jump": Annotated[int, Range(ge=0, note="0: off")],
        "pitch_limit": Annotated[float, Range(gt=0, le=90, note="degrees")],
    },
    make_env=make_minecraft,
    budget_steps=100_000_000,
    # Last 5% of the budget.
    final_window_frames=5_000_000,
    # Reference: `minecraft` config keeps the defaults (train_ratio 32, 16 envs).
    agent_defaults={
        "agent.size": "200m",
        "agent.train_ratio": 32,
        "run.envs": 16,
        "run.parallel_envs": True,
    },
    description="Minecraft ObtainDiamond (MineRL) as in DreamerV3: 64x64 POV plus inventory, "
    "25 flat actions, +1 per new milestone (log ... diamond, 12 items) per episode plus "
    "0.01 x change of health/20, 36,000-step episodes, break speed 100. Score: episode "
    "return and the episodes that obtained a diamond (return >= 11.5, "
    "dreamerbench.suites.minecraft.diamond_episodes).",
    published_prefix="minecraft_",
    published=dreamerv3_scores(
        "minecraft_diamond", ("dreamerv3", "impala", "ppo_fixhp", "r2d2", "rainbow")
    ),
    episode_successes=diamond_episodes,
    # +1 per milestone: a return of 12 reached every milestone (the health term
    # adds at most +-0.2 per episode).
    normalized_name="normalised return (/ 12)",
    score_refs={"diamond": (0.0, float(len(MILESTONES)))},
    notes="NOT VERIFIED: this adapter has not been run against the real game here (MineRL "
    "cannot be built on this machine); only its logic is tested, with a fake env. " + INSTALL,
)
