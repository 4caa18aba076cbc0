"""Tracking stores in unusual places: paths MLflow would misread, read-only folders, credentials
in the URI. Training runs the real CLI with the stub agent (no JAX)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest
from stub_agent import StubAgent
from test_rundir import EPISODE
from test_sweep_slurm import tiny_spec

from dreamerbench.agent import trainer
from dreamerbench.experiments import cli, tracking

_TRAIN = ["train", "--suite", "dmc_proprio", "--task", "cartpole_balance", "--size", "debug"]


class StubTrainer(trainer.Trainer):
    def __init__(self, config, logdir, outputs=(), make_agent=StubAgent, **kwargs):
        super().__init__(config, logdir, outputs, make_agent, **kwargs)


@pytest.fixture
def stub_train(monkeypatch):
    """``dreamerbench train`` with the stub agent: ``stub_train(logdir, *flags)`` -> exit code."""
    monkeypatch.setattr(trainer, "Trainer", StubTrainer)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def run(logdir, *flags):
        sets = ["run.train_start=32", "run.log_every=0", "run.progress=false", "run.envs=1"]
        sets += ["env.action_repeat=8"]  # a 126-step episode
        return cli.main(
            [
                *_TRAIN,
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


def _read_only(folder, *args):
    """``dreamerbench ARGS`` in a fresh process that sees `folder` read-only: a read-only bind
    mount in a user and mount namespace (``unshare -rm``; root ignores permission bits, so a
    chmod'ed folder would not do)."""
    script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && exec "$@"'
    command = ["unshare", "-rm", "sh", "-c", script, str(folder), sys.executable, "-m"]
    return subprocess.run(
        [*command, "dreamerbench.experiments.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
    )


def _unshare_works(tmp_path):
    try:
        return subprocess.run(["unshare", "-rm", "true"], timeout=30).returncode == 0
    except OSError:
        return False


def test_a_read_only_store_is_read_and_writers_refuse_it_in_one_line(tmp_path, stub_train):
    """`table`, `status` and `plot` crashed on ``mlflow.db.lock`` (Errno 30) in a store the user
    may read but not write; `train` and `sweep` into one were a traceback."""
    if not _unshare_works(tmp_path):
        pytest.skip("needs unshare -rm (user and mount namespaces)")
    store = tmp_path / "store"
    store.mkdir()
    uri = f"sqlite:///{store}/mlflow.db"
    assert stub_train(tmp_path / "run", "--tracking-uri", uri) == 0
    (store / "mlflow.db.lock").unlink()  # as a results folder copied for others holds it
    before = sorted(p.name for p in store.iterdir())

    status = _read_only(store, "status", "train", "--tracking-uri", uri)
    assert status.returncode == 0, status.stderr[-3000:]
    assert "cartpole_balance/seed0" in status.stdout and "finished" in status.stdout
    empty = tmp_path / "published"
    empty.mkdir()
    for command in ("table", "plot"):
        out = tmp_path / f"{command}.{'md' if command == 'table' else 'png'}"
        extra = ["--kind", "curves"] if command == "plot" else []
        result = _read_only(
            store,
            command,
            "--suite",
            "dmc_proprio",
            "--runs",
            "train",
            "--tracking-uri",
            uri,
            "--published-dir",
            str(empty),
            "--out",
            str(out),
            *extra,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert out.exists()

    spec = tiny_spec(tmp_path, "ro")
    for writer in (
        [*_TRAIN, "--logdir", str(tmp_path / "run2"), "--tracking-uri", uri],
        ["sweep", str(spec), "--tracking-uri", uri, "--workdir", str(tmp_path / "work")],
    ):
        refused = _read_only(store, *writer)
        assert refused.returncode == 1, refused.stderr[-3000:]
        (line,) = [x for x in refused.stderr.splitlines() if " INFO " not in x]
        assert line == (
            f"dreamerbench {writer[0]}: error: tracking URI {uri}: {store} is read-only for "
            "this user; pass a --tracking-uri you may write to (reading it works: status, table, "
            "plot)"
        )
    assert sorted(p.name for p in store.iterdir()) == before


SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    "uri",
    [
        f"http://alice:{SECRET}@localhost:1/",
        f"https://{SECRET}@mlflow.example.org",
        f"postgresql://alice:{SECRET}@db/mlflow",
        f"ftp://alice:{SECRET}@host/x",
    ],
)
def test_credentials_in_the_uri_are_refused_in_one_line_that_never_shows_them(
    tmp_path, stub_train, capsys, monkeypatch, uri
):
    """A URI with ``user:password@`` was refused as "Name or service not known" with the password
    in the error, in the launcher's ``MLflow:`` line and in the job files."""
    spec = tiny_spec(tmp_path, "creds")
    work = tmp_path / "work"
    commands = [
        ["sweep", str(spec), "--tracking-uri", uri, "--workdir", str(work)],
        ["sweep", str(spec), "--dry-run", "--tracking-uri", uri, "--workdir", str(work)],
        ["status", "creds", "--tracking-uri", uri],
        ["table", "--suite", "dmc_proprio", "--runs", "creds", "--tracking-uri", uri],
    ]
    for command in commands:
        assert cli.main(command) == 2, command
        out = capsys.readouterr()
        assert SECRET not in out.out + out.err
        (line,) = out.err.splitlines()
        assert f"dreamerbench {command[0]}: error: tracking URI " in line
        assert "***@" in line and "MLFLOW_TRACKING_PASSWORD" in line
    assert stub_train(tmp_path / "run", "--tracking-uri", uri) == 2
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err and "MLFLOW_TRACKING_USERNAME" in out.err
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the same from the environment
    assert cli.main(["status", "creds"]) == 2
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err and "MLFLOW_TRACKING_PASSWORD" in out.err
    assert not work.exists()
    assert tracking.redact(uri) == uri.replace(uri[uri.index("//") + 2 : uri.index("@")], "***")


def test_readers_of_a_set_up_store_leave_its_folder_as_it_was(tmp_path, capsys):
    """tools.fault_round (status:unknown-sweep, table:runs-nope): a reader of a writable store
    re-wrote ``mlflow.db.lock`` to wait for a schema that was made long ago. A store whose
    schema is complete is read without the set-up lock; its folder keeps every file's bytes
    and times."""
    store = tmp_path / "store"
    store.mkdir()
    uri = f"sqlite:///{store}/mlflow.db"
    tracking.Tracker(uri).client.search_experiments()  # a writer makes the schema
    assert tracking._schema_complete(store / "mlflow.db")
    assert not tracking._schema_complete(tmp_path / "none.db")
    (tmp_path / "text.db").write_text("not a database\n")
    assert not tracking._schema_complete(tmp_path / "text.db")
    # A store being set up passes through older revisions: not complete (a reader that took
    # it for complete raced the writer's migration: alembic "expected to match one row").
    half = tmp_path / "half.db"
    half.write_bytes((store / "mlflow.db").read_bytes())
    with sqlite3.connect(half) as db:
        db.execute("UPDATE alembic_version SET version_num = '867495a8f9d4'")
    assert not tracking._schema_complete(half)

    def state():
        return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in store.iterdir()}

    before = state()
    assert "mlflow.db.lock" in before  # the writer's set-up lock stays, as on a real store
    for argv in (
        ["status", "nope", "--tracking-uri", uri],
        ["table", "--suite", "dmc_proprio", "--runs", "nope", "--tracking-uri", uri],
    ):
        try:
            cli.main(argv)
        except SystemExit:  # "no sweep named nope" or its like: a reader all the same
            pass
        assert "Traceback" not in capsys.readouterr().err
        assert state() == before, argv
