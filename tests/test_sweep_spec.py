"""Sweep specs: parsing, clear errors (file, line, field, allowed values), expansion and keys."""

import glob
from pathlib import Path

import pytest

from dreamerbench import suites
from dreamerbench.agent.config import Config, flatten, to_dict
from dreamerbench.experiments.spec import (
    BOOKKEEPING,
    SpecError,
    expand,
    key_differences,
    key_fields,
    load_spec,
    parse_spec,
)
from dreamerbench.experiments.tracking import run_params

SPECS = sorted(glob.glob(str(Path(__file__).resolve().parent.parent / "experiments" / "*.yaml")))

GOOD = """\
name: demo
suite: dmc_proprio
tasks: [cartpole_balance, reacher_easy]
seeds: 2
steps: 500
overrides:
  agent:
    size: debug
  run.envs: 1
grid:
  agent.train_ratio: [8, 16]
"""


def error_of(text, path="spec.yaml"):
    with pytest.raises(SpecError) as info:
        parse_spec(text, path)
    return str(info.value)


def test_parse_good_spec():
    spec = parse_spec(GOOD, "demo.yaml")
    assert spec.tasks == ("cartpole_balance", "reacher_easy")
    assert spec.seeds == (0, 1)
    assert spec.overrides == {"agent.size": "debug", "run.envs": 1}
    assert spec.grid == {"agent.train_ratio": (8, 16)}
    assert spec.executor == "local"
    assert spec.seeds_per_process == 1


def test_unknown_field_names_line_and_allowed_fields():
    message = error_of(GOOD + "seed: 3\n")
    assert message.startswith(
        "spec.yaml:12: unknown field 'seed'; allowed fields: name, suite, tasks, seeds"
    )


def test_unknown_override_key_names_its_line():
    message = error_of(GOOD.replace("    size: debug", "    sise: debug"))
    assert message.startswith(
        "spec.yaml:8: unknown field 'agent.sise'; allowed fields at agent: size,"
    )
    assert "size" in message  # the allowed keys are listed


def test_bad_override_type_names_its_line():
    message = error_of(GOOD.replace("run.envs: 1", "run.envs: many"))
    assert message.startswith(
        "spec.yaml:9: run.envs='many' is not allowed; allowed: an integer in [1, 1000]"
    )


def test_bad_grid_value_names_its_line():
    message = error_of(GOOD.replace("[8, 16]", "[8,\n    lots]"))
    assert (
        message
        == "spec.yaml:12: agent.train_ratio='lots' is not allowed; allowed: a finite number > 0"
    )


def test_bad_yaml_names_its_line():
    message = error_of("name: x\nsuite: [dmc\n")
    assert message.startswith("spec.yaml:3: bad YAML")


def test_duplicate_key_is_an_error():
    assert error_of("name: x\nsuite: a\nname: y\n") == "spec.yaml:3: name is given twice"


@pytest.mark.parametrize(
    "line, expected",
    [
        ("executor: cloud", "spec.yaml:3: executor='cloud' is not allowed; allowed: local, slurm"),
        (
            "seeds: 0",
            "spec.yaml:3: seeds=0 is not allowed; allowed: an integer in [1, 10000], or a list of",
        ),
        (
            "tasks: pong",
            "spec.yaml:3: tasks='pong' is not allowed; allowed: all, or a list of at least 1 item",
        ),
        ("steps: -5", "spec.yaml:3: steps=-5 is not allowed; allowed: an integer >= 1"),
        (
            "seeds_per_process: 0",
            "spec.yaml:3: seeds_per_process=0 is not allowed; allowed: an integer in [1, 256] "
            "(one vmapped train step trains them)",
        ),
        (
            "seeds_per_process: two",
            "spec.yaml:3: seeds_per_process='two' is not allowed; allowed: an integer in [1, 256] "
            "(one vmapped train step trains them)",
        ),
        (
            "overrides: {run.steps: 5}",
            "spec.yaml:3: overrides.run.steps is not allowed; "
            "allowed: the spec's own field 'steps'",
        ),
        (
            "grid: {seed: [1, 2]}",
            "spec.yaml:3: grid.seed is not allowed; allowed: the spec's own field 'seeds'",
        ),
    ],
)
def test_field_errors(line, expected):
    assert error_of(f"name: x\nsuite: dmc_proprio\n{line}\n").startswith(expected)


def test_required_fields():
    assert "the field 'suite' is required" in error_of("name: x\n")
    assert "a sweep spec is a YAML mapping" in error_of("- a\n- b\n")


def test_missing_file():
    with pytest.raises(SpecError, match="nope.yaml: no such sweep spec"):
        load_spec("nope.yaml")


