"""Evaluation episodes: the policy plays whole episodes on envs of its own, apart from training.

Used by the trainer (``run.eval_every``) and by ``dreamerbench eval``: both call
:func:`evaluate`, so the same parameters and seed give the same scores in either.
Evaluation envs are made fresh for every evaluation, one per run, seeded with
:func:`dreamerbench.suites.vector.eval_env_seed` (never a training env's seed), and the agent's
evaluation policy (``Agent.eval_act``) keeps a state apart from the training policy's.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dreamerbench.agent.media import image_key, rgb
from dreamerbench.suites.base import Suite
from dreamerbench.suites.vector import VectorEnv, eval_env_seed


def evaluate(
    agent: Any,
    suite: Suite,
    task: str,
    seeds: Sequence[int],
    protocol: Mapping[str, Any],
    episodes: int,
    greedy: bool,
    video: bool = False,
    render: bool = False,
) -> tuple[list[list[dict[str, float]]], list[np.ndarray | None]]:
    """Play `episodes` episodes per run (one env per run, runs in lockstep).

    Returns, per run, the episode records (``score``, ``length`` and ``log/*`` maxima, in
    order) and, with `video`, the first episode's frames [T, H, W, 3] uint8: the image
    observation, or the env's camera if `render` (tasks without images); None otherwise.
    """
    from dreamerbench.agent.rundir import EpisodeStats  # the one episode bookkeeping

    done: list[list[dict[str, float]]] = [[] for _ in seeds]
    frames: list[list[np.ndarray]] = [[] for _ in seeds]
    with contextlib.ExitStack() as stack:
        envs = [stack.enter_context(_eval_env(suite, task, seed, protocol)) for seed in seeds]
        space = envs[0].act_space
        key = image_key(envs[0].obs_space)
        stats = [EpisodeStats(1) for _ in seeds]
        obs = [env.reset() for env in envs]
        count = 0
        while True:
            for run, (env, run_obs) in enumerate(zip(envs, obs)):
                if video and not done[run]:
                    frame = rgb(run_obs[key][0]) if key else env.render(0) if render else None
                    if frame is not None:
                        frames[run].append(frame)
                for record in stats[run].track(run_obs):
                    if len(done[run]) < episodes:
                        done[run].append(record)
            if all(len(d) >= episodes for d in done):
                break
            actions = agent.eval_act(obs, count, greedy)
            count += 1
            obs = [env.step(clip_action(action, space)) for env, action in zip(envs, actions)]
    return done, [np.stack(f) if f else None for f in frames]


def _eval_env(suite: Suite, task: str, seed: int, protocol: Mapping[str, Any]) -> VectorEnv:
    """The evaluation env of the run of `seed`: one env, stepped in this process."""
    make = functools.partial(suite.make_env, task, eval_env_seed(seed), dict(protocol))
    return VectorEnv([make], False)


def clip_action(action: np.ndarray, space) -> np.ndarray:
    """Continuous actions clipped into the action space's bounds; discrete ones unchanged."""
    if space.discrete:
        return action
    return np.clip(action, space.low, space.high)
