"""A stand-in agent that drives the real training loop without JAX
(see dreamerbench.agent.trainer.Agent).

It acts with seeded random actions and "learns" by sampling real batches from each
run's replay; its state (a count and the RNG state) round-trips through checkpoints,
so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import json

import numpy as np


class StubAgent:
    step_specs: dict = {}

    def __init__(self, config, obs_space, act_space, seeds):
        self.act_space = act_space
        self.batch_size = config.agent.batch_size
        self.seeds = list(seeds)
        self.rngs = [np.random.default_rng(seed) for seed in seeds]
        self.updates = [0 for _ in seeds]

    def act(self, obs, count):
        out = []
        for rng, run_obs in zip(self.rngs, obs):
            envs = len(run_obs["is_first"])
            space = self.act_space
            if space.discrete:
                action = rng.integers(0, space.num_actions, envs).astype(space.dtype)
            else:
                action = rng.uniform(space.low, space.high, (envs, *space.shape)).astype(
                    space.dtype
                )
            out.append({"action": action})
        return out

    def eval_act(self, obs, count, greedy):
        """Seeded by (seed, count) only, as DreamerV3's evaluation policy: same seed, same
        actions."""
        out = []
        for seed, run_obs in zip(self.seeds, obs):
            rng = np.random.default_rng([seed, count, int(greedy)])
            envs, space = len(run_obs["is_first"]), self.act_space
            if space.discrete:
                out.append(rng.integers(0, space.num_actions, envs).astype(space.dtype))
            else:
                out.append(
                    rng.uniform(space.low, space.high, (envs, *space.shape)).astype(space.dtype)
                )
        return out

    def learn(self, replays, count, updates, stop=None):
        metrics = [[] for _ in replays]
        for _ in range(updates):
            if stop is not None and stop.is_set():
                break
            for run, replay in enumerate(replays):
                batch, _, _ = replay.sample(self.batch_size)
                self.updates[run] += 1
                metrics[run].append({"loss": float(np.mean(batch["reward"]))})
            self.after_update()
        return metrics

    def after_update(self):
        """Called after each update; tests override it (e.g. to stop the loop mid-burst)."""

    def get_state(self):
        return [
            json.dumps({"updates": n, "rng": rng.bit_generator.state}).encode()
            for n, rng in zip(self.updates, self.rngs)
        ]

    def set_state(self, states):
        for run, state in enumerate(states):
            data = json.loads(state)
            self.updates[run] = data["updates"]
            self.rngs[run].bit_generator.state = data["rng"]
