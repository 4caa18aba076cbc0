"""``dreamerbench config``: the resolved config with each field's docstring; refusals of the
reference's names say ours; warnings of schedules that cannot fire within run.steps."""

import pytest

import dreamerbench.experiments.cli
from dreamerbench.agent.config import RunConfig, resolve_config
from dreamerbench.agent.config_cli import field_docs
from dreamerbench.agent.schedule import schedule_warnings


def _main(argv, capsys):
    code = dreamerbench.experiments.cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_config_prints_the_resolved_tree_with_docstrings(capsys):
    code, out, err = _main(
        ["config", "--suite", "dmc_proprio", "--task", "walker_walk", "--set", "run.steps=5000"],
        capsys,
    )
    assert code == 0, err
    lines = out.splitlines()
    # --set and the suite's agent defaults reach the tree; the schema's default is named.
    assert "  steps: 5000  # default: 1000000" in lines
    assert '  size: "1m"  # default: "12m"' in lines  # dmc_proprio's agent default
    assert 'task: "walker_walk"  # default: "cartpole_balance"' in lines
    # Each field is preceded by its docstring, sections by their class's.
    i = lines.index("  steps: 5000  # default: 1000000")
    assert lines[i - 1] == (
        "  # Agent steps (environment steps after action repeat) in total. Range: >= 1."
    )
    assert lines[lines.index("run:") - 1] == "# How long and how a training run goes."
    # The env section is the suite's protocol with the run's overrides.
    assert lines[lines.index("env:  # the suite's protocol with the run's overrides") + 1] == (
        "  action_repeat: 1"
    )
    # Every field of RunConfig is shown.
    run = lines[lines.index("run:") + 1 :]
    shown = {line.split(":")[0].strip() for line in run if not line.lstrip().startswith("#")}
    assert set(field_docs(RunConfig)) <= shown


def test_save_every_says_it_counts_agent_steps_not_seconds():
    doc = field_docs(RunConfig)["save_every"]
    assert doc.startswith("Agent steps between checkpoints") and "counts seconds" in doc


@pytest.mark.parametrize(
    ("flags", "refused", "ours"),
    [
        (["--set", "run.train_ratio=64"], "unknown field 'run.train_ratio'", "agent.train_ratio"),
        (["--set", "replay.size=1000"], "unknown field 'replay.size'", "replay.capacity"),
        (["--set", "batch_size=4"], "unknown field 'batch_size'", "agent.batch_size"),
        (
            ["--set", "env.repeat=2"],
            "env.repeat is not a protocol field of suite 'dmc_proprio'",
            "env.action_repeat",
        ),
        (
            ["--task", "dmc_walker_walk"],
            "task='dmc_walker_walk' is not in suite 'dmc_proprio'",
            "task='walker_walk'",
        ),
    ],
)
@pytest.mark.parametrize("command", ["config", "train"])
def test_the_references_names_are_refused_naming_ours(
    flags, refused, ours, command, tmp_path, capsys
):
    task = [] if "--task" in flags else ["--task", "walker_walk"]
    logdir = tmp_path / "run"
    argv = [command, "--suite", "dmc_proprio", *task, *flags]
    argv += ["--logdir", str(logdir)] if command == "train" else []
    code, out, err = _main(argv, capsys)
    assert code == 2 and not out
    (line,) = err.splitlines()  # one line
    assert line.startswith(f"dreamerbench {command}: error: {refused}")
    assert f"; did you mean {ours}? (" in line
    assert not logdir.exists()


def test_a_name_of_ours_gets_no_hint(capsys):
    code, _, err = _main(
        ["config", "--suite", "dmc_proprio", "--task", "walker_walk", "--set", "run.nope=1"],
        capsys,
    )
    assert code == 2 and "unknown field 'run.nope'" in err and "did you mean" not in err


def test_schedules_that_cannot_fire_within_the_steps_are_warned(capsys):
    sets = ["--set", "run.steps=3000", "--set", "run.train_start=0"]
    code, _, err = _main(
        [
            "config",
            "--suite",
            "dmc_proprio",
            "--task",
            "walker_walk",
            *sets,
            "--set",
            "run.video_every=5000",
            "--set",
            "run.eval_every=3001",
        ],
        capsys,
    )
    assert code == 0
    assert err.splitlines() == [
        "warning: run.video_every=5000 > run.steps=3000: no video or open-loop report is made",
        "warning: run.eval_every=3001 > run.steps=3000: only the run's last step evaluates",
    ]
    # Off (0) or due by the last step: nothing to say.
    for every in (0, 3000):
        config = resolve_config(
            "dmc_proprio",
            "walker_walk",
            0,
            [f"run.video_every={every}", f"run.eval_every={every}", "run.steps=3000"],
        )
        assert schedule_warnings(config) == []
