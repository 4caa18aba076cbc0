"""Paper scale: what a save costs, and how fast batches are sampled, as the replay grows.

No JAX and no environment: a :class:`dreamerbench.agent.replay.Replay` of one env is filled with
steps of a realistic size (a 64x64x3 uint8 image, the 200m model's start latent ``deter``
float16 [8192] and ``stoch`` uint8 [32], action, reward, flags: 28,716 bytes per step) and saved
every ``--save-every`` steps as the trainer saves (``Replay.state_dict`` into
:func:`dreamerbench.core.checkpoint.save`; the agent state is left out: it does not depend on
the replay). Prints one JSON object per line:

- ``{"kind": "save", "storage", "replay_steps", "replay_bytes", "save_bytes", "save_s",
  "save_alloc_bytes", "chunk_bytes", "fill_s", "rss_bytes", "rss_anon_bytes"}``
  per save: bytes of the checkpoint written, seconds of the save, the peak of the memory the
  save allocates (tracemalloc, numpy included), the chunk bytes written since the last save,
  the seconds the adds took since then (chunk writes included), and the process's RSS (all,
  and anonymous only) after the save;
- ``{"kind": "sample", "storage", "cache", "replay_steps", "batch", "length",
  "batches_per_s"}``: uniform windows ``[batch, length]`` per second; for ``disk`` once with the
  chunk files dropped from the page cache before every batch (``cold``: read from the device)
  and once ``warm`` (from the page cache);
- ``{"kind": "suite", ...}`` per suite: the measured figures extrapolated to its full budget
  (:func:`extrapolate`, which gives the formulas).

    python -m bench.scale --steps 100000 --dir /tmp/scale   (from the repository root)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
import tracemalloc
from pathlib import Path

import numpy as np

from dreamerbench.agent.config import SIZES, AgentConfig, ReplayConfig, RunConfig
from dreamerbench.agent.replay import Replay
from dreamerbench.core import checkpoint
from dreamerbench.suites import get_suite

# What replay stores per step in a crafter run of the 200m model (agent/trainer.py _make_replay).
SPECS = {
    "image": ((64, 64, 3), np.uint8),
    "deter": ((SIZES["200m"].deter,), np.float16),
    "stoch": ((AgentConfig().stoch,), np.uint8),
    "action": ((), np.int32),
    "reward": ((), np.float32),
    "is_first": ((), bool),
    "is_last": ((), bool),
    "is_terminal": ((), bool),
}
LATENTS = ("deter", "stoch")
LENGTH = 65  # a window: agent.batch_length 64 plus the step whose latent starts it


# Bytes per step besides the start latents, per suite: the observation of its default task
# (walker_walk for DMC; image only for minecraft_diamond, whose inventory vectors add a few
# hundred bytes), int32 or float32 action, float32 reward, three bool flags.
OTHER_BYTES = {
    "atari100k": 64 * 64 * 3 + 4 + 4 + 3,
    "atari57": 96 * 96 + 4 + 4 + 3,
    "dmc_proprio": 24 * 4 + 6 * 4 + 4 + 3,
    "dmc_vision": 64 * 64 * 3 + 6 * 4 + 4 + 3,
    "crafter": 64 * 64 * 3 + 4 + 4 + 3,
    "minecraft_diamond": 64 * 64 * 3 + 4 + 4 + 3,
}


def step_bytes() -> int:
    """Bytes one step takes in the replay (and in its chunk files, headers aside)."""
    return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in SPECS.values())


def _status(field: str) -> int:
    """A ``kB`` line of /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _steps(rng: np.random.Generator, count: int) -> list[dict[str, np.ndarray]]:
    """`count` random steps (one env each) that the fill cycles through."""
    return [
        {
            key: (rng.random((1, *shape)) * 255).astype(dtype)
            for key, (shape, dtype) in SPECS.items()
        }
        for _ in range(count)
    ]


def _save(replay: Replay, directory: Path, step: int) -> tuple[int, float, int]:
    """Checkpoint `replay` as the trainer does: (bytes written, seconds, peak bytes allocated)."""
    tracemalloc.start()
    start = time.perf_counter()
    saved = checkpoint.save(directory, step, b"", replay.state_dict(), {"steps": step})
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    replay.prune([0])  # as the trainer: chunks no kept checkpoint names may go (here: none)
    return sum(p.stat().st_size for p in saved.path.iterdir()), seconds, peak


