"""bsuite's own scores of our runs read back from MLflow: ``dreamerbench table --suite bsuite``
gives bsuite's per-experiment scores and its summary by tag, equal to what bsuite's own
analysis (``bsuite.experiments.summary_analysis``) gives on the same episodes, and ``plot
--kind radar|bar`` draws them.

The episodes are real bsuite episodes (a random and a scripted policy on bsuite's own
environments), recorded as ``dreamerbench sweep`` records a run (``record_sweep``); the slow
test trains through the CLI instead.
"""

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
from test_analysis_data import record_sweep
from test_suites_bsuite import _catch_expert, _records
from test_suites_train import cli_train

from dreamerbench.analysis import bsuite as summary
from dreamerbench.experiments.cli import main as cli
from dreamerbench.experiments.spec import parse_spec
from dreamerbench.suites import get_suite

bsuite = pytest.importorskip("bsuite")
BSUITE = get_suite("bsuite")
TASKS = ("catch_0", "catch_1", "bandit_0", "umbrella_length_0", "memory_len_0", "deep_sea_0")
SPEC = f"""
name: bs
suite: bsuite
tasks: [{", ".join(TASKS)}]
seeds: 1
steps: 100000
overrides: {{agent.size: debug}}
"""


def _policy(task):
    """catch_1 plays as an expert, so that catch's configurations differ."""
    return _catch_expert if task == "catch_1" else None


def _episodes(task: str, count: int = 40) -> list[dict]:
    """``count`` real episodes of ``task`` as episodes.jsonl records (score, length and
    bsuite's counters ``bsuite_<key>``), with the agent step each ends at."""
    records = _records(BSUITE.make_env(task, 0, {}), count, _policy(task))
    steps = np.cumsum([r["length"] for r in records])
    return [{**r, "step": int(s)} for r, s in zip(records, steps, strict=True)]


def bsuites_own(episodes: dict[str, list[dict]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """bsuite's own scores of these episodes: its logger's table (as bsuite's CSV/SQLite
    loggers write it: one row per episode with the counters, the configuration's settings,
    ``bsuite_id`` and ``bsuite_env``), scored by ``summary_analysis.bsuite_score`` and
    summarised by ``summary_analysis.ave_score_by_tag``."""
    from bsuite import sweep
    from bsuite.experiments import summary_analysis

    frames = []
    for task, records in episodes.items():
        experiment, _, index = task.rpartition("_")
        frame = pd.DataFrame(records)
        frame = pd.DataFrame(
            {
                "episode": np.arange(1, len(frame) + 1),
                "steps": frame["length"].cumsum(),
                "total_return": frame["score"].cumsum(),
                "episode_len": frame["length"],
                "episode_return": frame["score"],
                **{
                    c[len("bsuite_") :]: frame[c]
                    for c in frame.columns
                    if c.startswith("bsuite_") and c != "bsuite_env_episode"
                },
            }
        )
        bsuite_id = f"{experiment}/{index}"
        frames.append(
            frame.assign(bsuite_id=bsuite_id, bsuite_env=experiment, **sweep.SETTINGS[bsuite_id])
        )
    log = pd.concat(frames, ignore_index=True)
    scores = summary_analysis.bsuite_score(log)
    return scores, summary_analysis.ave_score_by_tag(scores, sweep_vars=None)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An MLflow store with one bsuite sweep (:data:`TASKS`, one seed) and its episodes."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    episodes = {task: _episodes(task) for task in TASKS}

    def delivered(run):
        return [
            (r["step"], {k: v for k, v in r.items() if k != "step"}) for r in episodes[run.task]
        ]

    record_sweep(uri, parse_spec(SPEC, "spec.yaml"), delivered)
    return uri, episodes


def _bsuite_rows(out: str) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(out)))
    return [r for r in rows if r["section"].startswith("bsuite_")]


def test_table_gives_bsuites_own_scores_from_the_store(store, capsys):
    uri, episodes = store
    args = ["table", "--suite", "bsuite", "--runs", "bs", "--tracking-uri", uri, "--reps", "100"]
    assert cli([*args, "--format", "csv"]) == 0, capsys.readouterr().err
    rows = _bsuite_rows(capsys.readouterr().out)
    own, own_tags = bsuites_own({t: e for t, e in episodes.items() if t != "deep_sea_0"})
    got = {r["name"]: r for r in rows if r["section"] == "bsuite_experiment"}
    assert set(got) == {"catch", "bandit", "umbrella_length", "memory_len", "deep_sea"}
    for row in own.itertuples():
        assert float(got[row.bsuite_env]["value"]) == pytest.approx(row.score, abs=1e-12)
        assert 0.0 <= row.score <= 1.0
    # catch: one configuration played randomly, one by an expert; both count.
    assert 0.0 < float(got["catch"]["value"]) < 1.0 and got["catch"]["n_runs"] == "2"
    # deep_sea is not scored (bsuite 0.3.6 needs pandas < 2 there), and says why.
    assert got["deep_sea"]["value"] == "" and "pandas" in got["deep_sea"]["notes"]
    tags = {r["name"]: r for r in rows if r["section"] == "bsuite_tag"}
    assert set(tags) == {
        "basic",
        "credit_assignment",
        "exploration",
        "generalization",
        "memory",
        "noise",
        "scale",
    }
    for row in own_tags.itertuples():
        value = tags[row.tag]["value"]
        assert (value == "" and np.isnan(row.score)) or float(value) == pytest.approx(row.score)
    assert tags["credit_assignment"]["n_tasks"] == "2"  # catch and umbrella_length

    assert cli(args) == 0
    text = capsys.readouterr().out
    # The tasks without runs: the first 60 named, not all 462.
    assert "no runs on 462 of 468 tasks (bandit_1, " in text and " and 402 more)" in text
    assert "umbrella_length_22" not in text
    catch = own.set_index("bsuite_env").loc["catch", "score"]
    assert f"| catch | basic, credit_assignment | {catch:.3f} (2/20 configs, 40/10,000" in text
    assert "deep_sea (dreamerbench): not scored: bsuite 0.3.6 scores it with pandas'" in text


