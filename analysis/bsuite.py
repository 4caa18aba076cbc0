"""bsuite's own summary of our bsuite runs: scores per experiment and by tag, bar and radar plots.

bsuite (Osband et al. 2020, arXiv 1908.03568) scores each of its experiments in [0, 1] with the
experiment's ``bsuite/experiments/<experiment>/analysis.py`` and summarises an agent by its
tags (``bsuite.experiments.summary_analysis``): a tag's score is the mean score of the
experiments that carry it (basic, credit_assignment, exploration, generalization, memory,
noise, scale; an experiment has one to three).

Our runs reach the analysis through MLflow: every episode record of a bsuite run carries
bsuite's counters (``bsuite_<key>``, ``dreamerbench.suites.bsuite.BsuiteEnv``), delivered as
``episode/bsuite_<key>`` metrics and read back by :func:`dreamerbench.analysis.load_runs`;
:func:`dreamerbench.suites.bsuite.bsuite_score` turns them into bsuite's log and calls bsuite's
score. bsuite runs one agent over every configuration of an experiment, so the configurations
of one experiment that share one of our seeds make one bsuite run, scored on its own, and an
experiment's score here is the mean over seeds. bsuite reads every configuration's first
``NUM_EPISODES`` episodes (1,000 or 10,000); a configuration with fewer is scored on what it
has, and bsuite calls it not finished, as here.

The bar plot is bsuite's own (``summary_analysis.bsuite_bar_plot``, plotnine, which bsuite
requires). bsuite's radar plot fails with pandas 2 (it averages a text column), so
:func:`plot_radar` draws it with matplotlib as bsuite does: the tags in sorted order around
the circle, a score below 0.05 drawn at 0.05 and a tag without a scored experiment at 0.05
(bsuite draws both so that the polygon keeps its shape), grey rings at 0.25, 0.5, 0.75, 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dreamerbench.analysis.tables import CSV_COLUMNS, _tex
from dreamerbench.suites.bsuite import (
    CONFIGS,
    LOG_PREFIX,
    UNSCORABLE,
    analysis_module,
    bsuite_score,
    experiment_of,
)

RADAR_FLOOR = 0.05
"""bsuite's radar plot draws no score below this, so that the polygon keeps its shape."""
SCORE_COLUMNS = (
    "method",
    "experiment",
    "tags",
    "score",
    "seeds",
    "configs",
    "of",
    "episodes",
    "needed",
    "note",
)
TAG_COLUMNS = ("method", "tag", "score", "experiments")


def _summary():
    """``bsuite.experiments.summary_analysis`` (imports every experiment's analysis and
    plotnine: about a second)."""
    return analysis_module("summary_analysis")


def tags() -> list[str]:
    """bsuite's 7 tags, sorted (the radar plot's order)."""
    return sorted(_summary().ALL_TAGS)


def experiment_scores(episodes: pd.DataFrame) -> pd.DataFrame:
    """bsuite's score of every experiment our bsuite runs cover, per method.

    ``episodes``: rows of :func:`dreamerbench.analysis.load_runs` (``method``, ``task``,
    ``seed``, ``step``, ``score``, ``length`` and the ``bsuite_<key>`` counters), one per
    episode in each run's order; rows without a score (a run without episodes) are left out.
    Returns one row per (method, experiment) in bsuite's sweep order with the columns of
    :data:`SCORE_COLUMNS`: ``tags`` (tuple), ``score`` (mean over seeds of bsuite's score, in
    [0, 1]; NaN where it cannot be scored, ``note`` says why), ``seeds``, ``configs`` (the
    experiment's configurations with episodes) ``of`` its configurations, ``episodes`` (the
    fewest episodes of a configuration) and ``needed`` (bsuite's ``NUM_EPISODES``).
    """
    info = _summary().BSUITE_INFO
    episodes = episodes.dropna(subset=["score"])
    episodes = episodes.assign(experiment=episodes["task"].map(experiment_of))
    counters = [c for c in episodes.columns if c.startswith(LOG_PREFIX)]
    order = {name: i for i, name in enumerate(CONFIGS)}
    rows = []
    groups = episodes.groupby(["method", "experiment"], sort=False)
    for (method, experiment), runs in sorted(groups, key=lambda g: order[g[0][1]]):
        scores, note = _seed_scores(experiment, runs, counters)
        rows.append(
            {
                "method": method,
                "experiment": experiment,
                "tags": tuple(info[experiment].tags),
                "score": float(np.mean(scores)) if scores else np.nan,
                "seeds": runs["seed"].nunique(),
                "configs": runs["task"].nunique(),
                "of": CONFIGS[experiment],
                "episodes": int(runs.groupby(["seed", "task"]).size().min()),
                "needed": info[experiment].episode,
                "note": note,
            }
        )
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _seed_scores(
    experiment: str, runs: pd.DataFrame, counters: list[str]
) -> tuple[list[float], str]:
    """bsuite's score of ``experiment`` for each seed of ``runs`` (its configurations' episodes),
    or no scores and why not."""
    if experiment in UNSCORABLE:
        return [], UNSCORABLE[experiment]
    scores = []
    for _, seed_runs in runs.groupby("seed"):
        records = {
            task: run[["score", "length", *counters]].dropna(axis=1, how="all").to_dict("records")
            for task, run in seed_runs.groupby("task")
        }
        try:
            scores.append(bsuite_score(experiment, records))
        except ValueError as error:
            return [], str(error)
    return scores, ""


