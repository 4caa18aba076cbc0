"""What the analysis needs to know about each suite: the suite's own references plus a final-score rule.

Everything that defines a benchmark lives in ``suites`` (importing it is cheap: no JAX,
no environment library): task lists, the Atari random/human table (sources and the
Video Pinball conflict are documented in :mod:`suites.scores`), Crafter achievements,
Minecraft milestones, action repeat, budget, published task prefix and the normalising
``(low, high)`` per task (``Suite.score_refs``). This module re-exports the names the
analysis (and its callers) use and adds only what is analysis's own: the final-score
window per suite and how a run's final score is reduced (:mod:`analysis.scores`).
"""

from __future__ import annotations

from dataclasses import dataclass

import suites
from suites import Suite
from suites.atari import ATARI57_GAMES, ATARI100K_GAMES
from suites.crafter import ACHIEVEMENTS as CRAFTER_ACHIEVEMENTS
from suites.dmc import PROPRIO_TASKS as DMC_PROPRIO_TASKS
from suites.dmc import VISION_TASKS as DMC_VISION_TASKS
from suites.minecraft import MILESTONES as MINECRAFT_MILESTONES
from suites.scores import ATARI_RANDOM_HUMAN, crafter_score
from suites.scores import human_normalized as atari_normalized

RUN_SCORES = ("mean", "crafter")


@dataclass(frozen=True)
class SuiteReference:
    """A suite (:class:`suites.base.Suite`) with the analysis's final-score rule."""

    suite: Suite
    final_window_frames: int
    """Final score = mean of episodes ending in (budget - window, budget] frames."""
    run_score: str = "mean"
    """How the episodes in the window make a run's final score: ``mean`` of their
    scores, or ``crafter``: the Crafter score of their achievement success rates."""

    def __post_init__(self):
        if self.run_score not in RUN_SCORES:
            raise ValueError(f"run_score={self.run_score!r} is unknown; allowed: {', '.join(RUN_SCORES)}")

    @property
    def name(self) -> str:
        return self.suite.name

    @property
    def tasks(self) -> tuple[str, ...]:
        """Task names without the suite prefix (``pong``, ``cartpole_balance``)."""
        return self.suite.tasks

    @property
    def published_prefix(self) -> str:
        """Prefix of task names in the published files (``atari_pong``)."""
        return self.suite.published_prefix

    @property
    def action_repeat(self) -> int:
        """Environment frames per agent step of the default protocol."""
        return self.suite.action_repeat

    @property
    def budget_frames(self) -> int:
        """Training budget in environment frames."""
        return self.suite.budget_frames

    def normalize(self, task: str, score):
        """``(score - low) / (high - low)`` with the suite's reference for ``task``."""
        return self.suite.normalize(task, score)


# Final windows. Budgets (frames) come from the suites and agree with the published
# score files (``xs`` are environment frames): atari100k 400k, atari57 200M,
# dmc_proprio 500k, dmc_vision 1M, crafter 1M, minecraft_diamond 100M.
FINAL_WINDOW_FRAMES: dict[str, int] = {
    # The rule: episodes ending between 390k and 400k frames.
    "atari100k": 10_000,
    # Last 1% of the budget.
    "atari57": 2_000_000,
    # Last 5% (DMC episodes are 1000 frames: 25 and 50 episodes).
    "dmc_proprio": 25_000,
    "dmc_vision": 50_000,
    # Crafter success rates are over all episodes of the budget (Hafner 2021).
    "crafter": 1_000_000,
    # Last 5%.
    "minecraft_diamond": 5_000_000,
}

SUITES: dict[str, SuiteReference] = {
    name: SuiteReference(
        suite, FINAL_WINDOW_FRAMES[name], run_score="crafter" if name == "crafter" else "mean"
    )
    for name, suite in suites.SUITES.items()
}


def get_suite(name: str) -> SuiteReference:
    """The reference of suite ``name``; unknown names raise naming what is allowed."""
    return SUITES[suites.get_suite(name).name]


__all__ = [
    "ATARI57_GAMES", "ATARI100K_GAMES", "ATARI_RANDOM_HUMAN", "CRAFTER_ACHIEVEMENTS",
    "DMC_PROPRIO_TASKS", "DMC_VISION_TASKS", "FINAL_WINDOW_FRAMES", "MINECRAFT_MILESTONES",
    "SUITES", "SuiteReference", "atari_normalized", "crafter_score", "get_suite",
]
