"""Seconds per update of the jitted train step; prints one JSON object per case.

    python -m bench.train_step                    # the three issue cases, each in its own process
    python -m bench.train_step --case proprio_1m  # one case in this process
    python -m bench.train_step --case proprio_1m --seeds 4  # 4 seeds in one vmapped step

Cases (B16 x T64, float32): DMC proprio (cartpole, 5-dim vector, 1 action) at
size 1m and 12m, and a Crafter-like 64x64x3 image with 17 discrete actions at
size 1m. Reports the median seconds per update after warm-up, compile time,
the matrix-product FLOPs of one update (counted from the jaxpr, scan bodies
times their length), achieved FLOP/s as a fraction of this machine's float32
matmul peak (measured here with a 2048^2 matmul), and peak RSS.
With `--seeds K` the step updates K seeds at once (`dreamerbench.agent.dreamer.over_runs`,
as `--seeds-per-process K` trains them); updates/s then counts all K seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "proprio_1m": dict(size="1m", obs="vector", actions="continuous"),
    "proprio_12m": dict(size="12m", obs="vector", actions="continuous"),
    "image_1m": dict(size="1m", obs="image", actions="discrete"),
}


def matmul_peak_flops(n: int = 2048, repeats: int = 10, dtype=None) -> float:
    """FLOP/s of the fastest of `repeats` n x n matmuls in `dtype` (default float32) on the
    default device."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype or jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / min(times)


def matmul_flops(jaxpr) -> float:
    """FLOPs of the matrix products and convolutions in `jaxpr`, 2 per multiply-add.

    Scan bodies count `length` times. (XLA's cost analysis counts a loop body
    once, which undercounts both of the train step's rollouts.) `while` bodies,
    whose trip count is unknown, count once; the train step has none.
    """
    from jax.extend.core import ClosedJaxpr, Jaxpr

    total = 0.0
    for eqn in jaxpr.eqns:
        out = eqn.outvars[0].aval.shape if eqn.outvars else ()
        if eqn.primitive.name == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * math.prod(out) * math.prod(lhs[d] for d in lhs_contract)
        elif eqn.primitive.name == "conv_general_dilated":
            kernel = eqn.invars[1].aval.shape
            out_features = kernel[eqn.params["dimension_numbers"].rhs_spec[0]]
            total += 2 * math.prod(out) * math.prod(kernel) / out_features
        repeats = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
        subs = []
        for value in eqn.params.values():
            for item in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(item, ClosedJaxpr):
                    subs.append(matmul_flops(item.jaxpr))
                elif isinstance(item, Jaxpr):
                    subs.append(matmul_flops(item))
        if subs:  # `cond` branches: the costliest; other primitives have one sub-jaxpr
            total += repeats * max(subs)
    return total


def memory_mb() -> dict:
    """This process's resident memory now and its peak so far, in MB (Linux `/proc/self/status`)."""
    fields = dict(
        line.split(":", 1)
        for line in Path("/proc/self/status").read_text().splitlines()
        if ":" in line
    )
    kb = lambda name: int(fields[name].split()[0])
    return {"rss_mb": round(kb("VmRSS") / 1024, 1), "peak_rss_mb": round(kb("VmHWM") / 1024, 1)}


def step_memory_mb(compiled) -> dict:
    """XLA's own account of a compiled step's buffers, in MB: arguments, outputs (less those aliased
    to donated arguments), temporaries (activations kept for the backward pass, scan stacks...)
    and generated code (`Compiled.memory_analysis()`)."""
    stats = compiled.memory_analysis()
    mb = lambda n: round(n / 2**20, 1)
    return {
        "arguments_mb": mb(stats.argument_size_in_bytes),
        "outputs_mb": mb(stats.output_size_in_bytes),
        "aliased_mb": mb(stats.alias_size_in_bytes),
        "temporaries_mb": mb(stats.temp_size_in_bytes),
        "code_mb": mb(stats.generated_code_size_in_bytes),
    }


def timed_updates(update, updates: int, warmup: int = 2) -> tuple[float, float]:
    """Median wall-clock and process-CPU seconds of `update(i)` over `updates` calls after
    `warmup` calls.

    `update(i)` runs one step and returns its outputs, which are waited for
    (`jax.block_until_ready`) inside the timed span.
    """
    import jax
    import numpy as np

    wall, cpu = [], []
    for i in range(warmup + updates):
        start, start_cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(update(i))
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return float(np.median(wall[warmup:])), float(np.median(cpu[warmup:]))


