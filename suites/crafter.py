"""Crafter (Hafner 2021, arXiv 2109.06780): 64x64 images, 17 actions, 22 achievements.

Each step logs ``log/achievement_<name>`` = 1.0 once the achievement was
unlocked in the current episode (else 0.0); the trainer's per-episode max
of these flags is the episode's success indicator that the Crafter score
(:func:`dreamerbench.suites.scores.crafter_score`) averages over episodes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np

from dreamerbench.core.reader import PositiveInt, Range
from dreamerbench.suites.base import PublishedScores, Space, Suite, step_obs
from dreamerbench.suites.scores import CRAFTER_SCORE_RANGE

# crafter.constants.achievements (crafter 1.8), spelled out so that listing
# the suite does not import crafter; a test checks they agree.
ACHIEVEMENTS = (
    "collect_coal",
    "collect_diamond",
    "collect_drink",
    "collect_iron",
    "collect_sapling",
    "collect_stone",
    "collect_wood",
    "defeat_skeleton",
    "defeat_zombie",
    "eat_cow",
    "eat_plant",
    "make_iron_pickaxe",
    "make_iron_sword",
    "make_stone_pickaxe",
    "make_stone_sword",
    "make_wood_pickaxe",
    "make_wood_sword",
    "place_furnace",
    "place_plant",
    "place_stone",
    "place_table",
    "wake_up",
)
NUM_ACTIONS = 17


@functools.cache
def _ordered_env_class(env_class: type) -> type:
    """``crafter.Env`` with the creatures of a chunk in a fixed order (by position: one object
    per cell), so that a seed and actions give the same world in every process.

    Crafter's ``_balance_object`` despawns ``creatures[random.randint(0, len(creatures))]``
    from a chunk's set of objects, ordered by object id, that is by memory address: the
    same seed diverged between processes after 50-63 steps (danijar/crafter#36, #31).
    """

    class OrderedEnv(env_class):
        def _balance_object(self, chunk, objs, *args):
            # Sorted at each call, as each call sees the chunk after the previous one's spawn.
            super()._balance_object(chunk, sorted(objs, key=lambda obj: tuple(obj.pos)), *args)

    return OrderedEnv


class CrafterEnv:
    """One Crafter world as an :class:`dreamerbench.suites.base.Env`.

    Death is a termination (crafter's discount 0); reaching ``max_steps`` is
    a truncation.
    """

    def __init__(self, task: str, seed: int, protocol: Mapping[str, Any]):
        import crafter

        protocol = CRAFTER.resolve_protocol(protocol)
        size, length = protocol["image_size"], protocol["max_steps"]
        # Crafter seeds each episode's world from (seed, episode index).
        self._env = _ordered_env_class(crafter.Env)(
            size=(size, size), reward=(task == "reward"), length=length, seed=seed
        )
        self.obs_space = {"image": Space(np.uint8, (size, size, 3), 0, 255)}
        self.act_space = Space(np.int32, (), 0, self._env.action_space.n)
        self._done = True

    def reset(self) -> dict[str, np.ndarray]:
        """Generate a new world; returns its first observation."""
        image = self._env.reset()
        self._done = False
        return self._obs(image, 0.0, {}, is_last=False, is_terminal=False, is_first=True)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """Take one of the 17 discrete actions."""
        if self._done:
            raise RuntimeError("step() after the episode ended; call reset() first")
        action = int(action)
        if not 0 <= action < self.act_space.num_actions:
            raise ValueError(f"action={action} must be in 0..{self.act_space.num_actions - 1}")
        image, reward, done, info = self._env.step(action)
        self._done = bool(done)
        terminal = bool(done and info["discount"] == 0)
        return self._obs(image, reward, info, is_last=bool(done), is_terminal=terminal)

    def close(self) -> None:
        """Crafter holds no external resources."""

    def _obs(self, image, reward, info, is_last, is_terminal, is_first=False):
        # info["achievements"] counts unlocks since the last reset, so a count
        # above zero means "unlocked in this episode".
        counts = info.get("achievements", {})
        flags = {
            f"log/achievement_{name}": np.float32(counts.get(name, 0) > 0) for name in ACHIEVEMENTS
        }
        return step_obs({"image": image, **flags}, reward, is_first, is_last, is_terminal)


def achievement_episodes(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Achievement -> whether each episode unlocked it (its count or flag is >= 1).

    ``columns`` holds ``achievement_<name>`` arrays over episodes: our runs log a
    0/1 flag per episode, the published Crafter files a count per episode.
    """
    missing = [a for a in ACHIEVEMENTS if f"achievement_{a}" not in columns]
    if missing:
        raise ValueError(
            f"crafter scores need per-episode achievements; 'achievement_{missing[0]}' "
            "is missing (our runs log it as metric 'episode/achievement_<name>')"
        )
    return {a: np.asarray(columns[f"achievement_{a}"], dtype=np.float64) >= 1 for a in ACHIEVEMENTS}


# The Crafter benchmark's per-episode files (danijar/crafter, scores/, as read by its
# analysis/common.py): expert humans on the reward task; a random policy and two
# unsupervised agents, which never see the reward, on the no-reward task.
CRAFTER_SCORES = PublishedScores(
    "danijar/crafter",
    "e04542a2159f1aad3d4c5ad52e8185717380ee3a",
    "scores",
    {
        "human": "crafter_reward-human.json",
        "dreamerv2": "crafter_reward-dreamerv2.json",
        "ppo": "crafter_reward-ppo.json",
        "rainbow": "crafter_reward-rainbow.json",
        "random": "crafter_noreward-random.json",
        "unsup_plan2explore": "crafter_noreward-unsup_plan2explore.json",
        "unsup_rnd": "crafter_noreward-unsup_rnd.json",
    },
    reward_free=("random", "unsup_plan2explore", "unsup_rnd"),
)


def make_crafter(task: str, seed: int, protocol: Mapping[str, Any]) -> CrafterEnv:
    """A Crafter environment: task ``reward`` (sparse achievement rewards) or ``noreward``."""
    return CrafterEnv(CRAFTER.check_task(task), seed, protocol)


CRAFTER = Suite(
    name="crafter",
    tasks=("reward", "noreward"),
    default_protocol={"action_repeat": 1, "image_size": 64, "max_steps": 10_000},
    protocol_fields={
        "action_repeat": Literal[1],  # Crafter has no action repeat
        "image_size": Annotated[int, Range(ge=9)],
        "max_steps": PositiveInt,
    },
    make_env=make_crafter,
    budget_steps=1_000_000,
    # Success rates are over every episode of the budget (Hafner 2021).
    final_window_frames=1_000_000,
    # Reference configs.yaml `crafter`: train_ratio 512, 1 env, default size.
    agent_defaults={
        "agent.size": "200m",
        "agent.train_ratio": 512,
        "run.envs": 1,
        "run.parallel_envs": False,
    },
    description="Crafter, 64x64 RGB, 17 actions, 10,000-step episodes; the 22 achievements "
    "are logged per episode as log/achievement_<name>. Score: exp(mean(ln(1 + s_i))) - 1 over "
    "the achievement success rates s_i in percent (dreamerbench.suites.scores.crafter_score).",
    published_prefix="crafter_",
    published=CRAFTER_SCORES,
    # A run's score is the Crafter score (percent) of its episodes, not a return.
    run_score="crafter",
    episode_successes=achievement_episodes,
    normalized_name="Crafter score",
    score_refs={task: CRAFTER_SCORE_RANGE for task in ("reward", "noreward")},
)
