"""The suite registry, protocol resolution and task names."""

import subprocess
import sys

import pytest

from suites import SUITES, get_suite


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
    assert suite.agent_defaults["run.steps"] == suite.budget_steps
    for task in suite.tasks:
        assert not task.startswith(name), "task names carry no suite prefix"
        assert suite.published_task(task).startswith(suite.published_prefix)


def test_agent_defaults_are_valid_config_overrides():
    config = pytest.importorskip("agent.config")
    for suite in SUITES.values():
        config.validate(config.apply_overrides(config.Config(), dict(suite.agent_defaults)))


def test_resolve_protocol_checks_fields_and_types():
    suite = get_suite("dmc_vision")
    assert suite.resolve_protocol({"action_repeat": 2.0})["action_repeat"] == 2
    with pytest.raises(ValueError, match="env.repeat .*allowed: action_repeat, camera, image_size"):
        suite.resolve_protocol({"repeat": 2})
    with pytest.raises(ValueError, match="env.image_size='64' is not allowed; allowed: an integer >= 1"):
        suite.resolve_protocol({"image_size": "64"})


def test_published_task_names():
    assert get_suite("dmc_proprio").published_task("ball_in_cup_catch") == "dmc_ball_in_cup_catch"
    assert get_suite("crafter").published_task("reward") == "crafter_reward"


def test_import_is_cheap():
    # Listing suites must not pay for JAX or any environment library.
    code = (
        "import sys, suites; heavy = {'jax', 'dm_control', 'mujoco', 'crafter', 'ale_py', 'minerl'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
