"""``dreamerbench table`` and ``dreamerbench plot``."""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd

from dreamerbench import suites
from dreamerbench.analysis.scores import DEFAULT_MISSING, MISSING, FinalRule
from dreamerbench.core.files import StorageError, file_in_the_way, unusable_directory
from dreamerbench.core.reader import NonNegativeInt, Range, flag, refuse
from dreamerbench.suites import SUITES, Suite

KINDS = ("curves", "aggregate", "profile")
BSUITE_KINDS = ("radar", "bar")
"""``plot --kind`` of ``--suite bsuite`` alone: bsuite's summaries of our runs
(:mod:`dreamerbench.analysis.bsuite`)."""
TABLE_REPS = 50_000
Reps = Annotated[
    int,
    Range(
        ge=100,
        le=200_000,
        note=(
            "below 100 a 95% CI's ends rest on the 2 or 3 most extreme resamples; 200,000 is 4x "
            "the table's default and halves its resampling error, past it only time and memory grow"
        ),
    ),
]
"""``--reps``: bootstrap resamples (atari100k's table with dreamerv3 at 200,000: 3.2 s,
280 MB peak)."""
Bins = Annotated[
    int,
    Range(
        ge=1,
        le=1_000,
        note=(
            "a curve panel is about 360 pixels wide and the aggregate plot 750 at 150 dpi: more "
            "points draw nothing new"
        ),
    ),
]
"""``--bins``: points per curve."""
MAX_FRAMES = 10**12
Frames = Annotated[
    int,
    Range(
        ge=1,
        le=MAX_FRAMES,
        note=(
            "whole frames, at most 10^12: 5,000 times atari57's 200M-frame budget, "
            "the largest suite's"
        ),
    ),
]
"""``--budget-frames`` and ``--window-frames``: a number of environment frames."""
OUT_ALLOWED = (
    "a file path, not a folder, whose nearest existing folder is writable "
    "(missing parent folders are created when the result is written)"
)
PUBLISHED_HELP = (
    "Published scores: by default the per-run files published with danijar/dreamerv3 "
    "(folder scores/, commit e3f0224; Atari, DMC, Minecraft) and danijar/crafter "
    "(folder scores/, commit e04542a; Crafter), downloaded once from raw.githubusercontent.com "
    "into --cache-dir; --published-dir DIR reads a local copy instead. "
    "`dreamerbench suites NAME` lists the methods published for a suite."
)


def _cache_dir_flag(text: str) -> str:
    """argparse ``type=`` of ``--cache-dir``: a directory, new or existing, this process may
    write in (:func:`dreamerbench.core.files.unusable_directory`), checked before any
    download, which would otherwise fail blamed on the URL."""
    unusable = unusable_directory(text)
    if unusable is not None:
        raise argparse.ArgumentTypeError(
            str(refuse("--cache-dir", text, f"a directory, new or existing ({unusable})"))
        )
    return text


_cache_dir_flag.__name__ = "folder"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", required=True, help=f"one of {', '.join(SUITES)}")
    parser.add_argument("--runs", metavar="SWEEP", help="MLflow experiment (sweep) with our runs")
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else "
        "sqlite:///./mlflow.db, as for `dreamerbench sweep`)",
    )
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="METHOD",
        help="published method to compare with (repeatable), e.g. dreamerv3, ppo_fixhp; "
        "Crafter: human, random",
    )
    parser.add_argument(
        "--published-dir",
        metavar="DIR_OR_URL",
        help="folder or http(s) URL of the published files (default: the suite's files at "
        "the pinned commit, e.g. https://raw.githubusercontent.com/danijar/dreamerv3/"
        "e3f02248693a79dc8b0ebd62c93683888ddaccfe/scores)",
    )
    parser.add_argument(
        "--cache-dir",
        type=_cache_dir_flag,
        help="where files fetched from a URL are kept (default: ~/.cache/dreamerbench/published)",
    )
    parser.add_argument(
        "--budget-frames",
        type=flag(Frames, "--budget-frames"),
        help="budget of the final-score rule, in whole frames, 1 to 10^12 "
        "(default: the budget recorded with the --runs runs, else the suite's)",
    )
    parser.add_argument(
        "--window-frames",
        type=flag(Frames, "--window-frames"),
        help="final window in whole frames, 1 to the budget "
        "(default: the suite's, capped at the budget)",
    )
    parser.add_argument(
        "--missing",
        choices=tuple(MISSING),
        default=DEFAULT_MISSING,
        help="runs with no episode in the final window: leave-out (default: no score from "
        "outside a run's own window), task-mean (mean of the task's other seeds) or last "
        "(the run's own last episodes); every such run is footnoted",
    )
    parser.add_argument(
        "--episodes",
        type=flag(Literal["suite", "train", "eval"], "--episodes"),
        default="suite",
        help="which episodes of the --runs runs make scores: train, eval (evaluation episodes, "
        "run.eval_every) or suite (default: what the suite's protocol asks for, "
        "train for every suite here)",
    )
    parser.add_argument(
        "--reps",
        type=flag(Reps, "--reps"),
        help=f"bootstrap resamples, 100 to 200,000 (default: table {TABLE_REPS:,}, plots 2,000); "
        "fewer give CIs that rest on a handful of resamples, more only cost time and memory",
    )
    parser.add_argument(
        "--seed",
        type=flag(NonNegativeInt, "--seed"),
        default=0,
        help="seed of the bootstrap's random generator",
    )


