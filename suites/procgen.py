"""ProcGen (Cobbe et al. 2020, arXiv 1912.01588): 16 procedurally generated games.

The protocol of the published DreamerV3 runs (danijar/dreamerv3 ``embodied/envs/procgen.py``
and ``configs.yaml`` ``procgen`` at e3f0224): procgen's own defaults, i.e. the ``hard``
distribution mode, an unlimited level set (``num_levels=0``, ``start_level=0``) and all 15
actions of every game; 50M agent steps at action repeat 1 (the published curves end at 50M
frames); train ratio 64, 16 envs.

Observations: 96x96 RGB by default, as the published runs saw them. The reference's
``configs.yaml:31`` sets ``procgen: {size: [96, 96], resize: pillow}``, and its
``embodied/envs/procgen.py:16-21,46-48`` then takes each frame from procgen's 512x512 render
(``render_mode='rgb_array'``, ``info['rgb']``) and resizes it with Pillow's bilinear filter
(``procgen.py:62-64``); only ``size: [64, 64]`` takes procgen's native 64x64 observation
(``procgen.py:16-17``). ``env.image_size`` does the same here: 64 gives the native frames
(which procgen draws at 64x64, not a resize of the render), any other size the resized render
(:func:`dreamerbench.suites.atari.downscale`, the reference's Pillow recipe). Rendering costs:
about 55 steps/s against about 930 for the native frames on this project's 2-core machine
(coinrun, one env, 2026-12-07), so ``env.image_size=64`` is the cheap choice where matching
the published runs does not matter.

Where we differ from the reference: procgen ends an episode both when the game ends and at
the game's time limit (:data:`TIMEOUTS`), and the reference counts both as terminations; here
the time limit is a truncation (``is_last`` without ``is_terminal``), unless the level was
completed on that very step.

Like every gym3 environment, procgen resets itself when an episode ends, so the observation
of the ``is_last`` step is already the first frame of the next level (as in the reference);
:meth:`ProcgenEnv.reset` then returns that frame again, now with ``is_first``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np

from dreamerbench.core.reader import NonNegativeInt, Range
from dreamerbench.suites.atari import downscale
from dreamerbench.suites.base import Space, Suite, step_obs
from dreamerbench.suites.scores import PROCGEN_HARD_MIN_MAX, dreamerv3_scores

GAMES = tuple(PROCGEN_HARD_MIN_MAX)
DISTRIBUTION_MODES = ("easy", "hard", "extreme", "memory", "exploration")
NUM_ACTIONS = 15
"""procgen's action set: the same 15 button combinations for every game."""
DEFAULT_TIMEOUT = 1000
TIMEOUTS = {"bigfish": 6000, "bossfight": 4000, "leaper": 500, "maze": 500, "plunder": 4000}
"""Episode length limit (agent steps) of the games that differ from procgen's default of
1000 (procgen 0.10.7, ``src/games/*.cpp``); jumper has 2000 in the ``memory`` mode only."""
NATIVE_SIZE = 64
"""procgen's own observation: 64x64 RGB."""
RENDER_SIZE = 512
"""procgen's render (``render_mode='rgb_array'``): 512x512 RGB."""
PUBLISHED_SIZE = 96
"""The published runs' frames (the reference's ``configs.yaml:31``): the render resized."""


def timeout(game: str, distribution_mode: str) -> int:
    """The time limit in agent steps that procgen imposes on ``game`` in ``distribution_mode``."""
    if game == "jumper" and distribution_mode == "memory":
        return 2000
    return TIMEOUTS.get(game, DEFAULT_TIMEOUT)


