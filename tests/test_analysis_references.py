"""analysis takes every benchmark fact from suites; only the final-score windows are its own."""

import subprocess
import sys

import numpy as np
import pytest

import suites
from analysis import references
from analysis.references import SUITES, get_suite
from analysis.scores import FinalRule, normalized
from suites import atari, crafter, dmc, minecraft, scores


def test_references_are_the_suites_objects():
    assert references.ATARI_RANDOM_HUMAN is scores.ATARI_RANDOM_HUMAN
    assert references.ATARI100K_GAMES is atari.ATARI100K_GAMES
    assert references.CRAFTER_ACHIEVEMENTS is crafter.ACHIEVEMENTS
    assert references.MINECRAFT_MILESTONES is minecraft.MILESTONES
    assert references.DMC_PROPRIO_TASKS is dmc.PROPRIO_TASKS
    assert references.DMC_VISION_TASKS is dmc.VISION_TASKS
    assert references.crafter_score is scores.crafter_score
    assert references.atari_normalized is scores.human_normalized
    assert list(SUITES) == list(suites.SUITES)
    for name, ref in SUITES.items():
        suite = suites.SUITES[name]
        assert ref.suite is suite
        assert (ref.name, ref.tasks, ref.published_prefix) == (name, suite.tasks, suite.published_prefix)
        assert (ref.action_repeat, ref.budget_frames) == (suite.action_repeat, suite.budget_frames)


# suite -> (budget frames, final window frames, agent steps per frame); the documented rules.
RULES = {
    "atari100k": (400_000, 10_000, 4),
    "atari57": (200_000_000, 2_000_000, 4),
    "dmc_proprio": (500_000, 25_000, 1),
    "dmc_vision": (1_000_000, 50_000, 1),
    "crafter": (1_000_000, 1_000_000, 1),
    "minecraft_diamond": (100_000_000, 5_000_000, 1),
}


@pytest.mark.parametrize("name", list(RULES))
def test_final_rules(name):
    budget, window, repeat = RULES[name]
    ref = get_suite(name)
    assert FinalRule.for_suite(ref) == FinalRule(float(budget), float(window))
    assert ref.action_repeat == repeat
    assert ref.run_score == ("crafter" if name == "crafter" else "mean")


def test_every_task_has_a_normaliser_and_it_is_the_suites():
    for name, ref in SUITES.items():
        for task in ref.tasks:
            low, high = ref.suite.score_refs[task]
            assert float(normalized(ref, task, low)) == pytest.approx(0.0)
            assert float(normalized(ref, task, high)) == pytest.approx(1.0)
            np.testing.assert_allclose(normalized(ref, task, [low, high]), [0.0, 1.0], atol=1e-12)


def test_unknown_suite_and_task():
    with pytest.raises(ValueError, match="suite='atari' is unknown; allowed: atari100k"):
        get_suite("atari")
    with pytest.raises(ValueError, match="task='pongg' is not in suite 'atari100k'"):
        normalized(SUITES["atari100k"], "pongg", 0.0)


def test_import_is_cheap():
    code = (
        "import sys, analysis.references, analysis.scores;"
        "heavy = {'jax', 'dm_control', 'mujoco', 'crafter', 'ale_py', 'minerl', 'mlflow'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
