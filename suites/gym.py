"""Your own environment as a suite task, without editing the package (issue 14, item 7).

Two suites whose tasks are whatever an outside registry holds (``docs/custom_env.md``):

- ``gym``: any registered gymnasium id, e.g. ``--suite gym --task CartPole-v1``; ``MODULE:ID``
  imports MODULE first (gymnasium's own convention), so a package that registers its envs on
  import needs no other step: ``--task my_envs:my_envs/Corridor-v0``.
- ``dm_env``: ``MODULE:FUNCTION``, a function ``FUNCTION(seed: int) -> dm_env.Environment``,
  e.g. ``--suite dm_env --task my_envs:cartpole``.

Spaces are converted by one set of rules (:func:`leaf_space`, :func:`leaf_value`):

- observations: a single array becomes the key ``image`` if it is an image, else ``vector``; a
  dict (gymnasium ``Dict`` or a dm_env spec mapping, nested ones joined with ``_``) keeps its keys.
  An image is a ``uint8`` array of shape ``(H, W)`` or ``(H, W, C)`` with C in 1..4; it is
  resized to ``image_size`` x ``image_size`` (the CNN's input) and kept ``uint8``. Everything
  else becomes a flat ``float32`` vector (scalars: length 1); a discrete observation
  (gymnasium ``Discrete``) becomes its one-hot vector.
- actions: discrete (gymnasium ``Discrete(n, start)``, dm_env integer scalar bounded in
  ``[min, max]``) become actions ``0 .. n - 1``, shifted back to the env's range; continuous
  (``Box``, float ``BoundedArray``) become a flat vector in [-1, 1], rescaled to the env's
  bounds where they are finite (else passed on as they are).
- episode ends: gymnasium ``terminated`` and dm_env's last step with discount 0 are
  terminations; gymnasium ``truncated`` and a last step with discount > 0 are truncations.

Anything else (MultiDiscrete, Tuple, Text, ... spaces) is refused in one line naming the space.
The task check (:func:`film_refusal`, cached per task) makes the env once with seed 0, so an
unsupported space, a missing package or a factory that fails is refused before anything is written.
Episode videos of envs without image observations (``run.video_render``) use ``render()``: a
gymnasium env made with ``render_mode="rgb_array"`` where it declares that mode, a dm_control env's
``physics.render``; ``run.video_render=true`` is refused for an env whose render fails at the check.
These suites have no score references (``dreamerbench table`` cannot normalise their scores).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np

from dreamerbench.core.reader import NonNegativeInt, PositiveInt, Range
from dreamerbench.suites.base import Space, Suite, step_obs

EXAMPLE_GYM_TASKS = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0")
"""gymnasium's classic-control ids (no extra dependencies): what ``dreamerbench suites gym`` lists
and what ``tasks: all`` means in a spec; any other registered id is a task too."""


@dataclass(frozen=True)
class Leaf:
    """One observation array as the env declares it."""

    shape: tuple[int, ...]
    dtype: Any
    classes: int | None = None
    """Number of values of a discrete observation (one-hot encoded); None for arrays."""


def is_image(leaf: Leaf) -> bool:
    """``uint8`` with shape ``(H, W)`` or ``(H, W, C)``, C in 1..4 (the detection rule above)."""
    shape = leaf.shape
    return (
        leaf.classes is None
        and np.dtype(leaf.dtype) == np.uint8
        and (len(shape) == 2 or (len(shape) == 3 and 1 <= shape[2] <= 4))
        and min(shape[:2]) > 1
    )


def leaf_space(leaf: Leaf, image_size: int) -> Space:
    """The :class:`dreamerbench.suites.base.Space` the agent sees for one observation array."""
    if is_image(leaf):
        channels = leaf.shape[2] if len(leaf.shape) == 3 else 1
        return Space(np.uint8, (image_size, image_size, channels), 0, 255)
    size = leaf.classes if leaf.classes is not None else max(1, int(np.prod(leaf.shape)))
    return Space(np.float32, (size,))


def leaf_value(leaf: Leaf, value: Any, image_size: int) -> np.ndarray:
    """One observation array as :func:`leaf_space` declares it."""
    if is_image(leaf):
        image = np.asarray(value, np.uint8)
        if image.shape[:2] != (image_size, image_size):
            import cv2

            image = cv2.resize(image, (image_size, image_size), interpolation=cv2.INTER_AREA)
        return image.reshape(image_size, image_size, -1)
    if leaf.classes is not None:
        return np.eye(leaf.classes, dtype=np.float32)[int(value)]
    return np.asarray(value, np.float32).reshape(-1)


def obs_keys(leaves: Mapping[str, Leaf]) -> dict[str, Leaf]:
    """Observation key -> leaf: a lone array (key ``""``) is named ``image`` or ``vector``."""
    if set(leaves) == {""}:
        leaf = leaves[""]
        return {"image" if is_image(leaf) else "vector": leaf}
    return dict(leaves)


class _Converted:
    """Observation and action conversion shared by both adapters (rules in the module doc)."""

    def _setup_obs(self, leaves: Mapping[str, Leaf], image_size: int) -> None:
        """`leaves` by internal path (parts joined by NUL; ``""``: a lone array)."""
        self._image_size = image_size
        named = {path.replace("\0", "_"): leaf for path, leaf in leaves.items()}
        if len(named) != len(leaves):
            keys = [path.replace("\0", "_") for path in leaves]
            clash = next(key for key in keys if keys.count(key) > 1)
            raise ValueError(
                f"observation key {clash!r} names two arrays of the env's observation (nested keys "
                "are joined with '_'); allowed: distinct names"
            )
        self._leaves = obs_keys(named)
        self._paths = dict(zip(self._leaves, leaves))
        self.obs_space = {key: leaf_space(leaf, image_size) for key, leaf in self._leaves.items()}

    def _values(self, raw: Any) -> dict[str, np.ndarray]:
        return {
            key: leaf_value(leaf, _pick(raw, self._paths[key]), self._image_size)
            for key, leaf in self._leaves.items()
        }

    def _setup_action(
        self, discrete: int | None, offset: Any, shape: tuple[int, ...], low: Any, high: Any
    ) -> None:
        """Discrete: ``discrete`` actions shifted by ``offset``; else a Box of ``shape`` in
        [low, high]."""
        self._offset, self._act_shape = offset, shape
        if discrete is not None:
            self.act_space = Space(np.int32, (), 0, discrete)
            self._scale = None
            return
        low, high = (
            np.broadcast_to(low, shape).astype(np.float64),
            np.broadcast_to(high, shape).astype(np.float64),
        )
        self._scale = (low, high) if np.isfinite(low).all() and np.isfinite(high).all() else None
        self.act_space = Space(np.float32, (max(1, int(np.prod(shape))),), -1.0, 1.0)

    def _action(self, action: np.ndarray) -> Any:
        """The agent's action as the env takes it."""
        if self.act_space.discrete:
            return int(action) + self._offset
        action = np.asarray(action, np.float64).reshape(self._act_shape)
        if self._scale is not None:
            low, high = self._scale
            action = low + (np.clip(action, -1.0, 1.0) + 1.0) / 2.0 * (high - low)
        return action.astype(self._act_dtype)