def tag_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """bsuite's summary by tag (``summary_analysis.ave_score_by_tag``) of
    :func:`experiment_scores`, per method: one row per (method, tag) with the columns of
    :data:`TAG_COLUMNS`, ``score`` the mean over the method's scored experiments that carry
    the tag (NaN where none does) and ``experiments`` their number; tags in sorted order."""
    rows = []
    for method, scored in scores.dropna(subset=["score"]).groupby("method", sort=False):
        frame = scored.assign(tags=scored["tags"].map(str))  # bsuite matches tags in a text
        by_tag = _summary().ave_score_by_tag(frame, sweep_vars=None).set_index("tag")["score"]
        for tag in tags():
            count = int(scored["tags"].map(lambda t, tag=tag: tag in t).sum())
            rows.append({"method": method, "tag": tag, "score": by_tag[tag], "experiments": count})
    return pd.DataFrame(rows, columns=TAG_COLUMNS)


# --- the table's bsuite section ------------------------------------------------------


def _score_cell(row) -> str:
    if np.isnan(row.score):
        return "-"
    done = "" if row.episodes >= row.needed else f", {row.episodes:,}/{row.needed:,} episodes"
    return f"{row.score:.3f} ({row.configs}/{row.of} configs{done})"


def section(scores: pd.DataFrame, by_tag: pd.DataFrame, fmt: str, evaluation: bool) -> str:
    """The bsuite section that ``dreamerbench table --suite bsuite`` appends for ``--runs``:
    :func:`experiment_scores` and :func:`tag_scores` as two tables in ``fmt`` (markdown,
    latex), or for csv as rows of the table's long format (``CSV_COLUMNS``; sections
    ``bsuite_experiment`` and ``bsuite_tag``, unit ``fraction``), without a header.
    ``evaluation``: the scores are of evaluation episodes (``--episodes eval``)."""
    if fmt == "csv":
        return _csv(scores, by_tag)
    methods = list(dict.fromkeys(scores["method"]))
    cells = scores.set_index(["experiment", "method"])
    tags_of = dict(zip(scores["experiment"], scores["tags"], strict=False))
    table = [
        [name, ", ".join(tags_of[name])]
        + [_score_cell(cells.loc[(name, m)]) if (name, m) in cells.index else "-" for m in methods]
        for name in tags_of
    ]
    tag_cells = by_tag.set_index(["tag", "method"])
    summary = [
        [tag]
        + [
            _tag_cell(tag_cells.loc[(tag, m)]) if (tag, m) in tag_cells.index else "-"
            for m in methods
        ]
        for tag in tags()
    ]
    notes = [
        f"{r.experiment} ({r.method}): not scored: {r.note}" for r in scores.itertuples() if r.note
    ]
    which = "evaluation" if evaluation else "training"
    rule = (
        f"bsuite's own scores (bsuite 0.3.6 analysis, in [0, 1]) of the {which} episodes: per "
        "experiment the mean over seeds of bsuite's score of the experiment's configurations "
        "(k/n configs: configurations run of the experiment's n; bsuite reads each "
        "configuration's first NUM_EPISODES episodes, and 'e/N episodes' marks fewer); per "
        "tag the mean score of the scored experiments that carry it (bsuite's "
        "summary_analysis.ave_score_by_tag)."
    )
    return _render(
        rule, ["experiment", "tags", *methods], table, ["tag", *methods], summary, notes, fmt
    )


def _tag_cell(row) -> str:
    return "-" if np.isnan(row.score) else f"{row.score:.3f} ({int(row.experiments)} exp.)"


