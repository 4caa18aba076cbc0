"""`dreamerbench train`: one run on a real environment, resumable from its logdir."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train one agent on one task",
        description="Train DreamerV3 on one task. Re-running on the same logdir resumes.",
    )
    parser.add_argument("--suite", required=True, help="suite name (see `dreamerbench suites`)")
    parser.add_argument("--task", required=True, help="task within the suite")
    parser.add_argument("--seed", type=int, default=0, help="seed (the first seed with --seeds-per-process)")
    parser.add_argument(
        "--seeds-per-process", type=int, default=1, metavar="K",
        help="train seeds SEED..SEED+K-1 in this process with one vmapped train step; "
        "run i then writes to LOGDIR/seed<SEED+i>",
    )
    parser.add_argument("--size", help="model size preset, e.g. 1m, 12m (sets agent.size)")
    parser.add_argument("--steps", type=float, help="agent steps in total (sets run.steps)")
    parser.add_argument("--logdir", required=True, help="run directory (resumed if it holds a checkpoint)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="config override, e.g. --set agent.train_ratio=64 (repeatable)",
    )
    parser.add_argument(
        "--tracking-uri", help="also record to MLflow (off by default), e.g. sqlite:///mlflow.db, as a run "
        "of --experiment that `dreamerbench table --runs EXPERIMENT` reads",
    )
    parser.add_argument("--experiment", default="train", help="MLflow experiment with --tracking-uri (default: train)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.config import ConfigError
    from agent.trainer import Trainer, resolve_config

    overrides = {}
    if args.size:
        overrides["agent.size"] = args.size
    if args.steps:
        overrides["run.steps"] = args.steps
    if args.seeds_per_process < 1:
        raise ConfigError(f"--seeds-per-process={args.seeds_per_process} must be a whole number >= 1")
    overrides = [f"{k}={v}" for k, v in overrides.items()] + args.overrides
    seeds = range(args.seed, args.seed + args.seeds_per_process)
    configs = [resolve_config(args.suite, args.task, seed, overrides) for seed in seeds]
    logdirs = [Path(args.logdir)] if len(configs) == 1 else [Path(args.logdir) / f"seed{seed}" for seed in seeds]
    tracked = []
    if args.tracking_uri:
        from experiments import train_tracking

        tracked = train_tracking.start(args.tracking_uri, args.experiment, configs, logdirs)
    stop = threading.Event()
    # Ctrl-C and SIGTERM stop at the next safe point, after a checkpoint.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    outputs = [[run.output] for run in tracked] if tracked else [[] for _ in configs]
    if len(configs) == 1:
        summaries = [Trainer(configs[0], logdirs[0], outputs[0]).run(stop)]
    else:
        summaries = Trainer.packed(configs, logdirs, outputs).run_all(stop)
    if tracked:
        train_tracking.finish(tracked, summaries)
    for summary in summaries:
        print(json.dumps(summary))
    return 0
