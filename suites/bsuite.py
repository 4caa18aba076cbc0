"""BSuite (Osband et al. 2020, arXiv 1908.03568): the Behaviour Suite's 468 configurations.

The reference runs bsuite experiments by id (danijar/dreamerv3 ``embodied/envs/bsuite.py`` and
``configs.yaml`` ``bsuite`` at e3f0224: train ratio 1024, 1 env; the paper reports the whole
sweep). Each task here is one configuration of ``bsuite.sweep.SWEEP``, ``EXPERIMENT/INDEX``
written ``EXPERIMENT_INDEX`` (``catch_0``) so that task names stay file and tag friendly.
Observations are flattened to one float32 vector, as in the reference; actions are bsuite's
discrete actions. An episode ends where bsuite ends it, and is a termination where bsuite's
discount is 0 (bsuite counts its own time limits, e.g. mountain_car's 1000 steps, as
terminations); the conversion is the ``dm_env`` suite's (:class:`dreamerbench.suites.gym.DmEnv`).

Seeds: bsuite fixes each configuration's settings; where a setting is ``seed=None`` (bsuite
would draw one), the run's seed and the configuration's index seed it, so runs are reproducible
and the 20 replicates of an experiment stay distinct.

Score rule. bsuite's own score of an experiment (its ``experiments/*/analysis.py``, in [0, 1])
reads bsuite's per-episode logs of every configuration of the experiment over its first
``bsuite_num_episodes`` episodes (1,000 or 10,000). This adapter writes no bsuite logs, so our
tables show the mean return of every episode of a run (the final window is the whole budget,
as bsuite's regret scores average over the whole run) and have no normalised score; the budget
of 1M agent steps covers the longest experiments (1,000 episodes of up to 1,000 steps).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from dreamerbench.suites.base import Suite

# bsuite.sweep.SWEEP (bsuite 0.3.6): experiment -> number of configurations, spelled out so that
# listing the suite does not import bsuite; a test checks they agree.
CONFIGS = {
    "bandit": 20,
    "bandit_noise": 20,
    "bandit_scale": 20,
    "cartpole": 20,
    "cartpole_noise": 20,
    "cartpole_scale": 20,
    "cartpole_swingup": 20,
    "catch": 20,
    "catch_noise": 20,
    "catch_scale": 20,
    "deep_sea": 21,
    "deep_sea_stochastic": 21,
    "discounting_chain": 20,
    "memory_len": 23,
    "memory_size": 17,
    "mnist": 20,
    "mnist_noise": 20,
    "mnist_scale": 20,
    "mountain_car": 20,
    "mountain_car_noise": 20,
    "mountain_car_scale": 20,
    "umbrella_distract": 23,
    "umbrella_length": 23,
}
TASKS = tuple(f"{name}_{index}" for name, count in CONFIGS.items() for index in range(count))


def bsuite_id(task: str) -> str:
    """bsuite's id of a task: ``catch_3`` -> ``catch/3``."""
    name, _, index = task.rpartition("_")
    return f"{name}/{index}"


def load(task: str, seed: int):
    """The bsuite environment (a ``dm_env.Environment``) of ``task``, seeded as the module says."""
    import bsuite
    from bsuite import sweep

    settings = dict(sweep.SETTINGS[bsuite_id(task)])
    if "seed" in settings and settings["seed"] is None:
        index = int(task.rpartition("_")[2])
        settings["seed"] = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
    return bsuite.load(task.rpartition("_")[0], settings)


def make_bsuite(task: str, seed: int, protocol: Mapping[str, Any]):
    """One bsuite configuration (``catch_0``, ``deep_sea_20``, ...) as a
    :class:`dreamerbench.suites.gym.DmEnv`. The ``mnist`` experiments download MNIST on first
    use (bsuite's own loader), so they need internet access once."""
    from dreamerbench.suites.gym import DmEnv

    task = BSUITE.check_task(task)
    protocol = BSUITE.resolve_protocol(protocol)
    return DmEnv(f"bsuite:{bsuite_id(task)}", seed, protocol, env=load(task, seed))


BSUITE = Suite(
    name="bsuite",
    tasks=TASKS,
    default_protocol={"action_repeat": 1, "image_size": 64},
    protocol_fields={
        "action_repeat": Literal[1],  # bsuite's experiments have no action repeat
        "image_size": Literal[64],  # unused: no bsuite observation is an image
    },
    make_env=make_bsuite,
    budget_steps=1_000_000,
    # Every episode of the run (bsuite's regret scores average over the whole run).
    final_window_frames=1_000_000,
    # Reference configs.yaml `bsuite`: train_ratio 1024, 1 env, default size.
    agent_defaults={
        "agent.size": "200m",
        "agent.train_ratio": 1024,
        "run.envs": 1,
        "run.parallel_envs": False,
    },
    description="BSuite: 23 experiments, 468 configurations (EXPERIMENT_INDEX), observations "
    "flattened to one float32 vector, bsuite's discrete actions, episodes and terminations as "
    "bsuite ends them. Score: mean return of every episode of the run; no normalised score.",
    published_prefix="bsuite_",
    notes="No score references and no published files: bsuite's own per-experiment score (in "
    "[0, 1]) needs bsuite's episode logs over its bsuite_num_episodes episodes, which this "
    "adapter does not write, and the DreamerV3 reference published no bsuite scores. The "
    "budget (1M agent steps) covers the longest experiments; bsuite itself stops each "
    "configuration after bsuite_num_episodes episodes (1,000 or 10,000). The mnist "
    "experiments download MNIST on first use.",
)
