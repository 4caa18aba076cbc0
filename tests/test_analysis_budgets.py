"""Runs of one experiment with different budgets (two ``train --tracking-uri`` runs of one
suite with different ``--steps``): ``table`` and ``plot`` name the runs of each budget, and
``--budget-frames`` decides (it used to repeat the same error)."""

import numpy as np
import pytest
from test_analysis_data import _csv, _spec, cli, record_sweep  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Experiment ``mixed``: pong at 1000 steps (4,000 frames), breakout at 500 (2,000)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    for task, steps in (("pong", 1000), ("breakout", 500)):
        spec = _spec(
            f"name: mixed\nsuite: atari100k\ntasks: [{task}]\nseeds: 1\nsteps: {steps}\n"
            "overrides: {agent.size: debug}\n"
        )
        record_sweep(uri, spec, lambda run: [(s, {"score": float(s)}) for s in (250, 500, 1000)])
    return uri


def _args(command, uri, *extra):
    out = ["--format", "csv"] if command == "table" else ["--kind", "curves"]
    return [command, "--suite", "atari100k", "--runs", "mixed", "--tracking-uri", uri, *out, *extra]


@pytest.mark.parametrize("command", ["table", "plot"])
def test_different_budgets_name_the_runs(mixed, cli, tmp_path, capsys, command):  # noqa: F811
    extra = ["--out", str(tmp_path / "p.png")] if command == "plot" else []
    assert cli(_args(command, mixed, "--reps", "100", *extra)) == 2
    err = capsys.readouterr().err
    assert (
        "runs of experiment='mixed' have different budgets (2,000 frames: breakout seed 0; "
        "4,000 frames: pong seed 0); pass --budget-frames" in err
    )
    assert len(err.strip().splitlines()) == 1


def test_budget_frames_decides(mixed, cli, tmp_path, capsys):  # noqa: F811
    assert cli(_args("table", mixed, "--reps", "100", "--budget-frames", "2000")) == 0
    values = _csv(capsys.readouterr().out)
    # Both tasks scored at 2,000 frames (500 steps x 4): the suite's window, capped at the
    # budget, holds the episodes at steps 250 and 500.
    for task in ("pong", "breakout"):
        assert values[("task", task, "dreamerbench", "score")] == pytest.approx(np.mean([250, 500]))
    out = tmp_path / "curves.png"
    args = _args("plot", mixed, "--reps", "100", "--budget-frames", "4000", "--out", str(out))
    assert cli(args) == 0
    assert out.is_file() and out.with_suffix(".pdf").is_file()
