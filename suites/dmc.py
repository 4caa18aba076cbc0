"""DeepMind Control Suite: proprioceptive (vector) and vision (64x64 image) suites.

Protocol as in danijar/dreamerv3 ``configs.yaml`` (``env.dmc``): action repeat
1, 64x64 images from camera 2 for quadruped and camera 0 otherwise, rendered at
MuJoCo's default quality as the reference renders them (checked against golden
frames, tests/test_reference_observations.py); ``env.fast_render=true`` turns
shadows and multisampling off for speed, at the cost of other pixels. Episodes
end after dm_control's 1000 control steps; that time limit is a truncation
(discount 1), never a termination.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any

import numpy as np

from dreamerbench.core.reader import PositiveInt, Range
from dreamerbench.suites.base import SPECIAL_KEYS, Space, Suite, step_obs
from dreamerbench.suites.scores import DMC_RETURN_RANGE, dreamerv3_scores

# task -> (dm_control domain, dm_control task). The names are those of the
# published score files without their "dmc_" prefix; ball_in_cup is the one
# domain whose name contains an underscore, so the split is spelled out.
TASKS: dict[str, tuple[str, str]] = {
    "acrobot_swingup": ("acrobot", "swingup"),
    "ball_in_cup_catch": ("ball_in_cup", "catch"),
    "cartpole_balance": ("cartpole", "balance"),
    "cartpole_balance_sparse": ("cartpole", "balance_sparse"),
    "cartpole_swingup": ("cartpole", "swingup"),
    "cartpole_swingup_sparse": ("cartpole", "swingup_sparse"),
    "cheetah_run": ("cheetah", "run"),
    "finger_spin": ("finger", "spin"),
    "finger_turn_easy": ("finger", "turn_easy"),
    "finger_turn_hard": ("finger", "turn_hard"),
    "hopper_hop": ("hopper", "hop"),
    "hopper_stand": ("hopper", "stand"),
    "pendulum_swingup": ("pendulum", "swingup"),
    "quadruped_run": ("quadruped", "run"),
    "quadruped_walk": ("quadruped", "walk"),
    "reacher_easy": ("reacher", "easy"),
    "reacher_hard": ("reacher", "hard"),
    "walker_run": ("walker", "run"),
    "walker_stand": ("walker", "stand"),
    "walker_walk": ("walker", "walk"),
}
# The published proprio file has no quadruped tasks (18 of the 20).
PROPRIO_TASKS = tuple(t for t in TASKS if not t.startswith("quadruped"))
VISION_TASKS = tuple(TASKS)

# Quadruped's camera 0 is too far away to see the body (reference DEFAULT_CAMERAS).
DEFAULT_CAMERAS = {"quadruped": 2}


class DMCEnv:
    """One dm_control task as an :class:`dreamerbench.suites.base.Env`.

    Observations are either dm_control's own proprioceptive keys (each a
    flat float32 vector, scalars of shape (1,); a key that is one of the step
    keys such as ``reward`` is renamed ``obs_<key>``) or ``image``
    (``image_size`` x ``image_size`` x 3 uint8). Keeping the keys apart, as the
    reference does (danijar/dreamerv3 ``embodied/envs/from_dm.py``), gives
    each its own decoder output layer, which adaptive gradient clipping
    bounds separately. Actions are float32 in
    [-1, 1], rescaled to the task's action bounds.
    """

    def __init__(self, task: str, seed: int, protocol: Mapping[str, Any], image: bool):
        self._repeat = protocol["action_repeat"]
        self._image = image
        self._domain = TASKS[task][0]
        self._env = _load(task, seed)
        self._physics = self._env.physics
        spec = self._env.action_spec()
        self._act_low = spec.minimum.astype(np.float32)
        self._act_high = spec.maximum.astype(np.float32)
        self.act_space = Space(np.float32, tuple(spec.shape), -1.0, 1.0)
        if image:
            size, camera = protocol["image_size"], protocol["camera"]
            domain = TASKS[task][0]
            self._size = size
            self._camera = DEFAULT_CAMERAS.get(domain, 0) if camera == -1 else camera
            if protocol["fast_render"]:
                # Software GL renders 64x64 frames about 4x faster without shadow
                # maps and multisampling, but other pixels (docs/agent.md, "What
                # matches the reference"); both must be off before the first
                # render creates the GL context.
                self._physics.model.vis.quality.shadowsize = 0
                self._physics.model.vis.quality.offsamples = 0
            self.obs_space = {"image": Space(np.uint8, (size, size, 3), 0, 255)}
        else:
            spec = self._env.observation_spec()
            self._keys = {key: f"obs_{key}" if key in SPECIAL_KEYS else key for key in sorted(spec)}
            self.obs_space = {
                name: Space(np.float32, (max(1, int(np.prod(spec[key].shape))),))
                for key, name in self._keys.items()
            }
        self._done = True

    def reset(self) -> dict[str, np.ndarray]:
        """Start an episode; returns its first observation (``is_first=True``)."""
        step = self._env.reset()
        self._done = False
        return self._obs(step, 0.0, is_first=True, is_last=False, is_terminal=False)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """Apply ``action`` for ``action_repeat`` control steps, summing rewards."""
        if self._done:
            raise RuntimeError("step() after the episode ended; call reset() first")
        action = np.asarray(action, np.float32)
        if action.shape != self.act_space.shape or not np.isfinite(action).all():
            raise ValueError(f"action={action!r} must be finite with shape {self.act_space.shape}")
        scaled = self._act_low + (np.clip(action, -1, 1) + 1) / 2 * (self._act_high - self._act_low)
        reward = 0.0
        for _ in range(self._repeat):
            step = self._env.step(scaled)
            reward += step.reward or 0.0
            if step.last():
                break
        last = step.last()
        self._done = last
        # dm_control ends episodes at the time limit with discount 1
        # (truncation) and on failure with discount 0 (termination).
        terminal = bool(last and step.discount == 0)
        return self._obs(step, reward, is_first=False, is_last=last, is_terminal=terminal)

    def render(self, size: int = 128) -> np.ndarray:
        """The task's default camera as [size, size, 3] uint8 (for videos of proprio tasks)."""
        camera = DEFAULT_CAMERAS.get(self._domain, 0)
        return self._physics.render(size, size, camera_id=camera)

    def close(self) -> None:
        """Release the physics and any GL context."""
        self._env.close()

    def _obs(self, step, reward, is_first, is_last, is_terminal) -> dict[str, np.ndarray]:
        if self._image:
            data = {"image": self._physics.render(self._size, self._size, camera_id=self._camera)}
        else:
            data = {
                name: np.asarray(step.observation[key], np.float32).reshape(-1)
                for key, name in self._keys.items()
            }
        return step_obs(data, reward, is_first, is_last, is_terminal)


