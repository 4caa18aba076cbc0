"""`dreamerbench sweep SPEC` and `dreamerbench status SWEEP`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from dreamerbench.core.reader import PositiveInt, flag
from dreamerbench.experiments import status as status_lib
from dreamerbench.experiments import sweep as launcher
from dreamerbench.experiments import tracking
from dreamerbench.experiments.profiles import load_profile
from dreamerbench.experiments.spec import EXECUTORS, expand, key_differences, load_spec


def register(subparsers) -> None:
    sweep = subparsers.add_parser(
        "sweep",
        help="run a sweep spec (suite x tasks x seeds x grid) locally or on Slurm",
        description="Expand a sweep spec into runs and submit those that are not finished, "
        "queued or running; results go to MLflow (one experiment per sweep).",
    )
    sweep.add_argument("spec", help="sweep spec, e.g. experiments/quickstart.yaml")
    sweep.add_argument("--executor", choices=EXECUTORS, help="override the spec's executor")
    sweep.add_argument("--profile", help="Slurm profile: name in slurm/profiles/ or a path")
    sweep.add_argument(
        "--dry-run",
        action="store_true",
        help="print the runs and their resources; create and submit nothing",
    )
    sweep.add_argument("--rerun-failed", action="store_true", help="also resubmit FAILED runs")
    sweep.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)",
    )
    sweep.add_argument(
        "--workdir",
        help="run logdirs and executor files (default: ./runs/sweeps, or the profile's workdir)",
    )
    sweep.add_argument(
        "--parallel",
        type=flag(PositiveInt, "--parallel"),
        help="local executor: worker processes at once, one per pack of seeds (spec's parallel)",
    )
    sweep.add_argument(
        "--seeds-per-process",
        type=flag(PositiveInt, "--seeds-per-process"),
        metavar="K",
        help="train up to K seeds of one task and grid point together in one process "
        "with one vmapped train step (spec's seeds_per_process)",
    )
    sweep.add_argument(
        "--wait", action="store_true", help="slurm executor: wait for the jobs to end"
    )
    sweep.set_defaults(func=run_sweep)

    status = subparsers.add_parser("status", help="progress of a sweep's runs (from MLflow)")
    status.add_argument("sweep", help="sweep name or spec file")
    status.add_argument("--tracking-uri", help="MLflow tracking URI (as for sweep)")
    status.set_defaults(func=run_status)


def run_sweep(args: argparse.Namespace, echo=print) -> int:
    spec = load_spec(args.spec)
    executor = args.executor or spec.executor
    parallel = spec.parallel if args.parallel is None else args.parallel
    seeds_per_process = (
        spec.seeds_per_process if args.seeds_per_process is None else args.seeds_per_process
    )
    profile = load_profile(args.profile or spec.profile) if executor == "slurm" else None
    runs = expand(spec)
    tracking_uri = tracking.resolve_tracking_uri(args.tracking_uri)
    workdir = Path(
        args.workdir or (profile.workdir if profile and profile.workdir else "runs/sweeps")
    )
    target = launcher.Target(tracking_uri=tracking_uri, workdir=workdir.resolve())

    packs = len(
        launcher.pack_runs([launcher.Planned(run, "new", "") for run in runs], seeds_per_process)
    )
    if executor == "slurm":
        resources = profile.describe()
        jobs = -(-packs // profile.runs_per_job)
        where = f"slurm, profile {profile.name}: {jobs} array jobs, each {resources}"
    else:
        where = f"local, {parallel} process(es) at a time on this machine"
    echo(f"sweep {spec.name}: {len(runs)} runs ({spec.suite}) -> {where}")
    if seeds_per_process > 1:
        trained_by = (
            f"each job trains {profile.runs_per_job} pack(s)" if profile else "one process per pack"
        )
        echo(
            f"packed: {len(runs)} runs in {packs} packs of up to {seeds_per_process} seeds of one "
            f"task and grid point (one vmapped train step per pack); {trained_by}"
        )
    echo(
        f"MLflow: {tracking_uri} (experiment {spec.name!r}); logdirs under {sweep_dir_text(target, spec)}"
    )

    if args.dry_run:
        recorded = _recorded_runs(tracking_uri, spec.name)
        existing = tracking.runs_by_key(recorded)
        queue = launcher.slurm_queue() if existing else {}
        planned = launcher.plan(runs, existing, args.rerun_failed, queue)
        for item in planned:
            c = item.run.config
            echo(
                f"  {item.run.key}  {item.run.label:<40} steps={c.run.steps:<9,} "
                f"size={c.agent.size:<5} envs={c.run.envs:<3} {item.action:<6} ({item.reason})"
            )
            if item.action == "new" and recorded:
                echo(f"      {why_new(item.run, recorded)}")
        if seeds_per_process > 1:
            for index, pack in enumerate(launcher.pack_runs(planned, seeds_per_process)):
                where = (
                    f"job {index // profile.runs_per_job + 1}"
                    if profile
                    else f"process {index + 1}"
                )
                echo(f"  {where}: " + " + ".join(item.run.label for item in pack))
        echo("dry run: nothing created or submitted")
        return 0

    if executor == "slurm":
        try:
            launcher.check_slurm(profile)  # before anything is created
        except launcher.SlurmUnavailable as error:
            print(f"dreamerbench sweep: error: {error}; nothing was submitted", file=sys.stderr)
            return 2
    tracker = tracking.Tracker(tracking_uri)  # an unreachable server: one line, nothing created
    with launcher.launcher_lock(target, spec.name):
        experiment_id = tracker.experiment(spec.name)
        existing = tracking.runs_by_key(tracker.runs(experiment_id))
        queue = launcher.slurm_queue() if executor == "slurm" or _has_slurm_runs(existing) else None
        planned = launcher.plan(runs, existing, args.rerun_failed, queue)
        skipped = [p for p in planned if p.action == "skip"]
        for item in skipped:
            echo(f"  skip     {item.run.label:<40} {item.reason}")
        packs = launcher.prepare(
            launcher.pack_runs(planned, seeds_per_process), tracker, experiment_id, target
        )
        tasks = [task for pack in packs for task in pack]
        if not tasks:
            echo(f"nothing to submit: {len(skipped)} runs finished, queued, running or failed")
            _print_where(echo, spec, tracker.uri)
            return 0

        start = time.monotonic()
        if executor == "slurm":
            jobs = launcher.submit_slurm(packs, profile, spec, target, experiment_id, tracker)
            echo(
                f"submitted {len(tasks)} runs as {len(jobs)} Slurm jobs: "
                f"{', '.join(j.job_id for j in jobs)}"
            )
            if args.wait:
                launcher.wait_slurm([j.job_id for j in jobs])
                echo(f"jobs ended after {time.monotonic() - start:.0f} s")
                return _report(echo, spec, tracker, experiment_id, [t.key for t in tasks])
            _print_where(echo, spec, tracker.uri)
            return 0
        echo(f"training {len(tasks)} runs locally in {len(packs)} processes, {parallel} at a time")
        codes = launcher.run_local(packs, parallel, spec, target, experiment_id, echo=echo)
        if any(code == launcher.EXIT_INTERRUPTED for code in codes.values()):
            echo(f"stopped early; resume with: dreamerbench sweep {args.spec}")
        echo(f"sweep {spec.name} took {time.monotonic() - start:.0f} s")
        return _report(echo, spec, tracker, experiment_id, [t.key for t in tasks])


def sweep_dir_text(target, spec) -> str:
    return str(launcher.sweep_dir(target, spec.name))


def _recorded_runs(tracking_uri: str, name: str) -> list:
    """MLflow runs of the sweep, without creating a database or experiment."""
    try:
        tracker = tracking.Tracker(tracking_uri, create=False)
        return tracker.runs(tracker.find_experiment(name).experiment_id)
    except (FileNotFoundError, ValueError):  # no store, or no experiment of that name yet
        return []


def why_new(run, recorded) -> str:
    """Why `run` (a spec.RunSpec) has a key that no recorded MLflow run of its sweep has: the
    key fields (``spec.key_differences``) in which it differs from the recorded run of the
    same task and seed that is closest to it, or that there is none."""
    tags = lambda r: r.data.tags  # noqa: E731
    same = [
        r
        for r in recorded
        if tags(r).get(tracking.TAG + "task") == run.task
        and tags(r).get(tracking.TAG + "seed") == str(run.seed)
    ]
    if not same:
        return f"no recorded run of {run.task} seed {run.seed}"
    closest = min(same, key=lambda r: len(key_differences(run, r.data.params)))
    diffs = key_differences(run, closest.data.params)
    key = closest.data.tags.get(tracking.TAG + "run_key", "?")
    if not diffs:
        return f"recorded run {key} has the same config under an older key (keys before issue 14 held bookkeeping fields)"
    return f"differs from recorded run {key} in " + "; ".join(diffs)


def _has_slurm_runs(existing: dict) -> bool:
    return any(tracking.TAG + "slurm_job_id" in r.data.tags for r in existing.values())


def _report(echo, spec, tracker: tracking.Tracker, experiment_id, keys) -> int:
    """The closing ``runs:`` line: each run's state as ``dreamerbench status`` shows it
    (:func:`dreamerbench.experiments.status.state_of`); exit 0 only if every run finished."""
    runs = tracking.runs_by_key(tracker.runs(experiment_id))
    queue = launcher.slurm_queue() if _has_slurm_runs(runs) else None
    states = {k: status_lib.state_of(runs[k], queue) if k in runs else "missing" for k in keys}
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    echo("runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    _print_where(echo, spec, tracker.uri)
    return 0 if all(s == "finished" for s in states.values()) else 1


def _print_where(echo, spec, tracking_uri) -> None:
    echo(f"results: MLflow experiment {spec.name!r} at {tracking_uri}")
    echo(
        f"  dreamerbench status {spec.name}"
        + (
            ""
            if tracking_uri == tracking.default_tracking_uri()
            else f" --tracking-uri {tracking_uri}"
        )
    )
    if tracking_uri.startswith("sqlite:///"):
        echo(f"  mlflow ui --backend-store-uri {tracking_uri}")


def run_status(args: argparse.Namespace, echo=print) -> int:
    tracking_uri = tracking.resolve_tracking_uri(args.tracking_uri)
    expected = []
    name = args.sweep
    resume = "dreamerbench sweep SPEC (the sweep's spec file)"
    if name.endswith((".yaml", ".yml")) or os.path.sep in name:
        spec = load_spec(name)
        name = spec.name
        expected = expand(spec)
        resume = f"dreamerbench sweep {args.sweep}"
    tracker = tracking.Tracker(tracking_uri, create=False)
    runs = tracker.runs(tracker.find_experiment(name).experiment_id)
    queue = launcher.slurm_queue()
    rows = status_lib.rows_from_runs(runs, queue, expected)
    echo(status_lib.render(name, rows, resume=resume))
    return 0
