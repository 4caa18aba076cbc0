"""Time the comparison table for Atari57 x 3 methods x 5 seeds x 50,000 resamples.

Prints one JSON object. Scores are synthetic (seeded) so that the benchmark needs no
data files; the work is the same as for real runs: final scores, per-task CIs,
mean/median/IQM/optimality-gap CIs and two probabilities of improvement.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import pandas as pd

from dreamerbench.analysis.scores import FinalRule
from dreamerbench.analysis.tables import compare, render
from dreamerbench.suites import SUITES
from dreamerbench.suites.scores import ATARI_RANDOM_HUMAN


def synthetic_episodes(
    methods: int, seeds: int, episodes: int, rng: np.random.Generator
) -> pd.DataFrame:
    """``episodes`` episodes per run inside the final window of the Atari57 budget."""
    ref = SUITES["atari57"]
    rows = []
    frames = np.linspace(
        ref.budget_frames - ref.final_window_frames + 1, ref.budget_frames, episodes
    )
    for m in range(methods):
        for task, (random, human) in ATARI_RANDOM_HUMAN.items():
            for seed in range(seeds):
                level = random + (human - random) * rng.lognormal(m * 0.3, 1.0)
                rows.append(
                    pd.DataFrame(
                        {
                            "method": f"method{m}",
                            "suite": ref.name,
                            "task": task,
                            "seed": seed,
                            "run_key": f"m{m}/{task}/{seed}",
                            "step": frames / ref.action_repeat,
                            "frames": frames,
                            "score": level * rng.uniform(0.8, 1.2, episodes),
                            "layout": "episode",
                            "budget_frames": float(ref.budget_frames),
                        }
                    )
                )
    return pd.concat(rows, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=50_000)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed repetitions (the minimum is reported)"
    )
    args = parser.parse_args()
    ref = SUITES["atari57"]
    episodes = synthetic_episodes(args.methods, args.seeds, 20, np.random.default_rng(0))
    methods = sorted(set(episodes["method"]))
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        comp = compare(
            episodes, ref, FinalRule.for_suite(ref), methods, np.random.default_rng(0), args.reps
        )
        render(comp, "markdown")
        times.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "benchmark": "analysis_table_atari57",
                "methods": args.methods,
                "tasks": len(ref.tasks),
                "seeds": args.seeds,
                "resamples": args.reps,
                "seconds_min": round(min(times), 3),
                "seconds_all": [round(t, 3) for t in times],
                "numpy": np.__version__,
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
