"""`dreamerbench train`: one run on a real environment, resumable from its logdir."""

from __future__ import annotations

import argparse
import json
import signal
import threading


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train one agent on one task",
        description="Train DreamerV3 on one task. Re-running on the same logdir resumes.",
    )
    parser.add_argument("--suite", required=True, help="suite name (see `dreamerbench suites`)")
    parser.add_argument("--task", required=True, help="task within the suite")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", help="model size preset, e.g. 1m, 12m (sets agent.size)")
    parser.add_argument("--steps", type=float, help="agent steps in total (sets run.steps)")
    parser.add_argument("--logdir", required=True, help="run directory (resumed if it holds a checkpoint)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="config override, e.g. --set agent.train_ratio=64 (repeatable)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.trainer import Trainer, resolve_config

    overrides = {}
    if args.size:
        overrides["agent.size"] = args.size
    if args.steps:
        overrides["run.steps"] = args.steps
    config = resolve_config(args.suite, args.task, args.seed, [f"{k}={v}" for k, v in overrides.items()] + args.overrides)
    stop = threading.Event()
    # Ctrl-C and SIGTERM stop at the next safe point, after a checkpoint.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    summary = Trainer(config, args.logdir).run(stop)
    print(json.dumps(summary))
    return 0
