"""`dreamerbench train`: one run on a real environment, resumable from its logdir."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import traceback
from pathlib import Path

from dreamerbench.agent.config import SEED_MAX, SeedsPerProcess, hint
from dreamerbench.core.files import unusable_directory
from dreamerbench.core.reader import flag, refuse
from dreamerbench.experiments.spec import NAME


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one agent on one task",
        description="Train DreamerV3 on one task. Re-running on the same logdir resumes.",
    )
    parser.add_argument("--suite", required=True, help="suite name (see `dreamerbench suites`)")
    parser.add_argument("--task", required=True, help="task within the suite")
    parser.add_argument(
        "--seed",
        type=flag(hint("seed"), "--seed"),
        default=0,
        help="seed (the first seed with --seeds-per-process)",
    )
    parser.add_argument(
        "--seeds-per-process",
        type=flag(SeedsPerProcess, "--seeds-per-process"),
        default=1,
        metavar="K",
        help="train seeds SEED..SEED+K-1 in this process with one vmapped train step; "
        "run i then writes to LOGDIR/seed<SEED+i>",
    )
    parser.add_argument(
        "--size",
        type=flag(hint("agent.size"), "--size"),
        help="model size preset, e.g. 1m, 12m (sets agent.size)",
    )
    parser.add_argument(
        "--steps",
        type=flag(hint("run.steps"), "--steps"),
        help="agent steps in total (sets run.steps)",
    )
    parser.add_argument(
        "--output",
        type=_outputs_flag,
        metavar="NAME[,NAME]",
        help="also write the records to tensorboard and/or wandb (sets run.outputs), "
        "e.g. --output tensorboard,wandb",
    )
    parser.add_argument(
        "--logdir", required=True, help="run directory (resumed if it holds a checkpoint)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. --set agent.train_ratio=64 (repeatable)",
    )
    parser.add_argument(
        "--tracking-uri",
        help="also record to MLflow (off by default), e.g. sqlite:///mlflow.db, as a run "
        "of --experiment that `dreamerbench table --runs EXPERIMENT` reads",
    )
    parser.add_argument(
        "--experiment",
        type=flag(NAME, "--experiment"),
        default="train",
        help="MLflow experiment with --tracking-uri (default: train)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Read and check everything (flags, ``--set``, the suite protocol, the logdir), then train.

    Every config is fully validated (:func:`dreamerbench.agent.config.validate`) before the
    Trainer exists, so a refused start writes nothing into the logdir.
    """
    from dreamerbench.agent.config import resolve_config
    from dreamerbench.agent.trainer import Trainer

    flags = {
        "agent.size": args.size,
        "run.steps": args.steps,
        "run.outputs": None if args.output is None else "[" + ", ".join(args.output) + "]",
    }
    overrides = [f"{k}={v}" for k, v in flags.items() if v is not None] + args.overrides
    last_seed = args.seed + args.seeds_per_process - 1
    if last_seed > SEED_MAX:
        raise refuse(
            "--seeds-per-process",
            args.seeds_per_process,
            f"an integer in [1, {SEED_MAX - args.seed + 1}] from --seed={args.seed} "
            f"(seeds end at {SEED_MAX})",
        )
    seeds = range(args.seed, last_seed + 1)
    configs = [resolve_config(args.suite, args.task, seed, overrides) for seed in seeds]
    logdirs = (
        [Path(args.logdir)]
        if len(configs) == 1
        else [Path(args.logdir) / f"seed{seed}" for seed in seeds]
    )
    for logdir in [args.logdir, *logdirs]:  # the text first: '' would be the current folder
        check_logdir(logdir)
    tracker, run_ids = None, []
    if args.tracking_uri:
        from dreamerbench.experiments import train_tracking

        command = train_tracking.command_line(args.argv)
        tracker, run_ids = train_tracking.start(
            args.tracking_uri, args.experiment, configs, logdirs, command
        )
    from dreamerbench.experiments.plan import process_line

    notes = [process_line(configs)]  # the trainer prints it once the run has started
    stop = threading.Event()
    # Ctrl-C and SIGTERM stop at the next safe point, after a checkpoint.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    from dreamerbench.agent.rundir import LogdirBusy
    from dreamerbench.experiments.outputs import build, end

    # A stopped train run is KILLED, not SCHEDULED: no queue resumes it, its command does.
    outputs = build(configs, logdirs, tracker, run_ids, queued=False)
    try:
        if len(configs) == 1:
            summaries = [Trainer(configs[0], logdirs[0], outputs[0], notes=notes).run(stop)]
        else:
            summaries = Trainer.packed(configs, logdirs, outputs, notes=notes).run_all(stop)
    except LogdirBusy:
        raise  # another process trains these runs: their outputs are its own
    except BaseException:
        for run_outputs in outputs:
            end(run_outputs, error=traceback.format_exc())
        raise
    for run_outputs, summary in zip(outputs, summaries):
        end(run_outputs, summary)
    for summary in summaries:
        print(json.dumps(summary))
    stopped = [s for s in summaries if not s.get("finished")]
    if stopped:
        print(
            f"stopped at {stopped[0]['steps']:,} of {configs[0].run.steps:,} steps; "
            f"resume: run the same command again (--logdir {args.logdir})",
            file=sys.stderr,
        )
    return 0


def _outputs_flag(text: str) -> tuple[str, ...]:
    """``--output tensorboard,wandb`` read as ``run.outputs`` (one line naming what is allowed
    otherwise)."""
    import argparse

    from dreamerbench.core.reader import ReadError, read

    try:
        return read([name.strip() for name in text.split(",")], hint("run.outputs"), "--output")
    except ReadError:
        error = refuse(
            "--output", text, "tensorboard, wandb, or both comma-separated (tensorboard,wandb)"
        )
        raise argparse.ArgumentTypeError(str(error)) from None


def check_logdir(logdir: str | Path) -> None:
    """ReadError unless ``logdir`` is a directory this process can write in, or can become one
    (:func:`dreamerbench.core.files.unusable_directory` says why not)."""
    problem = unusable_directory(logdir)
    if problem is not None:
        raise refuse("--logdir", str(logdir), f"a directory, new or existing ({problem})")
