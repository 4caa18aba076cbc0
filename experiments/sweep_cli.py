"""`dreamerbench sweep SPEC` and `dreamerbench status SWEEP`."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from dreamerbench.agent.config import SeedsPerProcess
from dreamerbench.core.files import unusable_directory
from dreamerbench.core.reader import PositiveInt, flag, refuse
from dreamerbench.experiments import launchers, tracking
from dreamerbench.experiments import status as status_lib
from dreamerbench.experiments import sweep as sweep_lib
from dreamerbench.experiments.job import EXIT_INTERRUPTED
from dreamerbench.experiments.launchers.base import Context, SubmitRefused
from dreamerbench.experiments.spec import example_spec, expand, key_differences, load_spec


def register(subparsers) -> None:
    sweep = subparsers.add_parser(
        "sweep",
        help="run a sweep spec (suite x tasks x seeds x grid) locally or on Slurm",
        description="Expand a sweep spec into runs and submit those that are not finished, "
        "queued or running; results go to MLflow (one experiment per sweep).",
    )
    sweep.add_argument(
        "spec",
        help="sweep spec, e.g. experiments/quickstart.yaml, or the name of an example shipped "
        "with dreamerbench (quickstart, atari100k, ...)",
    )
    sweep.add_argument(
        "--executor", choices=list(launchers.LAUNCHERS), help="override the spec's executor"
    )
    sweep.add_argument(
        "--profile",
        help="the launcher's profile, e.g. a Slurm profile: name in slurm/profiles/ or a path",
    )
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
        type=flag(SeedsPerProcess, "--seeds-per-process"),
        metavar="K",
        help="train up to K seeds of one task and grid point together in one process "
        "with one vmapped train step (spec's seeds_per_process)",
    )
    sweep.add_argument(
        "--wait",
        action="store_true",
        help="wait for the jobs to end (a launcher that trains here, such as local, always does)",
    )
    sweep.set_defaults(func=run_sweep)

    status = subparsers.add_parser("status", help="progress of a sweep's runs (from MLflow)")
    status.add_argument("sweep", help="sweep name or spec file")
    status.add_argument("--tracking-uri", help="MLflow tracking URI (as for sweep)")
    status.set_defaults(func=run_status)


def run_sweep(args: argparse.Namespace, echo=print) -> int:
    spec = load_spec(find_spec(args.spec))
    launcher_cls = launchers.get(args.executor or spec.executor)
    parallel = spec.parallel if args.parallel is None else args.parallel
    seeds_per_process = (
        spec.seeds_per_process if args.seeds_per_process is None else args.seeds_per_process
    )
    launcher = launcher_cls(launcher_cls.read_profile(args.profile or spec.profile))
    runs = expand(spec)
    tracking_uri = tracking.resolve_tracking_uri(args.tracking_uri)
    named = args.workdir if args.workdir is not None else launcher.workdir or "runs/sweeps"
    unusable = unusable_directory(named)  # the text: '' would be the current folder
    if unusable:  # before the store: nothing is created for a workdir that cannot be one
        raise refuse("--workdir", str(named), f"a directory, new or existing ({unusable})")
    workdir = Path(named)
    target = sweep_lib.Target(tracking_uri=tracking_uri, workdir=workdir.resolve())

    packs = len(
        sweep_lib.pack_runs([sweep_lib.Planned(run, "new", "") for run in runs], seeds_per_process)
    )
    where = launcher.describe(packs, parallel)
    echo(f"sweep {spec.name}: {len(runs)} runs ({spec.suite}) -> {where}")
    if seeds_per_process > 1:
        echo(
            f"packed: {len(runs)} runs in {packs} packs of up to {seeds_per_process} seeds of one "
            f"task and grid point (one vmapped train step per pack); each {launcher.job_word} "
            f"trains {launcher.packs_per_job} pack(s)"
        )
    echo(
        f"MLflow: {tracking_uri} (experiment {spec.name!r}); "
        f"logdirs under {sweep_lib.sweep_dir(target, spec.name)}"
    )
    refused = _print_plan(echo, runs, launcher, seeds_per_process)
    if refused:
        print(f"dreamerbench sweep: error: {refused}; nothing was submitted", file=sys.stderr)
        return 2

    if args.dry_run:
        recorded = _recorded_runs(target, spec.name)
        existing = tracking.runs_by_key(recorded)
        planned = sweep_lib.plan(runs, existing, args.rerun_failed, launchers.Watch())
        for item in planned:
            c = item.run.config
            echo(
                f"  {item.run.key}  {item.run.label:<40} steps={c.run.steps:<9,} "
                f"size={c.agent.size:<5} envs={c.run.envs:<3} {item.action:<6} ({item.reason})"
            )
            if item.action == "new" and recorded:
                echo(f"      {why_new(item.run, recorded)}")
        if seeds_per_process > 1:
            for index, pack in enumerate(sweep_lib.pack_runs(planned, seeds_per_process)):
                job = index // launcher.packs_per_job + 1
                echo(f"  {launcher.job_word} {job}: " + " + ".join(i.run.label for i in pack))
        echo("dry run: nothing created or submitted")
        return 0

    try:
        launcher.check()  # before anything is created
    except launchers.LauncherUnavailable as error:
        print(f"dreamerbench sweep: error: {error}; nothing was submitted", file=sys.stderr)
        return 2
    tracker = tracking.Tracker(tracking_uri)  # an unreachable server: one line, nothing created
    experiment_id = sweep_lib.claim(tracker, spec.name, target)  # before the workdir's lock
    with sweep_lib.launcher_lock(target, spec.name):
        existing = tracking.runs_by_key(tracker.runs(experiment_id))
        planned = sweep_lib.plan(runs, existing, args.rerun_failed, launchers.Watch())
        skipped = [p for p in planned if p.action == "skip"]
        for item in skipped:
            echo(f"  skip     {item.run.label:<40} {item.reason}")
        planned_packs = sweep_lib.pack_runs(planned, seeds_per_process)
        packs = sweep_lib.prepare(planned_packs, tracker, experiment_id, target, launcher.name)
        keys = [task.key for pack in packs for task in pack]
        if not keys:
            echo(f"nothing to submit: {len(skipped)} runs finished, queued, running or failed")
            _print_where(echo, spec, tracker.uri)
            return 0

        start = time.monotonic()
        context = Context(
            sweep=spec.name,
            folder=sweep_lib.sweep_dir(target, spec.name) / launcher.name,
            tracking_uri=tracking_uri,
            experiment_id=experiment_id,
            tracker=tracker,
            parallel=parallel,
            echo=echo,
        )
        try:
            jobs = launcher.submit(packs, context)
        except SubmitRefused as error:
            left = sweep_lib.unsubmit(planned_packs, packs, error.submitted, tracker)
            started = sum(len(job.tasks) for job in error.submitted)
            print(
                f"dreamerbench sweep: error: {error}; {started} runs submitted, {left} not "
                f"(run the sweep again to submit them)",
                file=sys.stderr,
            )
            return 2
        if not launcher.trains_here:
            if not args.wait:
                _print_where(echo, spec, tracker.uri)
                return 0
            launcher.wait(jobs)
            echo(f"jobs ended after {time.monotonic() - start:.0f} s")
        else:
            if any(job.code == EXIT_INTERRUPTED for job in jobs):
                echo(f"stopped early; resume with: dreamerbench sweep {args.spec}")
            echo(f"sweep {spec.name} took {time.monotonic() - start:.0f} s")
        return _report(echo, spec, tracker, experiment_id, keys)


def _print_plan(echo, runs, launcher, seeds_per_process: int) -> str:
    """Print the resource plan of the sweep's jobs (``experiments/plan.py``: all runs, packed as
    the launcher packs them) in a short table; returns the one-line refusal where the profile's
    ``mem_gb`` cannot hold a job, else ''."""
    from dreamerbench.experiments import plan as plan_lib

    gpus = getattr(launcher.profile, "gpus_per_node", None)
    if gpus is None:
        import jax

        on_gpu = jax.default_backend() == "gpu"
    else:
        on_gpu = gpus > 0
    packs = [
        [(item.run.config, item.run.label) for item in pack]
        for pack in sweep_lib.pack_runs(
            [sweep_lib.Planned(run, "new", "") for run in runs], seeds_per_process
        )
    ]
    plan = plan_lib.planner(on_gpu)
    jobs = plan_lib.plan_jobs(packs, launcher.packs_per_job, plan, on_gpu)
    echo(f"resources per {launcher.job_word} ({'GPU' if on_gpu else 'CPU'} train step):")
    for line in plan_lib.table(jobs, launcher.job_word):
        echo(line)
    mem_gb = getattr(launcher.profile, "mem_gb", None)
    if mem_gb is None:
        return ""
    refused = plan_lib.refusal(jobs, packs, launcher.packs_per_job, seeds_per_process, plan, mem_gb)
    return f"profile {launcher.profile.name!r}: {refused}" if refused else ""


def find_spec(name: str, sweep_name_ok: bool = False) -> str | Path | None:
    """The spec file that the command-line argument `name` names: the file, if there is one;
    else the example shipped with the package if `name` is an example's name or
    ``experiments/<name>.yaml`` (said in one line on stderr); else `name` (a missing file:
    ``load_spec`` says so), or None where `sweep_name_ok` and `name` looks like a sweep's name
    (``status``), not a file (no ``.yaml`` ending, no ``/``)."""
    if Path(name).is_file():
        return name
    example = example_spec(name)
    if example is not None:
        print(
            f"dreamerbench: no file {name} here; reading the example shipped with dreamerbench: "
            f"{example}",
            file=sys.stderr,
        )
        return example
    if sweep_name_ok and not (name.endswith((".yaml", ".yml")) or os.path.sep in name):
        return None
    return name


def _recorded_runs(target: sweep_lib.Target, name: str) -> list:
    """MLflow runs of the sweep, without creating a database or experiment; ReadError naming
    ``--workdir`` where another workdir owns the sweep (:func:`sweep_lib.workdir_refusal`: the
    dry run refuses what the sweep would)."""
    try:
        tracker = tracking.Tracker(target.tracking_uri, create=False)
        experiment = tracker.find_experiment(name)
    except (FileNotFoundError, ValueError):  # no store, or no experiment of that name yet
        return []
    refused = sweep_lib.workdir_refusal(experiment, target)
    if refused is not None:
        raise refused
    return tracker.runs(experiment.experiment_id)


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
        return (
            f"recorded run {key} has the same config under an older key "
            "(keys before issue 14 held bookkeeping fields)"
        )
    return f"differs from recorded run {key} in " + "; ".join(diffs)


def _report(echo, spec, tracker: tracking.Tracker, experiment_id, keys) -> int:
    """The closing ``runs:`` line: each run's state as ``dreamerbench status`` shows it
    (:func:`dreamerbench.experiments.status.state_of`); exit 0 only if every run finished."""
    runs = tracking.runs_by_key(tracker.runs(experiment_id))
    watch = launchers.Watch()
    states = {k: status_lib.state_of(runs[k], watch) if k in runs else "missing" for k in keys}
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
        echo(f"  mlflow ui --backend-store-uri {shlex.quote(tracking.mlflow_uri(tracking_uri))}")


def run_status(args: argparse.Namespace, echo=print) -> int:
    tracking_uri = tracking.resolve_tracking_uri(args.tracking_uri)
    expected = []
    name = args.sweep
    resume = "dreamerbench sweep SPEC (the sweep's spec file)"
    path = find_spec(name, sweep_name_ok=True)
    if path is not None:
        spec = load_spec(path)
        name = spec.name
        expected = expand(spec)
        resume = f"dreamerbench sweep {args.sweep}"
    tracker = tracking.Tracker(tracking_uri, create=False)
    runs = tracker.runs(tracker.find_experiment(name).experiment_id)
    rows = status_lib.rows_from_runs(runs, launchers.Watch(), expected)
    echo(status_lib.render(name, rows, resume=resume))
    return 0