def _csv(scores: pd.DataFrame, by_tag: pd.DataFrame) -> str:
    """The table's long-format rows (``CSV_COLUMNS``) of the bsuite section, no header."""
    common = {"quantity": "bsuite_score", "unit": "fraction"}
    rows = [
        {
            **common,
            "section": "bsuite_experiment",
            "name": r.experiment,
            "method": r.method,
            "value": r.score,
            "n_seeds": r.seeds,
            "n_runs": r.seeds * r.configs,
            "notes": r.note or _finished(r),
        }
        for r in scores.itertuples()
    ]
    rows += [
        {
            **common,
            "section": "bsuite_tag",
            "name": r.tag,
            "method": r.method,
            "value": r.score,
            "n_tasks": r.experiments,
        }
        for r in by_tag.itertuples()
    ]
    out = pd.DataFrame(rows, columns=CSV_COLUMNS)
    counts = ["n_seeds", "n_tasks", "n_runs"]
    out[counts] = out[counts].astype("Int64")
    return out.to_csv(index=False, header=False)


def _finished(row) -> str:
    """What an experiment's scores lack ("" where every configuration ran bsuite's
    ``NUM_EPISODES`` episodes): configurations not run, configurations with fewer episodes."""
    if row.episodes >= row.needed and row.configs == row.of:
        return ""
    return f"{row.configs}/{row.of} configs, fewest episodes {row.episodes:,} of {row.needed:,}"


def _render(rule, header, rows, tag_header, tag_rows, notes, fmt) -> str:
    """The rule line, the experiment and tag tables and the notes, in markdown or latex."""
    if fmt == "latex":
        lines = [f"% {rule}"]
        for head, body in ((header, rows), (tag_header, tag_rows)):
            lines += [
                r"\begin{tabular}{l" + "r" * (len(head) - 1) + "}",
                r"\toprule",
                " & ".join(_tex(h) for h in head) + r" \\",
                r"\midrule",
                *(" & ".join(_tex(c) for c in row) + r" \\" for row in body),
                r"\bottomrule",
                r"\end{tabular}",
            ]
        lines += [f"% {note}" for note in notes]
        return "\n" + "\n".join(lines) + "\n"
    lines = ["", rule]
    for head, body in ((header, rows), (tag_header, tag_rows)):
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
    lines += [""] * bool(notes) + notes
    return "\n".join(lines) + "\n"


# --- plots -----------------------------------------------------------------------------


def plot_bar(scores: pd.DataFrame):
    """bsuite's bar plot (``summary_analysis.bsuite_bar_plot``) of :func:`experiment_scores`:
    one panel per method, a bar per scored experiment coloured by its first tag, faded where
    not finished. Returns the matplotlib Figure plotnine draws."""
    scored = scores.dropna(subset=["score"])
    if scored.empty:
        raise ValueError("no bsuite experiment of the runs could be scored; nothing to plot")
    frame = pd.DataFrame(
        {
            "bsuite_env": scored["experiment"],
            "score": scored["score"],
            "type": scored["tags"].map(lambda t: t[0]),
            "finished": [not _finished(r) for r in scored.itertuples()],
            "method": scored["method"],
        }
    )
    return _summary().bsuite_bar_plot(frame, sweep_vars=["method"]).draw()


def plot_radar(by_tag: pd.DataFrame):
    """bsuite's radar plot of :func:`tag_scores` (drawn as the module doc says): one closed
    polygon per method over the sorted tags. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    if by_tag.empty:
        raise ValueError("no bsuite experiment of the runs could be scored; nothing to plot")
    names = tags()
    angles = np.linspace(0, 2 * np.pi, len(names), endpoint=False)
    fig = plt.figure(figsize=(6, 6.5), layout="constrained")
    ax = fig.add_subplot(111, polar=True)
    ring = np.linspace(0, 2 * np.pi, 100)
    for radius, alpha in ((0.25, 0.05), (0.5, 0.05), (0.75, 0.03), (1.0, 0.01)):
        ax.fill(ring, np.full(100, radius), color="k", alpha=alpha)
    for method, rows in by_tag.groupby("method", sort=False):
        values = rows.set_index("tag")["score"].reindex(names).fillna(0.0).to_numpy()
        values = np.maximum(values, RADAR_FLOOR)
        closed = np.append(angles, angles[0]), np.append(values, values[0])
        (line,) = ax.plot(*closed, "-", linewidth=2.5, label=method)
        ax.fill(*closed, alpha=0.2, color=line.get_color())
    ax.set_thetagrids(np.degrees(angles), [n.replace("_", " ").title() for n in names])
    ax.set_ylim(0, 1)
    ax.set_title("bsuite scores by tag (bsuite's summary_analysis)", fontsize=10)
    fig.legend(loc="outside lower center", frameon=False, fontsize=8)
    return fig
