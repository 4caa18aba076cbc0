"""Formulas against hand-computed examples; bootstrap CI properties."""

import math

import numpy as np
import pytest

from dreamerbench.analysis import metrics
from dreamerbench.analysis.scores import normalized
from dreamerbench.suites import SUITES
from dreamerbench.suites.scores import crafter_score
from dreamerbench.suites.scores import human_normalized as atari_normalized


def test_atari_normalisation_by_hand():
    # pong: random -20.7, human 14.6 -> (0 + 20.7) / 35.3
    assert atari_normalized("pong", 0.0) == pytest.approx(20.7 / 35.3)
    assert atari_normalized("pong", 14.6) == pytest.approx(1.0)
    assert float(normalized(SUITES["atari100k"], "pong", -20.7)) == pytest.approx(0.0)


def test_video_pinball_uses_the_baselines_yaml_random_score():
    assert atari_normalized("video_pinball", 16256.9) == pytest.approx(0.0)


def test_dmc_crafter_minecraft_normalisation():
    assert float(normalized(SUITES["dmc_proprio"], "walker_walk", 250.0)) == 0.25
    assert float(normalized(SUITES["crafter"], "reward", 14.5)) == pytest.approx(0.145)
    assert float(normalized(SUITES["minecraft_diamond"], "diamond", 6.0)) == 0.5


def test_crafter_score_by_hand():
    # two achievements at 0% and 99%: exp((ln 1 + ln 100) / 2) - 1 = 10 - 1
    assert crafter_score([0.0, 99.0]) == pytest.approx(9.0)
    assert crafter_score([100.0] * 22) == pytest.approx(100.0)


def test_iqm_by_hand():
    # 8 runs pooled: drop 2 lowest and 2 highest -> mean(3, 4, 5, 6) = 4.5
    x = np.array([[1.0, 100.0, 3.0, 4.0], [5.0, 6.0, -50.0, 8.0]])
    assert metrics.aggregate_iqm(x) == pytest.approx(4.5)


def test_iqm_with_a_missing_run():
    # 7 valid: floor(7/4) = 1 cut per end -> mean(2, 3, 4, 5, 6) = 4
    x = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, np.nan]])
    assert metrics.aggregate_iqm(x) == pytest.approx(4.0)


def test_mean_median_use_task_means():
    x = np.array([[0.0, 1.0, 10.0], [2.0, 3.0, np.nan]])  # task means 1, 2, 10
    assert metrics.aggregate_mean(x) == pytest.approx(13 / 3)
    assert metrics.aggregate_median(x) == pytest.approx(2.0)


def test_optimality_gap_by_hand():
    # min(x, 1) = 0.5, 1, 0, 1 -> mean 0.625 -> gap 0.375
    x = np.array([[0.5, 2.0], [0.0, 1.0]])
    assert metrics.optimality_gap(x) == pytest.approx(0.375)


def test_probability_of_improvement_by_hand():
    # task 0: x (1, 3) vs y (2, 2): pairs 1>2 no, 3>2 yes twice -> 2/4
    # task 1: x (5, 5) vs y (5, 0): ties count 1/2 -> (0.5 + 1 + 0.5 + 1) / 4 = 3/4
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    y = np.array([[2.0, 5.0], [2.0, 0.0]])
    assert metrics.probability_of_improvement(x, y) == pytest.approx((0.5 + 0.75) / 2)
    assert metrics.probability_of_improvement(y, x) == pytest.approx(1 - (0.5 + 0.75) / 2)


def test_performance_profile_by_hand():
    x = np.array([[0.2, 1.5], [0.8, 0.1]])  # task 0: 1 of 2 above 0.5; task 1: 1 of 2
    np.testing.assert_allclose(
        metrics.performance_profile(x, np.array([0.0, 0.5, 2.0])), [1.0, 0.5, 0.0]
    )


def test_empty_task_is_an_error():
    with pytest.raises(ValueError, match="at least one run"):
        metrics.aggregate_mean(np.array([[1.0, np.nan]]))


