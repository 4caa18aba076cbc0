"""Step N environments of one task together, in worker processes or in-process.

Both variants auto-reset in the embodied/DreamerV3 driver convention: an env
whose previous observation had ``is_last=True`` ignores its action on the
next :meth:`VectorEnv.step` and returns its reset observation
(``is_first=True``). Observations are stacked over envs: ``[N, ...]``.

Workers are started with the ``spawn`` context: the trainer process runs JAX
threads, and forking a multi-threaded process can deadlock the child.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from dreamerbench.suites.base import Env, Suite

# How often the parent checks that a silent worker is still alive.
_POLL_SECONDS = 0.5


class EnvWorkerError(RuntimeError):
    """An environment raised, or its worker process died."""


ENV_SEED_BOUND = 2**31
"""Env seeds lie in ``[0, 2**31)``: ALE's seed is a signed 32-bit int."""


def _seed_stream(seed: int, count: int) -> list[int]:
    """The first ``count`` distinct values of run ``seed``'s stream of env seeds: 31-bit words
    of ``numpy.random.SeedSequence(seed)`` (a hash of the whole seed, so runs' streams are
    unrelated, unlike ``seed * 1000 + index``, whose seeds 0 and 268,435,456 met modulo 2**31),
    repeats skipped. A prefix of the stream does not depend on ``count``."""
    words, drawn = [], count
    while len(words) < count:
        state = np.random.SeedSequence(seed).generate_state(drawn, np.uint32) >> 1
        words = list(dict.fromkeys(int(word) for word in state))[:count]
        drawn *= 2
    return words


