"""Environment steps per second for each suite: one env, and N envs in worker processes.

Prints one JSON object per measurement, e.g.
``{"suite": "atari100k", "task": "pong", "mode": "parallel", "envs": 2, "steps_per_s": ...}``.
Steps are agent steps (after action repeat), summed over envs; actions are uniformly random.

    python -m bench.envs --seconds 5 --envs 2   (from the repository root)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from dreamerbench.suites import get_suite
from dreamerbench.suites.vector import make_vector_env

# One representative task per suite (minecraft_diamond needs MineRL).
TASKS = {
    "atari100k": "pong",
    "atari57": "pong",
    "dmc_proprio": "walker_walk",
    "dmc_vision": "walker_walk",
    "crafter": "reward",
}


def random_actions(space, num_envs: int, rng: np.random.Generator) -> np.ndarray:
    """A batch ``[num_envs, ...]`` of uniform random actions from ``space``."""
    if space.discrete:
        return rng.integers(space.num_actions, size=num_envs).astype(np.int32)
    return rng.uniform(space.low, space.high, (num_envs, *space.shape)).astype(np.float32)


def measure(suite_name: str, task: str, num_envs: int, parallel: bool, seconds: float) -> dict:
    """Step a vector env for about ``seconds`` after a short warm-up; returns the record."""
    suite = get_suite(suite_name)
    rng = np.random.default_rng(0)
    with make_vector_env(suite, task, 0, suite.resolve_protocol({}), num_envs, parallel) as env:
        env.reset()
        for _ in range(10):  # Warm-up: first render / world generation.
            env.step(random_actions(env.act_space, num_envs, rng))
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            env.step(random_actions(env.act_space, num_envs, rng))
            steps += num_envs
        elapsed = time.perf_counter() - start
    return {
        "suite": suite_name,
        "task": task,
        "mode": "parallel" if parallel else "single",
        "envs": num_envs,
        "steps_per_s": round(steps / elapsed, 1),
        "frames_per_s": round(steps * suite.action_repeat / elapsed, 1),
    }


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and print one JSON line per suite and mode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per measurement")
    parser.add_argument("--envs", type=int, default=2, help="worker processes in parallel mode")
    parser.add_argument("--suites", nargs="*", default=list(TASKS), choices=list(TASKS))
    args = parser.parse_args(argv)
    for name in args.suites:
        for num_envs, parallel in ((1, False), (args.envs, True)):
            print(
                json.dumps(measure(name, TASKS[name], num_envs, parallel, args.seconds)), flush=True
            )


if __name__ == "__main__":
    main()
