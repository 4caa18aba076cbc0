"""``dreamerbench table`` and ``dreamerbench plot``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.references import SUITES, get_suite

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PUBLISHED = REPO_ROOT.parent / "shared" / "baselines" / "dreamerv3"
KINDS = ("curves", "aggregate", "profile")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", required=True, help=f"one of {', '.join(SUITES)}")
    parser.add_argument("--runs", metavar="SWEEP", help="MLflow experiment (sweep) with our runs")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLflow's own default)")
    parser.add_argument("--baseline", action="append", default=[], metavar="METHOD",
                        help="published method to compare with (repeatable), e.g. dreamerv3, ppo_fixhp")
    parser.add_argument("--published-dir", help=f"directory or URL of SUITE-METHOD.json.gz files (default: {DEFAULT_PUBLISHED} if it exists)")
    parser.add_argument("--cache-dir", help="where published files fetched from a URL are kept")
    parser.add_argument("--budget-frames", type=float, help="override the suite's budget (frames) of the final-score rule")
    parser.add_argument("--window-frames", type=float, help="override the suite's final window (frames)")
    parser.add_argument("--reps", type=int, help="bootstrap resamples (table: 50000, plots: 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap's random generator")


def register(subparsers) -> None:
    table = subparsers.add_parser("table", help="per-task and aggregate scores with CIs, methods side by side")
    _common(table)
    table.add_argument("--format", default="markdown", choices=("markdown", "latex", "csv"))
    table.add_argument("--out", help="write the table here instead of stdout")
    table.set_defaults(func=run_table)
    plot = subparsers.add_parser("plot", help="learning curves, aggregate IQM curve or performance profile")
    _common(plot)
    plot.add_argument("--kind", required=True, choices=KINDS)
    plot.add_argument("--out", required=True, help="output path; written as .png and .pdf")
    plot.add_argument("--bins", type=int, default=30, help="points per curve")
    plot.set_defaults(func=run_plot)


def published_dir(given: str | None) -> str:
    """``given``, else the default shared folder; a clear error if neither exists."""
    if given:
        return given
    if DEFAULT_PUBLISHED.is_dir():
        return str(DEFAULT_PUBLISHED)
    raise ValueError(f"--published-dir is required: the default {DEFAULT_PUBLISHED} does not exist")


def collect(args) -> tuple[pd.DataFrame, list[str]]:
    """Episodes of our runs (``--runs``) and published baselines, and method order."""
    from analysis.data import load_published, load_runs

    ref = get_suite(args.suite)
    parts, methods = [], []
    if args.runs:
        notes: list[str] = []
        ours = load_runs(args.tracking_uri, args.runs, notes)
        _warn(notes)
        suites = sorted(set(ours["suite"]))
        ours = ours[ours["suite"] == ref.name]
        if ours.empty:
            raise ValueError(f"experiment={args.runs!r} has no runs of suite {ref.name!r}; its suites: {', '.join(suites)}")
        parts.append(ours)
        methods += sorted(set(ours["method"]))
    if args.baseline:
        source = published_dir(args.published_dir)
        for method in args.baseline:
            if method in methods:
                raise ValueError(f"baseline={method!r} has the same name as a method of --runs; rename one")
            parts.append(load_published(ref.name, method, source, args.cache_dir))
            methods.append(method)
    if not parts:
        raise ValueError("nothing to show: give --runs SWEEP and/or --baseline METHOD")
    return pd.concat(parts, ignore_index=True), methods


def _rule(args):
    from analysis.scores import FinalRule

    return FinalRule.for_suite(get_suite(args.suite), args.budget_frames, args.window_frames)


def _warn(notes: list[str]) -> None:
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)


def run_table(args) -> int:
    from analysis.tables import compare, render

    episodes, methods = collect(args)
    comp = compare(episodes, get_suite(args.suite), _rule(args), methods,
                   np.random.default_rng(args.seed), reps=args.reps or 50_000)
    _warn(comp.notes)
    text = render(comp, args.format)
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def run_plot(args) -> int:
    from analysis import plots
    from analysis.tables import compare, score_matrix

    ref, rule = get_suite(args.suite), _rule(args)
    episodes, methods = collect(args)
    rng = np.random.default_rng(args.seed)
    reps = args.reps or plots.CURVE_REPS
    comp = compare(episodes, ref, rule, methods, rng, reps=reps)
    _warn(comp.notes)
    if args.kind == "curves":
        fig = plots.plot_curves(episodes, ref, methods, rng, rule.budget_frames, args.bins, reps)
    elif args.kind == "aggregate":
        fig = plots.plot_aggregate(episodes, ref, methods, rng, rule.budget_frames, args.bins, reps)
    else:
        finals = {m: score_matrix(comp.finals[m], "normalized", comp.tasks[m]) for m in methods}
        fig = plots.plot_profile(finals, ref.name, rng, reps)
    for path in plots.save(fig, args.out):
        print(path)
    return 0
