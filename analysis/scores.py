"""Final scores per run, per-episode successes and normalisation, from the tidy episode table.

Final-score rule (the suite's ``budget_frames``, ``final_window_frames`` and
``run_score`` on :class:`dreamerbench.suites.base.Suite`, each overridable): the final score of a
run is made from the rows whose ``frames`` lie in ``(budget - window, budget]``:

| suite | budget (frames) | window (frames) | run score |
|---|---|---|---|
| atari100k | 400k | 10k | mean return of episodes ending between 390k and 400k frames |
| atari57 | 200M | 2M | mean return, last 1% |
| dmc_proprio | 500k | 25k | mean return, last 5% (25 episodes) |
| dmc_vision | 1M | 50k | mean return, last 5% (50 episodes) |
| crafter | 1M | 1M | Crafter score of all episodes (Hafner 2021) |
| minecraft_diamond | 100M | 5M | mean return, last 5% |

A shorter budget (short runs) caps the window at the budget. Binned files weigh each
non-null bin in the window equally (the number of episodes per bin is not published).

A run with no row in the window (its last episode ended before the window: long
episodes, or it stopped early) is treated as ``missing`` says (:data:`MISSING`):
``leave-out`` (the default: no score is taken from outside a run's own final window;
``task-mean`` copies the other seeds' scores into the run, so the bootstrap counts
them twice and the CIs narrow, and ``last`` scores a run that stopped early, e.g. a
Minecraft run at 47M of 100M frames, as if it had finished), ``task-mean`` (the mean
final score of the method's other seeds on the task: the complete matrix rliable
expects) or ``last`` (the run's own rows in ``(last - window, last]``, ``last`` its
last row up to the budget).

Normalisation (``normalized``) is the suite's (``Suite.normalize`` with
``Suite.score_refs``): Atari ``(s - random) / (human - random)``; DMC ``s / 1000``;
Crafter score (percent) ``/ 100``; Minecraft return ``/ 12``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dreamerbench.suites import Suite
from dreamerbench.suites.scores import crafter_score, success_rates

RUN_KEYS = ["method", "task", "seed"]
MISSING = {
    "leave-out": "left out",
    "task-mean": "filled with the mean of the task's other seeds",
    "last": "scored on its own last episodes",
}
"""Treatments of a run with no episode in the final window -> what its footnote says."""
DEFAULT_MISSING = "leave-out"


@dataclass(frozen=True)
class FinalRule:
    """Final score from the rows with ``budget - window < frames <= budget``."""

    budget_frames: float
    window_frames: float
    missing: str = DEFAULT_MISSING
    """Treatment of runs with no row in the window: a key of :data:`MISSING`."""
    budget_from: str = "the suite's budget"
    """Where the budget comes from, for the table's rule line."""

    @classmethod
    def for_suite(
        cls,
        suite: Suite,
        budget_frames=None,
        window_frames=None,
        missing: str = DEFAULT_MISSING,
        budget_from: str | None = None,
        names: tuple[str, str] = ("budget_frames", "window_frames"),
    ) -> FinalRule:
        """The suite's documented rule with optional overrides (e.g. a short sweep's budget).

        Without ``window_frames`` the window is the suite's, capped at the budget. Both
        are whole frames (``1500.0`` is read as 1500, ``1500.7`` refused): the budget
        at least 1, the window 1 to the budget. ``names``: what the error messages call
        the budget and the window (the CLI's flags). Raises ReadError (a ValueError)
        naming the field, its value and what is allowed.
        """
        from dreamerbench.core.reader import refuse

        budget = suite.budget_frames if budget_frames is None else budget_frames
        if not _whole(budget) or budget < 1:
            raise refuse(names[0], budget, "a whole number of frames >= 1")
        if budget_from is None:
            budget_from = "the suite's budget" if budget_frames is None else "given"
        window = min(suite.final_window_frames, budget) if window_frames is None else window_frames
        if not _whole(window) or not 1 <= window <= budget:
            raise refuse(
                names[1],
                window,
                f"a whole number of frames in [1, {budget:,.0f}]: "
                f"the window lies within the budget ({budget_from})",
            )
        if missing not in MISSING:
            raise refuse("missing", missing, ", ".join(MISSING))
        return cls(float(budget), float(window), missing, budget_from)

    @property
    def start(self) -> float:
        """Frames after which the window opens (exclusive)."""
        return self.budget_frames - self.window_frames

    def mask(self, frames: pd.Series) -> pd.Series:
        return (frames > self.start) & (frames <= self.budget_frames)


def _whole(x) -> bool:
    """Whether ``x`` is a finite whole number (an int, or a float such as 1500.0)."""
    return (
        isinstance(x, (int, float, np.integer, np.floating))
        and bool(np.isfinite(x))
        and float(x).is_integer()
    )


def _columns(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: rows[c].to_numpy() for c in rows.columns}


def run_score(rows: pd.DataFrame, suite: Suite) -> float:
    """Score of one run from its rows in the window: the mean ``score``, or for
    ``run_score == "crafter"`` the Crafter score (percent) of the success rates of
    ``suite.episode_successes`` over these episodes (Hafner 2021, Eq. 1)."""
    if suite.run_score == "crafter":
        flags = suite.episode_successes(_columns(rows))
        return crafter_score(success_rates(np.stack(list(flags.values()), axis=1)))
    return float(rows["score"].mean())


