"""DreamerV3 as the training loop sees an agent: K runs that differ only in seed, stepped together.

The loop (``agent/trainer.py``) talks to an agent through :class:`dreamerbench.agent.trainer.Agent`:
host arrays in and out, one entry per run. :class:`PackedDreamer` keeps the runs'
``TrainState`` on the device, stacked on a leading run axis, and calls the pure jitted
policy and train steps of ``agent/dreamer.py`` vmapped over that axis
(``dreamer.over_runs``). Keys are derived inside the jitted steps from each run's
seed and the loop's step counts, so a run draws the same random numbers packed or alone.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import numpy as np

from dreamerbench.agent.config import Config
from dreamerbench.agent.dreamer import Dreamer, over_runs
from dreamerbench.agent.replay import Replay
from dreamerbench.suites.base import Space


def latent_step_specs(latent_shape: tuple[int, int, int]) -> dict[str, tuple[tuple[int], Any]]:
    """What replay stores of each step's posterior: ``deter`` [D] float16, ``stoch`` [S] uint8
    class indices, from ``Dreamer.latent_shape`` (D, S, classes)."""
    deter, stoch, _ = latent_shape
    # float16 halves the memory of stored start states; deter lies in [-1, 1].
    return {"deter": ((deter,), np.float16), "stoch": ((stoch,), np.uint8)}


class PackedDreamer:
    """DreamerV3 for `len(seeds)` runs of one config: policy, updates and host copies of the
    state."""

    def __init__(
        self, config: Config, obs_space: Mapping[str, Space], act_space: Space, seeds: Sequence[int]
    ):
        enable_compile_cache(config.run.compile_cache)
        dreamer = Dreamer(config, obs_space, act_space)
        self.runs = len(seeds)
        self.batch_size = config.agent.batch_size
        self._obs_keys = (*obs_space, "is_first")
        # Whole-run-axis arrays are built by one jitted call or in numpy: an eager
        # JAX op per parameter would compile once per distinct shape.
        self._run_keys = np.stack([np.asarray(jax.random.PRNGKey(seed)) for seed in seeds])
        self._state = jax.jit(
            over_runs(lambda key: dreamer.init(jax.random.fold_in(key, 0)), self.runs)
        )(self._run_keys)
        self._policy = jax.jit(
            over_runs(_keyed(functools.partial(dreamer.policy_step, explore=True), 1), self.runs)
        )
        self._train = jax.jit(over_runs(_keyed(dreamer.train_step, 2), self.runs), donate_argnums=0)
        # Evaluation and reports draw from key streams of their own, so they change nothing in
        # training.
        self._eval_policies = {
            greedy: jax.jit(
                over_runs(
                    _keyed(functools.partial(dreamer.policy_step, explore=not greedy), 3), self.runs
                )
            )
            for greedy in (True, False)
        }
        self._openloop = jax.jit(over_runs(_keyed(dreamer.openloop, 4), self.runs))
        self._eval_carry = None
        self._initial_carry = dreamer.initial_carry
        self._carry = jax.tree_util.tree_map(
            lambda leaf: np.zeros((self.runs, *leaf.shape), leaf.dtype),
            jax.eval_shape(functools.partial(dreamer.initial_carry, config.run.envs)),
        )
        self.step_specs = latent_step_specs(dreamer.latent_shape)

    def act(
        self, obs: Sequence[Mapping[str, np.ndarray]], count: int
    ) -> list[dict[str, np.ndarray]]:
        """Actions [envs, ...] and the posterior latents to store, per run; `count` = policy calls
        so far."""
        device_obs = _stack([{key: run_obs[key] for key in self._obs_keys} for run_obs in obs])
        self._carry, action, (deter, stoch) = self._policy(
            self._state.params,
            self._carry,
            device_obs,
            self._run_keys,
            self._counts(count),
        )
        action, deter, stoch = jax.device_get((action, deter, stoch))
        return [
            {"action": action[i], "deter": deter[i], "stoch": stoch[i]} for i in range(self.runs)
        ]

    def eval_act(
        self, obs: Sequence[Mapping[str, np.ndarray]], count: int, greedy: bool
    ) -> list[np.ndarray]:
        """Evaluation actions [envs, ...] per run, from a policy state apart from training's.

        `count` = evaluation policy calls so far in this evaluation (0 starts it: the state is
        cleared); `greedy` takes the policy's mode, else a sample. Same parameters, envs and
        counts give the same actions, in training or in ``dreamerbench eval``.
        """
        if count == 0 or self._eval_carry is None:
            envs = len(obs[0]["is_first"])
            self._eval_carry = jax.tree_util.tree_map(
                lambda leaf: np.zeros((self.runs, *leaf.shape), leaf.dtype),
                jax.eval_shape(functools.partial(self._initial_carry, envs)),
            )
        device_obs = _stack([{key: run_obs[key] for key in self._obs_keys} for run_obs in obs])
        self._eval_carry, action, _ = self._eval_policies[greedy](
            self._state.params,
            self._eval_carry,
            device_obs,
            self._run_keys,
            self._counts(count),
        )
        action = jax.device_get(action)
        return [action[i] for i in range(self.runs)]

    def report(
        self, replays: Sequence[Replay], count: int, sequences: int = 6
    ) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Open-loop predictions of the newest replayed windows, per run:
        :meth:`dreamerbench.agent.dreamer.Dreamer.openloop`'s {"image": (true, pred) uint8
        [B, T, H, W, C], "vector": (true, pred) [B, T, D]}, B <= `sequences`."""
        windows = [replay.latest(sequences) for replay in replays]
        shortest = min(len(w["is_first"]) for w in windows)
        batch = _stack([{k: v[:shortest] for k, v in w.items()} for w in windows])
        out = jax.device_get(
            self._openloop(self._state.params, batch, self._run_keys, self._counts(count))
        )
        return [
            {kind: (true[i], pred[i]) for kind, (true, pred) in out.items()}
            for i in range(self.runs)
        ]

    def learn(
        self,
        replays: Sequence[Replay],
        count: int,
        updates: int,
        stop: threading.Event | None = None,
    ) -> list[list[dict[str, float]]]:
        """`updates` train steps of every run (`count` = updates so far); metrics per run, per
        update.

        Once `stop` is set no further update starts (fewer come back), so a stop
        waits for one update at most.

        The next batch is sampled while the dispatched step runs, so it may start
        from a stored latent that the running step is about to refresh: at most
        one update stale, as in the reference (whose batches come from a prefetching stream).
        Fresh posterior latents are written back to each replay.
        """
        metrics_per_run: list[list[dict[str, float]]] = [[] for _ in replays]
        batch = self._sample(replays)
        for index in range(updates):
            if stop is not None and stop.is_set():
                break
            arrays, sampled = batch
            self._state, out = self._train(
                self._state, arrays, self._run_keys, self._counts(count + index)
            )
            if index + 1 < updates:
                batch = self._sample(replays)
            metrics, (deter, stoch) = jax.device_get((out.metrics, (out.deter, out.stoch)))
            for run, (replay, (envs, starts)) in enumerate(zip(replays, sampled)):
                replay.update_latents(envs, starts, {"deter": deter[run], "stoch": stoch[run]})
                metrics_per_run[run].append(
                    {name: float(value[run]) for name, value in metrics.items()}
                )
        return metrics_per_run

    def get_state(self) -> list[bytes]:
        """Each run's TrainState as flax msgpack bytes (plain arrays, no pickles), for
        checkpoints."""
        host = jax.device_get(self._state)
        return [flax.serialization.to_bytes(_unstack(host, run)) for run in range(self.runs)]

    def set_state(self, states: Sequence[bytes]) -> None:
        """Continue from per-run states made by :meth:`get_state` (e.g. read from checkpoints)."""
        template = _unstack(jax.device_get(self._state), 0)
        self._state = _stack([flax.serialization.from_bytes(template, state) for state in states])

    def _sample(self, replays: Sequence[Replay]):
        samples = [replay.sample(self.batch_size) for replay in replays]
        return _stack([batch for batch, _, _ in samples]), [where for _, *where in samples]

    def _counts(self, count: int) -> np.ndarray:
        return np.full(self.runs, count, np.uint32)


def _keyed(step, stream: int):
    """`step(*args, key)` called as `(*args, root_key, count)`: the key is derived inside the
    jitted step rather than by eager JAX ops (a dispatch each) on every call."""

    def keyed(*args):
        *args, root_key, count = args
        return step(*args, jax.random.fold_in(jax.random.fold_in(root_key, stream), count))

    return keyed


def _stack(trees: Sequence[Any]) -> Any:
    if len(trees) == 1:  # a view: no copy of a single run's batch
        return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[None], trees[0])
    return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *trees)


def _unstack(tree: Any, run: int) -> Any:
    return jax.tree_util.tree_map(lambda leaf: leaf[run], tree)


def enable_compile_cache(directory: str) -> None:
    """Use `directory` (~ expanded; created by jax at the first write) as jax's persistent
    compilation cache for programs that take >= 1 s to compile; '' leaves it off. Checked by
    `config.validate`."""
    if directory:
        jax.config.update("jax_compilation_cache_dir", str(Path(directory).expanduser()))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
