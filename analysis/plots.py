"""Figures: per-task learning curves, aggregate IQM curve, performance profile.

Every figure works with a single seed (the CI band then collapses onto the line) and
is saved as both PNG and PDF. The x axis of curves is environment frames (agent steps
x the suite's action repeat), as in the tables' final-score rule; normalised scores
are in percent, as in the tables. Bands are 95% stratified-bootstrap CIs
(dreamerbench.analysis.metrics) and every figure says so.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, MaxNLocator

from dreamerbench.analysis.metrics import aggregate_iqm, bootstrap, performance_profile, task_means
from dreamerbench.analysis.scores import normalized, require_normalization, run_score
from dreamerbench.analysis.tables import plural
from dreamerbench.suites import Suite

CURVE_REPS = 2_000
"""Resamples per curve point: bands are for the eye; tables use 50,000."""
PAPER_RC = {"pdf.fonttype": 42, "ps.fonttype": 42}
"""Fonts embedded as TrueType (Type 42), not Type 3: publishers' PDF checks refuse Type 3."""


def bin_runs(
    episodes: pd.DataFrame, suite: Suite, budget_frames: float, bins: int = 30
) -> pd.DataFrame:
    """Score per run in ``bins`` equal bins of ``(0, budget_frames]``: the suite's run
    score (:func:`dreamerbench.analysis.scores.run_score`: mean return, or Crafter score) of the
    episodes ending in each bin.

    Returns columns method, task, seed, bin, frames (bin end), score (NaN if no episode
    ended in the bin). Rows beyond the budget are ignored.
    """
    edges = np.linspace(0.0, budget_frames, bins + 1)
    ep = episodes[
        episodes["score"].notna() & (episodes["frames"] > 0) & (episodes["frames"] <= budget_frames)
    ]
    ep = ep.assign(bin=np.searchsorted(edges, ep["frames"], side="left") - 1)
    groups = ep.groupby(["method", "task", "seed", "bin"])
    if suite.run_score == "mean":
        means = groups["score"].mean()
    else:
        means = pd.Series(
            {key: run_score(rows, suite) for key, rows in groups}, name="score", dtype=np.float64
        )
        means.index.names = ["method", "task", "seed", "bin"]
    runs = episodes[["method", "task", "seed"]].drop_duplicates()
    full = runs.merge(pd.DataFrame({"bin": np.arange(bins)}), how="cross")
    out = full.merge(means.reset_index(), on=["method", "task", "seed", "bin"], how="left")
    out["frames"] = edges[1:][out["bin"]]
    return out


