"""Real bsuite experiments: the task list is bsuite's sweep, observations and episode ends are
bsuite's, seeds make runs reproducible, and a tiny run trains through the CLI."""

import json

import numpy as np
import pytest
import yaml
from test_suites_train import cli_train

from dreamerbench.suites import get_suite
from dreamerbench.suites.bsuite import (
    CONFIGS,
    MAXIMA,
    SUMS,
    TASKS,
    bsuite_id,
    bsuite_score,
    continued,
)

BSUITE = get_suite("bsuite")
bsuite = pytest.importorskip("bsuite")


def _episode(env, rng, policy=None):
    """An episode of ``policy`` (obs -> action; default: random): (steps, return, last obs,
    per-episode maxima of the ``log/`` values, as the trainer records them)."""
    obs = env.reset()
    assert obs["is_first"]
    steps, total, maxima = 0, 0.0, {}
    while True:
        action = policy(obs) if policy else rng.integers(env.act_space.num_actions)
        obs = env.step(np.int32(action))
        steps, total = steps + 1, total + float(obs["reward"])
        for key in (k for k in obs if k.startswith("log/")):
            maxima[key[4:]] = max(maxima.get(key[4:], -np.inf), float(obs[key]))
        if obs["is_last"]:
            return steps, total, obs, maxima


def _records(env, episodes, policy=None):
    """Episode records as ``episodes.jsonl`` holds them (score, length, log/* maxima)."""
    rng, records = np.random.default_rng(0), []
    for _ in range(episodes):
        steps, total, _, maxima = _episode(env, rng, policy)
        records.append({"score": total, "length": steps, **maxima})
    return records


def _catch_expert(obs):
    """Move the paddle (bottom row) under the ball: 0 left, 1 stay, 2 right."""
    board = obs["vector"].reshape(10, 5)
    ball = np.argwhere(board[:9])[0][1] if board[:9].any() else 2
    return 1 + int(np.sign(ball - np.argmax(board[9])))


def test_tasks_are_bsuites_sweep():
    from bsuite import sweep

    assert [bsuite_id(task) for task in TASKS] == list(sweep.SWEEP)
    assert len(TASKS) == 468 and len(CONFIGS) == 23


def test_spaces_follow_the_environment():
    from bsuite import sweep

    env = BSUITE.make_env("deep_sea_3", 0, {})
    raw = bsuite.load("deep_sea", sweep.SETTINGS["deep_sea/3"])
    assert env.obs_space["vector"].shape == (int(np.prod(raw.observation_spec().shape)),)
    assert env.act_space.num_actions == raw.action_spec().num_values == 2
    # deep_sea of size N ends after N steps, with bsuite's discount 0: a termination.
    steps, _, obs, _ = _episode(env, np.random.default_rng(0))
    assert steps == sweep.SETTINGS["deep_sea/3"]["size"] and obs["is_terminal"]
    assert obs["vector"].dtype == np.float32


def test_catch_returns_and_seeds():
    def returns(seed, task="catch_0"):
        env = BSUITE.make_env(task, seed, {})
        rng = np.random.default_rng(0)
        return [_episode(env, rng)[1] for _ in range(20)]

    first = returns(1)
    assert set(first) <= {-1.0, 1.0}  # catch: +1 for a caught ball, -1 for a missed one
    assert returns(1) == first  # bsuite's seed=None is filled from the run's seed
    assert returns(2) != first or returns(1, "catch_1") != first


def test_bsuites_own_score_from_episode_records():
    env = BSUITE.make_env("catch_0", 0, {})
    expert = _records(env, 100, _catch_expert)
    assert all(r["score"] == 1.0 and r["bsuite_total_regret"] == 0.0 for r in expert)
    random = _records(env, 100)
    # The counter is bsuite's at each episode's end: it only grows, by 2 per missed ball.
    regret = [r["bsuite_total_regret"] for r in random]
    assert regret == sorted(regret) and regret[-1] == sum(1 - r["score"] for r in random)
    assert bsuite_score("catch", {"catch_0": expert}) == 1.0
    assert bsuite_score("catch", {"catch_0": random}) == 0.0
    with pytest.raises(ValueError, match="task='catch_0' is not a configuration of .*'bandit'"):
        bsuite_score("bandit", {"catch_0": expert})
    with pytest.raises(ValueError, match="'deep_sea' cannot be scored here: .*pandas 2"):
        bsuite_score("deep_sea", {"deep_sea_0": expert})


