"""Real dm_control tasks under the dmc_proprio and dmc_vision protocols."""

import numpy as np
import pytest

from dreamerbench.suites import get_suite
from dreamerbench.suites.dmc import TASKS

PROPRIO = get_suite("dmc_proprio")
VISION = get_suite("dmc_vision")


def _run(env, steps, rng):
    obs = env.reset()
    assert obs["is_first"] and not obs["is_last"] and obs["reward"] == 0
    trajectory = [obs]
    for _ in range(steps):
        action = rng.uniform(-1, 1, env.act_space.shape).astype(np.float32)
        trajectory.append(env.step(action))
    return trajectory


def test_suites_cover_the_published_tasks():
    assert len(PROPRIO.tasks) == 18 and len(VISION.tasks) == 20
    assert set(PROPRIO.tasks) < set(VISION.tasks) == set(TASKS)


@pytest.mark.parametrize("task", PROPRIO.tasks)
def test_proprio_task_resets_and_steps(task):
    env = PROPRIO.make_env(task, 0, PROPRIO.resolve_protocol({}))
    try:
        spec = env._env.observation_spec()
        assert set(env.obs_space) == set(spec)  # dm_control's keys, kept apart as in the reference
        assert env.act_space.dtype == np.float32 and env.act_space.low == -1
        for obs in _run(env, 3, np.random.default_rng(0)):
            for key, space in env.obs_space.items():
                assert obs[key].shape == space.shape == (max(1, int(np.prod(spec[key].shape))),)
                assert obs[key].dtype == np.float32 and np.isfinite(obs[key]).all()
            assert obs["reward"].dtype == np.float32
    finally:
        env.close()


@pytest.mark.parametrize("task", VISION.tasks)
def test_vision_task_renders_64x64_frames(task):
    env = VISION.make_env(task, 0, VISION.resolve_protocol({}))
    try:
        assert set(env.obs_space) == {"image"}
        for obs in _run(env, 2, np.random.default_rng(0)):
            image = obs["image"]
            assert image.shape == (64, 64, 3) and image.dtype == np.uint8
            assert image.std() > 5, "frame is blank"
    finally:
        env.close()


def test_proprio_observations_are_the_dm_control_keys():
    env = PROPRIO.make_env("walker_walk", 3, PROPRIO.resolve_protocol({}))
    obs = env.reset()
    physics = env._env.physics
    # orientations (14), height (a scalar, given as shape (1,)), velocity (9).
    assert {k: s.shape for k, s in env.obs_space.items()} == {
        "height": (1,),
        "orientations": (14,),
        "velocity": (9,),
    }
    assert obs["height"][0] == pytest.approx(physics.torso_height())
    np.testing.assert_allclose(obs["velocity"], physics.velocity(), rtol=1e-6)
    env.close()


def test_time_limit_is_truncation_not_termination():
    # Cartpole never fails, so every episode ends at the 1000-step limit.
    protocol = PROPRIO.resolve_protocol({"action_repeat": 3})
    env = PROPRIO.make_env("cartpole_balance", 0, protocol)
    env.reset()
    steps = 0
    while True:
        obs = env.step(np.zeros(1, np.float32))
        steps += 1
        if obs["is_last"]:
            break
    assert steps == 334  # 333 full repeats, then one control step to reach 1000.
    assert obs["is_last"] and not obs["is_terminal"]
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros(1, np.float32))


def test_same_seed_same_episode():
    first, second = (
        _run(PROPRIO.make_env("reacher_easy", 7, {"action_repeat": 1}), 5, np.random.default_rng(1))
        for _ in range(2)
    )
    for key in first[-1]:
        np.testing.assert_array_equal(first[-1][key], second[-1][key])


def test_bad_action_and_protocol_are_rejected():
    with pytest.raises(
        ValueError, match="env.action_repeat=0 is not allowed; allowed: an integer >= 1"
    ):
        PROPRIO.make_env("cartpole_balance", 0, {"action_repeat": 0})
    env = PROPRIO.make_env("cartpole_balance", 0, {"action_repeat": 1})
    env.reset()
    with pytest.raises(ValueError, match="shape \\(1,\\)"):
        env.step(np.zeros(2, np.float32))


def test_vision_renders_at_default_quality_unless_fast_render_is_asked_for():
    from dm_control import suite

    # The task's own visual quality, as the reference renders it (nothing overridden).
    model = suite.load("cartpole", "balance").physics.model.vis.quality
    untouched = (int(model.shadowsize), int(model.offsamples))
    assert untouched[0] > 0 and untouched[1] > 0
    assert VISION.resolve_protocol({})["fast_render"] is False
    for fast, expected in ((False, untouched), (True, (0, 0))):
        env = VISION.make_env("cartpole_balance", 0, VISION.resolve_protocol({"fast_render": fast}))
        quality = env._physics.model.vis.quality
        assert (quality.shadowsize, quality.offsamples) == expected, fast
        env.close()
    with pytest.raises(
        ValueError, match="env.fast_render='yes' is not allowed; allowed: true or false"
    ):
        VISION.resolve_protocol({"fast_render": "yes"})