def compact(x: float, _pos=None) -> str:
    """Short tick label of a count or score: ``0``, ``250``, ``200k``, ``1.5M``, ``2G``,
    ``-0.5``."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def _frames_axis(ax, budget_frames: float, ticks: int) -> None:
    """x from 0 to the budget with at most ``ticks`` short labels (0, 200k, 400k)."""
    ax.xaxis.set_major_locator(MaxNLocator(nbins=ticks, steps=[1, 2, 2.5, 5, 10], min_n_ticks=2))
    ax.xaxis.set_major_formatter(FuncFormatter(compact))
    ax.set_xlim(0, budget_frames)


BAND_BLOCK = 64
"""Points of a curve bootstrapped together: the resamples held at once are reps x this many."""


def _band(values: np.ndarray, rng: np.random.Generator, reps: int):
    """Mean over seeds and its bootstrap CI at each point; ``values: [R, K]``.

    Each point is a stratum of its own, so points are resampled in blocks of
    :data:`BAND_BLOCK` (memory reps x block, not reps x K) with the same distribution."""
    (points,) = np.nonzero(~np.all(np.isnan(values), axis=0))
    mean = np.full(values.shape[1], np.nan)
    lo, hi = mean.copy(), mean.copy()
    for start in range(0, len(points), BAND_BLOCK):
        block = points[start : start + BAND_BLOCK]
        est = bootstrap(values[:, block], {"m": task_means}, rng, reps)["m"]
        mean[block], lo[block], hi[block] = est.point, est.lo, est.hi
    return mean, lo, hi


def _line(ax, xs, mean, lo, hi, color: str, label: str) -> None:
    """A line with its CI band; one or two points (short runs) as points with CI bars, drawn
    whole where they sit on the axes' border (a run's last bin ends at the budget, the x
    limit)."""
    ok = np.isfinite(mean)
    if ok.sum() < 3:
        ax.errorbar(
            xs[ok],
            mean[ok],
            yerr=[mean[ok] - lo[ok], hi[ok] - mean[ok]],
            color=color,
            label=label,
            fmt="o",
            ms=4,
            capsize=3,
            clip_on=False,
        )
        return
    ax.plot(xs[ok], mean[ok], color=color, label=label)
    ax.fill_between(xs[ok], lo[ok], hi[ok], color=color, alpha=0.2, lw=0)


def _label(episodes: pd.DataFrame, method: str, tasks: bool) -> str:
    """``method (26 tasks, 5 seeds)``: what a line averages over (``1-5 seeds`` if uneven)."""
    runs = episodes[episodes["method"] == method]
    counts = sorted(set(runs.groupby("task")["seed"].nunique()))
    seeds = plural(counts[-1], "seed") if len(counts) == 1 else f"{counts[0]}-{counts[-1]} seeds"
    return f"{method} ({plural(runs['task'].nunique(), 'task') + ', ' if tasks else ''}{seeds})"


def _nothing_to_plot(
    episodes: pd.DataFrame,
    methods: list[str],
    budget_frames: float,
    what: str,
    allowed: str = "a --budget-frames that some episode ends within",
) -> ValueError:
    """The one-line refusal of a figure with nothing on it (``what`` says what each line needs)."""
    valid = episodes[
        episodes["score"].notna() & (episodes["frames"] > 0) & episodes["method"].isin(methods)
    ]
    first = (
        f" (their first episode ends at {valid['frames'].min():,.0f} frames)"
        if len(valid)
        else " (they have no scored episode)"
    )
    return ValueError(
        f"nothing to plot: no line of {', '.join(methods)} has {what} in (0, {budget_frames:,.0f}] "
        f"frames{first}; allowed: {allowed}"
    )


def _ci_text(reps: int) -> str:
    return f"band (bar at a lone point):\n95% CI, stratified bootstrap, {reps:,} resamples"


def _wrap(text: str, width_inches: float, fontsize: float) -> str:
    """``text`` broken at spaces into lines that fit ``width_inches`` at ``fontsize`` points
    (a character is at most about 0.6 em wide); existing line breaks are kept."""
    chars = max(10, int(width_inches * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def _ylim(axes, ylim: tuple[float, float] | None) -> None:
    """The y range ``(low, high)`` of every axes (``plot --ylim``); None: matplotlib's."""
    for ax in axes if ylim else ():
        ax.set_ylim(*ylim)


