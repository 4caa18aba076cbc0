"""Figures: per-task learning curves, aggregate IQM curve, performance profile.

Every figure works with a single seed (the CI band then collapses onto the line) and
is saved as both PNG and PDF. The x axis is agent environment steps; frames are
``steps x action_repeat`` of the suite.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: tests, notebooks and clusters have no display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.metrics import aggregate_iqm, bootstrap, performance_profile, task_means
from analysis.references import SuiteReference
from analysis.scores import normalized

CURVE_REPS = 2_000
"""Resamples per curve point: bands are for the eye; tables use 50,000."""


def bin_runs(episodes: pd.DataFrame, budget_frames: float, bins: int = 30) -> pd.DataFrame:
    """Mean score per run in ``bins`` equal bins of ``(0, budget_frames]``.

    Returns columns method, task, seed, bin, frames (bin end), score (NaN if no episode
    ended in the bin). Rows beyond the budget are ignored.
    """
    edges = np.linspace(0.0, budget_frames, bins + 1)
    ep = episodes[episodes["score"].notna() & (episodes["frames"] > 0) & (episodes["frames"] <= budget_frames)]
    ep = ep.assign(bin=np.searchsorted(edges, ep["frames"], side="left") - 1)
    means = ep.groupby(["method", "task", "seed", "bin"])["score"].mean()
    runs = episodes[["method", "task", "seed"]].drop_duplicates()
    full = runs.merge(pd.DataFrame({"bin": np.arange(bins)}), how="cross")
    out = full.merge(means.reset_index(), on=["method", "task", "seed", "bin"], how="left")
    out["frames"] = edges[1:][out["bin"]]
    return out


def _band(values: np.ndarray, rng: np.random.Generator, reps: int):
    """Mean over seeds and its bootstrap CI at each point; ``values: [R, K]``."""
    points = ~np.all(np.isnan(values), axis=0)
    mean = np.full(values.shape[1], np.nan)
    lo, hi = mean.copy(), mean.copy()
    if points.any():
        est = bootstrap(values[:, points], {"m": task_means}, rng, reps)["m"]
        mean[points], lo[points], hi[points] = est.point, est.lo, est.hi
    return mean, lo, hi


def _methods_legend(fig, axes) -> None:
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, max(1, len(labels))), frameon=False)


def plot_curves(episodes: pd.DataFrame, ref: SuiteReference, methods: list[str], rng: np.random.Generator,
                budget_frames: float, bins: int = 30, reps: int = CURVE_REPS):
    """Grid of per-task learning curves: mean over seeds with a 95% CI band."""
    binned = bin_runs(episodes, budget_frames, bins)
    tasks = [t for t in ref.tasks if t in set(binned["task"])]
    cols = min(len(tasks), 6)
    rows = int(np.ceil(len(tasks) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.2 * rows + 0.6), squeeze=False)
    for ax in axes.flat[len(tasks):]:
        ax.axis("off")
    for ax, task in zip(axes.flat, tasks):
        for i, method in enumerate(methods):
            sub = binned[(binned["task"] == task) & (binned["method"] == method)]
            if sub.empty:
                continue
            values = sub.pivot(index="seed", columns="bin", values="score").reindex(columns=range(bins)).to_numpy()
            mean, lo, hi = _band(values, rng, reps)
            steps = np.linspace(0, budget_frames, bins + 1)[1:] / ref.action_repeat
            ok = np.isfinite(mean)
            ax.plot(steps[ok], mean[ok], color=f"C{i}", label=method, marker="." if ok.sum() < 3 else None)
            ax.fill_between(steps[ok], lo[ok], hi[ok], color=f"C{i}", alpha=0.2, lw=0)
        ax.set_title(task, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.supxlabel(f"agent steps (x{ref.action_repeat} frames)", fontsize=9)
    _methods_legend(fig, axes.flat)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_aggregate(episodes: pd.DataFrame, ref: SuiteReference, methods: list[str], rng: np.random.Generator,
                   budget_frames: float, bins: int = 30, reps: int = CURVE_REPS):
    """IQM of the normalised score over tasks and seeds at each bin, with 95% CI.

    A bin is drawn only where every task the method ran has a score on some seed
    (otherwise the IQM would silently change its task set along the curve).
    """
    binned = bin_runs(episodes, budget_frames, bins)
    binned["norm"] = [float(normalized(ref, t, s)) for t, s in zip(binned["task"], binned["score"])]
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    steps = np.linspace(0, budget_frames, bins + 1)[1:] / ref.action_repeat
    for i, method in enumerate(methods):
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
        ok = np.isfinite(iqm)
        ax.plot(steps[ok], iqm[ok], color=f"C{i}", label=method, marker="." if ok.sum() < 3 else None)
        ax.fill_between(steps[ok], lo[ok], hi[ok], color=f"C{i}", alpha=0.2, lw=0)
    ax.set_xlabel(f"agent steps (x{ref.action_repeat} frames)")
    ax.set_ylabel("IQM normalised score")
    ax.set_title(ref.name)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_profile(finals: dict[str, np.ndarray], title: str, rng: np.random.Generator, reps: int = CURVE_REPS):
    """Performance profiles ``F(tau)`` of normalised final scores ``{method: [R, T]}``."""
    top = max(np.nanmax(m) for m in finals.values())
    taus = np.linspace(0.0, max(top, 1e-9) * 1.05, 101)
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    for i, (method, scores) in enumerate(finals.items()):
        est = bootstrap(scores, {"f": lambda x: performance_profile(x, taus)}, rng, reps)["f"]
        ax.plot(taus, est.point, color=f"C{i}", label=method)
        ax.fill_between(taus, est.lo, est.hi, color=f"C{i}", alpha=0.2, lw=0)
    ax.set_xlabel(r"normalised score $\tau$")
    ax.set_ylabel(r"fraction of runs with score $> \tau$")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save(fig, out: str | Path) -> list[Path]:
    """Write ``out`` as PNG and PDF (whatever suffix ``out`` has); return both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return paths
