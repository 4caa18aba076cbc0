"""DMLab-30 (Beattie et al. 2016; Espeholt et al. 2018): stated, not built.

DeepMind Lab has no build that installs here: the package index here serves no DeepMind Lab
package, Debian has none, and its Bazel build downloads its dependencies. So this suite cannot
make an environment, and ``train`` and ``sweep`` refuse it in one line before anything is
written (:attr:`dreamerbench.suites.base.Suite.unavailable`). What it can do: list the 30
levels, the reference's protocol and budget, and show the published DMLab-30 scores
(``dreamerbench table --suite dmlab30 --baseline dreamerv3``).

The protocol of the published DreamerV3 runs (danijar/dreamerv3 ``configs.yaml`` at e3f0224,
``env.dmlab`` and ``dmlab``): 64x64 RGB, action repeat 4, train ratio 32; the published
curves end at 100M frames (25M agent steps). The suite is called ``dmlab30`` as the published
files (``dmlab30-METHOD.json.gz``) and the reference's ``baselines.yaml`` key are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from dreamerbench.suites.base import Env, Suite
from dreamerbench.suites.scores import DMLAB30_RANDOM_HUMAN, dreamerv3_scores

UNAVAILABLE = (
    "suite 'dmlab30' cannot be trained here: DeepMind Lab has no installable build (the "
    "package index here serves none, Debian packages none, and its Bazel build downloads its "
    "dependencies); allowed: dreamerbench suites dmlab30, and dreamerbench table/plot "
    "--suite dmlab30 --baseline dreamerv3|impala_deep|ppo_fixhp"
)
"""Why no DMLab environment can be made here, and what the suite is good for (one line)."""


def make_dmlab(task: str, seed: int, protocol: Mapping[str, Any]) -> Env:
    """Always raises ValueError (:data:`UNAVAILABLE`): DeepMind Lab cannot be installed here."""
    raise ValueError(UNAVAILABLE)


DMLAB30 = Suite(
    name="dmlab30",
    tasks=tuple(DMLAB30_RANDOM_HUMAN),
    default_protocol={"action_repeat": 4, "image_size": 64},
    protocol_fields={"action_repeat": Literal[4], "image_size": Literal[64]},
    unavailable=UNAVAILABLE,
    make_env=make_dmlab,
    budget_steps=25_000_000,
    # Last 5% of the budget, as for the other long suites.
    final_window_frames=5_000_000,
    # Reference configs.yaml `dmlab`: train_ratio 32, 16 envs (the default), default size.
    agent_defaults={
        "agent.size": "200m",
        "agent.train_ratio": 32,
        "run.envs": 16,
        "run.parallel_envs": True,
    },
    description="DMLab-30: 30 levels, 25M agent steps (100M frames), 64x64 RGB, repeat 4. "
    "Scores: human-normalised with the random and human scores in "
    "dreamerbench.suites.scores.DMLAB30_RANDOM_HUMAN.",
    published_prefix="dmlab_",
    published=dreamerv3_scores("dmlab30", ("dreamerv3", "impala_deep", "ppo_fixhp")),
    normalized_name="human-normalised score",
    score_ref_names=("random", "human"),
    score_refs=dict(DMLAB30_RANDOM_HUMAN),
    notes="NOT BUILT: " + UNAVAILABLE + ". IMPALA's published curves run to 1B frames; "
    "--budget-frames 1000000000 scores them at the end of theirs (the others then have none).",
)