def register(subparsers) -> None:
    table = subparsers.add_parser(
        "table",
        help="per-task and aggregate scores with CIs, methods side by side",
        description="Final scores of our runs and published baselines, per task and "
        "aggregated, with 95% stratified-bootstrap CIs.",  # not %-formatted, unlike help=
        epilog=PUBLISHED_HELP,
    )
    _common(table)
    table.add_argument("--format", default="markdown", choices=("markdown", "latex", "csv"))
    table.add_argument(
        "--out",
        type=_out_flag("table"),
        help="write the table to this file instead of stdout (missing parent folders are created)",
    )
    table.set_defaults(func=run_table)
    plot = subparsers.add_parser(
        "plot",
        help="learning curves, aggregate IQM curve or performance profile",
        epilog=PUBLISHED_HELP,
    )
    _common(plot)
    plot.add_argument(
        "--kind",
        required=True,
        choices=KINDS + BSUITE_KINDS,
        help="radar and bar: bsuite's summaries of --runs bsuite runs (scores by tag, by "
        "experiment)",
    )
    plot.add_argument(
        "--out",
        required=True,
        type=_out_flag("plot"),
        help="output file path; written as .png and "
        ".pdf (OUT with its suffix replaced; missing parent folders are created)",
    )
    plot.add_argument(
        "--bins",
        type=flag(Bins, "--bins"),
        default=30,
        help="points per curve, 1 to 1,000 (default 30): "
        "a curve panel is about 360 pixels wide, so more points draw nothing new",
    )
    plot.add_argument(
        "--ylim",
        type=_ylim_flag,
        metavar="LOW,HIGH",
        help="y range of --kind curves (score units, every panel) and aggregate (%%), e.g. "
        "0,1000 for DMC returns (default: fitted to the data); not for profile",
    )
    plot.set_defaults(func=run_plot)


def parse_ylim(text: str) -> tuple[float, float]:
    """``--ylim LOW,HIGH``: two finite numbers, LOW < HIGH. Raises ReadError (a ValueError)
    naming --ylim, the value and what is allowed."""
    parts = text.split(",")
    try:
        low, high = (float(part) for part in parts)
    except ValueError:
        low = high = float("nan")
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise refuse("--ylim", text, "LOW,HIGH: two finite numbers, LOW < HIGH, e.g. 0,1000")
    return low, high