def grow(storage: str, steps: int, save_every: int, directory: Path, seed: int = 0):
    """Fill a replay of `steps` steps, saving every `save_every`; yields a record per save and
    returns the replay."""
    shutil.rmtree(directory, ignore_errors=True)
    replay = Replay(
        SPECS, 1, steps, LENGTH, False, seed, initial_size=steps, storage=storage,
        directory=directory / "replay", cache=LATENTS,
    )  # fmt: skip
    pool = _steps(np.random.default_rng(seed), 64)
    fill_s, chunk_bytes = 0.0, 0
    for step in range(1, steps + 1):
        start = time.perf_counter()
        replay.add(pool[step % len(pool)])  # writes a chunk when one fills up
        fill_s += time.perf_counter() - start
        if step % save_every == 0:
            written = sum(p.stat().st_size for p in (directory / "replay").glob("chunk-*/*"))
            size, seconds, peak = _save(replay, directory / "checkpoint", step)
            yield {
                "kind": "save",
                "storage": storage,
                "replay_steps": step,
                "replay_bytes": step * step_bytes(),
                "save_bytes": size,
                "save_s": round(seconds, 4),
                "save_alloc_bytes": peak,
                "chunk_bytes": written - chunk_bytes,
                "fill_s": round(fill_s, 3),
                "rss_bytes": _status("VmRSS"),
                "rss_anon_bytes": _status("RssAnon"),
            }
            fill_s, chunk_bytes = 0.0, written
    return replay


def _drop_cache(replay: Replay) -> None:
    """Evict the chunk files of a ``disk`` replay from the page cache (the pages a sample mapped
    too: a sample copies out of the mapping and keeps no page locked)."""
    for path in replay.directory.glob("chunk-*/*.npy"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def throughput(replay: Replay, batch: int, seconds: float, cold: bool = False) -> float:
    """Uniform batches [batch, length] per second, sampled for about `seconds` of sampling; with
    `cold` the chunk files are dropped from the page cache before every batch (not timed), so
    each batch reads from the device, as when the replay is much larger than RAM."""
    count, spent = 0, 0.0
    while spent < seconds or count < 3:
        if cold:
            _drop_cache(replay)
        start = time.perf_counter()
        replay.sample(batch)
        spent += time.perf_counter() - start
        count += 1
    return count / spent


def extrapolate(suite_name: str, batches_per_s: dict[str, float], batch: int, length: int) -> dict:
    """The cost of a run of `suite_name` at its full budget and agent defaults, from the formulas:

    - replay at the end ``R = min(budget, capacity) * b`` (b: bytes per step, latents included);
    - saves ``N = budget / save_every``; a save's replay part ``< chunk * b`` (the tail, all
      envs together; mean half of it), and chunks over the whole run ``budget * b`` (each step
      once);
    - before chunks each save wrote the whole replay: ``sum_{i=1..N} min(i * save_every,
      capacity) * b`` over the run, and a save needed a second copy of it in RAM;
    - sampling: ``budget * train_ratio / (batch * (length - 1))`` batches at each rate of
      `batches_per_s` (cache -> batches per second), in hours.

    The agent state (the same in both schemes) is left out.
    """
    suite = get_suite(suite_name)
    defaults = suite.agent_defaults
    budget = suite.budget_steps
    capacity, chunk = ReplayConfig().capacity, ReplayConfig().chunk
    save_every = RunConfig().save_every
    size = SIZES[defaults.get("agent.size", AgentConfig().size)]
    b = OTHER_BYTES[suite_name] + 2 * size.deter + AgentConfig().stoch
    saves = budget // save_every
    old = sum(min(i * save_every, capacity) for i in range(1, saves + 1)) * b
    batches = budget * defaults["agent.train_ratio"] / (batch * (length - 1))
    return {
        "kind": "suite",
        "suite": suite_name,
        "budget": budget,
        "step_bytes": b,
        "replay_bytes": min(budget, capacity) * b,
        "saves": saves,
        "save_replay_bytes_max": chunk * b,
        "run_bytes": budget * b + saves * chunk * b // 2,
        "run_bytes_before": old,
        "sample_hours": {
            cache: round(batches / rate / 3600, 2) for cache, rate in batches_per_s.items()
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000, help="replay size at the end")
    parser.add_argument("--save-every", type=int, default=10_000, help="steps between saves")
    parser.add_argument("--batch", type=int, default=16, help="windows per batch (B)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput figure")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/dreamerbench-scale"))
    parser.add_argument("--storage", nargs="+", default=["memory", "disk"])
    args = parser.parse_args(argv)
    print(json.dumps({"kind": "step", "step_bytes": step_bytes()}), flush=True)
    rates: dict[str, float] = {}
    for storage in args.storage:
        fill = grow(storage, args.steps, args.save_every, args.dir / storage)
        while True:
            try:
                print(json.dumps(next(fill)), flush=True)
            except StopIteration as done:
                replay = done.value
                break
        caches = ["cold", "warm"] if storage == "disk" else ["ram"]
        for cache in caches:
            rate = throughput(replay, args.batch, args.seconds, cold=cache == "cold")
            record = {
                "kind": "sample",
                "storage": storage,
                "cache": cache,
                "replay_steps": args.steps,
                "batch": args.batch,
                "length": replay.length,
                "batches_per_s": round(rate, 2),
            }
            print(json.dumps(record), flush=True)
            rates[cache] = record["batches_per_s"]
        del replay
        shutil.rmtree(args.dir / storage, ignore_errors=True)
    for suite_name in OTHER_BYTES:
        print(json.dumps(extrapolate(suite_name, rates, args.batch, LENGTH)), flush=True)


if __name__ == "__main__":
    main()