class ProcgenEnv:
    """One procgen game as an :class:`dreamerbench.suites.base.Env` with ``image`` observations.

    ``seed`` seeds procgen's level generator (``rand_seed``), so a seed fixes the sequence of
    levels. Actions are indices ``0 .. 14`` into procgen's button combinations. Frames are
    ``[image_size, image_size, 3]`` uint8: procgen's own at 64, else its 512x512 render resized
    (see the module doc).
    """

    def __init__(self, game: str, seed: int, protocol: Mapping[str, Any]):
        from procgen import ProcgenGym3Env

        mode = protocol["distribution_mode"]
        size = protocol["image_size"]
        self._render = size != NATIVE_SIZE
        self._env = ProcgenGym3Env(
            num=1,
            env_name=game,
            distribution_mode=mode,
            num_levels=protocol["num_levels"],
            start_level=protocol["start_level"],
            rand_seed=int(seed),
            num_threads=0,  # step in this thread, as procgen's gym registration does
            render_mode="rgb_array" if self._render else None,
        )
        self._timeout = timeout(game, mode)
        self._size = size
        self.obs_space = {"image": Space(np.uint8, (size, size, 3), 0, 255)}
        self.act_space = Space(np.int32, (), 0, NUM_ACTIONS)
        self._length = 0
        self._between = True  # at a level's first frame (after construction or an episode end)

    def reset(self) -> dict[str, np.ndarray]:
        """The first frame of a new level (a level in progress is abandoned first)."""
        if not self._between:
            self._env.act(np.array([-1], np.int32))  # procgen's forced reset
        self._between = False
        self._length = 0
        _, obs, _ = self._env.observe()
        return step_obs({"image": self._frame(obs)}, 0.0, True, False, False)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """Press one of the 15 button combinations for one frame."""
        if self._between:
            raise RuntimeError("step() after the episode ended; call reset() first")
        index = int(action)
        if not 0 <= index < NUM_ACTIONS:
            raise ValueError(f"action={index} must be in 0..{NUM_ACTIONS - 1}")
        self._env.act(np.array([index], np.int32))
        reward, obs, first = self._env.observe()
        self._length += 1
        done = bool(first[0])
        completed = bool(self._env.get_info()[0]["prev_level_complete"])
        truncated = done and self._length >= self._timeout and not completed
        self._between = done
        image = self._frame(obs)
        return step_obs({"image": image}, float(reward[0]), False, done, done and not truncated)

    def _frame(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The agent's frame [size, size, 3] uint8 of the current step."""
        if not self._render:
            return np.array(obs["rgb"][0])
        return downscale(self._env.get_info()[0]["rgb"], self._size, gray=False)

    def close(self) -> None:
        """procgen frees its game with the object."""


def make_procgen(task: str, seed: int, protocol: Mapping[str, Any]) -> ProcgenEnv:
    """A ProcGen game (``coinrun``, ``bigfish``, ...) under the published runs' protocol."""
    return ProcgenEnv(PROCGEN.check_task(task), seed, PROCGEN.resolve_protocol(protocol))


PROCGEN = Suite(
    name="procgen",
    tasks=GAMES,
    default_protocol={
        "action_repeat": 1,
        "image_size": PUBLISHED_SIZE,
        "distribution_mode": "hard",
        "num_levels": 0,
        "start_level": 0,
    },
    protocol_fields={
        "action_repeat": Literal[1],  # procgen has no action repeat
        "image_size": Annotated[
            int,
            Range(
                ge=16,
                le=RENDER_SIZE,
                note="64: procgen's own frames; else its 512x512 render resized (the published "
                "runs: 96)",
            ),
        ],
        "distribution_mode": Literal[DISTRIBUTION_MODES],
        "num_levels": NonNegativeInt,  # 0: unlimited
        "start_level": NonNegativeInt,
    },
    make_env=make_procgen,
    budget_steps=50_000_000,
    # Last 5% of the budget, as for DMC and Minecraft: episodes last up to 6000 steps.
    final_window_frames=2_500_000,
    # Reference configs.yaml `procgen`: train_ratio 64, 16 envs (the default), default size.
    agent_defaults={
        "agent.size": "200m",
        "agent.train_ratio": 64,
        "run.envs": 16,
        "run.parallel_envs": True,
    },
    description="ProcGen: 16 games, 50M agent steps, 96x96 RGB resized from procgen's "
    "512x512 render as in the published runs (env.image_size=64: procgen's own frames), hard "
    "distribution mode, unlimited levels, 15 actions, procgen's per-game time limits (a "
    "truncation). Scores: "
    "(return - min) / (max - min) with procgen's hard-mode constants "
    "(dreamerbench.suites.scores.PROCGEN_HARD_MIN_MAX).",
    published_prefix="procgen_",
    published=dreamerv3_scores("procgen", ("dreamerv3", "ppg", "ppo_fixhp")),
    normalized_name="min-max normalised score",
    score_ref_names=("min", "max"),
    score_refs=dict(PROCGEN_HARD_MIN_MAX),
)
