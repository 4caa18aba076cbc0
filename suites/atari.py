"""Atari 2600 through the Arcade Learning Environment: atari100k and atari57.

Both suites follow danijar/dreamerv3 ``configs.yaml`` (``env.atari100k`` and
``env.atari``): action repeat 4 with a max over the last two frames, up to 30
no-op actions after each reset, no life-loss signal, episodes cut at 108,000
frames after the reset's no-ops.
atari100k: 64x64 RGB, minimal action set, no sticky actions. atari57 follows
Machado et al. 2018 (arXiv 1709.06009): sticky actions with probability
0.25, the full 18-action set; 96x96 grayscale as in the reference.
Frames are downscaled and greyed with the reference's own recipe
(:func:`downscale`), checked against golden frames (tests/data/golden_atari.npz,
tools/golden_frames.py).

Unlike the reference, the 108k-frame limit is a truncation (``is_last`` and
not ``is_terminal``): the game did not end, so the agent bootstraps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np

from dreamerbench.core.reader import NonNegativeInt, PositiveInt, Probability
from dreamerbench.suites.base import Space, Suite, check_field, step_obs
from dreamerbench.suites.scores import ATARI_RANDOM_HUMAN, dreamerv3_scores

ATARI100K_GAMES = (
    "alien",
    "amidar",
    "assault",
    "asterix",
    "bank_heist",
    "battle_zone",
    "boxing",
    "breakout",
    "chopper_command",
    "crazy_climber",
    "demon_attack",
    "freeway",
    "frostbite",
    "gopher",
    "hero",
    "jamesbond",
    "kangaroo",
    "krull",
    "kung_fu_master",
    "ms_pacman",
    "pong",
    "private_eye",
    "qbert",
    "road_runner",
    "seaquest",
    "up_n_down",
)
ATARI57_GAMES = tuple(ATARI_RANDOM_HUMAN)

_ACTION_SETS = ("minimal", "full")


class AtariEnv:
    """One ALE game as an :class:`dreamerbench.suites.base.Env` with ``image`` observations.

    ``seed`` drives both ALE's own generator (sticky actions) and the number
    of no-ops after each reset, so a seed fixes the whole trajectory for a
    fixed action sequence.
    """

    def __init__(self, game: str, seed: int, protocol: Mapping[str, Any]):
        import ale_py
        from ale_py import roms

        self._repeat = protocol["action_repeat"]
        self._size = protocol["image_size"]
        self._gray = protocol["grayscale"]
        self._noop_max = protocol["noop_max"]
        self._max_frames = protocol["max_frames"]
        self._rng = np.random.default_rng(seed)
        self._ale = ale_py.ALEInterface()
        self._ale.setLoggerMode(ale_py.LoggerMode.Error)
        self._ale.setInt("random_seed", int(self._rng.integers(2**31)))
        self._ale.setFloat("repeat_action_probability", float(protocol["sticky_prob"]))
        self._ale.loadROM(roms.get_rom_path(game))
        self._noop = ale_py.Action.NOOP
        if protocol["action_set"] == "minimal":
            self._actions = self._ale.getMinimalActionSet()
        else:
            # All 18 joystick actions for every game (Machado et al. 2018);
            # ALE 0.12's getLegalActionSet() drops FIRE actions for Skiing.
            self._actions = list(ale_py.Action)
        height, width = self._ale.getScreenDims()
        # The last `max_pool` frames of a repeat; their max removes the
        # flicker of sprites drawn on alternate frames (Mnih et al. 2015).
        self._pool = np.zeros((protocol["max_pool"], height, width, 3), np.uint8)
        channels = 1 if self._gray else 3
        self.obs_space = {"image": Space(np.uint8, (self._size, self._size, channels), 0, 255)}
        self.act_space = Space(np.int32, (), 0, len(self._actions))
        self._done = True

    def reset(self) -> dict[str, np.ndarray]:
        """New game, then 0..noop_max no-ops (drawn from the env's generator)."""
        self._ale.reset_game()
        for _ in range(self._rng.integers(self._noop_max + 1)):
            self._ale.act(self._noop)
            if self._ale.game_over():
                self._ale.reset_game()
        self._ale.getScreenRGB(self._pool[0])
        self._pool[1:] = self._pool[0]
        self._newest = 0
        self._frames = 0
        self._done = False
        return self._obs(0.0, is_first=True, is_last=False, is_terminal=False)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """Repeat ``action`` (an index into the action set) ``action_repeat`` times."""
        if self._done:
            raise RuntimeError("step() after the episode ended; call reset() first")
        index = int(action)
        if not 0 <= index < len(self._actions):
            raise ValueError(f"action={index} must be in 0..{len(self._actions) - 1}")
        reward, terminal, truncated = 0.0, False, False
        for _ in range(self._repeat):
            reward += self._ale.act(self._actions[index])
            self._frames += 1
            # Every emulated frame goes into the ring of the last `max_pool`
            # frames, so an episode that ends inside the repeat shows its
            # last frames rather than the previous step's.
            self._newest = (self._newest + 1) % len(self._pool)
            self._ale.getScreenRGB(self._pool[self._newest])
            terminal = self._ale.game_over()
            # Frames since the reset's no-ops, as the reference counts them:
            # with a limit divisible by the repeat, truncation ends a repeat.
            truncated = self._frames >= self._max_frames
            if terminal or truncated:
                break
        self._done = terminal or truncated
        return self._obs(reward, is_first=False, is_last=self._done, is_terminal=terminal)

    def close(self) -> None:
        """ALE frees its emulator with the object."""

    def _obs(self, reward, is_first, is_last, is_terminal) -> dict[str, np.ndarray]:
        return step_obs(
            {"image": downscale(self._pool.max(0), self._size, self._gray)},
            reward,
            is_first,
            is_last,
            is_terminal,
        )


# Luminance weights of danijar/dreamerv3 embodied/envs/atari.py (L17), the third
# written as the rest to 1 as there, so the float64 products round alike.
GRAY_WEIGHTS = np.array([0.299, 0.587, 1 - (0.299 + 0.587)])


def downscale(frame: np.ndarray, size: int, gray: bool) -> np.ndarray:
    """An RGB screen [H, W, 3] uint8 as the agent sees it: [size, size, 1 or 3] uint8.

    The reference's recipe (danijar/dreamerv3 ``embodied/envs/atari.py``
    ``_obs``, ``resize: pillow`` in every Atari config): Pillow's bilinear
    resize of the RGB frame (which widens its filter when shrinking, so every
    source pixel counts), then for ``gray`` the float64 weighted sum of the
    channels truncated to uint8 (luminance weights, not the channel mean: a red
    object on a green background must stay visible).
    """
    from PIL import Image

    image = np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BILINEAR))
    if gray:
        image = (image * GRAY_WEIGHTS).sum(-1).astype(np.uint8)[:, :, None]
    return image