def test_plots_hold_bsuites_scores(store, capsys, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.collections import PolyCollection

    uri, episodes = store
    for kind in ("radar", "bar"):
        out = tmp_path / f"{kind}.png"
        args = ["plot", "--suite", "bsuite", "--runs", "bs", "--tracking-uri", uri]
        assert cli([*args, "--kind", kind, "--out", str(out)]) == 0, capsys.readouterr().err
        assert out.stat().st_size > 10_000 and out.with_suffix(".pdf").stat().st_size > 1_000

    from dreamerbench.analysis import load_runs

    scores = summary.experiment_scores(load_runs(uri, "bs"))
    by_tag = summary.tag_scores(scores)
    own, own_tags = bsuites_own({t: e for t, e in episodes.items() if t != "deep_sea_0"})
    # The radar's polygon is bsuite's tag scores, in sorted tag order, drawn at least at 0.05.
    (line,) = summary.plot_radar(by_tag).axes[0].get_lines()
    expected = own_tags.set_index("tag")["score"].reindex(summary.tags()).fillna(0.0)
    np.testing.assert_allclose(line.get_ydata()[:-1], np.maximum(expected, summary.RADAR_FLOOR))
    # The bars are bsuite's experiment scores.
    fig = summary.plot_bar(scores)
    bars = [c for ax in fig.axes for c in ax.collections if isinstance(c, PolyCollection)]
    heights = sorted(path.vertices[:, 1].max() for c in bars for path in c.get_paths())
    np.testing.assert_allclose(heights, sorted(own["score"]), atol=1e-12)


def test_an_experiments_score_is_the_mean_over_seeds():
    """Seed 0 plays catch as an expert (bsuite's score 1), seed 1 at random."""
    runs = {
        0: _records(BSUITE.make_env("catch_0", 0, {}), 30, _catch_expert),
        1: _records(BSUITE.make_env("catch_0", 1, {}), 30),
    }
    own = [bsuites_own({"catch_0": runs[seed]})[0]["score"].iloc[0] for seed in (0, 1)]
    assert own[0] == 1.0 and own[1] < 1.0
    episodes = pd.DataFrame(
        [{"method": "m", "task": "catch_0", "seed": s, **r} for s, rs in runs.items() for r in rs]
    )
    scores = summary.experiment_scores(episodes)
    (row,) = scores.itertuples()
    assert (row.experiment, row.seeds, row.configs, row.of) == ("catch", 2, 1, 20)
    assert row.score == pytest.approx(np.mean(own)) and (row.episodes, row.needed) == (30, 10_000)
    by_tag = summary.tag_scores(scores).set_index("tag")
    assert by_tag.loc["basic", "score"] == row.score and np.isnan(by_tag.loc["memory", "score"])


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--suite", "dmc_proprio", "--kind", "radar", "--runs", "x"],
            "--kind='radar' is not allowed; allowed: curves, aggregate, profile for --suite "
            "dmc_proprio",
        ),
        (["--suite", "bsuite", "--kind", "bar"], "--kind bar needs --runs SWEEP"),
        (
            ["--suite", "bsuite", "--kind", "radar", "--runs", "x", "--ylim", "0,1"],
            "--ylim='0.0,1.0' is not allowed; allowed: --kind curves or aggregate",
        ),
    ],
)
def test_bad_bsuite_plots_are_one_line(capsys, tmp_path, args, message):
    out = tmp_path / "fig.png"
    assert cli(["plot", *args, "--out", str(out), "--tracking-uri", "sqlite:///x.db"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "x.db").exists()


@pytest.mark.slow
def test_trained_run_in_mlflow_scores_as_bsuite_does(tmp_path, capsys):
    """A tiny train through the CLI recorded in MLflow; the table's catch score is bsuite's
    own score of the episodes the run wrote."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    logdir = tmp_path / "run"
    summary_ = cli_train(
        logdir, "bsuite", "catch_0", 300, flags=("--tracking-uri", uri, "--experiment", "t")
    )
    assert summary_["finished"] and summary_["episodes"] == 30
    episodes = [json.loads(line) for line in (logdir / "episodes.jsonl").open()]
    own, _ = bsuites_own({"catch_0": episodes})
    args = ["table", "--suite", "bsuite", "--runs", "t", "--tracking-uri", uri, "--reps", "100"]
    assert cli([*args, "--format", "csv"]) == 0, capsys.readouterr().err
    (row,) = [r for r in _bsuite_rows(capsys.readouterr().out) if r["name"] == "catch"]
    assert float(row["value"]) == pytest.approx(own["score"].iloc[0], abs=1e-12)
    assert 0.0 <= float(row["value"]) <= 1.0