def run_case(
    name: str,
    updates: int,
    batch_size: int,
    batch_length: int,
    overrides: list[str],
    seeds: int = 1,
) -> dict:
    import jax
    import numpy as np

    from dreamerbench.agent.config import Config, apply_overrides
    from dreamerbench.agent.dreamer import Dreamer, over_runs
    from dreamerbench.agent.synthetic import random_batch
    from dreamerbench.suites.base import Space

    case = CASES[name]
    config = apply_overrides(
        Config(),
        {
            "agent.size": case["size"],
            "agent.batch_size": batch_size,
            "agent.batch_length": batch_length,
            "agent.compute_dtype": "float32",
        },
    )
    config = apply_overrides(config, overrides)
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

    def stacked(make):
        return jax.tree_util.tree_map(
            lambda *leaves: np.stack(leaves), *[make(seed) for seed in range(seeds)]
        )

    state = stacked(lambda seed: jax.jit(agent.init)(jax.random.PRNGKey(seed)))
    batch = stacked(lambda seed: random_batch(agent, batch_size, batch_length, seed))

    def keys(i):
        return stacked(lambda seed: jax.random.fold_in(jax.random.PRNGKey(seed), i))

    start = time.perf_counter()
    step = jax.jit(over_runs(agent.train_step, seeds), donate_argnums=0)
    compiled = step.lower(state, batch, keys(0)).compile()
    compile_s = time.perf_counter() - start
    after_compile = memory_mb()
    shapes = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), (state, batch, keys(0))
    )

    def update(i):
        nonlocal state
        state, out = compiled(state, batch, keys(i))
        return state, out

    seconds, cpu_seconds = timed_updates(update, updates)  # one call: an update of every seed
    after_updates = memory_mb()
    flops = matmul_flops(jax.make_jaxpr(step)(*shapes).jaxpr)
    peak = matmul_peak_flops(8192 if jax.default_backend() == "gpu" else 2048, dtype=agent.dtype)
    return {
        "case": name,
        **case,
        "batch": [batch_size, batch_length],
        "seeds": seeds,
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "compute_dtype": str(np.dtype(agent.dtype)),
        "seconds_per_call": round(seconds, 4),
        "cpu_seconds_per_call": round(cpu_seconds, 4),
        "updates_per_s": round(seeds / seconds, 3),
        "replayed_steps_per_s": round(seeds * batch_size * batch_length / seconds, 1),
        "compile_s": round(compile_s, 2),
        "matmul_gflop_per_call": round(flops / 1e9, 2),
        "matmul_peak_gflops": round(peak / 1e9, 1),
        "fraction_of_matmul_peak": round(flops / seconds / peak, 3),
        "peak_rss_mb": after_updates["peak_rss_mb"],
        "memory_after_compile": after_compile,
        "step_buffers": step_memory_mb(compiled),
        "memory_after_updates": after_updates,
        "jax": jax.__version__,
        "overrides": overrides,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", choices=list(CASES), help="run one case in this process")
    parser.add_argument(
        "--updates", type=int, default=10, help="timed updates after 2 warm-up updates"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batch-length", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=1, help="seeds updated by one vmapped step")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--compile-cache",
        default="",
        metavar="DIR",
        help="persistent compilation cache (as run.compile_cache); "
        "a second run loads the step from it",
    )
    args = parser.parse_args(argv)
    if args.case:
        from dreamerbench.agent.learner import enable_compile_cache

        enable_compile_cache(args.compile_cache)
        print(
            json.dumps(
                run_case(
                    args.case,
                    args.updates,
                    args.batch_size,
                    args.batch_length,
                    args.overrides,
                    args.seeds,
                )
            )
        )
        return
    for name in CASES:  # separate processes, so peak RSS and compile caches are per case
        command = [
            sys.executable,
            "-m",
            "bench.train_step",
            "--case",
            name,
            "--updates",
            str(args.updates),
            "--batch-size",
            str(args.batch_size),
            "--batch-length",
            str(args.batch_length),
            "--seeds",
            str(args.seeds),
            "--compile-cache",
            args.compile_cache,
        ]
        for override in args.overrides:
            command += ["--set", override]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
