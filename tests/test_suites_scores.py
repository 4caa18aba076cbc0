"""Score references and score functions, checked against hand-computed values."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from dreamerbench.suites import SUITES, get_suite
from dreamerbench.suites.scores import (
    ATARI_RANDOM_HUMAN,
    crafter_score,
    diamond_success,
    human_normalized,
    success_rates,
)

BASELINES = Path(__file__).resolve().parents[2] / "shared/baselines/dreamerv3/baselines.yaml"


def test_atari_references_cover_57_games():
    assert len(ATARI_RANDOM_HUMAN) == 57
    assert all(human > random for random, human in ATARI_RANDOM_HUMAN.values())


def test_video_pinball_uses_the_dreamerv3_random_score():
    assert ATARI_RANDOM_HUMAN["video_pinball"] == (16256.9, 17667.9)


@pytest.mark.skipif(not BASELINES.exists(), reason=f"{BASELINES} not present")
def test_atari_references_match_dreamerv3_baselines_yaml():
    published = yaml.safe_load(BASELINES.read_text())["atari57_gamer"]
    ours = {get_suite("atari57").published_task(g): list(v) for g, v in ATARI_RANDOM_HUMAN.items()}
    assert ours == published


def test_human_normalized():
    assert human_normalized("pong", -20.7) == 0
    assert human_normalized("pong", 14.6) == pytest.approx(1)
    assert human_normalized("pong", 21.0) == pytest.approx((21 + 20.7) / 35.3)
    assert get_suite("atari100k").normalize("pong", 14.6) == pytest.approx(1)
    with pytest.raises(ValueError, match="game='pongg'"):
        human_normalized("pongg", 0)


def test_dmc_references():
    for name in ("dmc_proprio", "dmc_vision"):
        suite = SUITES[name]
        assert suite.normalize("walker_walk", 500.0) == 0.5


def test_crafter_and_minecraft_references():
    # Crafter: the Crafter score in percent / 100; Minecraft: return / 12 milestones.
    for task in ("reward", "noreward"):
        assert get_suite("crafter").normalize(task, 14.5) == pytest.approx(0.145)
    assert get_suite("minecraft_diamond").normalize("diamond", 6.0) == 0.5


def test_every_task_has_a_score_reference():
    for suite in SUITES.values():
        # Your own environment (gym, dm_env), bsuite: no references (checked in
        # test_suites_registry).
        if suite.open_tasks or suite.name == "bsuite":
            continue
        assert set(suite.score_refs) == set(suite.tasks), suite.name
        assert all(high > low for low, high in suite.score_refs.values())


def test_crafter_score_hand_computed():
    # Two achievements at 100% and 0%: exp((ln 101 + ln 1) / 2) - 1 = sqrt(101) - 1.
    assert crafter_score([100.0, 0.0]) == pytest.approx(math.sqrt(101) - 1)
    # Rates 1%, 3%, 7%: exp(mean(ln 2, ln 4, ln 8)) - 1 = exp(ln 4) - 1 = 3.
    assert crafter_score([1.0, 3.0, 7.0]) == pytest.approx(3.0)
    assert crafter_score(np.zeros(22)) == 0
    assert crafter_score(np.full(22, 100.0)) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="in \\[0, 100\\]"):
        crafter_score([0.5, 120.0])


def test_success_rates_from_episode_flags():
    flags = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 1], [1, 0, 1]])
    np.testing.assert_allclose(success_rates(flags), [75.0, 0.0, 75.0])
    assert diamond_success([0, 0, 1, 0]) == 25.0
    with pytest.raises(ValueError, match="must be 0 or 1"):
        success_rates([[2.0]])
