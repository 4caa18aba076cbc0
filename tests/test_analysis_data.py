"""Loaders on the real published files and real MLflow stores; CLI end to end; bad input.

Our runs are recorded the way ``dreamerbench sweep`` records them (a spec expanded by
``dreamerbench.experiments.spec.expand``, runs scheduled and started by
``dreamerbench.experiments.tracking.Tracker``, episodes written by
``dreamerbench.agent.rundir.RunDir`` and delivered by ``RunRecorder``), so tags, params and
metrics are the real ones.
"""

import functools
import gzip
import http.server
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import dreamerbench.experiments.cli
from dreamerbench import suites
from dreamerbench.agent.rundir import Counters, RunDir
from dreamerbench.analysis import load_published, load_runs
from dreamerbench.analysis.scores import FinalRule, final_scores
from dreamerbench.experiments import tracking
from dreamerbench.experiments.spec import expand, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ROOT.parent / "shared" / "baselines"
PUBLISHED = BASELINES / "dreamerv3"
CRAFTER = BASELINES / "crafter"
needs_published = pytest.mark.skipif(
    not (PUBLISHED.is_dir() and CRAFTER.is_dir()), reason=f"{BASELINES} not present"
)
SUITES = suites.SUITES


# --- published files ---------------------------------------------------------------


@needs_published
def test_published_per_episode_file():
    df = load_published("atari100k", "dreamerv3", PUBLISHED)
    assert set(df["task"]) == set(SUITES["atari100k"].tasks)  # prefix "atari_" removed
    assert (df["layout"] == "episode").all()
    assert df.groupby("task")["seed"].nunique().eq(5).all()
    np.testing.assert_allclose(df["step"] * 4, df["frames"])  # frames vs agent steps
    assert df["frames"].max() <= 400_000 and (df["budget_frames"] == 400_000).all()


@needs_published
def test_published_binned_file_keeps_null_bins():
    df = load_published("atari57", "dreamerv3", PUBLISHED)
    assert (df["layout"] == "binned").all()
    assert df["score"].isna().any()  # null bins stay visible as NaN
    finals = final_scores(df, SUITES["atari57"], FinalRule.for_suite(SUITES["atari57"]))
    short = finals[finals["final"].isna()]
    # A run that stopped early has no final score, and it is reported, not dropped.
    assert (short["last_frames"] < 198e6).all() and len(short) >= 1
    assert (short["treated"] == "left out").all()


@needs_published
def test_published_crafter_files():
    human = load_published("crafter", "human", CRAFTER)
    assert set(human["task"]) == {"reward"} and sorted(set(human["seed"])) == [
        0,
        1,
        2,
        3,
        4,
    ]  # "crafter-reward", "0"
    assert len(human) == 100 and (human["layout"] == "episode").all()
    assert {f"achievement_{a}" for a in dreamerbench.suites.crafter.ACHIEVEMENTS} <= set(
        human.columns
    )
    # The random policy never sees the reward: its no-reward episodes stand for the tasks asked for.
    random = load_published("crafter", "random", CRAFTER, tasks=["reward"])
    assert set(random["task"]) == {"reward"} and len(random) == 29_784
    assert set(load_published("crafter", "random", CRAFTER)["task"]) == {"reward", "noreward"}


@needs_published
def test_published_unknown_method_names_allowed_ones():
    with pytest.raises(
        ValueError, match=r"baseline='nope' has no published file .*allowed: dreamerv3, ppo_fixhp"
    ):
        load_published("atari100k", "nope", PUBLISHED)


def test_published_wrong_layout(tmp_path):
    with gzip.open(tmp_path / "atari100k-bad.json.gz", "wt") as f:
        json.dump([{"task": "atari_pong", "method": "bad", "seed": 0, "xs": [1, 2]}], f)
    with pytest.raises(
        ValueError, match=r"lacks field 'ys'; required fields: task, method, seed, xs, ys"
    ):
        load_published("atari100k", "bad", tmp_path)
    with gzip.open(tmp_path / "atari100k-dict.json.gz", "wt") as f:
        json.dump({"runs": []}, f)
    with pytest.raises(ValueError, match="expected a list of runs"):
        load_published("atari100k", "dict", tmp_path)


def test_unknown_suite():
    with pytest.raises(ValueError, match=r"suite='atari' is unknown; allowed: atari100k, atari57"):
        load_published("atari", "dreamerv3", PUBLISHED)


# --- a fresh clone: the published files come from an http server --------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        self.requests.append(self.path)
        super().do_GET()


