"""A launcher defined in one file (tests/toy_launcher.py) and registered with one line runs a
real tiny sweep through the launcher interface only; its runs finish and reach MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_sweep_slurm import QUICKSTART, jsonl, tiny_spec
from toy_launcher import JOB_TAG, ToyLauncher

from dreamerbench.experiments import cli, launchers, tracking
from dreamerbench.experiments.spec import SpecError, load_spec

EPISODE = 126  # cartpole with action repeat 8: 125 actions per episode


def test_an_unknown_launcher_is_refused_in_one_line_naming_the_registered_ones(tmp_path):
    spec = tiny_spec(tmp_path, "toy", executor="toy")
    with pytest.raises(SpecError, match=r"executor='toy' is not allowed; allowed: local, slurm$"):
        load_spec(spec)
    with pytest.raises(ValueError, match=r"^executor='toy' is not allowed; allowed: local, slurm$"):
        launchers.get("toy")


def test_a_toy_launcher_registered_in_one_line_runs_a_sweep_into_mlflow(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(launchers.LAUNCHERS, ToyLauncher.name, ToyLauncher)  # the one line
    quickstart = yaml.safe_load(QUICKSTART.read_text())["overrides"]
    spec = tiny_spec(
        tmp_path,
        "toy",
        executor="toy",
        tasks=["cartpole_balance"],
        seeds=1,
        steps=EPISODE,
        overrides={
            **quickstart,
            "env.action_repeat": 8,
            "run.save_every": EPISODE,
            "run.train_start": 64,
        },
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["--tracking-uri", uri]
    code = cli.main(["sweep", str(spec), *args, "--workdir", str(tmp_path / "work")])
    output = capsys.readouterr().out
    assert code == 0, output
    assert "1 runs (dmc_proprio) -> toy, 1 subprocess(es) at once" in output, output
    assert "runs: 1 finished" in output, output

    tracker = tracking.Tracker(uri, create=False)
    runs = tracker.runs(tracker.find_experiment("toy").experiment_id)
    assert len(runs) == 1
    files = sorted(p.name for p in (tmp_path / "work" / "toy" / "toy").iterdir())
    assert files == ["job0.json", "job0.log"]
    for run in runs:
        tags = run.data.tags
        assert run.info.status == "FINISHED"
        assert tags["dreamerbench.launcher"] == "toy" and tags["dreamerbench." + JOB_TAG]
        episodes = jsonl(Path(tags["dreamerbench.logdir"]) / "episodes.jsonl")
        history = tracker.client.get_metric_history(run.info.run_id, "episode/score")
        assert len(episodes) == 1
        assert sorted((m.step, m.value) for m in history) == [
            (e["step"], e["score"]) for e in episodes
        ]
    # status asks the toy launcher (the runs' launcher tag) whether their jobs live
    assert cli.main(["status", str(spec), *args]) == 0
    assert "(1 finished)" in capsys.readouterr().out


def test_the_docs_show_the_toy_launcher_as_it_is():
    """docs/launchers.md's worked example of a new launcher is this tested file, verbatim."""
    tests = Path(__file__).resolve().parent
    page = (tests.parent / "docs" / "launchers.md").read_text()
    assert f"```python\n{(tests / 'toy_launcher.py').read_text()}```\n" in page
