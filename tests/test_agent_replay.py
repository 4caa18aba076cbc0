"""Replay windows, the online queue, growth, latent refresh and checkpoint round trips."""

import numpy as np
import pytest

from dreamerbench.agent.replay import Replay
from dreamerbench.core import checkpoint

SPECS = {"obs": ((2,), np.float32), "image": ((4, 4, 3), np.uint8), "deter": ((3,), np.float16)}


def fill(replay, steps, num_envs):
    for t in range(steps):
        env_ids = np.arange(num_envs)
        replay.add(
            {
                "obs": np.stack([[env, t] for env in env_ids]).astype(np.float32),
                "image": np.full((num_envs, 4, 4, 3), t % 256, np.uint8),
                "deter": np.zeros((num_envs, 3), np.float16),
            }
        )


def test_windows_are_consecutive_steps_of_one_env():
    replay = Replay(SPECS, num_envs=3, capacity=300, length=5, online=False, seed=0, initial_size=8)
    fill(replay, 40, 3)
    batch, envs, starts = replay.sample(64)
    assert batch["obs"].shape == (64, 5, 2) and batch["image"].dtype == np.uint8
    np.testing.assert_array_equal(batch["obs"][:, :, 0], np.repeat(envs[:, None], 5, 1))
    np.testing.assert_array_equal(batch["obs"][:, :, 1], starts[:, None] + np.arange(5))
    assert len(replay) == 120


def test_ring_buffer_drops_oldest_and_never_samples_across_the_write_head():
    replay = Replay(SPECS, num_envs=1, capacity=16, length=4, online=False, seed=0, initial_size=4)
    fill(replay, 50, 1)
    assert replay.size == 16 and len(replay) == 16
    batch, _, starts = replay.sample(500)
    assert starts.min() >= 50 - 16 and starts.max() <= 50 - 4
    np.testing.assert_array_equal(np.diff(batch["obs"][:, :, 1], axis=1), 1)


def test_online_queue_serves_each_fresh_window_once_before_uniform():
    replay = Replay(SPECS, num_envs=2, capacity=1000, length=5, online=True, seed=0)
    fill(replay, 10, 2)  # two fresh windows per env: starts 0 and 5
    _, envs, starts = replay.sample(4)
    assert sorted(zip(envs.tolist(), starts.tolist())) == [(0, 0), (0, 5), (1, 0), (1, 5)]
    assert not replay.queue


def test_sampling_with_a_fixed_seed_is_reproducible():
    draws = []
    for _ in range(2):
        replay = Replay(SPECS, num_envs=2, capacity=1000, length=5, online=False, seed=7)
        fill(replay, 30, 2)
        draws.append(replay.sample(16)[2])
    np.testing.assert_array_equal(draws[0], draws[1])


def test_update_latents_writes_steps_after_the_context_step():
    replay = Replay(SPECS, num_envs=1, capacity=100, length=4, online=False, seed=0)
    fill(replay, 20, 1)
    replay.update_latents(np.array([0]), np.array([5]), {"deter": np.ones((1, 3, 3))})
    stored = replay.data["deter"][0, :, 0]
    np.testing.assert_array_equal(np.flatnonzero(stored), [6, 7, 8])


def test_state_dict_round_trips_through_a_checkpoint(tmp_path):
    replay = Replay(SPECS, num_envs=2, capacity=24, length=4, online=True, seed=3, initial_size=4)
    fill(replay, 31, 2)
    checkpoint.save(tmp_path, 31, b"agent", replay.state_dict(), {"steps": 31})
    agent_state, state, counters = checkpoint.load(checkpoint.complete(tmp_path)[-1])
    restored = Replay(SPECS, num_envs=2, capacity=24, length=4, online=True, seed=99)
    restored.load_state_dict(state)
    assert counters == {"steps": 31} and agent_state == b"agent"
    assert list(restored.queue) == list(replay.queue)
    a, b = replay.sample(32), restored.sample(32)
    for key in SPECS:
        np.testing.assert_array_equal(a[0][key], b[0][key])
    fill(replay, 5, 2)
    fill(restored, 5, 2)
    np.testing.assert_array_equal(replay.sample(8)[0]["obs"], restored.sample(8)[0]["obs"])


def test_checkpoint_save_is_atomic_and_keeps_only_the_newest(tmp_path):
    first = checkpoint.save(tmp_path, 1, b"one", {"a": np.zeros(1)}, {"steps": 1}, keep=1)
    with pytest.raises(TypeError, match="plain arrays only"):  # refused before anything is written
        checkpoint.save(tmp_path, 2, b"two", {"a": np.array([{}], object)}, {"steps": 2}, keep=1)
    with pytest.raises(
        TypeError, match="not JSON serializable"
    ):  # fails after state and replay are written
        checkpoint.save(tmp_path, 2, b"two", {"a": np.ones(1)}, {"steps": {2}}, keep=1)
    assert checkpoint.complete(tmp_path) == [first]  # the failed writes left the old one intact
    assert not list(tmp_path.glob(".tmp-ckpt-*"))
    checkpoint.save(tmp_path, 3, b"three", {"a": np.ones(1)}, {"steps": 3}, keep=1)
    assert [p.name for p in tmp_path.glob("ckpt-*")] == ["ckpt-000000000003-1"]
    state, replay, counters = checkpoint.load(checkpoint.complete(tmp_path)[-1])
    assert state == b"three" and counters["steps"] == 3
    np.testing.assert_array_equal(replay["a"], np.ones(1))


def test_replay_is_empty_until_a_full_window_is_stored():
    replay = Replay(SPECS, num_envs=1, capacity=100, length=5, online=False, seed=0)
    fill(replay, 4, 1)
    assert not replay.ready()
    with pytest.raises(RuntimeError, match="no window of 5 steps"):
        replay.sample(1)
    fill(replay, 1, 1)
    assert replay.ready()
