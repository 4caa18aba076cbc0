"""Real ALE games under the atari100k and atari57 protocols."""

import numpy as np
import pytest

from dreamerbench.suites import get_suite
from dreamerbench.suites.atari import downscale

ATARI100K = get_suite("atari100k")
ATARI57 = get_suite("atari57")


def _reset_and_step(suite, game, steps=4):
    env = suite.make_env(game, 0, suite.resolve_protocol({}))
    obs = [env.reset()]
    rng = np.random.default_rng(0)
    for _ in range(steps):
        obs.append(env.step(np.int32(rng.integers(env.act_space.num_actions))))
    env.close()
    return env, obs


def test_game_lists():
    assert len(ATARI100K.tasks) == 26 and len(ATARI57.tasks) == 57
    assert set(ATARI100K.tasks) < set(ATARI57.tasks)
    assert ATARI57.published_task("jamesbond") == "atari_jamesbond"


@pytest.mark.parametrize("game", ATARI100K.tasks)
def test_atari100k_game_resets_and_steps(game):
    env, trajectory = _reset_and_step(ATARI100K, game)
    assert env.act_space.num_actions <= 18  # Minimal action set.
    for obs in trajectory:
        assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8


@pytest.mark.parametrize("game", ATARI57.tasks)
def test_atari57_game_resets_and_steps(game):
    env, trajectory = _reset_and_step(ATARI57, game)
    assert env.act_space.num_actions == 18  # Full action set.
    for obs in trajectory:
        assert obs["image"].shape == (96, 96, 1) and obs["image"].dtype == np.uint8
    assert trajectory[0]["is_first"] and not trajectory[-1]["is_first"]


def test_minimal_action_set_size():
    env = ATARI100K.make_env("pong", 0, ATARI100K.resolve_protocol({}))
    assert env.act_space.num_actions == 6


def _frames(suite, seed, steps=150):
    # No no-ops, so only sticky actions can make two seeds differ.
    env = suite.make_env("pong", seed, suite.resolve_protocol({"noop_max": 0}))
    frames = [env.reset()["image"]]
    actions = np.random.default_rng(123).integers(env.act_space.num_actions, size=steps)
    frames += [env.step(action)["image"] for action in actions]
    return np.stack(frames)


def test_sticky_actions_on_for_atari57():
    first, again, other = _frames(ATARI57, 1), _frames(ATARI57, 1), _frames(ATARI57, 2)
    np.testing.assert_array_equal(first, again)  # Seeded: reproducible.
    assert not np.array_equal(first, other)  # Sticky actions: the seed matters.


def test_sticky_actions_off_for_atari100k():
    np.testing.assert_array_equal(_frames(ATARI100K, 1), _frames(ATARI100K, 2))


def test_noop_starts_depend_on_the_seed():
    # Pong's screen is static for its first frames, so count the frames instead.
    starts = []
    for seed in range(6):
        env = ATARI100K.make_env("pong", seed, ATARI100K.resolve_protocol({}))
        env.reset()
        starts.append(env._ale.getEpisodeFrameNumber())
    assert len(set(starts)) > 1 and max(starts) <= 30


def test_frame_limit_is_truncation_not_termination():
    protocol = ATARI100K.resolve_protocol({"max_frames": 40, "noop_max": 0})
    env = ATARI100K.make_env("pong", 0, protocol)
    env.reset()
    lasts = [bool(env.step(np.int32(0))["is_last"]) for _ in range(10)]
    assert lasts == [False] * 9 + [True]  # 10 agent steps x 4 frames = 40 frames.
    obs = env.step  # The env refuses to continue past the end.
    with pytest.raises(RuntimeError, match="call reset"):
        obs(np.int32(0))


def test_frame_limit_counts_frames_after_the_reset_no_ops():
    # With up to 30 no-ops at the reset, a 40-frame limit still ends the 10th agent
    # step, on a repeat boundary (the reference counts frames after the reset too).
    for seed in range(4):
        protocol = ATARI100K.resolve_protocol({"max_frames": 40, "noop_max": 30})
        env = ATARI100K.make_env("pong", seed, protocol)
        env.reset()
        noops = env._ale.getEpisodeFrameNumber()
        lasts = [bool(env.step(np.int32(0))["is_last"]) for _ in range(10)]
        assert lasts == [False] * 9 + [True], (seed, noops)
        assert env._ale.getEpisodeFrameNumber() == noops + 40


def _breakout_episode(seed, repeat, max_pool):
    """A random-play Breakout episode: its observations and the raw screen after every frame."""
    protocol = ATARI100K.resolve_protocol({"action_repeat": repeat, "max_pool": max_pool})
    env = ATARI100K.make_env("breakout", seed, protocol)
    actions = np.random.default_rng(seed).integers(env.act_space.num_actions, size=5000)
    observations, screens = [env.reset()], [env._ale.getScreenRGB()]
    for action in actions:
        for _ in range(4 // repeat):
            observations.append(env.step(np.int32(action)))
            screens.append(env._ale.getScreenRGB())
            if observations[-1]["is_last"]:
                return observations, screens
    raise AssertionError("the episode did not end")


def test_an_episode_ending_inside_a_repeat_shows_its_last_frames():
    inside = 0
    for seed in range(6):
        observations, _ = _breakout_episode(seed, repeat=4, max_pool=2)
        # The same actions one frame at a time give every emulated frame.
        _, screens = _breakout_episode(seed, repeat=1, max_pool=1)
        frames_in_last_step = (len(screens) - 1) % 4 or 4
        inside += frames_in_last_step < 4
        assert observations[-1]["is_terminal"]
        # The pixels themselves are checked against the reference in
        # tests/test_reference_observations.py; here only which frames are pooled.
        expected = downscale(np.maximum(screens[-1], screens[-2]), 64, gray=False)
        np.testing.assert_array_equal(observations[-1]["image"], expected, err_msg=f"seed {seed}")
    assert inside >= 1  # The case the test is about occurred.


def test_game_over_is_termination():
    # Boxing ends after two minutes (about 7,100 frames) whatever the agent does.
    env = ATARI100K.make_env("boxing", 0, ATARI100K.resolve_protocol({}))
    env.reset()
    for _ in range(3000):
        obs = env.step(np.int32(0))
        if obs["is_last"]:
            break
    assert obs["is_last"] and obs["is_terminal"]


def test_bad_protocol_values_are_named():
    with pytest.raises(ValueError, match="env.action_set='all' .*allowed: minimal, full"):
        ATARI57.make_env("pong", 0, ATARI57.resolve_protocol({"action_set": "all"}))
    with pytest.raises(ValueError, match="env.sticky_prob=1.5 "):
        ATARI57.make_env("pong", 0, ATARI57.resolve_protocol({"sticky_prob": 1.5}))
    with pytest.raises(ValueError, match="task='pongg' .*allowed: .*pong"):
        ATARI57.make_env("pongg", 0, ATARI57.resolve_protocol({}))