def _ylim_flag(text: str) -> tuple[float, float]:
    """argparse ``type=`` of ``--ylim`` (:func:`parse_ylim`)."""
    try:
        return parse_ylim(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


_ylim_flag.__name__ = "LOW,HIGH"


def out_paths(out: str | os.PathLike, command: str) -> list[Path]:
    """The files ``table``/``plot`` write for ``--out``: the path itself, or for ``plot`` the
    path with its suffix replaced by .png and .pdf (:func:`dreamerbench.analysis.plots.save`)."""
    path = Path(out)
    return [path.with_suffix(".png"), path.with_suffix(".pdf")] if command == "plot" else [path]


def check_out(text: str, command: str) -> str:
    """``--out`` of ``table`` and ``plot`` (one rule): a file path, not a folder, whose
    nearest existing folder is writable, with names the file system takes, on a disk (not
    ``/proc`` or ``/sys``; :func:`dreamerbench.core.files.unusable_directory`); an existing
    file must be writable. Checked before anything is read, so a result is never computed
    only to fail at its write; nothing is created here. Raises ReadError naming --out, the
    value and what is allowed."""

    def refused(why: str):
        return refuse("--out", text, f"{OUT_ALLOWED}; {why}")

    if not text or text.endswith(("/", os.sep)) or Path(text).name in ("", ".", ".."):
        raise refused("this names no file")
    for path in dict.fromkeys([Path(text), *out_paths(text, command)]):
        try:
            mode = path.stat().st_mode
        except OSError:  # missing, or a name too long to look up (said below)
            mode = None
        if mode is not None and stat.S_ISDIR(mode):
            raise refused(f"{path} is a folder")
        blocked = file_in_the_way(path.parent)
        if blocked is not None:
            raise refused(f"{blocked} is not a folder")
        unusable = unusable_directory(path if mode is None else path.parent)
        if unusable is not None:
            raise refused(unusable)
        if mode is not None and not os.access(path, os.W_OK):
            raise refused(f"{path} is not writable")
    return text


@contextlib.contextmanager
def _writing(out: str) -> Iterator[None]:
    """Writing the result to ``--out``: what :func:`check_out` cannot know in advance (a full
    disk, a quota) is a StorageError of one line naming --out."""
    try:
        yield
    except OSError as error:
        raise StorageError(
            f"--out {out}: the result could not be written ({error.strerror or error}); "
            "free space or give another --out, then run the command again"
        ) from None


def _out_flag(command: str):
    """argparse ``type=`` of ``--out`` (:func:`check_out`)."""

    def parse(text: str) -> str:
        try:
            return check_out(text, command)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = "file path"
    return parse


@dataclass
class Inputs:
    """What ``table`` and ``plot`` read: episodes, method order, notes, our runs' budget."""

    episodes: pd.DataFrame
    methods: list[str]
    notes: list[tuple[str, str]] = field(default_factory=list)
    sources: str = ""
    """Where the published scores come from, for the table's rule line."""
    budget_frames: float | None = None
    """The one budget recorded with our runs (None without --runs or where none was recorded)."""
    evaluation: bool = False
    """Our runs' scores come from their evaluation episodes (``--episodes eval``)."""


def collect(args, suite: Suite) -> Inputs:
    """Episodes of our runs (``--runs``) and of the published baselines, in method order."""
    from dreamerbench.analysis.data import (
        load_published,
        load_runs,
        published_source,
        recorded_budget,
    )

    parts, methods, budget, sources = [], [], None, ""
    evaluation = False
    if args.runs:
        duplicates: list[str] = []
        episodes = suite.score_episodes if args.episodes == "suite" else args.episodes
        evaluation = episodes == "eval"
        ours = load_runs(args.tracking_uri, args.runs, duplicates, episodes)
        _warn(duplicates)
        names = sorted(set(ours["suite"]))
        ours = ours[ours["suite"] == suite.name]
        if ours.empty:
            raise ValueError(
                f"experiment={args.runs!r} has no runs of suite {suite.name!r}; its suites: "
                f"{', '.join(names)}"
            )
        if args.budget_frames is None:  # the flag decides where the runs' budgets differ
            budget = recorded_budget(ours, args.runs)
        parts.append(ours)
        methods += list(dict.fromkeys(ours["method"]))
    notes = []
    if args.baseline:
        source = published_source(suite, args.published_dir)
        reward_free = suite.published.reward_free if suite.published else ()
        loaded = {}
        # Methods that never see the reward count for the tasks the others show.
        for method in sorted(args.baseline, key=lambda m: m in reward_free):
            if method in methods or method in loaded:
                raise ValueError(
                    f"baseline={method!r} is given twice or is also a method of --runs; rename one"
                )
            shown = sorted(set().union(*[set(p["task"]) for p in parts])) or None
            loaded[method] = load_published(suite.name, method, source, args.cache_dir, tasks=shown)
            parts.append(loaded[method])
            if method in reward_free:
                notes.append(
                    (
                        method,
                        f"{method} never sees the reward: its published episodes count for "
                        f"task(s) {', '.join(sorted(set(loaded[method]['task'])))}.",
                    )
                )
        methods += list(args.baseline)
        where = suite.published.where if not args.published_dir and suite.published else source
        sources = f"{', '.join(args.baseline)} from {where}"
    if not parts:
        raise ValueError("nothing to show: give --runs SWEEP and/or --baseline METHOD")
    return Inputs(pd.concat(parts, ignore_index=True), methods, notes, sources, budget, evaluation)


def _rule(args, suite: Suite, inputs: Inputs) -> FinalRule:
    if args.budget_frames is not None:
        budget, source = args.budget_frames, "--budget-frames"
    elif inputs.budget_frames is not None:
        budget, source = (
            inputs.budget_frames,
            f"the budget the runs of {args.runs!r} were asked for (run.steps x action repeat)",
        )
    else:
        budget, source = None, "the suite's budget"
    return FinalRule.for_suite(
        suite, budget, args.window_frames, args.missing, source, names=FLAG_NAMES
    )


FLAG_NAMES = ("--budget-frames", "--window-frames")
"""What the final-score rule's errors call its two numbers on the command line."""


def _check_rule(args, suite: Suite) -> None:
    """The final-score rule's flags against each other, before anything is read (where
    the budget is given or is the suite's; a budget recorded with --runs is known later)."""
    if args.window_frames is not None and (args.budget_frames is not None or not args.runs):
        source = "--budget-frames" if args.budget_frames is not None else "the suite's budget"
        FinalRule.for_suite(
            suite, args.budget_frames, args.window_frames, args.missing, source, names=FLAG_NAMES
        )


def _warn(notes: list[str]) -> None:
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)


