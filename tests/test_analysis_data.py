"""Loaders on the real published files and a real MLflow store; CLI end to end; bad input."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

import experiments.cli
from analysis import load_published, load_runs
from analysis.references import SUITES
from analysis.scores import FinalRule, final_scores

PUBLISHED = Path(__file__).resolve().parents[1].parent / "shared" / "baselines" / "dreamerv3"
needs_published = pytest.mark.skipif(not PUBLISHED.is_dir(), reason=f"{PUBLISHED} not present")


@needs_published
def test_published_per_episode_file():
    df = load_published("atari100k", "dreamerv3", PUBLISHED)
    assert set(df["task"]) == set(SUITES["atari100k"].tasks)  # prefix "atari_" removed
    assert (df["layout"] == "episode").all()
    assert df.groupby("task")["seed"].nunique().eq(5).all()
    np.testing.assert_allclose(df["step"] * 4, df["frames"])  # frames vs agent steps
    assert df["frames"].max() <= 400_000


@needs_published
def test_published_binned_file_keeps_null_bins():
    df = load_published("atari57", "dreamerv3", PUBLISHED)
    assert (df["layout"] == "binned").all()
    assert df["score"].isna().any()  # null bins stay visible as NaN
    finals = final_scores(df, SUITES["atari57"], FinalRule.for_suite(SUITES["atari57"]))
    short = finals[finals["final"].isna()]
    # A run that stopped early has no final score, and it is reported, not dropped.
    assert (short["last_frames"] < 198e6).all() and len(short) >= 1


@needs_published
def test_published_unknown_method_names_allowed_ones():
    with pytest.raises(ValueError, match=r"method='nope'.*allowed: dreamerv3, ppo_fixhp"):
        load_published("atari100k", "nope", PUBLISHED)


def test_published_wrong_layout(tmp_path):
    with gzip.open(tmp_path / "atari100k-bad.json.gz", "wt") as f:
        json.dump([{"task": "atari_pong", "method": "bad", "seed": 0, "xs": [1, 2]}], f)
    with pytest.raises(ValueError, match=r"lacks field 'ys'; required fields: task, method, seed, xs, ys"):
        load_published("atari100k", "bad", tmp_path)
    with gzip.open(tmp_path / "atari100k-dict.json.gz", "wt") as f:
        json.dump({"runs": []}, f)
    with pytest.raises(ValueError, match="expected a list of runs"):
        load_published("atari100k", "dict", tmp_path)


def test_unknown_suite():
    with pytest.raises(ValueError, match=r"suite='atari' is unknown; allowed: atari100k, atari57"):
        load_published("atari", "dreamerv3", PUBLISHED)


# --- MLflow ----------------------------------------------------------------------------


def _log_sweep(uri, name, runs):
    """Log runs the way the sweep recorder does (tags, protocol params, episode metrics)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(uri)
    exp = client.create_experiment(name)
    for task, seed, scores in runs:
        run = client.create_run(exp)
        tags = {"run_key": f"{name}/{task}/{seed}", "sweep": name, "suite": "atari100k", "task": task, "seed": str(seed)}
        metrics = [Metric("episode/score", s, 0, step) for step, s in scores]
        metrics += [Metric("episode/length", 100.0, 0, step) for step, _ in scores]
        client.log_batch(run.info.run_id, metrics=metrics,
                         params=[Param("protocol.action_repeat", "4")],
                         tags=[RunTag("dreamerbench." + k, v) for k, v in tags.items()])
        client.set_terminated(run.info.run_id)
    return exp


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    rng = np.random.default_rng(0)
    runs = [(task, seed, [(step, float(rng.normal(base + step / 100)))
                          for step in (200, 400, 600, 800, 1000)])
            for task, base in (("pong", -20.0), ("breakout", 2.0)) for seed in (0, 1)
            if (task, seed) != ("breakout", 1)]  # one missing seed, to be reported
    _log_sweep(uri, "tiny", runs)
    _log_sweep(uri, "empty", [])
    return uri


def test_load_runs_tidy(store):
    df = load_runs(store, "tiny")
    assert list(df.columns[:9]) == ["method", "suite", "task", "seed", "run_key", "step", "frames", "score", "layout"]
    assert len(df) == 3 * 5 and set(df["method"]) == {"dreamerbench"}
    np.testing.assert_allclose(df["frames"], df["step"] * 4)


def test_load_runs_errors(store):
    with pytest.raises(ValueError, match=r"experiment='empty' has no runs"):
        load_runs(store, "empty")
    with pytest.raises(ValueError, match=r"experiment='nope' does not exist.*allowed: .*tiny"):
        load_runs(store, "nope")


@pytest.fixture
def cli(monkeypatch):
    # Only our subcommands: the other packages' modules may not exist on this branch.
    monkeypatch.setattr(experiments.cli, "SUBCOMMANDS", {"table": "analysis.cli", "plot": "analysis.cli"})
    return experiments.cli.main


SMALL = ["--budget-frames", "4000", "--window-frames", "500", "--reps", "500"]


@needs_published
def test_end_to_end_table(store, cli, capsys):
    code = cli(["table", "--suite", "atari100k", "--runs", "tiny", "--tracking-uri", store,
                "--baseline", "dreamerv3", "--published-dir", str(PUBLISHED), "--format", "csv", *SMALL])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "dreamerbench on breakout: 1 of 2 seeds; missing seed(s) 1." in err  # warned
    lines = out.splitlines()
    pong = [line for line in lines if line.startswith("task,pong,dreamerbench,")]
    assert len(pong) == 1
    # Our pong final = mean over seeds of the episode at 4000 frames (step 1000).
    df = load_runs(store, "tiny")
    expected = df[(df["task"] == "pong") & (df["step"] == 1000)]["score"].mean()
    assert float(pong[0].split(",")[3]) == pytest.approx(expected)
    assert any(line.startswith("probability_of_improvement,P(dreamerbench > dreamerv3)") for line in lines)


def test_end_to_end_markdown_footnotes(store, cli, capsys):
    code = cli(["table", "--suite", "atari100k", "--runs", "tiny", "--tracking-uri", store, *SMALL])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "| breakout | " in out and "missing seed(s) 1" in out
    assert "no runs on 24 of 26 tasks" in out  # absent tasks are footnoted too


@pytest.mark.parametrize("kind", ["curves", "aggregate", "profile"])
def test_end_to_end_plot_one_seed(store, cli, tmp_path, kind, capsys):
    code = cli(["plot", "--suite", "atari100k", "--runs", "tiny", "--tracking-uri", store,
                "--kind", kind, "--out", str(tmp_path / kind), "--bins", "4", *SMALL])
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
