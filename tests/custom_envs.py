"""A dm_env factory as a user writes one for ``--suite dm_env --task custom_envs:cartpole``
(the worked example of docs/custom_env.md)."""

from dm_control import suite


def cartpole(seed: int):
    """dm_control's cartpole swing-up (a dm_env.Environment), its randomness seeded by ``seed``."""
    return suite.load("cartpole", "swingup", task_kwargs={"random": seed})


def broken(seed: int):
    """A factory that fails when a job calls it (a failed run for tests/test_sweep_continue.py)."""
    raise RuntimeError(f"the simulator did not start (seed {seed})")