@pytest.fixture(scope="module")
def server():
    """``http://127.0.0.1:PORT`` serving ../shared/baselines (dreamerv3/ and crafter/)."""
    handler = functools.partial(_Handler, directory=str(BASELINES))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def fresh_clone(server, tmp_path, monkeypatch):
    """The pinned raw.githubusercontent.com folders replaced by the local server; an empty cache."""

    def url(published):
        return f"{server}/{'crafter' if published.repo == 'danijar/crafter' else 'dreamerv3'}"

    monkeypatch.setattr(suites.base.PublishedScores, "url", property(url))
    monkeypatch.setattr("dreamerbench.analysis.data.DEFAULT_CACHE", tmp_path / "cache")
    _Handler.requests.clear()
    return tmp_path / "cache"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_published
def test_fresh_clone_downloads_the_published_files_once(fresh_clone, cli, capsys):
    args = [
        "table",
        "--suite",
        "atari100k",
        "--baseline",
        "dreamerv3",
        "--format",
        "csv",
        "--reps",
        "200",
    ]
    assert cli(args) == 0, capsys.readouterr().err
    downloaded = capsys.readouterr().out
    assert _Handler.requests == ["/dreamerv3/atari100k-dreamerv3.json.gz"]
    assert cli(args) == 0 and capsys.readouterr().out == downloaded  # from the cache
    assert len(_Handler.requests) == 1
    assert cli([*args, "--published-dir", str(PUBLISHED)]) == 0  # the local folder overrides
    assert capsys.readouterr().out == downloaded
    assert cli(args[:5] + ["--reps", "200"]) == 0 and len(_Handler.requests) == 1
    assert (
        "Published scores: dreamerv3 from github.com/danijar/dreamerv3, folder scores/, commit "
        "e3f0224." in (capsys.readouterr().out)
    )
    # Crafter's repository publishes plain JSON; a gzipped copy is read as well.
    assert cli(["table", "--suite", "crafter", "--baseline", "human", "--reps", "200"]) == 0
    assert _Handler.requests[1:] == [
        "/crafter/crafter_reward-human.json",
        "/crafter/crafter_reward-human.json.gz",
    ]
    out = capsys.readouterr().out
    assert (
        "Published scores: human from github.com/danijar/crafter, folder scores/, commit e04542a."
        in out
    )


@needs_published
def test_fresh_clone_refuses_a_method_that_is_a_path(fresh_clone, tmp_path, server, cli, capsys):
    for method in ("../../x", "../dreamerv3/atari100k-dreamerv3", "/etc/passwd", ".hidden"):
        assert (
            cli(
                [
                    "table",
                    "--suite",
                    "atari100k",
                    "--baseline",
                    method,
                    "--published-dir",
                    f"{server}/dreamerv3",
                    "--cache-dir",
                    str(tmp_path / "cache"),
                ]
            )
            == 2
        )
        err = capsys.readouterr().err
        assert (
            err.count("\n") == 1
            and f"baseline={method!r} is not a method name; allowed: letters" in err
        )
    assert (
        _Handler.requests == []
        and not (tmp_path / "cache").exists()
        and sorted(p.name for p in tmp_path.iterdir()) == []
    )


