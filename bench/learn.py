"""Learning speed on this CPU: DMC proprio cartpole_balance, episode return against wall-clock.

    python -m bench.learn --minutes 60 --logdir /tmp/learn
    python -m bench.learn --minutes 4 --seeds-per-process 4 --logdir /tmp/k4   # throughput of 4 packed seeds

Runs `dreamerbench train` as a subprocess (so the start-up cost is real),
stops it with SIGINT after `--minutes`, and prints one JSON object: the
settings, the time from process start to the first update, the episode curve
(wall seconds, agent steps, frames, return), and when the mean of the last 5
returns first reached 800. It also reports the trainer's own update rate
(`updates_per_s` records, one per `run.log_every` seconds) as the median over
the records after the first (which holds the start-up), times the number of
packed seeds: the aggregate updates/s of the process.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = {
    "agent.train_ratio": 512,
    "env.action_repeat": 4,
    "run.envs": 1,
    "run.save_every": 20_000,
    "run.log_every": 20,
}


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--logdir", required=True, help="a new directory for the run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default="1m")
    parser.add_argument("--seeds-per-process", type=int, default=1, help="seeds trained together (the curve is the first's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    logdir = Path(args.logdir)
    if logdir.exists():
        parser.error(f"--logdir {logdir} exists; the benchmark needs a fresh run")
    settings = {**SETTINGS, **dict(item.split("=", 1) for item in args.overrides)}
    command = [
        sys.executable, "-m", "experiments.cli", "train", "--suite", "dmc_proprio", "--task", "cartpole_balance",
        "--seed", str(args.seed), "--size", args.size, "--steps", "10000000", "--logdir", str(logdir),
        "--seeds-per-process", str(args.seeds_per_process), "--set", "run.compile_cache=",
    ]
    rundir = logdir if args.seeds_per_process == 1 else logdir / f"seed{args.seed}"
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    start = time.time()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first_update = None
    while time.time() - start < 60 * args.minutes and process.poll() is None:
        if first_update is None and any("time_to_first_update_s" in r for r in read_jsonl(rundir / "metrics.jsonl")):
            first_update = time.time() - start
        time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=600)
    if process.returncode != 0:
        raise SystemExit(f"train failed ({process.returncode}):\n{stderr.decode()[-3000:]}")
    repeat = int(settings["env.action_repeat"])
    episodes = read_jsonl(rundir / "episodes.jsonl")
    curve = [(e["wall_s"], e["step"], e["step"] * repeat, round(e["score"], 1)) for e in episodes]
    reached = None
    for i in range(5, len(curve) + 1):
        window = [c[3] for c in curve[i - 5 : i]]
        if sum(window) / 5 >= 800:
            reached = {"wall_s": curve[i - 1][0], "step": curve[i - 1][1], "frames": curve[i - 1][2]}
            break
    metrics = read_jsonl(rundir / "metrics.jsonl")
    updates = [r["updates"] for r in metrics if "updates" in r]
    rates = [r["updates_per_s"] for r in metrics if "updates_per_s" in r][1:]
    print(json.dumps({
        "task": "dmc_proprio/cartpole_balance", "size": args.size, "seed": args.seed, "settings": settings,
        "minutes": args.minutes, "process_start_to_first_update_s": first_update,
        "seeds_per_process": args.seeds_per_process,
        "aggregate_updates_per_s": round(statistics.median(rates) * args.seeds_per_process, 4) if rates else None,
        "updates_per_s_records": len(rates),
        "updates": updates[-1] if updates else 0, "episodes": len(curve),
        "mean_last_5": round(sum(c[3] for c in curve[-5:]) / max(1, len(curve[-5:])), 1),
        "first_reached_800_mean_of_5": reached,
        "curve_wall_s_step_frames_return": curve,
    }))


if __name__ == "__main__":
    main()