def test_unknown_suite_and_task_name_line_and_allowed_values():
    spec = parse_spec("name: x\nsuite: dmc_propri\n", "s.yaml")
    with pytest.raises(
        SpecError, match=r"s.yaml:2: suite='dmc_propri' is not allowed; allowed: .*dmc_proprio"
    ):
        expand(spec)
    spec = parse_spec(
        "name: x\nsuite: dmc_proprio\ntasks:\n  - cartpole_balance\n  - cartpole_balanse\n",
        "s.yaml",
    )
    with pytest.raises(SpecError) as info:
        expand(spec)
    message = str(info.value)
    assert message.startswith(
        "s.yaml:5: tasks[1]='cartpole_balanse' is not a task of suite 'dmc_proprio'"
    )
    assert "allowed: all, acrobot_swingup" in message


def test_expansion_product_order_and_stable_keys():
    spec = parse_spec(GOOD, "demo.yaml")
    runs = expand(spec)
    assert [(r.task, r.point["agent.train_ratio"], r.seed) for r in runs] == [
        (task, ratio, seed)
        for task in ("cartpole_balance", "reacher_easy")
        for ratio in (8, 16)
        for seed in (0, 1)
    ]
    assert len({r.key for r in runs}) == 8
    assert [r.key for r in expand(parse_spec(GOOD, "elsewhere.yaml"))] == [r.key for r in runs]
    run = runs[0]
    assert run.config.run.steps == 500 and run.config.agent.size == "debug"
    assert run.config.agent.train_ratio == 8 and run.config.seed == 0
    assert run.protocol["action_repeat"] >= 1
    # A changed override changes every key; a different sweep name too.
    other = expand(parse_spec(GOOD.replace("run.envs: 1", "run.envs: 2"), "demo.yaml"))
    assert not {r.key for r in other} & {r.key for r in runs}
    renamed = expand(parse_spec(GOOD.replace("name: demo", "name: demo2"), "demo.yaml"))
    assert not {r.key for r in renamed} & {r.key for r in runs}


def test_budget_defaults_to_the_suites():
    spec = parse_spec("name: x\nsuite: dmc_proprio\ntasks: [walker_walk]\n", "s.yaml")
    (run,) = expand(spec)
    assert run.config.run.steps == suites.get_suite("dmc_proprio").budget_steps


@pytest.mark.parametrize("path", SPECS, ids=lambda p: Path(p).name)
def test_shipped_specs(path):
    spec = load_spec(path)
    if spec.suite not in suites.SUITES:
        pytest.skip(f"suite {spec.suite!r} is not registered in suites.SUITES yet")
    runs = expand(spec)
    assert runs and len({r.key for r in runs}) == len(runs)
    if spec.name == "quickstart":
        assert spec.executor == "local" and len(runs) == 4
        assert {r.config.agent.size for r in runs} == {"debug"}


@pytest.mark.parametrize(
    "edit",
    [
        ("steps: 500", "steps: 600"),
        ("  run.envs: 1", "  run.envs: 1\n  run.log_every: 1"),
        ("  run.envs: 1", "  run.envs: 1\n  run.save_every: 77"),
        ("  run.envs: 1", "  run.envs: 1\n  run.progress: false"),
        ("  run.envs: 1", "  run.envs: 1\n  run.compile_cache: ''"),
        ("  run.envs: 1", "  run.envs: 1\n  run.parallel_envs: true"),
    ],
    ids=lambda edit: edit[1].split()[-2].rstrip(":"),
)
def test_bookkeeping_edits_keep_every_key(edit):
    """Issue 14, item 6: changing only run.log_every or steps gave every run a new key (a whole
    new sweep)."""
    keys = [r.key for r in expand(parse_spec(GOOD, "demo.yaml"))]
    edited = expand(parse_spec(GOOD.replace(*edit), "demo.yaml"))
    assert [r.key for r in edited] == keys
    assert [r.config for r in edited] != [r.config for r in expand(parse_spec(GOOD, "demo.yaml"))]


def test_bookkeeping_names_config_fields_and_the_rest_are_in_the_key():
    fields = flatten(to_dict(Config()))
    assert set(BOOKKEEPING) <= set(fields)
    (run,) = expand(parse_spec("name: x\nsuite: dmc_proprio\ntasks: [walker_walk]\n", "s.yaml"))
    assert set(key_fields(run.config)) == set(fields) - set(BOOKKEEPING)


def test_key_differences_name_the_fields_that_changed():
    runs = expand(parse_spec(GOOD, "demo.yaml"))
    recorded = run_params(runs[0])
    edited = expand(
        parse_spec(
            GOOD.replace("size: debug", "size: 1m").replace("steps: 500", "steps: 900"), "demo.yaml"
        )
    )
    assert key_differences(edited[0], recorded) == ["agent.size: debug -> 1m"]
    assert key_differences(runs[0], recorded) == []
