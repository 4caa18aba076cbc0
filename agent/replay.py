"""Replay: the steps of each environment, sampled as windows, persisted in chunks as it grows.

Each step is stored once (images as uint8); a window is a range of indices, so overlapping
windows share storage. Every step also stores the policy's posterior latent (`deter`, `stoch`
indices), which starts the RSSM when the step opens a training window and is refreshed with
the newer posterior after each update.

Storage (``replay.storage``): ``memory`` keeps a ring buffer in RAM that grows by doubling up
to the capacity, so a 5M-step default does not reserve memory up front. ``disk`` keeps in RAM
only the chunk being filled and samples the full chunks from memory-mapped files, so the
replay need not fit in RAM.

Persistence (with a `directory`): every `chunk` steps of all envs together (the envs add in
lockstep, ``chunk // num_envs`` each) are written once, when full, as one chunk
(:mod:`dreamerbench.core.chunks`); a checkpoint (:meth:`Replay.state_dict`) holds only the
chunk being filled, the counters, the online queue and the RNG, and names the chunks it covers
with their SHA-256. A save therefore costs the
steps since the last chunk, never the whole replay. The start latents are a cache: the chunk
keeps them as they were when it was written (``memory``), or as training last refreshed them
(``disk``: writes go to the file), and a resume takes what the chunk holds.

Sampling takes the queue of fresh windows first (`online`), then uniform windows from all
that are fully stored. A sampled window marks ``is_last`` on every step that an ``is_first``
follows inside it (:func:`mark_cuts`, after the reference's ``_annotate_batch``): an episode
abandoned without an end (a resume restarts the envs) must not bootstrap into the next one.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Literal

import numpy as np

from dreamerbench.core import chunks
from dreamerbench.core.checkpoint import CheckpointError


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
        chunk: int = 1024,
        storage: Literal["memory", "disk"] = "memory",
        directory: str | Path | None = None,
        cache: Collection[str] = (),
    ):
        """`specs` maps key -> (per-step shape, dtype); `length` is the window length (T + 1).

        `chunk` steps, all envs together (``chunk // num_envs`` of each, at least 1 and at most
        the capacity per env), make one chunk, written under `directory` (None: nothing is
        written, and :meth:`state_dict` refuses); ``storage="disk"`` needs a `directory`.
        `cache` names the keys :meth:`update_latents` refreshes (stored without checksum,
        rewritten in place on disk).
        """
        if storage == "disk" and directory is None:
            raise ValueError("replay storage 'disk' needs a directory for its chunks")
        self.specs = {k: (tuple(shape), np.dtype(dtype)) for k, (shape, dtype) in specs.items()}
        self.num_envs = num_envs
        self.capacity = max(length, capacity // num_envs)  # per environment
        self.length = length
        self.online = online
        self.rng = np.random.default_rng(seed)
        self.chunk = min(max(1, chunk // num_envs), self.capacity)  # per environment
        self.storage = storage
        self.directory = None if directory is None else Path(directory)
        self.cache = frozenset(cache)
        self.count = np.zeros(num_envs, np.int64)  # steps ever added, per env (all equal)
        self.queue: deque[tuple[int, int]] = deque()
        self.written = 0  # chunks written: steps [0, written * chunk) of every env
        self.digests: dict[int, str] = {}  # index -> manifest SHA-256 of the chunks still held
        if storage == "memory":
            self.size = min(self.capacity, max(initial_size, length))
            self.data = self._zeros(self.size)  # ring buffer: step g at g % size
        else:
            self.size = self.capacity  # windows start in the last `capacity` steps
            self.tail = self._zeros(self.chunk)  # the chunk being filled: step g at g % chunk
            self.stored: dict[int, dict[str, np.ndarray]] = {}  # index -> memory-mapped arrays

    def _zeros(self, steps: int) -> dict[str, np.ndarray]:
        return {
            k: np.zeros((self.num_envs, steps, *shape), dtype)
            for k, (shape, dtype) in self.specs.items()
        }

    def __len__(self) -> int:
        return int(np.minimum(self.count, self.capacity).sum())

    def add(self, step: Mapping[str, np.ndarray]) -> None:
        """Append one step of every environment: arrays [num_envs, ...]; writes a chunk when
        one fills up (DiskFull if the device is full)."""
        if self.storage == "memory":
            if self.count.max() >= self.size and self.size < self.capacity:
                self._grow()
            target, position = self.data, int(self.count[0]) % self.size
        else:
            target, position = self.tail, int(self.count[0]) % self.chunk
        for key, array in target.items():
            array[:, position] = step[key]
        self.count += 1
        if self.online:
            for env in np.flatnonzero(
                (self.count >= self.length) & ((self.count - self.length) % self.length == 0)
            ):
                self.queue.append((int(env), int(self.count[env] - self.length)))
        if self.directory is not None and self.count[0] == (self.written + 1) * self.chunk:
            self._write_chunk()

    def _write_chunk(self) -> None:
        index = self.written
        if self.storage == "memory":
            steps = np.arange(index * self.chunk, (index + 1) * self.chunk) % self.size
            arrays = {key: array[:, steps] for key, array in self.data.items()}
        else:
            arrays = self.tail
        self.digests[index] = chunks.write(self.directory, index, arrays, self.cache)
        self.written += 1
        first = self._valid_starts()[0][0]
        for old in [k for k in self.digests if (k + 1) * self.chunk <= first]:
            del self.digests[old]  # out of the window: no checkpoint from now on names it
        if self.storage == "disk":
            self.stored = {k: v for k, v in self.stored.items() if k in self.digests}
            self.stored[index] = chunks.read(self.directory, index, self.digests[index], mmap=True)

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

    def _segments(self, envs: np.ndarray, starts: np.ndarray, length: int):
        """Where windows of `length` steps from `starts` [B] of `envs` [B] lie with ``disk``
        storage: (b, window slice, arrays, env, slice of arrays) per piece that lies in one chunk
        (or the one being filled), so each piece copies as one contiguous slice."""
        for b, (env, start) in enumerate(zip(envs.tolist(), starts.tolist())):
            step, end = start, start + length
            while step < end:
                k, offset = divmod(step, self.chunk)
                n = min(end - step, self.chunk - offset)
                arrays = self.tail if k == self.written else self.stored[k]
                yield (
                    b,
                    slice(step - start, step - start + n),
                    arrays,
                    env,
                    slice(offset, offset + n),
                )
                step += n

    def _gather(self, envs: np.ndarray, starts: np.ndarray, length: int) -> dict[str, np.ndarray]:
        """Windows of `length` steps from global steps `starts` [B] of `envs` [B]:
        [B, length, ...], copies, with :func:`mark_cuts` applied."""
        if self.storage == "memory":  # one fancy index per key
            positions = (starts[:, None] + np.arange(length)) % self.size
            out = {key: array[envs[:, None], positions] for key, array in self.data.items()}
        else:
            out = {
                key: np.empty((len(starts), length, *shape), dtype)
                for key, (shape, dtype) in self.specs.items()
            }
            for b, window, arrays, env, stored in self._segments(envs, starts, length):
                for key, array in arrays.items():
                    out[key][b, window] = array[env, stored]
        return mark_cuts(out)

    def sample(self, batch_size: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Windows [batch, length, ...] (``is_last`` marked before every ``is_first`` inside one:
        :func:`mark_cuts`) plus their env indices and global start steps."""
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
        batch = self._gather(envs, starts, self.length)
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
        return self._gather(envs, starts, self.length)

    def update_latents(self, envs, starts, values: Mapping[str, np.ndarray]) -> None:
        """Write fresh latents [batch, length - 1, ...] for steps start+1 .. start+length-1.

        With ``storage="disk"`` the keys must be among the `cache` keys (written to the chunk
        files in place)."""
        first, _ = self._valid_starts()
        keep = starts + 1 >= first[envs]  # skip windows overwritten meanwhile
        values = {key: np.asarray(value)[keep] for key, value in values.items()}
        envs, starts = envs[keep], starts[keep] + 1
        if self.storage == "memory":
            positions = (starts[:, None] + np.arange(self.length - 1)) % self.size
            for key, value in values.items():
                self.data[key][envs[:, None], positions] = value
            return
        for b, window, arrays, env, stored in self._segments(envs, starts, self.length - 1):
            for key, value in values.items():
                arrays[key][env, stored] = value[b, window]

    # ---------------------------------------------------------- checkpoints

    def start(self) -> None:
        """Begin a fresh run: delete every chunk under the directory (of an earlier start)."""
        if self.directory is not None:
            chunks.remove_from(self.directory, 0)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Plain arrays only (no pickles): the steps since the last chunk (``tail/<key>``
        [num_envs, steps, ...]), the chunks covered (``chunks`` = [first, end) indices, and
        ``digests``: their manifests' SHA-256 as JSON bytes), counts, queue and RNG state.

        Its size does not grow with the replay. Raises ValueError without a directory."""
        if self.directory is None:
            raise ValueError("a replay without a directory for its chunks cannot be checkpointed")
        end = self.written
        begin = min(end, int(self._valid_starts()[0][0]) // self.chunk)
        tail = np.arange(end * self.chunk, int(self.count[0]))
        if self.storage == "memory":
            arrays = {key: array[:, tail % self.size] for key, array in self.data.items()}
        else:
            arrays = {key: array[:, : len(tail)].copy() for key, array in self.tail.items()}
        return {
            "count": self.count.copy(),
            "queue": np.array(list(self.queue), np.int64).reshape(-1, 2),
            "chunks": np.array([begin, end], np.int64),
            "digests": _json([self.digests[k] for k in range(begin, end)]),
            **{f"tail/{key}": array for key, array in arrays.items()},
            "rng": _json(self.rng.bit_generator.state),
        }

    def load_state_dict(self, state: Mapping[str, np.ndarray], origin: str = "checkpoint") -> None:
        """Continue from :meth:`state_dict`'s arrays: reads the chunks they name (checked against
        their SHA-256) and deletes the chunks after them (written after that checkpoint).

        Raises CheckpointError naming a missing or damaged chunk file, or saying that the
        checkpoint (`origin`) holds the whole replay (the format before chunks)."""
        if "chunks" not in state:
            raise CheckpointError(
                f"{origin} is complete but of an older format (the whole replay in replay.npz); "
                "resume it with a dreamerbench from before the chunked replay, or use a new logdir"
            )
        self.count = np.asarray(state["count"], np.int64).copy()
        self.queue = deque((int(e), int(s)) for e, s in state["queue"])
        self.rng.bit_generator.state = json.loads(bytes(state["rng"]).decode())
        begin, end = (int(i) for i in state["chunks"])
        self.digests = dict(zip(range(begin, end), json.loads(bytes(state["digests"]).decode())))
        self.written = end
        chunks.remove_from(self.directory, end)
        count = int(self.count[0])
        tail = {key: state[f"tail/{key}"] for key in self.specs}
        if self.storage == "disk":
            self.stored = {
                k: chunks.read(self.directory, k, d, mmap=True) for k, d in self.digests.items()
            }
            self.tail = self._zeros(self.chunk)
            for key, array in tail.items():
                self.tail[key][:, : array.shape[1]] = array
            return
        first = max(0, count - self.capacity)
        self.size = min(self.capacity, max(self.size, count - first))
        self.data = self._zeros(self.size)
        for k, digest in self.digests.items():
            arrays = chunks.read(self.directory, k, digest, mmap=True)
            steps = np.arange(max(first, k * self.chunk), (k + 1) * self.chunk)
            for key, array in arrays.items():
                self.data[key][:, steps % self.size] = array[:, steps - k * self.chunk]
        steps = np.arange(end * self.chunk, count)
        for key, array in tail.items():
            self.data[key][:, steps % self.size] = array

    def prune(self, named: Collection[int]) -> None:
        """Delete the chunks before every index in `named` (the first chunk each kept checkpoint
        names; see :func:`first_chunk`) and before the ones this replay holds."""
        if self.directory is not None:
            chunks.remove_before(self.directory, min([*named, *self.digests, self.written]))


def mark_cuts(windows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Set ``is_last`` [B, T] on every step followed by an ``is_first`` in the same window, in
    place; returns `windows` (unchanged without both keys).

    An episode ends with ``is_last`` before the next one's ``is_first``, except where the loop
    restarted the envs mid-episode (a resume): there the abandoned episode's last stored step
    would otherwise continue into the next episode, and its lambda-return bootstrap across the
    cut. Marked, the replay-value loss weighs that step 0 and the returns before it bootstrap
    from its value (the reference marks it the same way: ``embodied/core/replay.py``
    ``_annotate_batch``, e3f0224 L283-291). The last step of a window is never marked: what
    follows it is not in the window, and the losses only bootstrap from it.
    """
    if "is_first" in windows and "is_last" in windows:
        windows["is_last"][:, :-1] |= windows["is_first"][:, 1:]
    return windows


def first_chunk(replay_npz: Path) -> int:
    """The first chunk a checkpoint's ``replay.npz`` names; 0 if it cannot be read (so that
    nothing it might name is deleted)."""
    try:
        with np.load(replay_npz, allow_pickle=False) as data:
            return int(data["chunks"][0])
    except (OSError, ValueError, KeyError, IndexError):
        return 0


def _json(value) -> np.ndarray:
    return np.frombuffer(json.dumps(value).encode(), np.uint8)
