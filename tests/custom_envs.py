"""A dm_env factory as a user writes one for ``--suite dm_env --task custom_envs:cartpole``
(the worked example of docs/custom_env.md)."""

import os
import signal

import numpy as np
from dm_control import suite


def cartpole(seed: int):
    """dm_control's cartpole swing-up (a dm_env.Environment), its randomness seeded by ``seed``."""
    return suite.load("cartpole", "swingup", task_kwargs={"random": seed})


_CALLS = []


def broken(seed: int):
    """A factory that works the first time a process calls it (the task check of ``dreamerbench
    train``/``sweep``) and fails after, when the job makes its envs (a failed run for
    tests/test_sweep_continue.py and tests/test_suites_gym.py)."""
    _CALLS.append(seed)
    if len(_CALLS) > 1:
        raise RuntimeError(f"the simulator did not start (seed {seed})")
    return cartpole(seed)


FAIL_AFTER = "CUSTOM_ENVS_FAIL_AFTER"
"""Environment variable: the number of steps after which a :func:`fails_later` env raises
(unset: never)."""
KILL_ON_FAIL = "CUSTOM_ENVS_KILL_ON_FAIL"
"""Environment variable: a process group that a :func:`fails_later` env kills (SIGKILL) just
before it raises: the MLflow server of tests/test_mlflow_server.py, unreachable at the moment of
failure."""


def fails_later(seed: int):
    """Cartpole swing-up with 20-step episodes (``time_limit`` 0.2 s of 0.01 s steps) that raises
    RuntimeError on its step number ``$CUSTOM_ENVS_FAIL_AFTER + 1`` (counted over its episodes):
    a run that fails mid-training (tests/test_sweep_failed.py); without the variable it never
    fails."""
    import dm_env

    env = suite.load("cartpole", "swingup", task_kwargs={"random": seed, "time_limit": 0.2})
    limit = os.environ.get(FAIL_AFTER)

    class FailsLater(dm_env.Environment):
        steps = 0

        def reset(self):
            return env.reset()

        def step(self, action):
            self.steps += 1
            if limit is not None and self.steps > int(limit):
                if os.environ.get(KILL_ON_FAIL):
                    os.killpg(int(os.environ[KILL_ON_FAIL]), signal.SIGKILL)
                raise RuntimeError(f"the simulator crashed after {limit} steps (seed {seed})")
            return env.step(action)

        def observation_spec(self):
            return env.observation_spec()

        def action_spec(self):
            return env.action_spec()

    return FailsLater()


def boom(seed: int):
    """A factory that always fails."""
    raise RuntimeError("boom")


def not_an_env(seed: int):
    """A factory that returns something other than a dm_env.Environment."""
    return {"seed": seed}


def no_physics(seed: int):
    """A dm_env.Environment without dm_control's ``physics`` (it cannot render a camera)."""
    import dm_env

    class Plain(dm_env.Environment):
        def reset(self):
            return dm_env.restart(np.zeros(2, np.float32))

        def step(self, action):
            return dm_env.termination(1.0, np.zeros(2, np.float32))

        def observation_spec(self):
            return dm_env.specs.Array((2,), np.float32)

        def action_spec(self):
            return dm_env.specs.BoundedArray((), np.int64, 0, 1)

    return Plain()


def no_seed():
    """A factory without the ``seed`` argument."""
    return cartpole(0)
