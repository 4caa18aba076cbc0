"""Tracking stores in unusual places: paths MLflow would misread, read-only folders, credentials
in the URI. Training runs the real CLI with the stub agent (no JAX)."""

from __future__ import annotations

import sqlite3

import pytest
from stub_agent import StubAgent
from test_rundir import EPISODE

from dreamerbench.agent import trainer
from dreamerbench.experiments import cli, tracking


class StubTrainer(trainer.Trainer):
    def __init__(self, config, logdir, outputs=(), make_agent=StubAgent):
        super().__init__(config, logdir, outputs, make_agent)


@pytest.fixture
def stub_train(monkeypatch):
    """``dreamerbench train`` with the stub agent: ``stub_train(logdir, *flags)`` -> exit code."""
    monkeypatch.setattr(trainer, "Trainer", StubTrainer)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def run(logdir, *flags):
        sets = ["run.train_start=32", "run.log_every=0", "run.progress=false", "run.envs=1"]
        return cli.main(
            [
                "train",
                "--suite",
                "dmc_proprio",
                "--task",
                "cartpole_balance",
                "--size",
                "debug",
                "--steps",
                str(EPISODE),
                "--logdir",
                str(logdir),
                *[arg for item in sets for arg in ("--set", item)],
                *flags,
            ]
        )

    return run


def _finished_runs(db):
    """Statuses of the runs in the sqlite file `db`, read without MLflow."""
    with sqlite3.connect(db) as connection:
        return [status for (status,) in connection.execute("SELECT status FROM runs")]


@pytest.mark.parametrize("name", ["a?x", "b%20c", "c%3Fd?e", "d #ü"])
def test_a_store_under_any_directory_name_is_written_where_it_says(
    tmp_path, stub_train, capsys, name
):
    """`?` in the store's directory sent the runs to a stray file named after the text before it,
    `%20` was a traceback; the same for the default store of a working directory so named."""
    folder = tmp_path / name
    folder.mkdir()
    uri = f"sqlite:///{folder}/mlflow.db"
    assert stub_train(tmp_path / "run", "--tracking-uri", uri) == 0
    assert _finished_runs(folder / "mlflow.db") == ["FINISHED"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "run"])  # nothing stray
    capsys.readouterr()
    assert cli.main(["status", "train", "--tracking-uri", uri]) == 0
    assert "finished" in capsys.readouterr().out


def test_the_default_store_of_an_oddly_named_working_directory(
    tmp_path, stub_train, capsys, monkeypatch
):
    here = tmp_path / "w?x%41"
    here.mkdir()
    monkeypatch.chdir(here)
    assert stub_train(tmp_path / "run", "--tracking-uri", "sqlite:///mlflow.db") == 0
    assert _finished_runs(here / "mlflow.db") == ["FINISHED"]
    assert tracking.resolve_tracking_uri() == f"sqlite:///{here}/mlflow.db"
    assert tracking.resolve_tracking_uri(tracking.resolve_tracking_uri()) == (
        tracking.resolve_tracking_uri()
    )
    capsys.readouterr()
    assert cli.main(["status", "train"]) == 0
    assert "finished" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "w?x%41"]