def env_seeds(seed: int, num_envs: int) -> list[int]:
    """Seeds of the ``num_envs`` training envs of a run with ``seed``, each in
    ``[0, 2**31)``: values 2 to ``num_envs + 1`` of the run's stream (:func:`_seed_stream`).

    Within a run they are distinct and never the evaluation env's (:func:`eval_env_seed`),
    for any ``num_envs``. Runs with different seeds draw from unrelated streams: two given
    runs of N and M envs share an env seed with probability about ``N * M / 2**31`` (no
    layout avoids it for every pair: 2**31 run seeds with one env each already fill the
    2**31 values ALE accepts). Raises ValueError for ``num_envs < 1``.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs={num_envs} must be >= 1")
    return _seed_stream(seed, num_envs + 1)[1:]


def eval_env_seed(seed: int) -> int:
    """Seed of the evaluation env of a run with ``seed``: the first value of the run's stream
    (:func:`_seed_stream`), so none of the run's training envs (:func:`env_seeds`) shares it,
    however many there are."""
    return _seed_stream(seed, 1)[0]


def make_vector_env(
    suite: Suite,
    task: str,
    seed: int,
    protocol: Mapping[str, Any],
    num_envs: int,
    parallel: bool,
) -> VectorEnv:
    """``num_envs`` envs of ``suite``/``task`` with seeds from :func:`env_seeds`."""
    suite.check_task(task)
    protocol = dict(protocol)
    make_fns = [
        functools.partial(suite.make_env, task, env_seed, protocol)
        for env_seed in env_seeds(seed, num_envs)
    ]
    return VectorEnv(make_fns, parallel)


class _AutoReset:
    """Wraps one env so that the step after ``is_last`` resets it."""

    def __init__(self, env: Env):
        self.env = env
        self._needs_reset = True

    def reset(self) -> dict[str, np.ndarray]:
        obs = self.env.reset()
        self._needs_reset = bool(obs["is_last"])
        return obs

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        if self._needs_reset:
            return self.reset()
        obs = self.env.step(action)
        self._needs_reset = bool(obs["is_last"])
        return obs


class VectorEnv:
    """N environments of one task; ``parallel`` puts each in its own process.

    ``make_fns`` are zero-argument callables building one env each; for
    ``parallel=True`` they must be picklable (e.g. ``functools.partial`` of a
    module-level function, as :func:`make_vector_env` builds).
    """

    def __init__(self, make_fns: Sequence[Callable[[], Env]], parallel: bool):
        if not make_fns:
            raise ValueError("make_fns is empty; need at least one env")
        self.num_envs = len(make_fns)
        self.parallel = parallel
        self._envs: list[_AutoReset] = []
        self._workers: list[tuple[Any, Any]] = []
        if parallel:
            context = mp.get_context("spawn")
            for index, make_fn in enumerate(make_fns):
                parent, child = context.Pipe()
                process = context.Process(
                    target=_worker, args=(child, make_fn), name=f"env-{index}", daemon=True
                )
                process.start()
                child.close()
                self._workers.append((process, parent))
            spaces = [self._receive(index) for index in range(self.num_envs)]
        else:
            self._envs = [_AutoReset(make_fn()) for make_fn in make_fns]
            spaces = [(e.env.obs_space, e.env.act_space) for e in self._envs]
        self.obs_space, self.act_space = spaces[0]
        for index, (obs_space, act_space) in enumerate(spaces[1:], 1):
            if dict(obs_space) != dict(self.obs_space) or act_space != self.act_space:
                self.close()
                raise ValueError(f"env {index} has other spaces than env 0")

    def reset(self) -> dict[str, np.ndarray]:
        """Reset every env; returns observations stacked as ``[N, ...]``."""
        if self.parallel:
            for _, pipe in self._workers:
                pipe.send(("reset", None))
            return _stack([self._receive(i) for i in range(self.num_envs)])
        return _stack([env.reset() for env in self._envs])

    def step(self, actions: np.ndarray) -> dict[str, np.ndarray]:
        """Step env i with ``actions[i]`` (auto-resetting finished envs)."""
        actions = np.asarray(actions)
        if actions.shape[:1] != (self.num_envs,):
            raise ValueError(
                f"actions has shape {actions.shape}; expected ({self.num_envs}, ...) "
                "with one action per env"
            )
        if self.parallel:
            for (_, pipe), action in zip(self._workers, actions):
                pipe.send(("step", action))
            return _stack([self._receive(i) for i in range(self.num_envs)])
        return _stack([env.step(action) for env, action in zip(self._envs, actions)])

    def render(self, index: int) -> np.ndarray:
        """A camera frame [H, W, 3] uint8 of env `index` (its env's ``render()``; tasks that
        support it)."""
        if self.parallel:
            self._workers[index][1].send(("render", None))
            return self._receive(index)
        return self._envs[index].env.render()

    def close(self) -> None:
        """Close every env and end the worker processes."""
        for env in self._envs:
            env.env.close()
        self._envs = []
        for process, pipe in self._workers:
            try:
                pipe.send(("close", None))
            except (BrokenPipeError, OSError):
                pass  # The worker is gone already.
        for process, pipe in self._workers:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            pipe.close()
        self._workers = []

    def __enter__(self) -> VectorEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _receive(self, index: int) -> Any:
        process, pipe = self._workers[index]
        # Poll rather than block: a worker killed by a signal or a segfault
        # in native env code never answers, and a blocking recv would hang.
        while not pipe.poll(_POLL_SECONDS):
            if not process.is_alive():
                self._died(index)
        try:
            status, payload = pipe.recv()
        except EOFError:
            # A dead worker's pipe reads as EOF; wait briefly for its exit code.
            process.join(timeout=_POLL_SECONDS)
            self._died(index)
        if status == "error":
            self.close()
            raise EnvWorkerError(f"env worker {index} raised:\n{payload}")
        return payload

    def _died(self, index: int) -> None:
        exitcode = self._workers[index][0].exitcode
        self.close()
        raise EnvWorkerError(f"env worker {index} died with exit code {exitcode}")


def _worker(pipe, make_fn: Callable[[], Env]) -> None:
    """Worker process loop: build the env, then answer reset/step/close."""
    env = None
    try:
        env = _AutoReset(make_fn())
        pipe.send(("ok", (env.env.obs_space, env.env.act_space)))
        while True:
            command, argument = pipe.recv()
            if command == "reset":
                pipe.send(("ok", env.reset()))
            elif command == "step":
                pipe.send(("ok", env.step(argument)))
            elif command == "render":
                pipe.send(("ok", env.env.render()))
            elif command == "close":
                break
            else:
                raise ValueError(f"unknown worker command {command!r}")
    except (KeyboardInterrupt, EOFError):
        pass  # The parent is shutting down.
    except Exception:  # noqa: BLE001 - every failure must reach the parent.
        try:
            pipe.send(("error", traceback.format_exc()))
        except (BrokenPipeError, OSError):
            pass
    finally:
        if env is not None:
            env.env.close()
        pipe.close()


def _stack(observations: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}