def test_down_server_and_missing_file_are_one_line(tmp_path, server, cli, capsys):
    down = f"http://127.0.0.1:{_closed_port()}"
    assert (
        cli(
            [
                "table",
                "--suite",
                "atari100k",
                "--baseline",
                "dreamerv3",
                "--published-dir",
                down,
                "--cache-dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"published scores at {down} cannot be reached" in err
    assert (
        cli(
            [
                "table",
                "--suite",
                "atari100k",
                "--baseline",
                "nope",
                "--published-dir",
                f"{server}/dreamerv3",
                "--cache-dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "baseline='nope' has no published file for suite 'atari100k'" in err
    )
    assert "allowed: dreamerv3, ppo_fixhp" in err and not list(tmp_path.rglob("*.part"))


# --- MLflow ----------------------------------------------------------------------------


def record_sweep(uri: str, spec, episodes, status=lambda run: "FINISHED") -> None:
    """Record ``spec``'s runs as ``dreamerbench sweep`` and its jobs do, and deliver
    ``episodes(run)``: a list of ``(step, {metric: value})`` (None: the run is never created),
    written to a run directory beside the sqlite store `uri` and delivered by its recorder.
    ``status(run)``: FINISHED, FAILED (the job's error, as ``Tracker.fail``) or RUNNING (a job
    took it up again, as ``Tracker.start``, and never ended)."""
    tracker = tracking.Tracker(uri)
    experiment_id = tracker.experiment(spec.name)
    root = Path(uri[len("sqlite:///") :]).parent / "logdirs"
    for run in expand(spec):
        records = episodes(run)
        if records is None:
            continue
        logdir = root / spec.name / run.key
        run_id = tracker.schedule(
            experiment_id,
            run,
            {"git_commit": "unknown", "git_dirty": "unknown"},
            lambda _: str(logdir),
        )
        recorder = tracker.start(run_id, {"seed": run.seed}, logdir)
        with RunDir(logdir) as rundir:
            rundir.start()
            for step, values in records:
                rundir.record_episode({"length": 100.0, **values, "step": step})
            summary = rundir.summary(
                Counters(steps=max([s for s, _ in records], default=0)), finished=True
            )
        recorder.end(summary)
        if status(run) == "FAILED":
            tracker.fail(run_id, "RuntimeError: boom")
        elif status(run) == "RUNNING":
            tracker.start(run_id, {"seed": run.seed}, logdir)


def _spec(text: str):
    return parse_spec(text, "spec.yaml")


TINY = """
name: tiny
suite: atari100k
tasks: [pong, breakout]
seeds: 2
steps: 1000
overrides: {agent.size: debug}
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    rng = np.random.default_rng(0)
    base = {"pong": -20.0, "breakout": 2.0}

    def episodes(run):
        if (run.task, run.seed) == ("breakout", 1):
            return None  # one missing seed, to be reported
        return [
            (step, {"score": float(rng.normal(base[run.task] + step / 100))})
            for step in (200, 400, 600, 800, 1000)
        ]

    record_sweep(uri, _spec(TINY), episodes)
    tracking.Tracker(uri).experiment("empty")
    # Two grid points, one seed each: 100 and 900.
    grid = _spec(
        "name: grid\nsuite: atari100k\ntasks: [pong]\nseeds: 1\nsteps: 1000\n"
        "overrides: {agent.size: debug}\ngrid: {agent.train_ratio: [512, 32]}\n"
    )
    record_sweep(
        uri, grid, lambda run: [(1000, {"score": GRID_SCORES[run.config.agent.train_ratio]})]
    )
    # A run that has not finished an episode yet (seed 1).
    early = _spec(
        "name: early\nsuite: atari100k\ntasks: [pong]\nseeds: 2\nsteps: 1000\noverrides: "
        "{agent.size: debug}\n"
    )
    record_sweep(uri, early, lambda run: [(1000, {"score": -20.0})] if run.seed == 0 else [])
    # experiments/quickstart.yaml as it is: 1500 steps of DMC, whose episodes last 1000
    # steps, so each run has one episode, at step 1000, before the suite's 25k window.
    record_sweep(
        uri,
        load_spec(ROOT / "experiments" / "quickstart.yaml"),
        lambda run: [(1000, {"score": QUICKSTART_SCORES[(run.task, run.seed)]})],
    )
    # A suite without score references: gym, any task.
    gym = _spec(
        "name: gymraw\nsuite: gym\ntasks: [CartPole-v1, Acrobot-v1]\nseeds: 2\nsteps: 1000\n"
        "overrides: {agent.size: debug}\n"
    )
    record_sweep(uri, gym, lambda run: [(1000, {"score": GYM_SCORES[(run.task, run.seed)]})])
    # Runs that did not finish: seed 1 FAILED at step 200 of 1000, seed 2 still RUNNING at 600.
    unfinished = _spec(
        "name: unfinished\nsuite: atari100k\ntasks: [pong]\nseeds: 3\nsteps: 1000\n"
        "overrides: {agent.size: debug}\n"
    )
    reached = {0: 1000, 1: 200, 2: 600}
    record_sweep(
        uri,
        unfinished,
        lambda run: [(s, {"score": float(s)}) for s in (200, 600, 1000) if s <= reached[run.seed]],
        lambda run: {0: "FINISHED", 1: "FAILED", 2: "RUNNING"}[run.seed],
    )
    return uri


GRID_SCORES = {32.0: 100.0, 512.0: 900.0}
GYM_SCORES = {
    ("CartPole-v1", 0): 100.0,
    ("CartPole-v1", 1): 300.0,
    ("Acrobot-v1", 0): -500.0,
    ("Acrobot-v1", 1): -100.0,
}
QUICKSTART_SCORES = {
    ("cartpole_balance", 0): 300.0,
    ("cartpole_balance", 1): 500.0,
    ("reacher_easy", 0): 50.0,
    ("reacher_easy", 1): 150.0,
}


def test_load_runs_tidy(store):
    df = load_runs(store, "tiny")
    assert list(df.columns[:10]) == [
        "method",
        "suite",
        "task",
        "seed",
        "run_key",
        "step",
        "frames",
        "score",
        "layout",
        "budget_frames",
    ]
    assert len(df) == 3 * 5 and set(df["method"]) == {"dreamerbench"}
    np.testing.assert_allclose(df["frames"], df["step"] * 4)
    assert (df["budget_frames"] == 4000).all()  # run.steps 1000 x action repeat 4


def test_load_runs_errors(store):
    with pytest.raises(ValueError, match=r"experiment='empty' has no runs"):
        load_runs(store, "empty")
    with pytest.raises(ValueError, match=r"experiment='nope' does not exist.*allowed: .*tiny"):
        load_runs(store, "nope")


@pytest.fixture
def cli(monkeypatch):
    # Only our subcommands: the other packages' modules may not exist on this branch.
    monkeypatch.setattr(
        dreamerbench.experiments.cli,
        "SUBCOMMANDS",
        {"table": "dreamerbench.analysis.cli", "plot": "dreamerbench.analysis.cli"},
    )
    return dreamerbench.experiments.cli.main


def _csv(out: str) -> dict:
    """(section, name, method, quantity) -> value of a ``--format csv`` table."""
    import io

    import pandas as pd

    df = pd.read_csv(io.StringIO(out))
    return {(r.section, r.name, r.method, r.quantity): r.value for r in df.itertuples()}


@needs_published
def test_end_to_end_table(store, cli, capsys):
    code = cli(
        [
            "table",
            "--suite",
            "atari100k",
            "--runs",
            "tiny",
            "--tracking-uri",
            store,
            "--baseline",
            "dreamerv3",
            "--published-dir",
            str(PUBLISHED),
            "--format",
            "csv",
            "--reps",
            "500",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "dreamerbench on breakout: 1 of 2 seeds; missing seed(s) 1." in err  # warned
    values = _csv(out)
    # Our pong final = mean over seeds of the episodes in (0, 4000] frames: the budget the
    # sweep asked for (1000 steps x 4), the suite's 10k-frame window capped at it.
    df = load_runs(store, "tiny")
    expected = df[df["task"] == "pong"].groupby("seed")["score"].mean().mean()
    assert values[("task", "pong", "dreamerbench", "score")] == pytest.approx(expected)
    assert (
        "probability_of_improvement",
        "P(dreamerbench > dreamerv3)",
        "dreamerv3",
        "probability_of_improvement",
    ) in values


def test_end_to_end_markdown_footnotes(store, cli, capsys):
    code = cli(
        [
            "table",
            "--suite",
            "atari100k",
            "--runs",
            "tiny",
            "--tracking-uri",
            store,
            "--reps",
            "500",
        ]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    assert "| breakout | " in out and "missing seed(s) 1" in out
    assert "no runs on 24 of 26 tasks" in out  # absent tasks are footnoted too
    # ... and every aggregate cell, which uses only the 2 tasks, carries that note's mark.
    (number,) = [
        line[1:].split("]")[0] for line in out.splitlines() if "no runs on 24 of 26 tasks" in line
    ]
    for name in ("Mean", "Median", "IQM", "Optimality gap"):
        (row,) = [line for line in out.splitlines() if line.startswith(f"| **{name}** (norm. %)")]
        assert row.endswith(f"] [{number}] |"), row
    assert (
        cli(
            [
                "table",
                "--suite",
                "atari100k",
                "--runs",
                "tiny",
                "--tracking-uri",
                store,
                "--reps",
                "500",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    import io

    import pandas as pd

    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    aggregates = csv[csv["section"] == "aggregate"]
    assert (
        len(aggregates) == 4 and aggregates["notes"].str.contains("no runs on 24 of 26 tasks").all()
    )
    assert (
        "budget 4,000 frames "
        "(the budget the runs of 'tiny' were asked for (run.steps x action repeat))" in out
    )
    assert "window 4,000 frames (the suite's 10,000 capped at the budget)" in out


def test_grid_points_are_separate_rows(store, cli, capsys):
    assert (
        cli(
            [
                "table",
                "--suite",
                "atari100k",
                "--runs",
                "grid",
                "--tracking-uri",
                store,
                "--format",
                "csv",
                "--reps",
                "100",
            ]
        )
        == 0
    )
    values = _csv(capsys.readouterr().out)
    rows = {k[2]: v for k, v in values.items() if k[0] == "task" and k[3] == "score"}
    assert rows == {
        "dreamerbench (agent.train_ratio=32.0)": 100.0,
        "dreamerbench (agent.train_ratio=512.0)": 900.0,
    }


def test_a_run_without_episodes_is_footnoted(store, cli, capsys):
    assert (
        cli(
            [
                "table",
                "--suite",
                "atari100k",
                "--runs",
                "early",
                "--tracking-uri",
                store,
                "--reps",
                "100",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "pong, seed 1: no episode in the final window (0, 4,000] frames (it has none); left out."
        in out
    )


def test_quickstart_sized_runs_need_no_extra_flags(store, tmp_path, cli, capsys):
    base = [
        "--suite",
        "dmc_proprio",
        "--runs",
        "quickstart",
        "--tracking-uri",
        store,
        "--reps",
        "200",
    ]
    assert cli(["table", *base]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert (
        "(0, 1,500] frames: budget 1,500 frames (the budget the runs of 'quickstart' were asked for"
        in out
    )
    assert "| cartpole_balance | 400.0 [300.0, 500.0] | 40.0 [30.0, 50.0] |" in out
    assert "| reacher_easy | 100.0 [50.0, 150.0] | 10.0 [5.00, 15.0] |" in out
    for kind in ("curves", "aggregate", "profile"):
        assert cli(["plot", *base, "--kind", kind, "--out", str(tmp_path / kind)]) == 0, (
            capsys.readouterr().err
        )
        assert (tmp_path / kind).with_suffix(".png").stat().st_size > 1000


def test_a_suite_without_score_references_gets_a_raw_score_table(store, cli, tmp_path, capsys):
    """gym: per-task raw final scores with CIs; no normalised column, no aggregates."""
    base = ["--suite", "gym", "--runs", "gymraw", "--tracking-uri", store, "--reps", "200"]
    assert cli(["table", *base]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "| Task | dreamerbench score |" in out and "norm." not in out and "IQM" not in out
    assert "| Acrobot-v1 | -300.0 [-500.0, -100.0] |" in out
    assert "| CartPole-v1 | 200.0 [100.0, 300.0] |" in out
    assert "raw scores only: gym has no score references" in out
    assert cli(["plot", *base, "--kind", "curves", "--out", str(tmp_path / "c")]) == 0
    assert cli(["plot", *base, "--kind", "profile", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "suite='gym' has no score references, so plot --kind profile" in err
    )
    # A user's own published file for gym names its tasks as the runs do (a '-' stays a '-').
    with gzip.open(tmp_path / "gym-mine.json.gz", "wt") as f:
        json.dump(
            [
                {"task": "CartPole-v1", "method": "mine", "seed": seed, "xs": [1000], "ys": [score]}
                for seed, score in enumerate([150.0, 350.0])
            ],
            f,
        )
    assert cli(["table", *base, "--baseline", "mine", "--published-dir", str(tmp_path)]) == 0, (
        capsys.readouterr().err
    )
    out = capsys.readouterr().out
    assert "| CartPole-v1 | 200.0 [100.0, 300.0] | 250.0 [150.0, 350.0] |" in out, out
    # P(dreamerbench > mine) on CartPole, the one task in common: (0 + 0 + 1 + 0) / 4.
    assert "| **P(dreamerbench > mine)** |  | 0.25 [" in out


def test_curves_need_no_final_window(store, cli, tmp_path, capsys):
    # A window the runs never reach: the curves do not care, the table says why it is empty.
    args = [
        "--suite",
        "atari100k",
        "--runs",
        "tiny",
        "--tracking-uri",
        store,
        "--budget-frames",
        "400000",
    ]
    assert (
        cli(["plot", *args, "--kind", "curves", "--out", str(tmp_path / "c"), "--reps", "100"]) == 0
    )
    assert cli(["table", *args]) == 2
    assert "has no final score on any task" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["curves", "aggregate", "profile"])
def test_end_to_end_plot_one_seed(store, cli, tmp_path, kind, capsys):
    code = cli(
        [
            "plot",
            "--suite",
            "atari100k",
            "--runs",
            "tiny",
            "--tracking-uri",
            store,
            "--kind",
            kind,
            "--out",
            str(tmp_path / kind),
            "--bins",
            "4",
            "--reps",
            "200",
        ]
    )
    assert code == 0, capsys.readouterr().err
    for suffix in (".png", ".pdf"):
        assert (tmp_path / kind).with_suffix(suffix).stat().st_size > 1000


def test_cli_bad_input(store, cli, capsys):
    assert cli(["table", "--suite", "atari", "--runs", "tiny", "--tracking-uri", store]) == 2
    assert "suite='atari' is unknown; allowed:" in capsys.readouterr().err
    assert cli(["table", "--suite", "atari100k", "--runs", "empty", "--tracking-uri", store]) == 2
    assert "experiment='empty' has no runs" in capsys.readouterr().err
    assert cli(["table", "--suite", "dmc_proprio", "--runs", "tiny", "--tracking-uri", store]) == 2
    assert "has no runs of suite 'dmc_proprio'; its suites: atari100k" in capsys.readouterr().err
    assert cli(["table", "--suite", "atari100k"]) == 2
    assert "give --runs SWEEP and/or --baseline METHOD" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["table", "plot"])
def test_bad_options_are_one_line_errors(store, cli, tmp_path, capsys, command):
    base = [command, "--suite", "atari100k", "--runs", "tiny"] + (
        ["--kind", "curves", "--out", str(tmp_path / "p")] if command == "plot" else []
    )
    missing = tmp_path / "nothing" / "mlflow.db"
    cases = [
        (["--tracking-uri", f"sqlite:///{missing}"], f"no MLflow store at sqlite:///{missing}"),
        (
            ["--tracking-uri", f"file://{tmp_path}/mlruns"],
            "file store in maintenance mode; use sqlite:///",
        ),
        (
            ["--tracking-uri", store, "--reps", "0"],
            "--reps=0 is not allowed; allowed: an integer in [100, 200000]",
        ),
        (
            ["--tracking-uri", store, "--reps", "-5"],
            "--reps=-5 is not allowed; allowed: an integer in [100, 200000]",
        ),
        (
            ["--tracking-uri", store, "--budget-frames", "0"],
            "--budget-frames=0 is not allowed; allowed: an integer in [1, ",
        ),
        # The budget recorded with the runs is known only once they are read.
        (
            ["--tracking-uri", store, "--window-frames", "9000"],
            "--window-frames=9000 is not allowed; allowed: a whole number of frames in [1, 4,000]: "
            "the window lies within the budget "
            "(the budget the runs of 'tiny' were asked for (run.steps x action repeat))",
        ),
    ]
    if command == "plot":
        cases.append(
            (
                ["--tracking-uri", store, "--bins", "0"],
                "--bins=0 is not allowed; allowed: an integer in [1, 1000]",
            )
        )

    def exit_code(argv):  # flags are refused by argparse (SystemExit), values by the command
        try:
            return cli(argv)
        except SystemExit as stop:
            return stop.code

    for extra, message in cases:
        assert exit_code(base + extra) == 2, extra
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (extra, err)
    assert not missing.parent.exists()  # nothing created
    assert not list(tmp_path.glob("p.*"))


@pytest.mark.slow
def test_a_train_run_reaches_the_table(tmp_path, cli, capsys):
    # `dreamerbench train --tracking-uri` records one MLflow run (tags, params, episodes)
    # that the table reads; tiny config of tests/test_train_command.py: 126-step episodes.
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    sets = [
        "agent.batch_size=2",
        "agent.batch_length=8",
        "agent.imag_length=3",
        "agent.train_ratio=16",
        "run.envs=1",
        "run.train_start=40",
        "run.save_every=126",
        "run.log_every=0",
        "replay.capacity=5000",
        "env.action_repeat=8",
        f"run.compile_cache={tmp_path / 'jax'}",
    ]
    command = [
        sys.executable,
        "-m",
        "dreamerbench.experiments.cli",
        "train",
        "--suite",
        "dmc_proprio",
        "--task",
        "cartpole_balance",
        "--size",
        "debug",
        "--steps",
        "252",
        "--logdir",
        str(tmp_path / "run"),
        "--tracking-uri",
        uri,
        *[a for s in sets for a in ("--set", s)],
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    episodes = [
        json.loads(line) for line in (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()
    ]
    assert [e["step"] for e in episodes] == [125, 251]
    assert (
        cli(
            [
                "table",
                "--suite",
                "dmc_proprio",
                "--runs",
                "train",
                "--tracking-uri",
                uri,
                "--format",
                "csv",
                "--reps",
                "100",
            ]
        )
        == 0
    )
    values = _csv(capsys.readouterr().out)
    # Budget 252 steps x action repeat 8 = 2016 frames, the window capped at it: both episodes.
    assert values[("task", "cartpole_balance", "dreamerbench", "score")] == pytest.approx(
        np.mean([e["score"] for e in episodes])
    )
    tracker = tracking.Tracker(uri, create=False)
    run = tracker.runs(tracker.find_experiment("train").experiment_id)[0]
    assert (
        run.info.status == "FINISHED" and run.data.tags["dreamerbench.task"] == "cartpole_balance"
    )
    # Training the same logdir again resumes the same MLflow run: nothing is recorded twice.
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    df = load_runs(uri, "train")
    assert len(df) == 2 and df["run_key"].nunique() == 1


# --- issue: table/plot faults found by a tester ------------------------------------------


def _exit_code(cli, argv):
    try:
        return cli(argv)
    except SystemExit as stop:  # argparse's own exit
        return stop.code


@pytest.mark.parametrize("command", ["table", "plot"])
def test_flag_ranges_are_refused_before_anything_is_read(cli, tmp_path, capsys, command):
    """--reps, --bins, --budget-frames and --window-frames have ranges: one line naming the
    flag, the value and what is allowed, exit 2, before the (missing) store is opened."""
    missing = tmp_path / "none" / "mlflow.db"
    base = [
        command,
        "--suite",
        "dmc_proprio",
        "--runs",
        "x",
        "--tracking-uri",
        f"sqlite:///{missing}",
    ]
    base += ["--kind", "curves", "--out", str(tmp_path / "p")] if command == "plot" else []
    reps = (
        "allowed: an integer in [100, 200000] "
        "(below 100 a 95% CI's ends rest on the 2 or 3 most extreme"
    )
    frames = "allowed: an integer in [1, 1000000000000] (whole frames, at most 10^12"
    cases = [
        (["--reps", "1"], "--reps=1 is not allowed; " + reps),
        (["--reps", "99"], "--reps=99 is not allowed; " + reps),
        (["--reps", "10000000000"], "--reps=10000000000 is not allowed; " + reps),
        (["--reps", "200001"], "--reps=200001 is not allowed; " + reps),
        (["--budget-frames", "0.5"], "--budget-frames=0.5 is not allowed; " + frames),
        (["--budget-frames", "1500.7"], "--budget-frames=1500.7 is not allowed; " + frames),
        (["--budget-frames", "1e30"], "--budget-frames=1e+30 is not allowed; " + frames),
        (["--window-frames", "2.5"], "--window-frames=2.5 is not allowed; " + frames),
        (
            ["--budget-frames", "1500", "--window-frames", "99999"],
            "--window-frames=99999 is not allowed; allowed: a whole number of frames in "
            "[1, 1,500]: the window lies within the budget (--budget-frames)",
        ),
        # Without --runs the budget is the suite's (dmc_proprio: 500k frames).
        (
            ["--window-frames", "500001"],
            "--window-frames=500001 is not allowed; allowed: a whole number of frames in "
            "[1, 500,000]: the window lies within the budget (the suite's budget)",
        ),
    ]
    if command == "plot":
        cases += [
            (
                ["--bins", "1001"],
                "--bins=1001 is not allowed; allowed: an integer in [1, 1000] (a curve panel",
            ),
            (
                ["--bins", "100000000"],
                "--bins=100000000 is not allowed; allowed: an integer in [1, 1000]",
            ),
        ]
    for extra, message in cases:
        argv = base + extra
        if extra[-1] == "500001":
            argv = [a for a in argv if a not in ("--runs", "x")] + ["--baseline", "dreamerv3"]
        assert _exit_code(cli, argv) == 2, extra
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (extra, err)
    assert not missing.parent.exists() and not list(tmp_path.glob("p.*"))


def test_flag_range_ends_are_accepted(store, cli, capsys):
    """--reps 100 and whole frames written as floats (1e4) are allowed; the CI holds the
    estimate."""
    assert (
        cli(
            [
                "table",
                "--suite",
                "atari100k",
                "--runs",
                "tiny",
                "--tracking-uri",
                store,
                "--reps",
                "100",
                "--budget-frames",
                "4e3",
                "--window-frames",
                "4000.0",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    import io

    import pandas as pd

    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    pong = csv[(csv["name"] == "pong") & (csv["quantity"] == "score")].iloc[0]
    assert pong["lo"] <= pong["value"] <= pong["hi"] and pong["lo"] < pong["hi"]


@pytest.mark.parametrize("command", ["table", "plot"])
def test_out_is_one_rule_checked_before_anything_is_read(cli, tmp_path, capsys, command):
    """--out: a file path, not a folder, whose nearest existing folder is writable; the same for
    table and plot, refused in one line naming --out before the (missing) store is opened."""
    missing = tmp_path / "none" / "mlflow.db"
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "dir.png").mkdir()
    base = [
        command,
        "--suite",
        "atari100k",
        "--runs",
        "x",
        "--tracking-uri",
        f"sqlite:///{missing}",
    ]
    base += ["--kind", "curves"] if command == "plot" else []
    allowed = (
        "allowed: a file path, not a folder, whose nearest existing folder is writable "
        "(missing parent folders are created when the result is written)"
    )
    cases = [
        ("", "this names no file"),
        (str(tmp_path), f"{tmp_path} is a folder"),
        (str(tmp_path) + "/", "this names no file"),
        (str(tmp_path / "a_file" / "t.md"), f"{tmp_path / 'a_file'} is not a folder"),
    ]
    if command == "plot":  # plot writes OUT.png and OUT.pdf
        cases.append((str(tmp_path / "dir"), f"{tmp_path / 'dir.png'} is a folder"))
    for out, why in cases:
        assert _exit_code(cli, base + ["--out", out]) == 2, out
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--out={out!r} is not allowed; {allowed}; {why}" in err, (
            out,
            err,
        )
    assert not missing.parent.exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "a_file",
        "dir.png",
    ]


@pytest.mark.parametrize("command", ["table", "plot"])
def test_out_creates_missing_parent_folders(store, cli, tmp_path, capsys, command):
    out = tmp_path / "new" / "deeper" / "result"
    argv = [
        command,
        "--suite",
        "atari100k",
        "--runs",
        "tiny",
        "--tracking-uri",
        store,
        "--reps",
        "100",
        "--out",
        str(out),
    ]
    assert cli(argv + (["--kind", "curves"] if command == "plot" else [])) == 0, (
        capsys.readouterr().err
    )
    if command == "table":
        assert out.read_text().startswith("atari100k: final score")
    else:
        assert (
            out.with_suffix(".png").stat().st_size > 1000
            and out.with_suffix(".pdf").stat().st_size > 1000
        )


@pytest.mark.parametrize("kind", ["curves", "aggregate"])
def test_a_plot_with_nothing_to_draw_is_refused(store, cli, tmp_path, capsys, kind):
    """No episode ends within --budget-frames 10: one line and exit 2, as the table does, no
    file."""
    assert (
        cli(
            [
                "plot",
                "--suite",
                "atari100k",
                "--runs",
                "tiny",
                "--tracking-uri",
                store,
                "--kind",
                kind,
                "--budget-frames",
                "10",
                "--out",
                str(tmp_path / "p"),
                "--reps",
                "100",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing to plot: no line of dreamerbench has" in err, err
    assert (
        "in (0, 10] frames (their first episode ends at 800 frames)" in err
    )  # step 200 x action repeat 4
    assert not list(tmp_path.glob("p.*"))


def test_load_runs_carries_status_and_steps(store):
    df = load_runs(store, "unfinished")
    state = df.groupby("seed")[["status", "steps_done", "budget_steps"]].first()
    assert state.to_dict("index") == {
        0: {"status": "FINISHED", "steps_done": 1000, "budget_steps": 1000},
        1: {"status": "FAILED", "steps_done": 200, "budget_steps": 1000},
        2: {"status": "RUNNING", "steps_done": 600, "budget_steps": 1000},
    }


def test_runs_that_did_not_finish_are_footnoted(store, cli, capsys):
    """A FAILED or still RUNNING run is tabulated with a note on its cell; a FINISHED one has
    none."""
    base = [
        "table",
        "--suite",
        "atari100k",
        "--runs",
        "unfinished",
        "--tracking-uri",
        store,
        "--reps",
        "100",
    ]
    assert cli(base) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("[")]
    assert notes == [
        "[1] dreamerbench on pong, seed 1: run FAILED at 200 of 1,000 steps "
        "(it stopped with an error); its score comes from the episodes it recorded.",
        "[2] dreamerbench on pong, seed 2: run RUNNING at 600 of 1,000 steps "
        "(still training, or its job ended without saying so); "
        "its score comes from the episodes it recorded.",
        "[3] dreamerbench: no runs on 25 of 26 tasks ("
        + ", ".join(t for t in SUITES["atari100k"].tasks if t != "pong")
        + "); its aggregates use the other tasks only.",
    ]
    (pong,) = [line for line in out.splitlines() if line.startswith("| pong |")]
    assert pong.split(" | ")[1].endswith("] [1] [2]")
    assert cli([*base, "--format", "csv"]) == 0
    values = {
        (r.section, r.name, r.quantity): r.notes
        for r in _read_csv(capsys.readouterr().out).itertuples()
    }
    assert values[("task", "pong", "score")] == notes[0][4:] + " " + notes[1][4:]
    assert (
        cli(
            [
                "table",
                "--suite",
                "atari100k",
                "--runs",
                "tiny",
                "--tracking-uri",
                store,
                "--reps",
                "100",
            ]
        )
        == 0
    )
    finished = capsys.readouterr().out
    assert "run FINISHED" not in finished and " steps (" not in finished


def _read_csv(text):
    import io

    import pandas as pd

    return pd.read_csv(io.StringIO(text))
