"""Replay windows, the online queue, growth, latent refresh, chunks on disk and checkpoint round
trips."""

import shutil

import numpy as np
import pytest

from dreamerbench.agent.replay import Replay, first_chunk
from dreamerbench.core import checkpoint, chunks
from dreamerbench.core.checkpoint import CheckpointError

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


@pytest.mark.parametrize("storage", ["memory", "disk"])
def test_state_dict_round_trips_through_a_checkpoint(tmp_path, storage):
    chunked = {"storage": storage, "directory": tmp_path / "replay", "chunk": 5}
    replay = Replay(
        SPECS, num_envs=2, capacity=24, length=4, online=True, seed=3, initial_size=4, **chunked
    )
    fill(replay, 31, 2)
    checkpoint.save(tmp_path, 31, b"agent", replay.state_dict(), {"steps": 31})
    agent_state, state, counters = checkpoint.load(checkpoint.complete(tmp_path)[-1])
    # The restored replay continues in a copy of the logdir: both write the chunks that follow.
    shutil.copytree(tmp_path / "replay", tmp_path / "copy")
    chunked["directory"] = tmp_path / "copy"
    restored = Replay(SPECS, num_envs=2, capacity=24, length=4, online=True, seed=99, **chunked)
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
    with pytest.raises(RuntimeError, match="no window of 5 steps"):
        replay.sample(1)
    fill(replay, 1, 1)
    batch, envs, starts = replay.sample(1)
    assert batch["obs"].shape[:2] == (1, 5) and (envs[0], starts[0]) == (0, 0)


def test_memory_and_disk_storage_sample_the_same_windows(tmp_path):
    """`disk` keeps full chunks memory-mapped and only the chunk being filled in RAM; its
    windows (across chunk borders and the capacity's edge) equal the ring buffer's."""
    made = {
        storage: Replay(
            SPECS,
            2,
            capacity=40,
            length=6,
            online=True,
            seed=5,
            chunk=16,
            storage=storage,
            directory=tmp_path / storage,
            cache=("deter",),
        )
        for storage in ("memory", "disk")
    }
    for replay in made.values():
        fill(replay, 53, 2)
    memory, disk = made["memory"], made["disk"]
    assert len(disk.stored) < disk.written == 6 and disk.tail["obs"].shape[1] == 8
    assert isinstance(disk.stored[max(disk.stored)]["image"], np.memmap)
    for _ in range(5):
        (a, envs, starts), (b, _, _) = memory.sample(16), disk.sample(16)
        for key in SPECS:
            np.testing.assert_array_equal(a[key], b[key])
        np.testing.assert_array_equal(a["obs"][:, :, 1], starts[:, None] + np.arange(6))
        latents = np.random.default_rng(0).random((16, 5, 3)).astype(np.float16)
        memory.update_latents(envs, starts, {"deter": latents})
        disk.update_latents(envs, starts, {"deter": latents})
    for key in SPECS:
        np.testing.assert_array_equal(memory.latest(4)[key], disk.latest(4)[key])


@pytest.mark.parametrize("storage", ["memory", "disk"])
def test_a_window_marks_is_last_before_an_is_first_inside_it_and_leaves_the_store_alone(
    tmp_path, storage
):
    """Step 9 of every env starts an episode with no is_last before it (a resume's cut), step 4
    ends one properly: every window marks the step before an interior is_first, as the
    reference's replay does, never its last step, and the stored flags stay as they were."""
    specs = {"obs": ((2,), np.float32), "is_first": ((), bool), "is_last": ((), bool)}
    replay = Replay(specs, 2, 100, 5, False, 0, chunk=8, storage=storage, directory=tmp_path)
    for t in range(16):
        flags = {"is_first": np.full(2, t in (0, 5, 9)), "is_last": np.full(2, t == 4)}
        replay.add({"obs": np.full((2, 2), t, np.float32), **flags})
    inside = np.arange(5) < 4  # positions 0..3: the step after is in the window
    for _ in range(2):  # the second sample sees the store as the first left it: unmarked
        batch, _, starts = replay.sample(64)
        steps = starts[:, None] + np.arange(5)
        np.testing.assert_array_equal(batch["is_last"], (steps == 4) | ((steps == 8) & inside))
        np.testing.assert_array_equal(batch["is_first"], np.isin(steps, (0, 5, 9)))
        assert ((steps == 8) & inside).any() and (steps[:, -1] == 8).any()
    assert not replay.latest(1)["is_last"].any()  # the newest window, 11..15: nothing to mark


