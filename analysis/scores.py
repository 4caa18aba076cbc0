"""Final scores per run and normalisation, from the tidy episode table (analysis.data).

Final-score rule (one per suite, in analysis.references.FINAL_WINDOW_FRAMES; budgets
from the suites; both overridable):
the final score of a run is the mean ``score`` of the rows whose ``frames`` lie in
``(budget - window, budget]``:

| suite | budget (frames) | window (frames) | notes |
|---|---|---|---|
| atari100k | 400k | 10k | episodes ending between 390k and 400k frames |
| atari57 | 200M | 2M | last 1% |
| dmc_proprio | 500k | 25k | last 5% (25 episodes) |
| dmc_vision | 1M | 50k | last 5% (50 episodes) |
| crafter | 1M | 1M | all episodes: success rates over the whole budget (Hafner 2021) |
| minecraft_diamond | 100M | 5M | last 5% |

Binned files weigh each non-null bin in the window equally (the number of episodes per
bin is not published). A run with no row in the window has no final score: it is
reported as missing (``n_points == 0``), never dropped.

Normalisation (``normalized``) is the suite's (``Suite.normalize`` with
``Suite.score_refs``): Atari ``(s - random) / (human - random)``; DMC ``s / 1000``;
Crafter score (percent) ``/ 100``; Minecraft return ``/ 12`` (12 milestones at +1 each;
the health term adds at most +-0.2 per episode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.references import CRAFTER_ACHIEVEMENTS, MINECRAFT_MILESTONES, SuiteReference
from suites.scores import crafter_score, success_rates

RUN_KEYS = ["method", "task", "seed"]


@dataclass(frozen=True)
class FinalRule:
    """Mean of the rows with ``budget - window < frames <= budget``."""

    budget_frames: float
    window_frames: float

    @classmethod
    def for_suite(cls, ref: SuiteReference, budget_frames=None, window_frames=None) -> "FinalRule":
        """The suite's documented rule, with optional overrides (e.g. short test runs)."""
        budget = ref.budget_frames if budget_frames is None else budget_frames
        window = ref.final_window_frames if window_frames is None else window_frames
        if not 0 < window <= budget:
            raise ValueError(f"window_frames={window} must be in (0, budget_frames={budget}]")
        return cls(float(budget), float(window))

    def mask(self, frames: pd.Series) -> pd.Series:
        return (frames > self.budget_frames - self.window_frames) & (frames <= self.budget_frames)


def crafter_run_score(episodes: pd.DataFrame) -> float:
    """Crafter score (percent) of one run: success rate ``s_i`` of each achievement =
    percent of episodes that unlocked it, then ``exp(mean ln(1 + s_i)) - 1``."""
    columns = [f"achievement_{a}" for a in CRAFTER_ACHIEVEMENTS]
    missing = [c for c in columns if c not in episodes]
    if missing:
        raise ValueError(f"crafter runs need metric 'episode/{missing[0]}' (one per achievement)")
    # An episode unlocked an achievement if its per-episode max flag is > 0.
    return crafter_score(success_rates(episodes[columns].to_numpy() > 0))


def final_scores(episodes: pd.DataFrame, ref: SuiteReference, rule: FinalRule) -> pd.DataFrame:
    """One row per (method, task, seed): ``final`` (NaN if the window is empty),
    ``n_points`` (rows in the window) and ``last_frames`` (how far the run got)."""
    valid = episodes[episodes["score"].notna()]
    window = valid[rule.mask(valid["frames"])]
    runs = episodes.groupby(RUN_KEYS, sort=True)["frames"].max().rename("last_frames")
    if ref.run_score == "crafter":
        final = window.groupby(RUN_KEYS).apply(crafter_run_score, include_groups=False)
    else:
        final = window.groupby(RUN_KEYS)["score"].mean()
    out = pd.DataFrame(runs)
    out["final"] = final.reindex(out.index)
    out["n_points"] = window.groupby(RUN_KEYS).size().reindex(out.index).fillna(0).astype(int)
    return out.reset_index()


def normalized(ref: SuiteReference, task: str, score):
    """Normalised score of ``score`` (scalar or array) on ``task`` of suite ``ref``."""
    if task not in ref.tasks:
        raise ValueError(f"task={task!r} is not in suite {ref.name!r}; allowed: {', '.join(ref.tasks)}")
    return ref.normalize(task, np.asarray(score, dtype=np.float64))


def denormalized(ref: SuiteReference, task: str, value):
    """Inverse of :func:`normalized`. Every normaliser is affine with a positive slope,
    so percentile CIs of normalised task means map exactly back to raw scores."""
    zero, one = float(normalized(ref, task, 0.0)), float(normalized(ref, task, 1.0))
    return (np.asarray(value, dtype=np.float64) - zero) / (one - zero)


def add_normalized(finals: pd.DataFrame, ref: SuiteReference) -> pd.DataFrame:
    """``finals`` with a ``normalized`` column next to ``final``."""
    out = finals.copy()
    out["normalized"] = [float(normalized(ref, t, s)) for t, s in zip(out["task"], out["final"])]
    return out


def milestone_success(episodes: pd.DataFrame, rule: FinalRule) -> pd.DataFrame:
    """Minecraft: percent of episodes in the window that reached each milestone, per
    (method, seed); columns ``milestone_<name>``. Needs per-episode milestone metrics."""
    columns = [f"milestone_{m}" for m in MINECRAFT_MILESTONES if f"milestone_{m}" in episodes]
    if not columns:
        raise ValueError("no 'episode/milestone_<name>' metrics in these runs")
    window = episodes[rule.mask(episodes["frames"])]
    reached = (window[columns] > 0).astype(float)
    return 100.0 * reached.groupby([window["method"], window["seed"]]).mean()
