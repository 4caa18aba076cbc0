"""Our train step side by side with the reference's (danijar/dreamerv3 e3f0224); prints JSON.

    python -m bench.compare_reference                     # 3 repetitions of the three cases
    python -m bench.compare_reference --reps 5 --cases image_1m --updates 4

The cases are `bench.train_step.CASES` (B16 x T64 + 1 context step, float32):
DMC proprio (5-dim vector, 1 continuous action) at size1m and size12m, and a
64x64x3 image with 17 discrete actions at size1m. Both sides train on the same
synthetic batch (`dreamerbench.agent.synthetic.random_batch`); the reference's agent is its
`configs.yaml` defaults plus the `size1m` / `size12m` block, `jax.platform cpu`,
`jax.compute_dtype float32`, `replay_context 1`, and its compiled train
function `agent._train` is timed (the function `Agent.train()` calls).

Every measurement is its own process. The repetitions interleave the two
sides (ours first in even repetitions, the reference first in odd ones), so
that a change in the machine's load hits both. Each process is pinned with
`taskset -c --cpu` and, with `--threads 1` (default), XLA runs its CPU work on
one thread (`--xla_cpu_multi_thread_eigen=false`); `--threads 0` leaves XLA's
threading alone. Per process: compile seconds, the median seconds per update
(wall clock and process CPU time, the latter disturbed least by other load)
after 2 warm-up updates, matmul/convolution FLOPs per update counted from the
jaxpr (`bench.train_step.matmul_flops`), and resident memory (current and peak)
after compiling and after the updates. The summary gives, per case and side,
the medians over repetitions and the ratios reference / ours (speed: > 1 means
ours is faster; memory: < 1 means ours peaks lower), and the load average
before and after.

The reference runs in its own environment (`--reference`, `--refenv`; set up
by `tools/setup_reference.sh`, see `tools/README.md`). CI does not run this.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

from bench.train_step import CASES, memory_mb, step_memory_mb, timed_updates

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_SIZES = {"1m": "size1m", "12m": "size12m"}


def reference_case(name: str, updates: int, batch_size: int, batch_length: int) -> dict:
    """Time the reference's compiled train step on case `name`; runs in the reference's venv."""
    import jax

    jax.config.update("jax_platforms", "cpu")
    jax.devices()  # start the backend now: the reference's set-up later replaces XLA_FLAGS
    import dreamerv3
    import elements
    import numpy as np
    import ruamel.yaml as yaml
    from embodied.jax import internal

    from bench.train_step import matmul_flops
    from dreamerbench.agent.synthetic import random_batch
    from tools.reference_equivalence import build_agent, reference_config

    case = CASES[name]
    blocks = yaml.YAML(typ="safe").load(
        (Path(dreamerv3.__file__).parent / "configs.yaml").read_text()
    )
    updates_cfg = {
        **blocks[REFERENCE_SIZES[case["size"]]],
        "batch_size": batch_size,
        "batch_length": batch_length,
        "replay_context": 1,
    }
    flags = {k: elements.Space(bool) for k in ("is_first", "is_last", "is_terminal")}
    if case["obs"] == "image":
        obs = {"image": elements.Space(np.uint8, (64, 64, 3))}
        act = {"action": elements.Space(np.int32, (), 0, 17)}
    else:
        obs = {"vector": elements.Space(np.float32, (5,))}
        act = {"action": elements.Space(np.float32, (1,), -1, 1)}
    config = reference_config("/tmp/compare_reference_logdir", updates_cfg)
    agent = build_agent(config, {**obs, "reward": elements.Space(np.float32), **flags}, act)
    rssm = config.agent.dyn.rssm
    space = lambda s: types.SimpleNamespace(shape=s.shape, is_image=len(s.shape) == 3)
    ours_like = types.SimpleNamespace(
        obs_space={k: space(v) for k, v in obs.items()},
        discrete=act["action"].discrete,
        action_size=17 if act["action"].discrete else 1,
        latent_shape=(rssm.deter, rssm.stoch, rssm.classes),
    )
    batch = random_batch(ours_like, batch_size, batch_length)
    data = agent._zeros(agent.spaces, (batch_size, batch_length + 1))
    for key in (*obs, "action", "reward", "is_first", "is_last", "is_terminal"):
        data[key] = batch[key].reshape(data[key].shape).astype(data[key].dtype)
    data["dyn/deter"] = batch["deter"].astype(np.float32)
    data["dyn/stoch"] = np.eye(rssm.classes, dtype=np.float32)[batch["stoch"]]
    data = internal.device_put(data, agent.train_sharded)

    def split(params):
        allo = {k: v for k, v in params.items() if k in agent.policy_keys}
        return {k: v for k, v in params.items() if k not in agent.policy_keys}, allo

    jitted = agent._train  # `_compile_train` replaces it with its compiled form
    start = time.perf_counter()
    with agent.train_mesh:
        agent._compile_train()
    compile_s = time.perf_counter() - start
    after_compile = memory_mb()
    carry = agent.init_train(batch_size)
    params = agent.params

    def update(i):
        nonlocal params
        params, _, outs, metrics = agent._train(
            *split(params), agent._seeds(i, agent.train_mirrored), carry, data
        )
        return params, outs, metrics

    wall, cpu = timed_updates(update, updates)
    after_updates = memory_mb()
    with agent.train_mesh:
        jaxpr = jax.make_jaxpr(jitted)(
            *split(params), agent._seeds(0, agent.train_mirrored), carry, data
        ).jaxpr
    return {
        "compile_s": round(compile_s, 2),
        "seconds_per_call": round(wall, 4),
        "cpu_seconds_per_call": round(cpu, 4),
        "matmul_gflop_per_call": round(matmul_flops(jaxpr) / 1e9, 2),
        "memory_after_compile": after_compile,
        "memory_after_updates": after_updates,
        "step_buffers": step_memory_mb(agent._train),
        "jax": jax.__version__,
    }


def ours_case(name: str, updates: int, batch_size: int, batch_length: int) -> dict:
    """Time our compiled train step on case `name` (`bench.train_step.run_case`)."""
    from bench.train_step import run_case

    return run_case(name, updates, batch_size, batch_length, [])


SIDES = {"ours": ours_case, "reference": reference_case}


def command(side: str, case: str, args) -> tuple[list[str], dict]:
    """The pinned child process that measures one side on one case, and its environment."""
    env = dict(os.environ)
    python = sys.executable
    if side == "reference":
        python = str(Path(args.refenv) / "bin" / "python")
        env["PYTHONPATH"] = os.pathsep.join([str(Path(args.reference).resolve()), str(ROOT)])
    else:
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    if args.threads == 1:
        env["XLA_FLAGS"] = " ".join(
            filter(None, [env.get("XLA_FLAGS"), "--xla_cpu_multi_thread_eigen=false"])
        )
    child = [
        python,
        "-m",
        "bench.compare_reference",
        "--side",
        side,
        "--cases",
        case,
        "--updates",
        str(args.updates),
        "--batch-size",
        str(args.batch_size),
        "--batch-length",
        str(args.batch_length),
    ]
    return ["taskset", "-c", args.cpus, *child], env


def measure(side: str, case: str, args) -> dict:
    """One child process's JSON result, with the load average around it."""
    cmd, env = command(side, case, args)
    load_before = os.getloadavg()[0]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{side} {case} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        **result,
        "side": side,
        "case": case,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def summarise(runs: list[dict]) -> dict:
    """Per case: each side's medians over repetitions, and reference / ours for each figure."""
    figures = {
        "seconds_per_update": lambda r: r["seconds_per_call"],
        "cpu_seconds_per_update": lambda r: r["cpu_seconds_per_call"],
        "compile_s": lambda r: r["compile_s"],
        "peak_rss_mb_after_compile": lambda r: r["memory_after_compile"]["peak_rss_mb"],
        "peak_rss_mb_after_updates": lambda r: r["memory_after_updates"]["peak_rss_mb"],
        "matmul_gflop_per_update": lambda r: r["matmul_gflop_per_call"],
        "step_temporaries_mb": lambda r: r["step_buffers"]["temporaries_mb"],
    }
    out = {}
    for case in dict.fromkeys(r["case"] for r in runs):
        sides = {}
        for side in SIDES:
            mine = [r for r in runs if r["case"] == case and r["side"] == side]
            sides[side] = {
                name: statistics.median(get(r) for r in mine) for name, get in figures.items()
            }
            sides[side]["seconds_per_update_all"] = [r["seconds_per_call"] for r in mine]
        ratio = {name: round(sides["reference"][name] / sides["ours"][name], 3) for name in figures}
        out[case] = {**sides, "reference_over_ours": ratio}
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated subset of {', '.join(CASES)}"
    )
    parser.add_argument(
        "--reps", type=int, default=3, help="repetitions of every (case, side) pair"
    )
    parser.add_argument(
        "--updates", type=int, default=5, help="timed updates per process after 2 warm-up updates"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batch-length", type=int, default=64)
    parser.add_argument(
        "--cpus",
        default=str(max(0, (os.cpu_count() or 1) - 1)),
        help="taskset CPU list every timed process is pinned to (default: the last CPU)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        choices=(0, 1),
        default=1,
        help="1: XLA computes on one thread; 0: XLA's default threading",
    )
    parser.add_argument(
        "--reference",
        default=str(ROOT.parent / "reference"),
        help="danijar/dreamerv3 e3f0224 checkout (default: reference/ beside this repository)",
    )
    parser.add_argument(
        "--refenv",
        default=str(ROOT.parent / "refenv"),
        help="the reference's venv (tools/setup_reference.sh; default: refenv/ beside this "
        "repository)",
    )
    parser.add_argument(
        "--side", choices=list(SIDES), help=argparse.SUPPRESS
    )  # one measurement in this process
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    bad = [c for c in cases if c not in CASES]
    if bad or not cases:
        parser.exit(2, f"--cases={args.cases!r}: allowed are {', '.join(CASES)}\n")
    if args.side:
        print(
            json.dumps(SIDES[args.side](cases[0], args.updates, args.batch_size, args.batch_length))
        )
        return
    for path, what in (
        (Path(args.reference) / "dreamerv3" / "agent.py", "--reference"),
        (Path(args.refenv) / "bin" / "python", "--refenv"),
    ):
        if not path.exists():
            parser.exit(
                2, f"{what}: {path} does not exist; set it up with tools/setup_reference.sh\n"
            )
    runs = []
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load = os.getloadavg()
    for rep in range(args.reps):
        for case in cases:
            order = list(SIDES) if rep % 2 == 0 else list(SIDES)[::-1]
            for side in order:
                run = measure(side, case, args)
                print(json.dumps({"rep": rep, **run}), file=sys.stderr, flush=True)
                runs.append({"rep": rep, **run})
    print(
        json.dumps(
            {
                "started": started,
                "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                "load_average_before": load,
                "load_average_after": os.getloadavg(),
                "cpus": args.cpus,
                "threads": args.threads,
                "updates": args.updates,
                "reps": args.reps,
                "batch": [args.batch_size, args.batch_length],
                "summary": summarise(runs),
                "runs": runs,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
