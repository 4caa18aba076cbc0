"""Real ProcGen games: the published runs' protocol checked against procgen itself, time limits
as truncations, and the published ProcGen scores (dreamerv3, ppg, ppo_fixhp) read and normalised.
"""

import inspect
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_suites_train import cli_train

from dreamerbench.analysis import load_published
from dreamerbench.analysis.scores import FinalRule
from dreamerbench.analysis.tables import compare
from dreamerbench.suites import get_suite
from dreamerbench.suites.procgen import GAMES, NUM_ACTIONS, timeout
from dreamerbench.suites.scores import PROCGEN_HARD_MIN_MAX

PROCGEN = get_suite("procgen")
ROOT = Path(__file__).resolve().parents[1]
# The published files are read where they lie, never copied into the repository.
BASELINES = Path(os.environ.get("DREAMERBENCH_BASELINES", ROOT.parent / "shared" / "baselines"))
PUBLISHED = BASELINES / "dreamerv3"
needs_published = pytest.mark.skipif(not PUBLISHED.is_dir(), reason=f"{PUBLISHED} not present")
procgen = pytest.importorskip("procgen")


def _env(game, seed=0, **protocol):
    return PROCGEN.make_env(game, seed, PROCGEN.resolve_protocol(protocol))


def _episode(env, actions):
    """Step ``actions`` (an iterator) until the episode ends: (steps, last observation)."""
    env.reset()
    for steps, action in enumerate(actions, 1):
        obs = env.step(np.int32(action))
        if obs["is_last"]:
            return steps, obs
    raise AssertionError("the episode did not end")


def test_the_games_and_defaults_are_procgens():
    # The reference passes no options, so the published runs used procgen's defaults.
    params = {
        **inspect.signature(procgen.env.BaseProcgenEnv).parameters,
        **inspect.signature(procgen.ProcgenGym3Env).parameters,
    }
    for field in ("distribution_mode", "num_levels", "start_level"):
        assert PROCGEN.default_protocol[field] == params[field].default, field
    assert set(GAMES) == set(procgen.env.ENV_NAMES) and len(GAMES) == 16


def test_observation_and_action_spaces():
    env = _env("coinrun", image_size=64)
    obs = env.reset()
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    assert obs["is_first"] and not obs["is_last"]
    assert env.act_space.num_actions == NUM_ACTIONS == len(env._env.combos)
    with pytest.raises(ValueError, match="action=15 must be in 0..14"):
        env.step(np.int32(15))


def test_frames_are_the_published_runs():
    """Default 96x96: procgen's 512x512 render of the same level resized with Pillow's bilinear
    filter, as the reference's configs.yaml (size [96, 96], resize: pillow) and
    embodied/envs/procgen.py make them; 64: procgen's own frames, not a resize."""
    from PIL import Image

    def raw(**options):
        env = procgen.ProcgenGym3Env(num=1, env_name="coinrun", rand_seed=3, **options)
        env.act(np.array([4], np.int32))  # one step without a button: the frame after it
        return env

    assert PROCGEN.default_protocol["image_size"] == 96
    env = _env("coinrun", 3)
    assert env.obs_space["image"].shape == (96, 96, 3)
    env.reset()
    frame = env.step(np.int32(4))["image"]
    render = raw(render_mode="rgb_array").get_info()[0]["rgb"]
    assert render.shape == (512, 512, 3)
    resized = np.asarray(Image.fromarray(render).resize((96, 96), Image.BILINEAR))
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, resized)
    native = _env("coinrun", 3, image_size=64)
    native.reset()
    np.testing.assert_array_equal(native.step(np.int32(4))["image"], raw().observe()[1]["rgb"][0])


def test_time_limit_is_truncation():
    # Standing still in a maze never reaches the cheese: the 500-step limit ends the episode.
    steps, obs = _episode(_env("maze", image_size=64), iter(lambda: 4, None))  # 4: no button
    assert steps == timeout("maze", "hard") == 500
    assert obs["is_last"] and not obs["is_terminal"]


def test_death_is_termination_and_reset_starts_a_new_level():
    env = _env("chaser", image_size=64)
    rng = np.random.default_rng(0)
    steps, obs = _episode(env, iter(lambda: rng.integers(NUM_ACTIONS), None))
    assert steps < timeout("chaser", "hard") and obs["is_terminal"]
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.int32(4))
    first = env.reset()
    assert first["is_first"] and not first["is_last"]
    # A reset in the middle of a level abandons it (procgen's forced reset).
    for _ in range(3):
        env.step(np.int32(4))
    assert env.reset()["is_first"] and not env.step(np.int32(4))["is_last"]


def test_the_seed_fixes_the_levels():
    frames = [_env("coinrun", seed, image_size=64).reset()["image"] for seed in (3, 3, 4)]
    assert np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[0], frames[2])


def test_bad_protocol_values_are_named():
    with pytest.raises(ValueError, match=r"env.image_size=1024 is not allowed; allowed: .*512"):
        PROCGEN.resolve_protocol({"image_size": 1024})
    with pytest.raises(ValueError, match="env.distribution_mode='insane' .*allowed: .*hard"):
        PROCGEN.resolve_protocol({"distribution_mode": "insane"})


@needs_published
def test_score_references_are_the_references():
    with open(PUBLISHED / "baselines.yaml") as f:
        refs = yaml.safe_load(f)["procgen_hard"]
    assert {PROCGEN.published_task(g): list(PROCGEN_HARD_MIN_MAX[g]) for g in GAMES} == refs


@needs_published
def test_published_procgen_scores():
    methods = ["dreamerv3", "ppg", "ppo_fixhp"]
    episodes = pd.concat([load_published("procgen", m, PUBLISHED) for m in methods])
    seeds = episodes.groupby("method")["seed"].nunique().to_dict()
    assert seeds == {"dreamerv3": 1, "ppg": 3, "ppo_fixhp": 5}
    assert set(episodes["task"]) == set(GAMES)
    # The published curves end at the suite's budget: 50M frames = 50M agent steps.
    assert episodes.groupby("method")["frames"].max().max() == PROCGEN.budget_frames
    comp = compare(
        episodes,
        PROCGEN,
        FinalRule.for_suite(PROCGEN),
        methods,
        np.random.default_rng(0),
        reps=200,
    )
    got = {
        (r.method, r.metric): round(100 * r.point, 1)
        for r in comp.aggregates.itertuples()
        if r.metric in ("mean", "iqm")
    }
    # The min-max normalised aggregates of docs/reproduction.md.
    assert got == {
        ("dreamerv3", "mean"): 65.7,
        ("dreamerv3", "iqm"): 69.4,
        ("ppg", "mean"): 64.5,
        ("ppg", "iqm"): 66.1,
        ("ppo_fixhp", "mean"): 42.5,
        ("ppo_fixhp", "iqm"): 43.7,
    }


@pytest.mark.slow
def test_train_through_the_cli(tmp_path):
    # chaser under a random-like debug policy: episodes end within the 300 steps.
    summary = cli_train(
        tmp_path / "run", "procgen", "chaser", 300, "run.envs=1", "run.parallel_envs=false"
    )
    assert summary["finished"] and summary["steps"] == 300 and summary["updates"] > 0
    assert summary["episodes"] >= 1
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["suite"] == "procgen" and config["agent"]["train_ratio"] == 16
