"""Where the train step's time goes: per-operation times of the compiled step; prints JSON.

    python -m bench.profile_step --case image_1m --updates 2 --top 25

Runs `--updates` updates of the jitted train step (case as in
`bench.train_step`, float32, B16 x T64) under `jax.profiler.trace`, reads the
trace back (`jax.profiler.ProfileData`) and sums the duration of every
executed operation of the compiled program (XLA:CPU runs one "thunk" per
fusion, matmul, convolution, copy, loop...) over all threads and updates.
Loop operations (`while`: the scans) contain the operations of their bodies,
which appear on their own too, so the rows overlap; `op_seconds_per_update`
sums the rows that are not loops. The `kind` column is the operation's
HLO opcode and, for fusions, the opcodes inside it, read from the optimised
HLO text.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import re
import tempfile
import time

from bench.train_step import CASES

NOT_OPS = (
    "ThreadpoolListener",
    "ThunkExecutor",
    "end: ",
    "PjitFunction",
    "$",
    "PythonRefManager",
    "ParseArguments",
)


def hlo_kinds(hlo_text: str) -> dict[str, str]:
    """Instruction name -> opcode ('fusion[convolution,add]' for a fusion: the opcodes it calls,
    first seen first)."""
    computations: dict[str, list[str]] = {}
    current = None
    kinds = {}
    calls = {}
    for line in hlo_text.splitlines():
        header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$", line)
        if header and not line.startswith(" "):
            current = header.group(1)
            computations[current] = []
            continue
        match = re.match(r"^\s*(?:ROOT )?%?([\w.\-]+) = [^=]*? ([a-z\-]+)\(", line)
        if match and current:
            name, op = match.groups()
            computations[current].append(op)
            kinds[name] = op
            called = re.search(r"calls=%?([\w.\-]+)", line)
            if called:
                calls[name] = called.group(1)
    for name, called in calls.items():
        inner = [
            op
            for op in dict.fromkeys(computations.get(called, []))
            if op not in ("parameter", "constant")
        ]
        kinds[name] = f"{kinds[name]}[{','.join(inner[:6])}]"
    return kinds


def profile(name: str, updates: int, top: int) -> dict:
    import jax
    import numpy as np

    from dreamerbench.agent.config import Config, apply_overrides
    from dreamerbench.agent.dreamer import Dreamer
    from dreamerbench.agent.synthetic import random_batch
    from dreamerbench.suites.base import Space

    case = CASES[name]
    config = apply_overrides(
        Config(), {"agent.size": case["size"], "agent.compute_dtype": "float32"}
    )
    obs = (
        {"image": Space(np.uint8, (64, 64, 3))}
        if case["obs"] == "image"
        else {"vector": Space(np.float32, (5,))}
    )
    act = (
        Space(np.int32, (), 0, 17)
        if case["actions"] == "discrete"
        else Space(np.float32, (1,), -1.0, 1.0)
    )
    agent = Dreamer(config, obs, act)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    batch = random_batch(agent, config.agent.batch_size, config.agent.batch_length)
    step = (
        jax.jit(agent.train_step, donate_argnums=0)
        .lower(state, batch, jax.random.PRNGKey(0))
        .compile()
    )
    kinds = hlo_kinds(step.as_text())
    state, _ = jax.block_until_ready(step(state, batch, jax.random.PRNGKey(1)))
    with tempfile.TemporaryDirectory() as trace_dir:
        start = time.perf_counter()
        with jax.profiler.trace(trace_dir):
            for i in range(updates):
                state, _ = jax.block_until_ready(step(state, batch, jax.random.PRNGKey(2 + i)))
        wall = (time.perf_counter() - start) / updates
        data = jax.profiler.ProfileData.from_file(
            glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)[0]
        )
        seconds: collections.Counter = collections.Counter()
        counts: collections.Counter = collections.Counter()
        for plane in data.planes:
            if plane.name != "/host:CPU":
                continue
            for line in plane.lines:
                for event in line.events:
                    if not event.name.startswith(NOT_OPS):
                        seconds[event.name] += event.duration_ns / 1e9 / updates
                        counts[event.name] += 1
    loops = {n for n in seconds if kinds.get(n, "").startswith(("while", "call", "conditional"))}
    by_kind: collections.Counter = collections.Counter()
    for op, s in seconds.items():
        if op not in loops:
            by_kind[
                kinds.get(op, "?").split("[")[0]
                if not kinds.get(op, "").startswith("fusion")
                else kinds[op]
            ] += s
    rows = [
        {
            "op": op,
            "kind": kinds.get(op, "?"),
            "seconds_per_update": round(s, 4),
            "calls_per_update": counts[op] // updates,
        }
        for op, s in seconds.most_common(top)
    ]
    return {
        "case": name,
        "wall_seconds_per_update": round(wall, 4),
        "op_seconds_per_update": round(sum(s for op, s in seconds.items() if op not in loops), 4),
        "top_ops": rows,
        "by_kind": {k: round(v, 4) for k, v in by_kind.most_common(top)},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", choices=list(CASES), default="image_1m")
    parser.add_argument(
        "--updates", type=int, default=2, help="profiled updates after one warm-up update"
    )
    parser.add_argument("--top", type=int, default=25, help="rows of the per-operation table")
    args = parser.parse_args(argv)
    print(json.dumps(profile(args.case, args.updates, args.top), indent=1))


if __name__ == "__main__":
    main()