def test_scoring_keeps_the_callers_matplotlib_style():
    """bsuite's plotting module switches matplotlib to its poster/ggplot styles on import;
    scoring imports it without changing the caller's figures."""
    import subprocess
    import sys

    code = (
        "import matplotlib as m; before = dict(m.rcParams); "
        "from dreamerbench.suites.bsuite import bsuite_score; "
        "bsuite_score('catch', {'catch_0': [dict(score=1.0, length=9, bsuite_total_regret=0.0)]}); "
        "import bsuite.utils.plotting; "
        "print(sorted(k for k in before if before[k] != m.rcParams[k]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_a_resumed_runs_regret_counts_on_across_the_resume():
    """A resumed run makes a new bsuite env whose regret counter starts at 0 again: read as
    cumulative, 50 missed-ball episodes then 50 caught ones scored as if nothing was missed."""
    missed = _records(BSUITE.make_env("catch_0", 0, {}), 50)
    caught = _records(BSUITE.make_env("catch_0", 1, {}), 50, _catch_expert)
    reached = missed[-1]["bsuite_total_regret"]
    assert reached > 0 and all(r["bsuite_total_regret"] == 0.0 for r in caught)
    whole = missed + [  # one process: its counters and its episode count go on
        {**r, "bsuite_total_regret": reached, "bsuite_env_episode": 50 + i}
        for i, r in enumerate(caught, 1)
    ]
    resumed = missed + caught  # the counter restarted at the resume
    assert continued(resumed) == whole
    assert bsuite_score("catch", {"catch_0": resumed}) == bsuite_score("catch", {"catch_0": whole})
    assert bsuite_score("catch", {"catch_0": whole}) < 1.0


def test_every_counter_is_continued_across_a_resume():
    from bsuite import sweep

    for name in CONFIGS:
        if not name.startswith("mnist"):  # mnist loads MNIST from the internet
            info = bsuite.load(name, sweep.SETTINGS[f"{name}/0"]).bsuite_info()
            assert set(info) <= set(SUMS) | set(MAXIMA), name


def test_a_resumed_runs_raw_return_counts_on_across_the_resume():
    """mountain_car's score reads raw_return, the sum of every reward of the run, which a
    resumed run's new environment starts at 0 again; it falls, so only the env's episode count
    can tell the resume."""
    first = _records(BSUITE.make_env("mountain_car_0", 0, {}), 2)
    second = _records(BSUITE.make_env("mountain_car_0", 1, {}), 2)
    reached = first[-1]["bsuite_raw_return"]
    assert reached < 0 and [r["bsuite_env_episode"] for r in first + second] == [1, 2, 1, 2]
    whole = first + [  # one process: its counters and its episode count go on
        {**r, "bsuite_raw_return": r["bsuite_raw_return"] + reached, "bsuite_env_episode": 2 + i}
        for i, r in enumerate(second, 1)
    ]
    assert continued(first + second) == whole and continued(whole) == whole
    resumed = bsuite_score("mountain_car", {"mountain_car_0": first + second})
    assert resumed == bsuite_score("mountain_car", {"mountain_car_0": whole})
    # Read without the episode count, the restart goes unseen and scores too high.
    unmarked = [{k: v for k, v in r.items() if k != "bsuite_env_episode"} for r in first + second]
    assert resumed < bsuite_score("mountain_car", {"mountain_car_0": unmarked})


def test_records_without_bsuites_counters_are_named():
    records = [{"score": 1.0, "length": 9}]
    with pytest.raises(ValueError, match="'catch': bsuite's score reads a column .*total_regret"):
        bsuite_score("catch", {"catch_0": records})
    with pytest.raises(ValueError, match="task='catch_0': the episode records lack 'length'"):
        bsuite_score("catch", {"catch_0": [{"score": 1.0}]})


def test_mnist_without_internet_is_one_line(monkeypatch, tmp_path):
    """bsuite downloads MNIST on first use; where that fails (no internet, as on this
    machine), making the env is one ValueError naming the task, not urllib's traceback."""
    import functools
    import urllib.error

    from bsuite.utils import datasets

    def offline(url, filename):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(datasets, "urlretrieve", offline)
    monkeypatch.setattr(
        datasets, "load_mnist", functools.partial(datasets.load_mnist, directory=str(tmp_path))
    )
    with pytest.raises(ValueError, match="task='mnist_0' needs MNIST.*Name or service not known"):
        BSUITE.make_env("mnist_0", 0, {})


def test_bad_task_and_protocol_are_named():
    with pytest.raises(ValueError, match="task='catch_20' is not in suite 'bsuite'"):
        BSUITE.make_env("catch_20", 0, {})
    with pytest.raises(ValueError, match="env.action_repeat=2 is not allowed; allowed: 1"):
        BSUITE.resolve_protocol({"action_repeat": 2})


@pytest.mark.slow
def test_train_through_the_cli(tmp_path):
    summary = cli_train(tmp_path / "run", "bsuite", "catch_0", 300)
    assert summary["finished"] and summary["steps"] == 300 and summary["updates"] > 0
    # catch episodes last 9 steps (10 observations with the reset one).
    assert summary["episodes"] == 30
    episodes = [json.loads(line) for line in (tmp_path / "run" / "episodes.jsonl").open()]
    assert all(e["score"] in (-1.0, 1.0) and e["length"] == 9 for e in episodes)
    assert 0.0 <= bsuite_score("catch", {"catch_0": episodes}) <= 1.0
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["suite"] == "bsuite" and config["run"]["envs"] == 1
