"""Aggregate metrics with stratified-bootstrap confidence intervals, in pure NumPy.

Every score matrix has shape ``[..., R, T]``: R runs (seeds) by T tasks, leading axes
are bootstrap replicates or points on a curve. ``NaN`` marks a missing run, so tasks
may have different numbers of seeds; callers report what is missing (dreamerbench.analysis.tables),
these functions never drop anything silently: a task with no run at all is an error.

Definitions follow Agarwal et al. 2021 (arXiv 2108.13264, "rliable"):

- mean:   ``mean_t m_t`` with ``m_t`` the mean over the runs of task t
- median: ``median_t m_t``
- IQM:    the 25% trimmed mean of all runs of all tasks pooled: sort the n valid
          scores, drop ``floor(n / 4)`` from each end, average the rest
          (``scipy.stats.trim_mean(x, 0.25)``)
- optimality gap: ``gamma - mean(min(x, gamma))`` over all runs pooled (gamma = 1)
- probability of improvement: ``mean_t P(X_t > Y_t)`` with
  ``P(X_t > Y_t) = (#{x > y} + #{x = y} / 2) / (n_x n_y)`` over all pairs of runs
- performance profile: ``F(tau) = mean_t (#{x_t > tau} / n_t)``

Confidence intervals are percentile intervals of the stratified bootstrap: each
replicate resamples, with replacement, the runs of every task separately (keeping
each task's number of runs), so each replicate keeps every task once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

Metric = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its confidence interval ``[lo, hi]``."""

    point: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def _counts(scores: np.ndarray) -> np.ndarray:
    """Valid runs per task, ``[..., T]``; a task without any run is an error."""
    counts = np.sum(~np.isnan(scores), axis=-2)
    if np.any(counts == 0):
        raise ValueError("every task needs at least one run; drop (and report) empty tasks first")
    return counts


def task_means(scores: np.ndarray) -> np.ndarray:
    """Mean over runs per task, ``[..., R, T] -> [..., T]``."""
    if not np.isnan(scores).any():  # fast path: one pass instead of three
        return scores.mean(axis=-2)
    return np.nansum(scores, axis=-2) / _counts(scores)


def aggregate_mean(scores: np.ndarray) -> np.ndarray:
    """``mean_t m_t``, ``[..., R, T] -> [...]``."""
    return task_means(scores).mean(axis=-1)


def aggregate_median(scores: np.ndarray) -> np.ndarray:
    """``median_t m_t``, ``[..., R, T] -> [...]``."""
    return np.median(task_means(scores), axis=-1)


def aggregate_iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean of all runs pooled, ``[..., R, T] -> [...]``."""
    flat = scores.reshape(scores.shape[:-2] + (-1,))
    n = np.sum(~np.isnan(flat), axis=-1)
    if np.any(n == 0):
        raise ValueError("IQM of an empty set of runs")
    cut = n // 4
    lo, hi = cut, n - cut
    if np.all(n == n.flat[0]):
        # Stratified replicates all hold the same number of runs: partial sort only.
        lo0, hi0 = int(lo.flat[0]), int(hi.flat[0])
        part = np.partition(flat, (lo0, hi0 - 1), axis=-1)  # NaN sort last
        return part[..., lo0:hi0].mean(axis=-1)
    ordered = np.sort(flat, axis=-1)
    pos = np.arange(flat.shape[-1])
    keep = (pos >= lo[..., None]) & (pos < hi[..., None])
    return np.where(keep, ordered, 0.0).sum(axis=-1) / (hi - lo)


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """``gamma - mean(min(x, gamma))`` over all runs pooled, ``[..., R, T] -> [...]``."""
    axes = (-2, -1)
    clipped = np.minimum(scores, gamma)  # NaN stays NaN
    if not np.isnan(scores).any():
        return gamma - clipped.mean(axis=axes)
    return gamma - np.nansum(clipped, axis=axes) / np.sum(~np.isnan(scores), axis=axes)


AGGREGATES: dict[str, Metric] = {
    "mean": aggregate_mean,
    "median": aggregate_median,
    "iqm": aggregate_iqm,
    "optimality_gap": optimality_gap,
}


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``mean_t P(X_t > Y_t)``; ``x: [..., Rx, T]``, ``y: [..., Ry, T] -> [...]``."""
    nx, ny = _counts(x), _counts(y)
    # #{x > y} + #{x = y} / 2 = (n_x n_y + sum sign(x - y)) / 2; pairs with a missing
    # run give NaN and are left out of the sum.
    sign = np.nansum(np.sign(x[..., :, None, :] - y[..., None, :, :]), axis=(-3, -2))
    return (0.5 + 0.5 * sign / (nx * ny)).mean(axis=-1)


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of runs above each threshold, task-averaged: ``[..., R, T] -> [..., K]``."""
    above = scores[..., None] > np.asarray(taus)  # [..., R, T, K]
    return (above.sum(axis=-3) / _counts(scores)[..., None]).mean(axis=-2)


def _packed(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move each task's valid runs to the front: ``([R, T] packed, [T] counts)``."""
    if scores.ndim != 2:
        raise ValueError(f"scores must be [R, T]; got shape {scores.shape}")
    counts = _counts(scores)
    order = np.argsort(np.isnan(scores), axis=0, kind="stable")
    return np.take_along_axis(scores, order, axis=0), counts