def make_atari100k(task: str, seed: int, protocol: Mapping[str, Any]) -> AtariEnv:
    """An Atari100k game (``pong``, ``ms_pacman``, ...)."""
    return AtariEnv(ATARI100K.check_task(task), seed, ATARI100K.resolve_protocol(protocol))


def make_atari57(task: str, seed: int, protocol: Mapping[str, Any]) -> AtariEnv:
    """An Atari57 game under the Machado et al. 2018 protocol."""
    return AtariEnv(ATARI57.check_task(task), seed, ATARI57.resolve_protocol(protocol))


_COMMON = {"action_repeat": 4, "max_pool": 2, "noop_max": 30, "max_frames": 108_000}
# Types and ranges of the protocol fields (dreamerbench.core.reader), for both Atari suites.
_FIELDS = {
    "action_repeat": PositiveInt,
    "max_pool": PositiveInt,
    "noop_max": NonNegativeInt,
    "max_frames": PositiveInt,
    "image_size": PositiveInt,
    "grayscale": bool,
    "sticky_prob": Annotated[float, Probability],
    "action_set": Literal[_ACTION_SETS],
}


def _check_max_pool(protocol: Mapping[str, Any]) -> None:
    check_field(
        protocol["max_pool"] <= protocol["action_repeat"],
        "max_pool",
        protocol["max_pool"],
        f"an integer in [1, action_repeat={protocol['action_repeat']}]",
    )


ATARI100K = Suite(
    name="atari100k",
    tasks=ATARI100K_GAMES,
    default_protocol={
        **_COMMON,
        "image_size": 64,
        "grayscale": False,
        "sticky_prob": 0.0,
        "action_set": "minimal",
    },
    protocol_fields=_FIELDS,
    check_protocol=_check_max_pool,
    make_env=make_atari100k,
    budget_steps=100_000,
    # Episodes ending between 390k and 400k frames.
    final_window_frames=10_000,
    # Reference configs.yaml `atari100k`: train_ratio 256, 1 env, default size.
    agent_defaults={
        "agent.size": "200m",
        "agent.train_ratio": 256,
        "run.envs": 1,
        "run.parallel_envs": False,
    },
    description="Atari100k: 26 games, 100k agent steps (400k frames), 64x64 RGB, repeat 4 "
    "with max-pool over 2 frames, no sticky actions, minimal action set, up to 30 no-ops, "
    "no life-loss signal, 108k-frame episodes (truncation). Scores: human-normalised with "
    "the random and human scores in dreamerbench.suites.scores.",
    published_prefix="atari_",
    published=dreamerv3_scores("atari100k", ("dreamerv3", "ppo_fixhp")),
    normalized_name="human-normalised score",
    score_ref_names=("random", "human"),
    score_refs={game: ATARI_RANDOM_HUMAN[game] for game in ATARI100K_GAMES},
)

ATARI57 = Suite(
    name="atari57",
    tasks=ATARI57_GAMES,
    default_protocol={
        **_COMMON,
        "image_size": 96,
        "grayscale": True,
        "sticky_prob": 0.25,
        "action_set": "full",
    },
    protocol_fields=_FIELDS,
    check_protocol=_check_max_pool,
    make_env=make_atari57,
    budget_steps=50_000_000,
    # Last 1% of the budget.
    final_window_frames=2_000_000,
    # Reference configs.yaml `atari`: train_ratio 32, 16 envs, default size.
    agent_defaults={
        "agent.size": "200m",
        "agent.train_ratio": 32,
        "run.envs": 16,
        "run.parallel_envs": True,
    },
    description="Atari57 (Machado et al. 2018): 57 games, 50M agent steps (200M frames), "
    "96x96 grayscale, repeat 4 with max-pool over 2 frames, sticky actions 0.25, full "
    "18-action set, up to 30 no-ops as in the reference, no life-loss signal, 108k-frame "
    "episodes (truncation). Scores: human-normalised (dreamerbench.suites.scores).",
    published_prefix="atari_",
    published=dreamerv3_scores("atari57", ("dreamerv3", "muzero", "ppo_fixhp")),
    normalized_name="human-normalised score",
    score_ref_names=("random", "human"),
    score_refs=dict(ATARI_RANDOM_HUMAN),
)
