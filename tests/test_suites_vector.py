"""VectorEnv: stacking, auto-reset, seeds, worker errors, both variants."""

import functools
import os

import numpy as np
import pytest

from dreamerbench.agent.config import SEED_MAX
from dreamerbench.suites import get_suite
from dreamerbench.suites.base import Space
from dreamerbench.suites.vector import (
    EnvWorkerError,
    VectorEnv,
    env_seeds,
    eval_env_seed,
    make_vector_env,
)

PROPRIO = get_suite("dmc_proprio")


class CountingEnv:
    """Episodes of ``length`` steps; observation = step index. Raises or dies on cue."""

    obs_space = {"vector": Space(np.float32, (1,))}
    act_space = Space(np.int32, (), 0, 2)

    def __init__(self, length, fail_at=None, how="raise"):
        self.length, self.fail_at, self.how = length, fail_at, how
        self.t = 0

    def reset(self):
        self.t = 0
        return self._obs(first=True)

    def step(self, action):
        self.t += 1
        if self.t == self.fail_at:
            if self.how == "raise":
                raise ValueError("boom in env")
            os._exit(3)  # Like a segfault in native code: no Python cleanup.
        return self._obs(first=False)

    def close(self):
        pass

    def _obs(self, first):
        last = self.t == self.length
        return {
            "vector": np.array([self.t], np.float32),
            "reward": np.float32(1.0),
            "is_first": np.bool_(first),
            "is_last": np.bool_(last),
            "is_terminal": np.bool_(last),
        }


@pytest.mark.parametrize("parallel", [False, True])
def test_auto_reset_follows_the_driver_convention(parallel):
    fns = [functools.partial(CountingEnv, 2), functools.partial(CountingEnv, 3)]
    with VectorEnv(fns, parallel) as env:
        assert env.num_envs == 2 and env.act_space.num_actions == 2
        ts, firsts, lasts = [], [], []
        obs = env.reset()
        for _ in range(6):
            ts.append(obs["vector"][:, 0].tolist())
            firsts.append(obs["is_first"].tolist())
            lasts.append(obs["is_last"].tolist())
            obs = env.step(np.zeros(2, np.int32))
    # Env 0: 0 1 2(last) 0(first, action ignored) 1 2; env 1: 0 1 2 3(last) 0 1.
    assert ts == [[0, 0], [1, 1], [2, 2], [0, 3], [1, 0], [2, 1]]
    assert [f[0] for f in firsts] == [True, False, False, True, False, False]
    assert [last[1] for last in lasts] == [False, False, False, True, False, False]


@pytest.mark.parametrize("parallel", [False, True])
def test_real_envs_match_between_variants(parallel):
    protocol = PROPRIO.resolve_protocol({})
    with make_vector_env(PROPRIO, "walker_walk", 5, protocol, 2, parallel) as env:
        obs = env.reset()
        assert obs["orientations"].shape == (2, 14) and obs["orientations"].dtype == np.float32
        for _ in range(3):
            obs = env.step(np.full((2, 6), 0.3, np.float32))
        # Envs have distinct seeds, so distinct initial states.
        assert not np.array_equal(obs["orientations"][0], obs["orientations"][1])
        final = obs
    single = PROPRIO.make_env("walker_walk", env_seeds(5, 2)[1], protocol)
    single.reset()
    for _ in range(3):
        expected = single.step(np.full(6, 0.3, np.float32))
    for key in ("height", "orientations", "velocity", "reward"):
        np.testing.assert_array_equal(final[key][1], expected[key])


def test_seeds_are_distinct_and_deterministic():
    assert env_seeds(3, 4) == env_seeds(3, 4)
    assert len(set(env_seeds(3, 16) + env_seeds(4, 16))) == 32
    with pytest.raises(ValueError, match="num_envs=0"):
        env_seeds(0, 0)


def test_seeds_of_a_sweep_do_not_collide():
    # seed * 1000 + index modulo 2**31 gave seeds 0 and 268,435,456 the same envs, and with
    # 1000 envs or more a training env took the eval env's seed and the next run seed's.
    assert not set(env_seeds(268_435_456, 4)) & set(env_seeds(0, 4))
    assert not set(env_seeds(0, 1001)) & set(env_seeds(1, 1001))
    sweep = [s for seed in range(64) for s in env_seeds(seed, 16) + [eval_env_seed(seed)]]
    assert len(set(sweep)) == len(sweep)
    for seed in (0, 1, 268_435_456, SEED_MAX):
        seeds = env_seeds(seed, 2000)
        assert len(set(seeds)) == 2000 and all(0 <= s < 2**31 for s in seeds)
        assert eval_env_seed(seed) not in seeds  # eval never plays a training env
        assert env_seeds(seed, 3) == seeds[:3]  # more envs keep the first envs' seeds


def test_env_exception_reaches_the_parent():
    fns = [functools.partial(CountingEnv, 5), functools.partial(CountingEnv, 5, fail_at=2)]
    env = VectorEnv(fns, parallel=True)
    env.reset()
    env.step(np.zeros(2, np.int32))
    with pytest.raises(EnvWorkerError, match="(?s)env worker 1 raised.*boom in env"):
        env.step(np.zeros(2, np.int32))
    assert env._workers == []  # Workers were shut down.


def test_dead_worker_raises_instead_of_hanging():
    fns = [functools.partial(CountingEnv, 5, fail_at=1, how="exit")]
    env = VectorEnv(fns, parallel=True)
    env.reset()
    with pytest.raises(EnvWorkerError, match="env worker 0 died with exit code 3"):
        env.step(np.zeros(1, np.int32))


def test_close_ends_workers():
    env = VectorEnv([functools.partial(CountingEnv, 5)] * 2, parallel=True)
    processes = [process for process, _ in env._workers]
    env.close()
    assert not any(process.is_alive() for process in processes)


def test_wrong_action_batch_is_rejected():
    with VectorEnv([functools.partial(CountingEnv, 5)] * 2, parallel=False) as env:
        env.reset()
        with pytest.raises(ValueError, match="expected \\(2, ...\\)"):
            env.step(np.zeros(3, np.int32))