def run_table(args) -> int:
    from dreamerbench.analysis.tables import compare, render

    suite = suites.get_suite(args.suite)
    _check_rule(args, suite)
    inputs = collect(args, suite)
    comp = compare(
        inputs.episodes,
        suite,
        _rule(args, suite, inputs),
        inputs.methods,
        np.random.default_rng(args.seed),
        reps=args.reps or TABLE_REPS,
        notes=tuple(inputs.notes),
        sources=inputs.sources,
        evaluation=inputs.evaluation,
    )
    _warn(comp.notes)
    text = render(comp, args.format)
    if suite.name == "bsuite" and args.runs:
        text += _bsuite_section(inputs, args.format)
    if args.out:
        with _writing(args.out):
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _ours(inputs: Inputs) -> pd.DataFrame:
    """The episodes of the --runs runs (published ones have no run status)."""
    return inputs.episodes[inputs.episodes["status"].notna()]


def _bsuite_section(inputs: Inputs, fmt: str) -> str:
    """bsuite's own scores of the --runs runs, per experiment and by tag, in ``fmt``."""
    from dreamerbench.analysis import bsuite

    scores = bsuite.experiment_scores(_ours(inputs))
    return bsuite.section(scores, bsuite.tag_scores(scores), fmt, inputs.evaluation)


def _check_bsuite_kind(args, suite: Suite) -> None:
    """``--kind radar|bar``: bsuite's summaries, of --runs runs of --suite bsuite only."""
    if args.kind not in BSUITE_KINDS:
        return
    if suite.name != "bsuite":
        raise refuse("--kind", args.kind, f"{', '.join(KINDS)} for --suite {suite.name}")
    if not args.runs:
        raise ValueError(
            f"--kind {args.kind} needs --runs SWEEP: bsuite's scores come from our runs' "
            "episode records (no published bsuite scores exist)"
        )


def run_plot(args) -> int:
    import matplotlib

    # Files only: no window on a cluster without a display. Only the CLI chooses; importing
    # plots keeps the caller's backend (a notebook's inline figures).
    matplotlib.use("Agg")
    from dreamerbench.analysis import plots

    suite = suites.get_suite(args.suite)
    _check_rule(args, suite)
    _check_bsuite_kind(args, suite)
    if args.ylim and args.kind not in ("curves", "aggregate"):
        raise refuse("--ylim", ",".join(map(str, args.ylim)), "--kind curves or aggregate")
    inputs = collect(args, suite)
    rule = _rule(args, suite, inputs)
    rng = np.random.default_rng(args.seed)
    reps = args.reps or plots.CURVE_REPS
    if args.kind == "curves":
        fig = plots.plot_curves(
            inputs.episodes,
            suite,
            inputs.methods,
            rng,
            rule.budget_frames,
            args.bins,
            reps,
            evaluation=inputs.evaluation,
            ylim=args.ylim,
        )
    elif args.kind == "aggregate":
        fig = plots.plot_aggregate(
            inputs.episodes,
            suite,
            inputs.methods,
            rng,
            rule.budget_frames,
            args.bins,
            reps,
            evaluation=inputs.evaluation,
            ylim=args.ylim,
        )
    elif args.kind in BSUITE_KINDS:
        from dreamerbench.analysis import bsuite

        scores = bsuite.experiment_scores(_ours(inputs))
        if args.kind == "bar":
            fig = bsuite.plot_bar(scores)
        else:
            fig = bsuite.plot_radar(bsuite.tag_scores(scores))
    else:  # the profile is of final scores: it needs the final-score rule
        from dreamerbench.analysis.scores import require_normalization
        from dreamerbench.analysis.tables import compare, score_matrix

        require_normalization(suite, "plot --kind profile")  # before the bootstrap, not after
        comp = compare(
            inputs.episodes,
            suite,
            rule,
            inputs.methods,
            rng,
            reps=reps,
            notes=tuple(inputs.notes),
            sources=inputs.sources,
            evaluation=inputs.evaluation,
        )
        _warn(comp.notes)
        finals = {
            m: score_matrix(comp.finals[m], "normalized", comp.tasks[m]) for m in inputs.methods
        }
        fig = plots.plot_profile(finals, suite, rng, reps)
    with _writing(args.out):
        paths = plots.save(fig, args.out)
    for path in paths:
        print(path)
    return 0
