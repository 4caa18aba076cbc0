"""The suite registry (the only one: analysis reads it too), protocol resolution and task names."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from dreamerbench.suites import SUITES, get_suite


def test_unknown_suite_lists_valid_names():
    with pytest.raises(ValueError, match="allowed: .*dmc_proprio.*crafter"):
        get_suite("dmc")


def test_unknown_task_lists_valid_tasks():
    with pytest.raises(ValueError, match="task='walker' .*allowed: .*walker_walk"):
        get_suite("dmc_proprio").check_task("walker")


@pytest.mark.parametrize("name", sorted(SUITES))
def test_suite_record_is_consistent(name):
    suite = SUITES[name]
    assert suite.name == name
    assert isinstance(suite.default_protocol["action_repeat"], int)
    assert len(set(suite.tasks)) == len(suite.tasks)
    assert suite.budget_frames == suite.budget_steps * suite.action_repeat
    assert suite.agent_defaults["run.steps"] == suite.budget_steps  # derived from budget_steps
    for task in suite.tasks:
        assert not task.startswith(name), "task names carry no suite prefix"
        assert suite.published_task(task).startswith(suite.published_prefix)


def test_agent_defaults_are_valid_config_overrides():
    config = pytest.importorskip("dreamerbench.agent.config")
    for suite in SUITES.values():
        config.validate(config.apply_overrides(config.Config(), dict(suite.agent_defaults)))


def test_resolve_protocol_checks_fields_and_types():
    suite = get_suite("dmc_vision")
    assert suite.resolve_protocol({"action_repeat": 2.0})["action_repeat"] == 2
    with pytest.raises(
        ValueError, match="env.repeat .*allowed: action_repeat, camera, fast_render, image_size"
    ):
        suite.resolve_protocol({"repeat": 2})
    with pytest.raises(
        ValueError, match="env.image_size='64' is not allowed; allowed: an integer >= 1"
    ):
        suite.resolve_protocol({"image_size": "64"})


def test_published_task_names():
    assert get_suite("dmc_proprio").published_task("ball_in_cup_catch") == "dmc_ball_in_cup_catch"
    assert get_suite("crafter").published_task("reward") == "crafter_reward"


def test_import_is_cheap():
    # Listing suites must not pay for JAX or any environment library.
    code = (
        "import sys; import dreamerbench.suites; "
        "heavy = {'jax', 'dm_control', 'mujoco', 'crafter', 'ale_py', 'minerl', 'procgen',"
        " 'bsuite'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# suite -> (budget frames, final window frames, action repeat, run score); the documented rules.
RULES = {
    "atari100k": (400_000, 10_000, 4, "mean"),
    "atari57": (200_000_000, 2_000_000, 4, "mean"),
    "dmc_proprio": (500_000, 25_000, 1, "mean"),
    "dmc_vision": (1_000_000, 50_000, 1, "mean"),
    "crafter": (1_000_000, 1_000_000, 1, "crafter"),
    "minecraft_diamond": (100_000_000, 5_000_000, 1, "mean"),
    "procgen": (50_000_000, 2_500_000, 1, "mean"),
    "dmlab30": (100_000_000, 5_000_000, 4, "mean"),
    "bsuite": (1_000_000, 1_000_000, 1, "mean"),
}


@pytest.mark.parametrize("name", list(RULES))
def test_final_score_rules_live_on_the_suite(name):
    from dreamerbench.analysis.scores import FinalRule

    budget, window, repeat, score = RULES[name]
    suite = SUITES[name]
    assert (
        suite.budget_frames,
        suite.final_window_frames,
        suite.action_repeat,
        suite.run_score,
    ) == RULES[name]
    assert FinalRule.for_suite(suite) == FinalRule(float(budget), float(window))
    # A shorter budget (a short sweep) caps the window at the budget.
    assert FinalRule.for_suite(suite, budget_frames=1500).window_frames == min(window, 1500)


def test_the_budget_is_written_once():
    suite = SUITES["dmc_proprio"]
    with pytest.raises(ValueError, match="give the budget once, as budget_steps"):
        dataclasses.replace(
            suite, agent_defaults={**suite.agent_defaults}
        )  # holds the derived run.steps
    other = dataclasses.replace(
        suite,
        budget_steps=7,
        final_window_frames=7,
        agent_defaults={k: v for k, v in suite.agent_defaults.items() if k != "run.steps"},
    )
    assert other.agent_defaults["run.steps"] == 7


def test_every_task_has_a_normaliser():
    from dreamerbench.analysis.scores import normalized

    for suite in SUITES.values():
        # Your own environment (gym, dm_env), and bsuite, whose own score is no normaliser of a
        # return: no references, and the suite's notes say so.
        if suite.open_tasks or suite.name == "bsuite":
            assert not suite.score_refs and "No score references" in suite.notes, suite.name
            continue
        for task in suite.tasks:
            low, high = suite.score_refs[task]
            np.testing.assert_allclose(normalized(suite, task, [low, high]), [0.0, 1.0], atol=1e-12)
    with pytest.raises(ValueError, match="task='pongg' is not in suite 'atari100k'"):
        normalized(SUITES["atari100k"], "pongg", 0.0)


def test_published_sources_are_pinned():
    for name, suite in SUITES.items():
        published = suite.published
        if suite.open_tasks or name == "bsuite":  # your own environment, bsuite: none published
            assert published is None, name
            continue
        assert len(published.commit) == 40 and published.url.startswith(
            "https://raw.githubusercontent.com/"
        )
        for file in published.files.values():
            assert file.startswith(("crafter_", name + "-"))
    assert get_suite("atari100k").published.url == (
        "https://raw.githubusercontent.com/danijar/dreamerv3/e3f02248693a79dc8b0ebd62c93683888ddaccfe/scores"
    )
    assert get_suite("crafter").task_of_published("crafter-reward") == "reward"
    assert get_suite("atari57").task_of_published("atari_pong") == "pong"
    with pytest.raises(ValueError, match="published task 'atari_pongg' is not in suite 'atari57'"):
        get_suite("atari57").task_of_published("atari_pongg")


def test_analysis_import_is_cheap():
    code = (
        "import sys, dreamerbench.analysis.scores, dreamerbench.analysis.tables;"
        "heavy = {'jax', 'dm_control', 'mujoco', 'crafter', 'ale_py', 'minerl', 'mlflow'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
