"""DMLab-30 is stated, not built: listed with why, refused by train and sweep in one line before
anything is written, and its published scores still tabulate."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_sweep_slurm import dreamerbench

from dreamerbench.analysis import load_published
from dreamerbench.analysis.scores import FinalRule
from dreamerbench.analysis.tables import compare
from dreamerbench.suites import cli, get_suite
from dreamerbench.suites.scores import DMLAB30_RANDOM_HUMAN

DMLAB30 = get_suite("dmlab30")
ROOT = Path(__file__).resolve().parents[1]
BASELINES = Path(os.environ.get("DREAMERBENCH_BASELINES", ROOT.parent / "shared" / "baselines"))
PUBLISHED = BASELINES / "dreamerv3"
needs_published = pytest.mark.skipif(not PUBLISHED.is_dir(), reason=f"{PUBLISHED} not present")
WHY = "suite 'dmlab30' cannot be trained here: DeepMind Lab has no installable build"


def test_described_with_why_and_what_it_compares_with():
    line = next(line for line in cli.listing().splitlines() if line.startswith("dmlab30 "))
    assert "30 tasks" in line and "(cannot be trained here; see notes)" in line
    text = cli.describe(DMLAB30)
    assert "NOT BUILT" in text and WHY in text
    assert "published scores: dreamerv3, impala_deep, ppo_fixhp" in text
    with pytest.raises(ValueError, match=WHY):
        DMLAB30.make_env("rooms_watermaze", 0, {})


def test_train_and_sweep_refuse_it_in_one_line(tmp_path):
    logdir = tmp_path / "run"
    result = dreamerbench(
        "train", "--suite", "dmlab30", "--task", "rooms_watermaze", "--logdir", str(logdir)
    )
    assert result.returncode == 2 and WHY in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not logdir.exists()
    spec = tmp_path / "dmlab.yaml"
    spec.write_text(
        yaml.safe_dump({"name": "dm", "suite": "dmlab30", "tasks": ["rooms_watermaze"]})
    )
    result = dreamerbench("sweep", str(spec), "--dry-run")
    assert result.returncode == 2 and WHY in result.stderr and "Traceback" not in result.stderr


@needs_published
def test_published_dmlab30_aggregates():
    with open(PUBLISHED / "baselines.yaml") as f:
        refs = yaml.safe_load(f)["dmlab30"]
    assert {DMLAB30.published_task(t): list(r) for t, r in DMLAB30_RANDOM_HUMAN.items()} == refs
    methods = ["dreamerv3", "impala_deep", "ppo_fixhp"]
    episodes = pd.concat([load_published("dmlab30", m, PUBLISHED) for m in methods])
    assert set(episodes["task"]) == set(DMLAB30.tasks)
    comp = compare(
        episodes,
        DMLAB30,
        FinalRule.for_suite(DMLAB30),
        methods,
        np.random.default_rng(0),
        reps=200,
    )
    got = {
        (r.method, r.metric): round(100 * r.point, 1)
        for r in comp.aggregates.itertuples()
        if r.metric in ("mean", "iqm")
    }
    # Human-normalised, at 100M frames for every method (docs/reproduction.md).
    assert got == {
        ("dreamerv3", "mean"): 84.6,
        ("dreamerv3", "iqm"): 77.7,
        ("impala_deep", "mean"): 31.0,
        ("impala_deep", "iqm"): 28.5,
        ("ppo_fixhp", "mean"): 38.4,
        ("ppo_fixhp", "iqm"): 29.6,
    }
