"""Replay: one ring buffer of steps per environment, sampled as windows.

Each step is stored once (images as uint8); a window is a range of indices,
so overlapping windows share storage. Storage grows by doubling up to the
capacity, so a 5M-step default does not reserve memory up front. Every step
also stores the policy's posterior latent (`deter`, `stoch` indices), which
starts the RSSM when the step opens a training window and is refreshed with
the newer posterior after each update.

Sampling takes the queue of fresh windows first (`online`), then uniform
windows from all that are fully stored.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping

import numpy as np


class Replay:
    def __init__(
        self,
        specs: Mapping[str, tuple[tuple[int, ...], np.dtype]],
        num_envs: int,
        capacity: int,
        length: int,
        online: bool,
        seed: int,
        initial_size: int = 4096,
    ):
        """`specs` maps key -> (per-step shape, dtype); `length` is the window length (T + 1)."""
        self.specs = {k: (tuple(shape), np.dtype(dtype)) for k, (shape, dtype) in specs.items()}
        self.num_envs = num_envs
        self.capacity = max(length, capacity // num_envs)  # per environment
        self.length = length
        self.online = online
        self.rng = np.random.default_rng(seed)
        self.size = min(self.capacity, max(initial_size, length))
        self.data = {
            k: np.zeros((num_envs, self.size, *shape), dtype)
            for k, (shape, dtype) in self.specs.items()
        }
        self.count = np.zeros(num_envs, np.int64)  # steps ever added, per env
        self.queue: deque[tuple[int, int]] = deque()

    def __len__(self) -> int:
        return int(np.minimum(self.count, self.capacity).sum())

    def add(self, step: Mapping[str, np.ndarray]) -> None:
        """Append one step of every environment: arrays [num_envs, ...]."""
        if self.count.max() >= self.size and self.size < self.capacity:
            self._grow()
        positions = self.count % self.size
        envs = np.arange(self.num_envs)
        for key, array in self.data.items():
            array[envs, positions] = step[key]
        self.count += 1
        if self.online:
            for env in envs[
                (self.count >= self.length) & ((self.count - self.length) % self.length == 0)
            ]:
                self.queue.append((int(env), int(self.count[env] - self.length)))

    def _grow(self) -> None:
        new_size = min(self.capacity, 2 * self.size)
        for key, array in self.data.items():
            grown = np.zeros((self.num_envs, new_size, *array.shape[2:]), array.dtype)
            grown[:, : self.size] = array  # not wrapped yet: size < capacity
            self.data[key] = grown
        self.size = new_size

    def _valid_starts(self) -> tuple[np.ndarray, np.ndarray]:
        """First and one-past-last valid window start per env, in global step numbers."""
        first = np.maximum(0, self.count - self.size)
        end = np.maximum(first, self.count - self.length + 1)
        return first, end

    def ready(self) -> bool:
        first, end = self._valid_starts()
        return bool((end - first).sum() >= 1)

    def sample(self, batch_size: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Windows [batch, length, ...] plus their env indices and global start steps."""
        first, end = self._valid_starts()
        counts = end - first
        if counts.sum() < 1:
            raise RuntimeError(f"replay holds no window of {self.length} steps yet")
        envs = np.empty(batch_size, np.int64)
        starts = np.empty(batch_size, np.int64)
        taken = 0
        while self.queue and taken < batch_size:
            env, start = self.queue.popleft()
            if start >= first[env]:  # not overwritten since it was queued
                envs[taken], starts[taken] = env, start
                taken += 1
        rest = batch_size - taken
        if rest:
            envs[taken:] = self.rng.choice(self.num_envs, rest, p=counts / counts.sum())
            starts[taken:] = first[envs[taken:]] + (
                self.rng.random(rest) * counts[envs[taken:]]
            ).astype(np.int64)
        positions = (starts[:, None] + np.arange(self.length)) % self.size
        batch = {key: array[envs[:, None], positions] for key, array in self.data.items()}
        return batch, envs, starts

    def latest(self, count: int) -> dict[str, np.ndarray]:
        """Up to `count` stored windows [n, length, ...] without touching the sampler (no RNG
        draw, no queue pop): the newest window of each env, then the one before it, and so on
        (for reports)."""
        first, end = self._valid_starts()
        envs, starts = [], []
        for k in range(count):
            env = k % self.num_envs
            start = end[env] - 1 - (k // self.num_envs) * self.length
            if start >= first[env] and end[env] > first[env]:
                envs.append(env)
                starts.append(start)
        if not envs:
            raise RuntimeError(f"replay holds no window of {self.length} steps yet")
        envs, starts = np.array(envs), np.array(starts)
        positions = (starts[:, None] + np.arange(self.length)) % self.size
        return {key: array[envs[:, None], positions] for key, array in self.data.items()}

    def update_latents(self, envs, starts, values: Mapping[str, np.ndarray]) -> None:
        """Write fresh latents [batch, length - 1, ...] for steps start+1 .. start+length-1."""
        first, _ = self._valid_starts()
        keep = starts + 1 >= first[envs]  # skip windows overwritten meanwhile
        positions = (starts[keep, None] + 1 + np.arange(self.length - 1)) % self.size
        for key, value in values.items():
            self.data[key][envs[keep, None], positions] = np.asarray(value)[keep]

    # ---------------------------------------------------------- checkpoints

    def state_dict(self) -> dict[str, np.ndarray]:
        """Plain arrays only (no pickles), oldest step first per env."""
        stored = int(np.minimum(self.count, self.size).max())
        state = {
            "count": self.count.copy(),
            "queue": np.array(list(self.queue), np.int64).reshape(-1, 2),
        }
        order = (np.maximum(0, self.count - self.size)[:, None] + np.arange(stored)) % self.size
        envs = np.arange(self.num_envs)[:, None]
        for key, array in self.data.items():
            state[f"data/{key}"] = array[envs, order]
        state["rng"] = np.frombuffer(json.dumps(self.rng.bit_generator.state).encode(), np.uint8)
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        self.count = np.asarray(state["count"], np.int64).copy()
        stored = state[f"data/{next(iter(self.data))}"].shape[1]
        self.size = min(self.capacity, max(self.size, stored))
        order = (np.maximum(0, self.count - stored)[:, None] + np.arange(stored)) % self.size
        envs = np.arange(self.num_envs)[:, None]
        for key, (shape, dtype) in self.specs.items():
            array = np.zeros((self.num_envs, self.size, *shape), dtype)
            array[envs, order] = state[f"data/{key}"]
            self.data[key] = array
        self.queue = deque((int(e), int(s)) for e, s in state["queue"])
        self.rng.bit_generator.state = json.loads(bytes(state["rng"]).decode())