def headless_gl() -> None:
    """Set MUJOCO_GL to EGL unless the user set it; call before dm_control is first imported.

    MUJOCO_GL is read at that import: EGL is headless (software llvmpipe here, the GPU
    where there is one)."""
    os.environ.setdefault("MUJOCO_GL", "egl")


def _load(task: str, seed: int):
    headless_gl()
    from dm_control import suite

    domain, name = TASKS[task]
    return suite.load(domain, name, task_kwargs={"random": seed})


def make_proprio(task: str, seed: int, protocol: Mapping[str, Any]) -> DMCEnv:
    """A dmc_proprio environment (vector observations, never renders)."""
    return DMCEnv(
        DMC_PROPRIO.check_task(task), seed, DMC_PROPRIO.resolve_protocol(protocol), image=False
    )


def make_vision(task: str, seed: int, protocol: Mapping[str, Any]) -> DMCEnv:
    """A dmc_vision environment (image observations only)."""
    return DMCEnv(
        DMC_VISION.check_task(task), seed, DMC_VISION.resolve_protocol(protocol), image=True
    )


# Types and ranges of the protocol fields (dreamerbench.core.reader), for both DMC suites.
PROTOCOL_FIELDS = {
    "action_repeat": PositiveInt,
    "image_size": PositiveInt,
    "camera": Annotated[int, Range(ge=-1, note="-1: the task's default camera")],
    "fast_render": bool,
}

_DMC_SCORES = "DMC returns lie in [0, 1000] (1 per control step at most)."

DMC_PROPRIO = Suite(
    name="dmc_proprio",
    tasks=PROPRIO_TASKS,
    default_protocol={"action_repeat": 1},
    protocol_fields={"action_repeat": PROTOCOL_FIELDS["action_repeat"]},
    make_env=make_proprio,
    budget_steps=500_000,
    # Last 5%: 25 episodes of 1000 frames.
    final_window_frames=25_000,
    # Reference configs.yaml `dmc_proprio`: size1m, train_ratio 1024, 16 envs.
    # Proprio physics steps in ~0.1 ms, less than a worker round trip, so the
    # envs step in the trainer's process.
    agent_defaults={
        "agent.size": "1m",
        "agent.train_ratio": 1024,
        "run.envs": 16,
        "run.parallel_envs": False,
    },
    description="DeepMind Control, 18 tasks, proprioceptive vector observations, no rendering. "
    + _DMC_SCORES,
    published_prefix="dmc_",
    published=dreamerv3_scores(
        "dmc_proprio", ("d4pg", "ddpg", "dmpo", "dreamerv3", "mpo", "ppo_fixhp")
    ),
    normalized_name="normalised return (/ 1000)",
    score_refs={task: DMC_RETURN_RANGE for task in PROPRIO_TASKS},
)

DMC_VISION = Suite(
    name="dmc_vision",
    tasks=VISION_TASKS,
    default_protocol={"action_repeat": 1, "image_size": 64, "camera": -1, "fast_render": False},
    protocol_fields=PROTOCOL_FIELDS,
    make_env=make_vision,
    budget_steps=1_000_000,
    # Last 5%: 50 episodes of 1000 frames.
    final_window_frames=50_000,
    # Reference configs.yaml `dmc_vision`: default size (200m), train_ratio
    # 256, 16 envs; rendering dominates env time, so envs get worker processes.
    agent_defaults={
        "agent.size": "200m",
        "agent.train_ratio": 256,
        "run.envs": 16,
        "run.parallel_envs": True,
    },
    description="DeepMind Control, 20 tasks, 64x64 RGB images only (camera 2 for quadruped, "
    "else 0), MuJoCo EGL rendering at MuJoCo's default quality as in the reference "
    "(env.fast_render=true: no shadows or multisampling, faster but other pixels). " + _DMC_SCORES,
    published_prefix="dmc_",
    published=dreamerv3_scores("dmc_vision", ("curl", "dreamerv3", "drqv2", "ppo_fixhp", "sac")),
    normalized_name="normalised return (/ 1000)",
    score_refs={task: DMC_RETURN_RANGE for task in VISION_TASKS},
)