def plot_curves(
    episodes: pd.DataFrame,
    suite: Suite,
    methods: list[str],
    rng: np.random.Generator,
    budget_frames: float,
    bins: int = 30,
    reps: int = CURVE_REPS,
    evaluation: bool = False,
    ylim: tuple[float, float] | None = None,
):
    """Grid of per-task learning curves: mean score (:func:`bin_runs`) over seeds with a 95% CI
    band.

    One panel per task of the first of ``methods`` that has episodes (our runs, when
    compared with published ones). ``evaluation``: our runs' episodes are evaluation
    episodes (the y-label says so). ``ylim``: every panel's y range (score units)."""
    binned = bin_runs(episodes, suite, budget_frames, bins)
    binned = binned[binned["method"].isin(methods)]
    if not binned["score"].notna().any():
        raise _nothing_to_plot(episodes, methods, budget_frames, "an episode")
    # The tasks of the first method with scores (ours, when compared with published runs).
    first = next(m for m in methods if binned.loc[binned["method"] == m, "score"].notna().any())
    present = set(binned.loc[binned["method"] == first, "task"])
    # Open-task suites (gym, dm_env): any task the runs have, by name; else the suite's order.
    tasks = (
        sorted(present)
        if suite.open_tasks is not None
        else [t for t in suite.tasks if t in present]
    )
    cols = min(len(tasks), 6)
    rows = int(np.ceil(len(tasks) / cols))
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(max(2.4 * cols + 0.6, 5.0), 2.0 * rows + 1.2),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat[len(tasks) :]:
        ax.axis("off")
    xs = np.linspace(0, budget_frames, bins + 1)[1:]
    for ax, task in zip(axes.flat, tasks):
        for i, method in enumerate(methods):
            sub = binned[(binned["task"] == task) & (binned["method"] == method)]
            if sub.empty:
                continue
            values = (
                sub.pivot(index="seed", columns="bin", values="score")
                .reindex(columns=range(bins))
                .to_numpy()
            )
            _line(
                ax,
                xs,
                *_band(values, rng, reps),
                color=f"C{i}",
                label=_label(episodes, method, tasks=False),
            )
        ax.set_title(task, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.yaxis.set_major_formatter(FuncFormatter(compact))
        _frames_axis(ax, budget_frames, ticks=3)  # small panels: 3 labels never run together
    _ylim(axes.flat[: len(tasks)], ylim)
    fig.supxlabel("environment frames", fontsize=9)
    score = "Crafter score (%) per bin" if suite.run_score == "crafter" else "episode return"
    fig.supylabel(f"{_evaluation(evaluation)}{score} (mean over seeds)", fontsize=9)
    handles, labels = _entries(axes.flat, methods)
    # As many columns as fit the figure's width (about 13 characters an inch at 8 pt).
    ncol = max(1, min(len(labels), int(fig.get_figwidth() * 13) // (max(map(len, labels)) + 5)))
    # The legend, titled with what the figure shows, sits above the grid: clear of every label.
    fig.legend(
        handles,
        labels,
        loc="outside upper center",
        frameon=False,
        ncol=ncol,
        fontsize=8,
        title=_wrap(f"{suite.name}: mean over seeds\n{_ci_text(reps)}", fig.get_figwidth(), 9),
        title_fontsize=9,
    )
    return fig


def _evaluation(evaluation: bool) -> str:
    """The y-label's prefix when our runs' scores come from evaluation episodes
    (``--episodes eval``)."""
    return "evaluation episodes: " if evaluation else ""


def _entries(axes, methods: list[str]) -> tuple[list, list[str]]:
    """Legend handles and labels of all ``axes``, once each, in the order of ``methods``."""
    entries = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    labels = sorted(entries, key=lambda label: methods.index(label.rsplit(" (", 1)[0]))
    return [entries[label] for label in labels], labels


def plot_aggregate(
    episodes: pd.DataFrame,
    suite: Suite,
    methods: list[str],
    rng: np.random.Generator,
    budget_frames: float,
    bins: int = 30,
    reps: int = CURVE_REPS,
    evaluation: bool = False,
    ylim: tuple[float, float] | None = None,
):
    """IQM of the normalised score (%) over tasks and seeds at each bin, with a 95% CI
    (``evaluation``: of our runs' evaluation episodes, as the y-label says). ``ylim``: the y
    range (%).

    A bin is drawn only where every task the method ran has a score on some seed
    (otherwise the IQM would silently change its task set along the curve).
    """
    require_normalization(suite, "plot --kind aggregate")
    binned = bin_runs(episodes, suite, budget_frames, bins)
    binned["norm"] = [
        100 * float(normalized(suite, t, s)) for t, s in zip(binned["task"], binned["score"])
    ]
    xs = np.linspace(0, budget_frames, bins + 1)[1:]
    lines = []
    for method in methods:
        sub = binned[binned["method"] == method]
        cube = sub.set_index(["bin", "seed", "task"])["norm"].unstack("task")  # rows (bin, seed)
        iqm, lo, hi = (np.full(bins, np.nan) for _ in range(3))
        for b in range(bins):
            if b not in cube.index.get_level_values(0):
                continue
            mat = cube.loc[b].to_numpy()
            if np.all(np.isnan(mat), axis=0).any():
                continue
            est = bootstrap(mat, {"iqm": aggregate_iqm}, rng, reps)["iqm"]
            iqm[b], lo[b], hi[b] = est.point, est.lo, est.hi
        lines.append((iqm, lo, hi))
    if not any(np.isfinite(iqm).any() for iqm, _, _ in lines):
        raise _nothing_to_plot(
            episodes,
            methods,
            budget_frames,
            "a bin with a score on every task it ran",
            "fewer --bins (wider bins) or a larger --budget-frames",
        )
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 3.6), layout="constrained")
    for i, (method, (iqm, lo, hi)) in enumerate(zip(methods, lines)):
        _line(ax, xs, iqm, lo, hi, color=f"C{i}", label=_label(episodes, method, tasks=True))
    _frames_axis(ax, budget_frames, ticks=5)
    ax.set_xlabel("environment frames")
    ax.set_ylabel(_evaluation(evaluation) + f"IQM {suite.normalized_name} (%)")
    _ylim([ax], ylim)
    title = f"{suite.name}: IQM over tasks and seeds\n{_ci_text(reps)}"
    ax.set_title(_wrap(title, AXES_WIDTH, 9), fontsize=9)
    _legend_below(fig, *_entries([ax], methods))
    return fig


def plot_profile(
    finals: dict[str, np.ndarray], suite: Suite, rng: np.random.Generator, reps: int = CURVE_REPS
):
    """Performance profiles ``F(tau)`` of normalised final scores ``{method: [R, T]}`` (fractions).
    Raises ValueError for a suite without score references."""
    require_normalization(suite, "plot --kind profile")
    top = max(np.nanmax(m) for m in finals.values())
    taus = np.linspace(0.0, max(top, 1e-9) * 1.05, 101)
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 3.6), layout="constrained")
    for i, (method, scores) in enumerate(finals.items()):
        est = bootstrap(scores, {"f": lambda x: performance_profile(x, taus)}, rng, reps)["f"]
        runs = int(np.sum(~np.isnan(scores)))
        label = f"{method} ({plural(scores.shape[1], 'task')}, {plural(runs, 'run')})"
        ax.plot(100 * taus, est.point, color=f"C{i}", label=label)
        ax.fill_between(100 * taus, est.lo, est.hi, color=f"C{i}", alpha=0.2, lw=0)
    ax.set_xlabel(rf"final {suite.normalized_name} $\tau$ (%)")
    ax.set_ylabel(r"fraction of runs with score $> \tau$")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(_wrap(f"{suite.name}: final scores\n{_ci_text(reps)}", AXES_WIDTH, 9), fontsize=9)
    _legend_below(fig, *ax.get_legend_handles_labels())
    return fig


FIGURE_WIDTH = 5.0
"""Width (inches) of the aggregate and profile figures."""
AXES_WIDTH = FIGURE_WIDTH - 1.0
"""What the y label and its ticks leave of it for the title (inches)."""


def _legend_below(fig, handles, labels) -> None:
    """One legend under the x label, where no curve or band can be."""
    fig.legend(handles, labels, loc="outside lower center", frameon=False, fontsize=8, ncol=1)


def save(fig, out: str | Path) -> list[Path]:
    """Write ``out`` as PNG and PDF (whatever suffix ``out`` has; the PDF's fonts TrueType,
    :data:`PAPER_RC`); return both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".pdf")]
    with plt.rc_context(PAPER_RC):
        for path in paths:
            fig.savefig(path, dpi=150)
    plt.close(fig)
    return paths
