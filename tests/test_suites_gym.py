"""Your own environment (issue 14, item 7): gymnasium ids and dm_env factories as suite tasks.

A gymnasium task trains end to end through ``dreamerbench train``; the space conversion rules
are checked on a small gymnasium env registered here (wrapper logic) and on dm_control's
cartpole as a real dm_env.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium
import imageio.v3 as iio
import numpy as np
import pytest
from gymnasium import spaces
from stub_agent import StubAgent
from test_suites_train import TINY

from dreamerbench import suites
from dreamerbench.agent.config import resolve_config
from dreamerbench.agent.trainer import Trainer
from dreamerbench.experiments.cli import main
from dreamerbench.suites.gym import DmEnv, GymEnv

REPO = Path(__file__).resolve().parent.parent


class Probe(gymnasium.Env):
    """A Dict observation (an image of another size, a vector, a discrete value) and a Box action
    in [0, 2] x [-4, 4]; it remembers the last action it got and ends after 3 steps."""

    observation_space = spaces.Dict(
        {
            "camera": spaces.Box(0, 255, (32, 48, 3), np.uint8),
            "pose": spaces.Dict({"xy": spaces.Box(-1.0, 1.0, (2,), np.float64)}),
            "mode": spaces.Discrete(3),
        }
    )
    action_space = spaces.Box(np.array([0.0, -4.0], np.float32), np.array([2.0, 4.0], np.float32))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.last_action = 0, None
        return self._obs(), {}

    def step(self, action):
        self.t, self.last_action = self.t + 1, action
        return self._obs(), 1.0, self.t == 3, False, {}

    def _obs(self):
        return {
            "camera": np.full((32, 48, 3), 7 * self.t, np.uint8),
            "pose": {"xy": np.array([0.5, -0.5])},
            "mode": self.t % 3,
        }


gymnasium.register("dreamerbench-test/Probe-v0", entry_point=Probe)


def test_dict_observations_images_one_hot_and_box_actions_are_converted():
    env = GymEnv("dreamerbench-test/Probe-v0", 0, {})
    assert env.obs_space["camera"].is_image and env.obs_space["camera"].shape == (64, 64, 3)
    assert env.obs_space["pose_xy"].shape == (2,) and env.obs_space["mode"].shape == (3,)
    assert env.act_space.shape == (2,) and (env.act_space.low, env.act_space.high) == (-1.0, 1.0)
    first = env.reset()
    assert (
        first["is_first"]
        and first["camera"].shape == (64, 64, 3)
        and first["camera"].dtype == np.uint8
    )
    assert first["pose_xy"].dtype == np.float32 and list(first["mode"]) == [1.0, 0.0, 0.0]
    obs = env.step(np.array([-1.0, 1.0], np.float32))
    np.testing.assert_allclose(
        env._env.unwrapped.last_action, [0.0, 4.0]
    )  # [-1, 1] -> the env's bounds
    assert list(obs["mode"]) == [0.0, 1.0, 0.0] and int(obs["camera"][0, 0, 0]) == 7
    env.step(np.zeros(2, np.float32))
    last = env.step(np.zeros(2, np.float32))
    assert last["is_last"] and last["is_terminal"] and last["reward"] == 1.0
    env.close()


class Clash(Probe):
    """Two observation arrays whose joined names clash (``a_b``)."""

    observation_space = spaces.Dict(
        {"a_b": spaces.Box(0.0, 1.0, (2,)), "a": spaces.Dict({"b": spaces.Box(0.0, 1.0, (3,))})}
    )


gymnasium.register("dreamerbench-test/Clash-v0", entry_point=Clash)


def test_observation_names_that_clash_are_refused():
    with pytest.raises(ValueError, match="observation key 'a_b' names two arrays"):
        GymEnv("dreamerbench-test/Clash-v0", 0, {})


def test_discrete_actions_and_the_registered_time_limit_is_a_truncation():
    env = GymEnv("CartPole-v1", 3, {"max_episode_steps": 5})
    assert env.obs_space == {"vector": suites.Space(np.float32, (4,))}
    assert env.act_space.discrete and env.act_space.num_actions == 2
    obs = env.reset()
    for _ in range(5):
        obs = env.step(np.int32(0) if obs["vector"][2] < 0 else np.int32(1))  # keep it balanced
    assert obs["is_last"] and not obs["is_terminal"]


def test_a_dm_env_factory_is_a_task(tmp_path):
    """dm_control's cartpole, made by tests/custom_envs.py (importable: pytest puts tests/ on the
    path)."""
    env = DmEnv("custom_envs:cartpole", 1, {})
    assert set(env.obs_space) == {"position", "velocity"} and env.act_space.shape == (1,)
    obs, steps = env.reset(), 0
    while not obs["is_last"]:
        obs, steps = env.step(np.ones(1, np.float32)), steps + 1
    assert steps == 1000 and not obs["is_terminal"]  # DMC's time limit is a truncation
    # Through the real trainer (the stand-in agent keeps it fast): the suite's vector env and
    # replay.
    config = resolve_config(
        "dm_env", "custom_envs:cartpole", 0, {**TINY, "run.steps": 40, "run.train_start": 8}
    )
    summary = Trainer(config, tmp_path, make_agent=StubAgent).run()
    assert summary["finished"] and summary["steps"] == 40 and summary["updates"] > 0


def test_the_docs_gymnasium_example_is_a_task_by_module_and_id(tmp_path, monkeypatch):
    """docs/custom_env.md's worked example, verbatim: the task MODULE:ID imports my_envs, which
    registers my_envs/Corridor-v0 (the check once looked MODULE:ID up in the registry as it was)."""
    section = (
        (REPO / "docs" / "custom_env.md")
        .read_text()
        .split("## Worked example: a gymnasium environment")[1]
    )
    (tmp_path / "my_envs.py").write_text(section.split("```python\n")[1].split("```")[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_envs", raising=False)
    task = "my_envs:my_envs/Corridor-v0"
    assert suites.get_suite("gym").check_task(task) == task  # what train and sweep ask
    env = GymEnv(task, 0, {})
    assert env.act_space.high == 2 and env.obs_space["vector"].shape == (10,) and not env.renders
    obs = env.reset()
    for _ in range(9):  # right, nine times: the end of the corridor
        obs = env.step(np.int32(1))
    assert obs["is_last"] and obs["is_terminal"] and obs["reward"] == 1.0
    config = resolve_config("gym", task, 0, {**TINY, "run.steps": 40, "run.train_start": 8})
    summary = Trainer(config, tmp_path / "run", make_agent=StubAgent).run()
    assert summary["finished"] and summary["steps"] == 40 and summary["updates"] > 0


class Painter(gymnasium.Env):
    """Vector observations and an ``rgb_array`` render of 60 x 90 pixels that changes each step;
    episodes of 5 steps."""

    metadata = {"render_modes": ["rgb_array"]}
    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, render_mode=None):
        self.render_mode, self.t = render_mode, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(2, np.float32), 1.0, self.t == 5, False, {}

    def render(self):
        assert self.render_mode == "rgb_array"
        frame = np.zeros((60, 90, 3), np.uint8)
        frame[:, : 15 * (self.t + 1)] = 200
        return frame


class Blind(Painter):
    """Vector observations and no render mode."""

    metadata = {"render_modes": []}


class NeedsBox2D(Probe):
    """An env whose package is missing (as LunarLander-v3 without Box2D)."""

    def __init__(self):
        raise gymnasium.error.DependencyNotInstalled(
            'Box2D is not installed, run `pip install "gymnasium[box2d]"`'
        )


gymnasium.register("dreamerbench-test/Painter-v0", entry_point=Painter)
gymnasium.register("dreamerbench-test/Blind-v0", entry_point=Blind)
gymnasium.register("dreamerbench-test/NeedsBox2D-v0", entry_point=NeedsBox2D)


def test_video_render_films_a_gym_env_that_renders(tmp_path):
    overrides = {
        **TINY,
        "run.steps": 30,
        "run.train_start": 8,
        "run.video_every": 1,
        "run.video_render": True,
        "run.parallel_envs": False,
    }
    config = resolve_config("gym", "dreamerbench-test/Painter-v0", 0, overrides)
    summary = Trainer(config, tmp_path, make_agent=StubAgent).run()
    assert summary["finished"]
    video = min(
        (tmp_path / "media").glob("episode-*.gif")
    )  # a video every due episode: check the first
    frames = iio.imread(video, index=None)
    assert frames.shape[1:3] == (85, 128) and frames.std() > 0  # 60 x 90, longer side scaled to 128


def test_a_dm_control_factory_renders_its_camera():
    env = DmEnv("custom_envs:cartpole", 0, {})
    env.reset()
    frame = env.render()
    assert frame.shape == (128, 128, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()


@pytest.mark.parametrize(
    "suite, task, reason",
    [
        (
            "gym",
            "dreamerbench-test/Blind-v0",
            "render() failed: task='dreamerbench-test/Blind-v0' cannot render: its render_modes "
            "have no 'rgb_array'",
        ),
        (
            "dm_env",
            "custom_envs:no_physics",
            "render() failed: this dm_env.Environment cannot render",
        ),
    ],
)
def test_video_render_is_refused_for_an_env_that_cannot_render(
    suite, task, reason, tmp_path, capsys
):
    code = main(
        [
            "train",
            "--suite",
            suite,
            "--task",
            task,
            "--logdir",
            str(tmp_path / "run"),
            "--set",
            "run.video_render=true",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 2 and not out and len(err.splitlines()) == 1, err
    assert (
        f"run.video_render=True is not allowed; allowed: false for task={task!r}: it has no image "
        "observation" in err
    )
    assert reason in err, err
    assert not (tmp_path / "run").exists()


def test_an_env_that_fails_in_the_trainer_leaves_no_config_behind(tmp_path):
    """custom_envs:broken passes the task check and fails when the trainer makes its envs: the
    corrected command must not be refused as 'a different config'."""
    config = resolve_config(
        "dm_env", "custom_envs:broken", 0, {**TINY, "run.steps": 20, "run.parallel_envs": False}
    )
    with pytest.raises(RuntimeError, match="the simulator did not start"):
        Trainer(config, tmp_path, make_agent=StubAgent).run()
    assert not (tmp_path / "config.yaml").exists()


@pytest.mark.parametrize(
    "suite, task, expected",
    [
        (
            "gym",
            "Blackjack-v1",
            "task='Blackjack-v1': observation space Tuple(Discrete(32), Discrete(11), Discrete(2)) "
            "is not supported",
        ),
        (
            "gym",
            "dreamerbench-test/NeedsBox2D-v0",
            "task='dreamerbench-test/NeedsBox2D-v0' needs a package that is not installed: Box2D "
            "is not installed",
        ),
        (
            "dm_env",
            "custom_envs:boom",
            "task='custom_envs:boom': boom(seed=0) raised RuntimeError: boom",
        ),
        (
            "dm_env",
            "custom_envs:no_seed",
            "task='custom_envs:no_seed': no_seed(seed=0) raised TypeError: no_seed() got an "
            "unexpected keyword argument 'seed'",
        ),
        (
            "dm_env",
            "custom_envs:not_an_env",
            "task='custom_envs:not_an_env': not_an_env(seed=0) returned a dict, not a "
            "dm_env.Environment",
        ),
        (
            "gym",
            "CartPol-v1",
            "task='CartPol-v1' is not a registered gymnasium id; allowed: a registered id (e.g. "
            "CartPole-v1",
        ),
        (
            "gym",
            "no_such_module:CartPole-v1",
            "task='no_such_module:CartPole-v1': cannot import 'no_such_module'",
        ),
        (
            "dm_env",
            "CartPole-v1",
            "task='CartPole-v1' is not allowed; allowed: MODULE:FUNCTION, where FUNCTION(seed)",
        ),
        (
            "dm_env",
            "json:no_such_function",
            "task='json:no_such_function': module 'json' has no function 'no_such_function'",
        ),
    ],
)
def test_bad_task_names_are_one_line(suite, task, expected, tmp_path, capsys):
    code = main(["train", "--suite", suite, "--task", task, "--logdir", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert code == 2 and not out and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_gymnasium_task_trains_end_to_end_through_dreamerbench_train(tmp_path):
    sets = [
        f"--set={k}={str(v).lower() if isinstance(v, bool) else v}"
        for k, v in {
            **TINY,
            "run.steps": 120,
            "run.train_start": 40,
            "env.max_episode_steps": 30,
        }.items()
    ]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dreamerbench.experiments.cli",
            "train",
            "--suite",
            "gym",
            "--task",
            "CartPole-v1",
            "--logdir",
            str(tmp_path / "run"),
            *sets,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["finished"] and summary["steps"] == 120 and summary["updates"] >= 120 - 40 - 1
    episodes = [
        json.loads(line) for line in (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()
    ]
    assert len(episodes) == summary["episodes"] >= 4 and all(
        1 <= e["length"] <= 30 for e in episodes
    )
    train = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert any("loss/total" in record and np.isfinite(record["loss/total"]) for record in train)