def test_each_full_chunk_is_written_once_and_a_save_holds_only_the_rest(tmp_path):
    replay = Replay(SPECS, 1, 1000, 4, False, 0, chunk=8, directory=tmp_path, cache=("deter",))
    fill(replay, 20, 1)
    assert chunks.indices(tmp_path) == [0, 1]
    state = replay.state_dict()
    assert state["tail/obs"].shape == (1, 4, 2) and state["chunks"].tolist() == [0, 2]
    np.testing.assert_array_equal(state["tail/obs"][0, :, 1], [16, 17, 18, 19])
    stored = chunks.read(tmp_path, 1, replay.digests[1])
    np.testing.assert_array_equal(stored["obs"][0, :, 1], np.arange(8, 16))


def test_a_resume_deletes_later_chunks_and_refuses_a_damaged_one(tmp_path):
    replay = Replay(SPECS, 1, 1000, 4, False, 0, chunk=8, directory=tmp_path)
    fill(replay, 10, 1)
    state = replay.state_dict()
    fill(replay, 20, 1)  # chunks 1 to 3, not covered by `state`
    (tmp_path / ".tmp-chunk-000000004-x").mkdir()  # a chunk write killed midway
    Replay(SPECS, 1, 1000, 4, False, 0, chunk=8, directory=tmp_path).load_state_dict(state)
    assert chunks.indices(tmp_path) == [0] and not list(tmp_path.glob(".tmp-*"))
    (tmp_path / chunks.name(0) / "1.npy").write_bytes(b"garbled")
    with pytest.raises(CheckpointError, match="1.npy is damaged"):
        Replay(SPECS, 1, 1000, 4, False, 0, chunk=8, directory=tmp_path).load_state_dict(state)


def test_chunks_out_of_the_window_are_pruned_only_when_no_checkpoint_names_them(tmp_path):
    replay = Replay(SPECS, 1, 16, 4, False, 0, chunk=4, directory=tmp_path / "replay")
    fill(replay, 12, 1)
    older = checkpoint.save(tmp_path / "ckpt", 12, b"", replay.state_dict(), {}, keep=2)
    fill(replay, 20, 1)  # the window is steps 16..31: chunks 4..7
    newer = checkpoint.save(tmp_path / "ckpt", 32, b"", replay.state_dict(), {}, keep=2)
    assert [first_chunk(c.path / "replay.npz") for c in (older, newer)] == [0, 4]
    replay.prune([first_chunk(c.path / "replay.npz") for c in (older, newer)])
    assert chunks.indices(tmp_path / "replay") == list(range(8))  # the older one names 0..2
    replay.prune([4])
    assert chunks.indices(tmp_path / "replay") == [4, 5, 6, 7]


def test_an_old_format_checkpoint_is_refused_in_one_line(tmp_path):
    old = {"count": np.array([9]), "queue": np.zeros((0, 2)), "data/obs": np.zeros((1, 9, 2))}
    replay = Replay(SPECS, 1, 100, 4, False, 0, directory=tmp_path)
    with pytest.raises(CheckpointError) as error:
        replay.load_state_dict(old, origin="ckpt-000000000009-1")
    message = str(error.value)
    assert (
        "\n" not in message and "ckpt-000000000009-1 is complete but of an older format" in message
    )