def _resample(
    packed: np.ndarray, counts: np.ndarray, reps: int, rng: np.random.Generator
) -> np.ndarray:
    """``reps`` stratified replicates ``[reps, R, T]``: each task's runs drawn with
    replacement among its own ``counts[t]`` runs; padding rows stay NaN."""
    num_runs, num_tasks = packed.shape
    idx = (rng.random((reps, num_runs, num_tasks)) * counts).astype(np.intp)
    # Flat indices into packed: one gather instead of a two-array fancy index.
    out = packed.ravel()[idx * num_tasks + np.arange(num_tasks)]
    padding = np.arange(num_runs)[:, None] >= counts
    if padding.any():
        out[:, padding] = np.nan
    return out


def _interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(samples, [tail, 100 - tail], axis=0)
    return lo, hi


def _chunks(reps: int, chunk: int):
    for start in range(0, reps, chunk):
        yield min(chunk, reps - start)


def bootstrap(
    scores: np.ndarray,
    metrics: Mapping[str, Metric],
    rng: np.random.Generator,
    reps: int = 50_000,
    confidence: float = 0.95,
    chunk: int = 5_000,
) -> dict[str, Estimate]:
    """Point estimates and stratified-bootstrap percentile CIs of ``metrics``.

    ``scores: [R, T]`` with NaN for missing runs. All metrics see the same replicates.
    The result depends only on ``rng``'s state (chunking draws the same stream).
    With one run per task every replicate equals the data: the CI has zero width.
    """
    packed, counts = _packed(np.asarray(scores, dtype=np.float64))
    samples: dict[str, list[np.ndarray]] = {name: [] for name in metrics}
    for size in _chunks(reps, chunk):
        replicate = _resample(packed, counts, size, rng)
        for name, fn in metrics.items():
            samples[name].append(fn(replicate))
    out = {}
    for name, fn in metrics.items():
        lo, hi = _interval(np.concatenate(samples[name]), confidence)
        out[name] = Estimate(fn(scores), lo, hi)
    return out


def bootstrap_improvement(
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    reps: int = 50_000,
    confidence: float = 0.95,
    chunk: int = 2_000,
) -> Estimate:
    """Probability of improvement ``P(X > Y)`` with a CI from resampling both methods'
    runs independently within each task; ``x: [Rx, T]``, ``y: [Ry, T]``."""
    px, cx = _packed(np.asarray(x, dtype=np.float64))
    py, cy = _packed(np.asarray(y, dtype=np.float64))
    if px.shape[1] != py.shape[1]:
        raise ValueError(f"x has {px.shape[1]} tasks but y has {py.shape[1]}")
    samples = [
        probability_of_improvement(_resample(px, cx, size, rng), _resample(py, cy, size, rng))
        for size in _chunks(reps, chunk)
    ]
    lo, hi = _interval(np.concatenate(samples), confidence)
    return Estimate(probability_of_improvement(x, y), lo, hi)