def _pick(raw: Any, path: str) -> Any:
    """The value at `path` (keys joined by NUL) of nested observation dicts (``""``: the value
    itself)."""
    if path == "":
        return raw
    for part in path.split("\0"):
        raw = raw[part]
    return raw


# ---------------------------------------------------------------------------- gymnasium


def _gym_leaves(space: Any, task: str, prefix: str = "") -> dict[str, Leaf]:
    """Observation leaves of a gymnasium space (internal paths joined by NUL, keys by ``_``)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        leaves = {}
        for name, sub in space.spaces.items():
            leaves.update(_gym_leaves(sub, task, f"{prefix}\0{name}" if prefix else str(name)))
        return leaves
    if isinstance(space, spaces.Box):
        return {prefix: Leaf(tuple(space.shape), space.dtype)}
    if isinstance(space, spaces.Discrete):
        return {prefix: Leaf((), np.int64, int(space.n))}
    if isinstance(space, spaces.MultiBinary):
        return {prefix: Leaf(tuple(np.atleast_1d(space.n)), np.float32)}
    raise ValueError(
        f"task={task!r}: observation space {space} is not supported; allowed: Box, Discrete, "
        "MultiBinary, or a Dict of them"
    )


class GymEnv(_Converted):
    """A gymnasium environment (by registered id) as an :class:`dreamerbench.suites.base.Env`."""

    def __init__(self, task: str, seed: int, protocol: Mapping[str, Any]):
        import gymnasium
        from gymnasium import spaces

        protocol = GYM.resolve_protocol(protocol)
        env_id = _gym_id(task)
        kwargs = (
            {"max_episode_steps": protocol["max_episode_steps"]}
            if protocol["max_episode_steps"]
            else {}
        )
        # rgb_array costs nothing until render() is called (gymnasium renders human mode only per
        # step).
        self.renders = "rgb_array" in _render_modes(env_id)
        if self.renders:
            kwargs["render_mode"] = "rgb_array"
        self._task = task
        self._env = gymnasium.make(task, **kwargs)
        self._repeat, self._seed = protocol["action_repeat"], seed
        self._setup_obs(_gym_leaves(self._env.observation_space, task), protocol["image_size"])
        space = self._env.action_space
        if isinstance(space, spaces.Discrete):
            self._act_dtype = np.int64
            self._setup_action(int(space.n), int(space.start), (), None, None)
        elif isinstance(space, spaces.Box):
            self._act_dtype = space.dtype
            self._setup_action(None, 0, tuple(space.shape), space.low, space.high)
        else:
            raise ValueError(
                f"task={task!r}: action space {space} is not supported; allowed: Discrete, Box"
            )
        self._done = True

    def reset(self) -> dict[str, np.ndarray]:
        """Start an episode (the first one seeded with the run's env seed)."""
        seed, self._seed = self._seed, None
        raw, _ = self._env.reset(seed=seed)
        self._done = False
        return step_obs(self._values(raw), 0.0, True, False, False)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """``action_repeat`` env steps with one action (rewards summed; an episode end stops
        them)."""
        if self._done:
            raise RuntimeError("step() after the episode ended; call reset() first")
        total, terminated, truncated = 0.0, False, False
        for _ in range(self._repeat):
            raw, reward, terminated, truncated, _ = self._env.step(self._action(action))
            total += float(reward)
            if terminated or truncated:
                break
        self._done = bool(terminated or truncated)
        return step_obs(self._values(raw), total, False, self._done, bool(terminated))

    def render(self) -> np.ndarray:
        """The env's ``rgb_array`` frame as [H, W, 3] uint8, its longer side scaled to
        :data:`RENDER_SIDE`; ValueError if the env has no ``rgb_array`` render mode or its
        renderer's package is not installed."""
        from gymnasium.error import DependencyNotInstalled

        if not self.renders:
            raise ValueError(
                f"task={self._task!r} cannot render: its render_modes have no 'rgb_array'"
            )
        try:
            return _frame(self._env.render())
        except DependencyNotInstalled as error:
            raise ValueError(
                f"task={self._task!r} cannot render: {str(error).splitlines()[0]}"
            ) from None

    def close(self) -> None:
        """Close the gymnasium env."""
        self._env.close()


RENDER_SIDE = 128
"""Longer side, in pixels, of the camera frames :meth:`GymEnv.render` and :meth:`DmEnv.render` give
(dmc's render() size)."""


def _frame(image: Any) -> np.ndarray:
    """An RGB(A) frame as [H, W, 3] uint8 with its longer side :data:`RENDER_SIDE` (aspect kept)."""
    import cv2

    image = np.asarray(image, np.uint8)[..., :3]
    height, width = image.shape[:2]
    scale = RENDER_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return (
        cv2.resize(image, size, interpolation=cv2.INTER_AREA) if size != (width, height) else image
    )


def _render_modes(env_id: str) -> list[str]:
    """The ``render_modes`` the env class of registered gymnasium id `env_id` (no ``MODULE:``
    prefix: :func:`_gym_id` gives it) declares ([] if none)."""
    import gymnasium
    from gymnasium.envs.registration import load_env_creator

    spec = gymnasium.spec(env_id)
    creator = spec.entry_point if callable(spec.entry_point) else load_env_creator(spec.entry_point)
    metadata = getattr(creator, "metadata", None)
    return list(metadata.get("render_modes") or []) if isinstance(metadata, Mapping) else []


def check_gym_task(task: str) -> str:
    """Return `task` if it names a gymnasium env this suite can run: a registered id (``MODULE:ID``
    imports MODULE first) whose env is made once (:func:`film_refusal`, cached per task) and whose
    spaces convert; ValueError naming the task and what is allowed otherwise."""
    _gym_id(task)
    film_refusal("gym", task)
    return task


def _gym_id(task: str) -> str:
    """The registered gymnasium id of `task` (``MODULE:ID`` imports MODULE first and gives ID);
    ValueError naming the task if it is not registered."""
    import gymnasium

    module, _, env_id = task.rpartition(":")
    if module:
        _import(module, task, "MODULE:ID with an importable MODULE that registers ID")
    if env_id not in gymnasium.registry:
        raise ValueError(
            f"task={task!r} is not a registered gymnasium id; allowed: a registered id "
            f"(e.g. {', '.join(EXAMPLE_GYM_TASKS)}; {len(gymnasium.registry)} registered now), "
            "or MODULE:ID where importing MODULE registers ID (docs/custom_env.md)"
        )
    return env_id


# ---------------------------------------------------------------------------- dm_env


def _dm_leaves(spec: Any, task: str, prefix: str = "") -> dict[str, Leaf]:
    """Observation leaves of a dm_env observation spec (an Array or a mapping of them)."""
    if isinstance(spec, Mapping):
        leaves = {}
        for name, sub in spec.items():
            leaves.update(_dm_leaves(sub, task, f"{prefix}\0{name}" if prefix else str(name)))
        return leaves
    if hasattr(spec, "shape") and hasattr(spec, "dtype"):
        return {prefix: Leaf(tuple(spec.shape), np.dtype(spec.dtype))}
    raise ValueError(
        f"task={task!r}: observation spec {spec!r} is not supported; allowed: a dm_env.specs.Array "
        "or a mapping of them"
    )


class DmEnv(_Converted):
    """A ``dm_env.Environment`` made by ``MODULE:FUNCTION(seed)`` as an
    :class:`dreamerbench.suites.base.Env`."""

    def __init__(self, task: str, seed: int, protocol: Mapping[str, Any], env: Any = None):
        """``env``: an environment made elsewhere (a bsuite experiment), instead of ``task``'s."""
        import dm_env

        protocol = DM_ENV.resolve_protocol(protocol)
        self._env = dm_env_factory(task)(seed=seed) if env is None else env
        if not isinstance(self._env, dm_env.Environment):
            raise ValueError(
                f"task={task!r}: {task.rpartition(':')[2]}(seed={seed}) returned a "
                f"{type(self._env).__name__}, not a dm_env.Environment; allowed: a function "
                "that returns a dm_env.Environment"
            )
        physics = getattr(self._env, "physics", None)
        self.renders = callable(getattr(physics, "render", None))
        self._repeat = protocol["action_repeat"]
        self._setup_obs(_dm_leaves(self._env.observation_spec(), task), protocol["image_size"])
        spec = self._env.action_spec()
        self._act_dtype = np.dtype(spec.dtype)
        low, high = getattr(spec, "minimum", -np.inf), getattr(spec, "maximum", np.inf)
        if np.issubdtype(self._act_dtype, np.integer):
            if tuple(spec.shape) != () or not (np.isfinite(low) and np.isfinite(high)):
                raise ValueError(
                    f"task={task!r}: action spec {spec!r} is not supported; allowed: a scalar "
                    "integer BoundedArray, or a float (Bounded)Array"
                )
            self._setup_action(int(high) - int(low) + 1, int(low), (), None, None)
        else:
            self._setup_action(None, 0, tuple(spec.shape), low, high)
        self._done = True

    def reset(self) -> dict[str, np.ndarray]:
        """Start an episode."""
        timestep = self._env.reset()
        self._done = False
        return step_obs(self._values(timestep.observation), 0.0, True, False, False)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """``action_repeat`` env steps with one action (rewards summed; an episode end stops
        them)."""
        if self._done:
            raise RuntimeError("step() after the episode ended; call reset() first")
        total = 0.0
        for _ in range(self._repeat):
            timestep = self._env.step(self._action(action))
            total += float(timestep.reward or 0.0)
            if timestep.last():
                break
        self._done = bool(timestep.last())
        terminal = self._done and timestep.discount is not None and float(timestep.discount) == 0.0
        return step_obs(self._values(timestep.observation), total, False, self._done, terminal)

    def render(self) -> np.ndarray:
        """Camera 0 of a dm_control env's ``physics.render`` as [RENDER_SIDE, RENDER_SIDE, 3] uint8;
        ValueError if the env has no ``physics.render``."""
        if not self.renders:
            raise ValueError(
                "this dm_env.Environment cannot render: it has no physics.render (dm_control)"
            )
        return _frame(self._env.physics.render(RENDER_SIDE, RENDER_SIDE, camera_id=0))

    def close(self) -> None:
        """Close the dm_env environment."""
        self._env.close()


def dm_env_factory(task: str) -> Callable[..., Any]:
    """The function ``FUNCTION(seed) -> dm_env.Environment`` that task ``MODULE:FUNCTION`` names;
    ValueError naming the task and what is allowed otherwise."""
    from dreamerbench.suites.dmc import headless_gl

    allowed = (
        "MODULE:FUNCTION, where FUNCTION(seed) returns a dm_env.Environment (docs/custom_env.md)"
    )
    headless_gl()  # before MODULE imports dm_control, so that render() works headless
    module, _, name = task.rpartition(":")
    if not module or not name:
        raise ValueError(f"task={task!r} is not allowed; allowed: {allowed}")
    factory = getattr(_import(module, task, allowed), name, None)
    if not callable(factory):
        raise ValueError(
            f"task={task!r}: module {module!r} has no function {name!r}; allowed: {allowed}"
        )
    return factory


def check_dm_env_task(task: str) -> str:
    """Return `task` if ``MODULE:FUNCTION`` names a function whose ``FUNCTION(seed=0)`` returns a
    dm_env.Environment with convertible specs (made once, :func:`film_refusal`, cached per task);
    ValueError naming the task and what is wrong otherwise."""
    dm_env_factory(task)
    film_refusal("dm_env", task)
    return task


@functools.cache
def film_refusal(suite: str, task: str) -> str:
    """Make `task`'s env of `suite` (``gym`` or ``dm_env``) once, with seed 0 and the default
    protocol, and close it. Returns ``""`` if its episodes can be filmed (an image observation, or
    a ``render()`` that works after ``reset()``), else why not. A failure to make the env becomes a
    one-line ValueError naming the task. Cached per task (a failure is not cached)."""
    make = GymEnv if suite == "gym" else DmEnv
    try:
        env = make(task, 0, {})
    except ValueError:
        raise
    except Exception as error:  # the user's env: any failure refuses the task in one line
        from gymnasium.error import DependencyNotInstalled

        if isinstance(error, (DependencyNotInstalled, ModuleNotFoundError)):
            missing = getattr(error, "name", None) or str(error).splitlines()[0]
            raise ValueError(
                f"task={task!r} needs a package that is not installed: {missing}; allowed: a task "
                "whose packages are installed"
            ) from None
        call = (
            f"{task.rpartition(':')[2]}(seed=0)"
            if suite == "dm_env"
            else f"gymnasium.make({task!r})"
        )
        first = str(error).splitlines()[0] if str(error) else ""
        raise ValueError(
            f"task={task!r}: {call} raised {type(error).__name__}: {first}; allowed: a task whose "
            "env can be made (docs/custom_env.md)"
        ) from None
    try:
        if any(space.is_image for space in env.obs_space.values()):
            return ""
        env.reset()
        env.render()
        return ""
    except Exception as error:  # the user's env: a render that fails only refuses videos
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"it has no image observation and render() failed: {first}"
    finally:
        env.close()


def _import(module: str, task: str, allowed: str):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ValueError(
            f"task={task!r}: cannot import {module!r} ({error}); allowed: {allowed}"
        ) from None


# ---------------------------------------------------------------------------- suites

_PROTOCOL = {"action_repeat": 1, "image_size": 64}
_PROTOCOL_FIELDS = {
    "action_repeat": PositiveInt,
    "image_size": Annotated[int, Range(ge=16, le=256)],
}
_NOTES = (
    "Tasks are not a fixed list: see docs/custom_env.md. No score references: "
    "`dreamerbench table` cannot normalise these scores."
)

_OPEN_SUITE = dict(
    budget_steps=100_000, final_window_frames=10_000, agent_defaults={"agent.size": "1m"}
)
"""What the two your-own-environment suites share: a default budget, final window and model size."""

GYM = Suite(
    name="gym",
    tasks=EXAMPLE_GYM_TASKS,
    default_protocol={**_PROTOCOL, "max_episode_steps": 0},
    protocol_fields={**_PROTOCOL_FIELDS, "max_episode_steps": NonNegativeInt},
    make_env=lambda task, seed, protocol: GymEnv(task, seed, protocol),
    **_OPEN_SUITE,
    description="any registered gymnasium environment (--task ID or MODULE:ID)",
    open_tasks=check_gym_task,
    film_refusal=lambda task: film_refusal("gym", task),
    notes=_NOTES + " env.max_episode_steps > 0 replaces the id's registered time limit "
    "(a truncation); env.image_size is the side images are resized to.",
)

DM_ENV = Suite(
    name="dm_env",
    tasks=(),
    default_protocol=dict(_PROTOCOL),
    protocol_fields=dict(_PROTOCOL_FIELDS),
    make_env=lambda task, seed, protocol: DmEnv(task, seed, protocol),
    **_OPEN_SUITE,
    description="a dm_env.Environment from your own function (--task MODULE:FUNCTION)",
    open_tasks=check_dm_env_task,
    film_refusal=lambda task: film_refusal("dm_env", task),
    notes=_NOTES + " env.image_size is the side images are resized to.",
)