def _runs(rng, seeds, tasks=10):
    return rng.normal(loc=np.linspace(0, 2, tasks), scale=0.5, size=(seeds, tasks))


def test_bootstrap_ci_covers_point_and_is_reproducible():
    x = _runs(np.random.default_rng(0), 5)
    a = metrics.bootstrap(x, metrics.AGGREGATES, np.random.default_rng(7), reps=4000)
    b = metrics.bootstrap(x, metrics.AGGREGATES, np.random.default_rng(7), reps=4000, chunk=999)
    for name, est in a.items():
        assert est.lo <= est.point <= est.hi, name
        assert est.lo < est.hi, name
        assert (est.lo, est.hi) == (b[name].lo, b[name].hi), name  # chunking draws the same stream
    c = metrics.bootstrap(x, metrics.AGGREGATES, np.random.default_rng(8), reps=4000)
    assert c["iqm"].lo != a["iqm"].lo


def test_bootstrap_ci_shrinks_with_more_seeds():
    rng = np.random.default_rng(1)
    few, many = _runs(rng, 3), _runs(rng, 30)
    width = {}
    for name, x in (("few", few), ("many", many)):
        est = metrics.bootstrap(
            x, {"iqm": metrics.aggregate_iqm}, np.random.default_rng(0), reps=4000
        )["iqm"]
        width[name] = est.hi - est.lo
    assert width["many"] < 0.5 * width["few"]


def test_bootstrap_keeps_ragged_seed_counts():
    # Stratified: a task with one run always contributes that run, so with every
    # other task at one run too, the CI is a single point.
    x = np.array([[1.0, 2.0, 3.0], [np.nan, np.nan, np.nan]])
    est = metrics.bootstrap(
        x, {"mean": metrics.aggregate_mean}, np.random.default_rng(0), reps=100
    )["mean"]
    assert est.lo == est.hi == est.point == pytest.approx(2.0)


def test_bootstrap_improvement_interval():
    rng = np.random.default_rng(2)
    x, y = _runs(rng, 5) + 0.3, _runs(rng, 4)
    est = metrics.bootstrap_improvement(x, y, np.random.default_rng(0), reps=2000)
    assert 0.5 < est.point < 1 and est.lo <= est.point <= est.hi
    assert math.isclose(est.point, metrics.probability_of_improvement(x, y))


def test_crafter_run_score_and_diamond_successes_from_episodes():
    import pandas as pd

    from dreamerbench.analysis.scores import FinalRule, run_score, success_table
    from dreamerbench.suites.crafter import ACHIEVEMENTS

    episodes = pd.DataFrame({f"achievement_{a}": [0.0, 0.0] for a in ACHIEVEMENTS})
    episodes["achievement_collect_wood"] = [1.0, 0.0]  # 50% on one of 22 achievements
    assert run_score(episodes, SUITES["crafter"]) == pytest.approx(math.exp(math.log(51) / 22) - 1)
    episodes["achievement_collect_wood"] = [
        3.0,
        0.0,
    ]  # published files hold counts: >= 1 is a success
    assert run_score(episodes, SUITES["crafter"]) == pytest.approx(math.exp(math.log(51) / 22) - 1)
    # Minecraft: 12 milestones return >= 11.99, 11 at most 11.01 (float noise above 11 included).
    mc = pd.DataFrame(
        {
            "method": "m",
            "task": "diamond",
            "seed": 0,
            "frames": [10.0, 20.0, 30.0, 40.0],
            "score": [11.0000000003, 11.995, 12.0, 10.99],
        }
    )
    table = success_table(
        mc, SUITES["minecraft_diamond"], FinalRule(40.0, 25.0)
    )  # frames 20, 30, 40 scored
    assert table["item"].tolist() == ["diamond obtained"]
    assert table["rate"].iloc[0] == pytest.approx(200 / 3) and bool(table["obtained"].iloc[0])