def scored_rows(episodes: pd.DataFrame, rule: FinalRule) -> pd.DataFrame:
    """The rows that make each run's final score, with a bool column ``shifted``.

    Rows with a score in the window; with ``rule.missing == "last"``, a run with none
    there contributes its rows in ``(last - window, last]`` (``shifted`` True).
    """
    valid = episodes[episodes["score"].notna() & (episodes["frames"] <= rule.budget_frames)]
    window = valid[valid["frames"] > rule.start].assign(shifted=False)
    if rule.missing != "last":
        return window
    have = window.set_index(RUN_KEYS).index.unique()
    rest = valid[~valid.set_index(RUN_KEYS).index.isin(have)]
    last = rest.groupby(RUN_KEYS)["frames"].transform("max")
    return pd.concat(
        [window, rest[rest["frames"] > last - rule.window_frames].assign(shifted=True)]
    )


def final_scores(episodes: pd.DataFrame, suite: Suite, rule: FinalRule) -> pd.DataFrame:
    """One row per (method, task, seed) with ``final`` (NaN if missing), ``n_points``
    (rows that made it), ``last_frames`` (how far the run got), ``treated`` (how a run
    with no row in the window was treated, "" otherwise) and ``scored_to`` (frames of
    the last row that made it)."""
    rows = scored_rows(episodes, rule)
    out = pd.DataFrame(episodes.groupby(RUN_KEYS, sort=True)["frames"].max().rename("last_frames"))
    groups = rows.groupby(RUN_KEYS)
    finals = {key: run_score(group, suite) for key, group in groups}
    out["final"] = [finals.get(key, np.nan) for key in out.index]
    out["n_points"] = groups.size().reindex(out.index).fillna(0).astype(int)
    out["scored_to"] = groups["frames"].max().reindex(out.index)
    shifted = groups["shifted"].any().reindex(out.index, fill_value=False).astype(bool)
    missing = out["final"].isna()
    out["treated"] = np.where(shifted, MISSING["last"], np.where(missing, MISSING["leave-out"], ""))
    if rule.missing == "task-mean":
        means = out.groupby(["method", "task"])["final"].transform("mean")
        fill = missing & means.notna()
        out.loc[fill, "final"] = means[fill]
        out.loc[fill, "treated"] = MISSING["task-mean"]
    return out.reset_index()


def success_table(episodes: pd.DataFrame, suite: Suite, rule: FinalRule) -> pd.DataFrame:
    """Per (method, task, seed, item): ``rate``, the percent of the run's scored episodes
    (:func:`scored_rows`) with a success of ``item`` (``suite.episode_successes``; NaN
    if the run has no scored episode), and ``obtained``: whether any of its episodes up
    to the budget had one. Empty if the suite defines no successes."""
    if suite.episode_successes is None:
        return pd.DataFrame(columns=RUN_KEYS + ["item", "rate", "obtained"])
    valid = episodes[episodes["score"].notna() & (episodes["frames"] <= rule.budget_frames)]
    scored = dict(tuple(scored_rows(episodes, rule).groupby(RUN_KEYS)))
    parts = []
    for key, run in valid.groupby(RUN_KEYS, sort=True):
        ever = suite.episode_successes(_columns(run))
        now = suite.episode_successes(_columns(scored[key])) if key in scored else {}
        for item, flags in ever.items():
            rate = 100.0 * float(np.mean(now[item])) if key in scored else np.nan
            parts.append((*key, item, rate, bool(np.any(flags))))
    return pd.DataFrame(parts, columns=RUN_KEYS + ["item", "rate", "obtained"])


def normalizes(suite: Suite) -> bool:
    """Whether ``suite`` has score references, so normalised scores and aggregates exist
    (not for gym and dm_env, whose tasks are whatever a user brings)."""
    return bool(suite.score_refs)


def require_normalization(suite: Suite, what: str) -> None:
    """Raise ValueError naming ``what`` (e.g. ``plot --kind aggregate``) if ``suite`` has no
    score references."""
    if not normalizes(suite):
        raise ValueError(
            f"suite={suite.name!r} has no score references, so {what} (normalised scores) cannot "
            "be made; allowed: plot --kind curves and table, which show its raw scores"
        )


def normalized(suite: Suite, task: str, score):
    """Normalised score of ``score`` (scalar or array) on ``task`` of ``suite``."""
    suite.check_task(task)
    return suite.normalize(task, np.asarray(score, dtype=np.float64))


def denormalized(suite: Suite, task: str, value):
    """Inverse of :func:`normalized`. Every normaliser is affine with a positive slope,
    so percentile CIs of normalised task means map exactly back to raw scores."""
    zero, one = float(normalized(suite, task, 0.0)), float(normalized(suite, task, 1.0))
    return (np.asarray(value, dtype=np.float64) - zero) / (one - zero)


def add_normalized(finals: pd.DataFrame, suite: Suite) -> pd.DataFrame:
    """``finals`` with a ``normalized`` column next to ``final``."""
    out = finals.copy()
    out["normalized"] = [float(normalized(suite, t, s)) for t, s in zip(out["task"], out["final"])]
    return out
