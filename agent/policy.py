"""A trained policy for inference: load a run's newest checkpoint, or export it and load it
anywhere.

Export format (``dreamerbench export LOGDIR OUT.npz``): one ``.npz`` of plain arrays, no
pickles. Each world-model and actor parameter is an array named by its path in the
parameter tree (``world_model/params/encoder/...``, ``actor/params/...``); the critic,
slow critic and optimizer state are left out. The entry ``meta.json`` (uint8 bytes of
a JSON object) holds the format name, the resolved config, the observation and action
spaces and the checkpoint's step. :func:`load_policy` reads it back::

    from dreamerbench.agent import load_policy
    policy = load_policy("policy.npz")
    state = None
    obs = env.reset()                      # one env's observation dict, no batch axis
    action, state = policy.act(obs, state)
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dreamerbench.agent.config import Config, from_dict, to_dict, validate
from dreamerbench.core.files import (
    StorageError,
    atomic_write_bytes,
    file_in_the_way,
    unusable_directory,
    writing,
)
from dreamerbench.core.reader import refuse
from dreamerbench.suites.base import Space

FORMAT = "dreamerbench-policy/1"
META = "meta.json"
PARTS = ("world_model", "actor")
"""The parameters a policy needs (the critic only trains the actor)."""


def newest_state(logdir: str | Path) -> tuple[Config, Any, bytes, int]:
    """(config, checkpoint, state bytes, step) of the newest readable checkpoint of a run's logdir.

    Raises ValueError (one line) if `logdir` holds no run, an unreadable ``config.yaml`` or no
    readable checkpoint; a damaged newest checkpoint falls back to an older one with the
    trainer's warning naming the bad file (:func:`dreamerbench.agent.rundir.load_newest`).
    """
    from dreamerbench.agent.rundir import RunDir, load_newest, read_config
    from dreamerbench.core import checkpoint

    logdir = Path(logdir).expanduser()
    config_path = logdir / "config.yaml"
    if not config_path.is_file():
        raise refuse(
            "LOGDIR", str(logdir), "a run directory of `dreamerbench train` (it has no config.yaml)"
        )
    data = read_config(config_path)  # unreadable YAML: its error names the file
    try:
        config = validate(from_dict(data))
    except ValueError as error:  # a key or value the schema refuses: name the file too
        raise ValueError(f"{config_path}: {error}") from None
    problems: list[str] = []
    loaded = load_newest(RunDir(logdir).checkpoints(), checkpoint.load_state, problems)
    if loaded is None:
        reason = problems[-1] if problems else "it has no complete checkpoint yet"
        raise refuse(
            "LOGDIR", str(logdir), f"a run directory with a readable checkpoint ({reason})"
        )
    ckpt, state, _ = loaded
    return config, ckpt, state, ckpt.step


def env_spaces(config: Config) -> tuple[dict[str, Space], Space]:
    """Observation and action spaces of the config's task (one env is made and closed)."""
    from dreamerbench.suites import get_suite
    from dreamerbench.suites.vector import eval_env_seed

    suite = get_suite(config.suite)
    env = suite.make_env(
        config.task, eval_env_seed(config.seed), suite.resolve_protocol(config.env)
    )
    try:
        return dict(env.obs_space), env.act_space
    finally:
        env.close()


def export(logdir: str | Path, out: str | Path) -> dict[str, Any]:
    """Write the newest checkpoint's world model and actor to `out` (.npz, see the module doc);
    returns its meta.

    `out` is checked first (:func:`check_out`, ValueError); a failed write raises
    StorageError naming `out` and leaves no temporary file.
    """
    import flax.serialization
    from flax import traverse_util

    out = check_out(out)
    config, ckpt, state, step = newest_state(logdir)
    obs_space, act_space = env_spaces(config)
    tree = flax.serialization.msgpack_restore(state)
    params = {part: tree["params"][part] for part in PARTS}
    arrays = {
        key: np.asarray(value) for key, value in traverse_util.flatten_dict(params, sep="/").items()
    }
    meta = {
        "format": FORMAT,
        "config": to_dict(config),
        "step": step,
        "checkpoint": ckpt.path.name,
        "obs_space": {k: _space_dict(s) for k, s in obs_space.items()},
        "act_space": _space_dict(act_space),
    }
    arrays[META] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        with writing(out):
            out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, buffer.getvalue())  # its temporary file goes if the write fails
    except OSError as error:  # a full disk is DiskFull already
        raise StorageError(
            f"cannot write {out} ({error.strerror or error}); choose another OUT"
        ) from None
    return meta


def check_out(out: str | Path) -> Path:
    """`out` (~ expanded) if a policy file may be written there; ValueError (one line) if it is a
    directory, a file stands where a directory above it would have to be, or its folder cannot
    be one (:func:`dreamerbench.core.files.unusable_directory`)."""
    out = Path(out).expanduser()
    allowed = "a new or existing file path (not a directory, and under no existing file)"
    if out.is_dir():
        raise refuse("OUT", str(out), f"{allowed}; it is a directory")
    blocker = file_in_the_way(out.parent)
    if blocker is not None:
        raise refuse("OUT", str(out), f"{allowed}; {blocker} is a file")
    problem = unusable_directory(out.parent)  # /proc, /sys, a read-only or over-long path
    if problem is not None:
        raise refuse("OUT", str(out), f"{allowed}; {problem}")
    return out


class Policy:
    """DreamerV3's policy from exported parameters: observe one env's step, return an action.

    `act(obs, state)`: `obs` maps each observation key to one env's array (no batch axis;
    ``is_first`` optional, True when `state` is None; ValueError naming the key for a missing
    key or a shape other than the exported space's); returns (action, state) where
    action has the action space's shape and dtype. `greedy` takes the policy's mode,
    else a sample drawn with the key in `state` (seeded by :meth:`initial_state`).
    """

    def __init__(
        self, config: Config, obs_space: Mapping[str, Space], act_space: Space, params: dict
    ):
        import jax

        from dreamerbench.agent.dreamer import Dreamer

        self.config, self.obs_space, self.act_space = config, dict(obs_space), act_space
        self.dreamer = Dreamer(config, obs_space, act_space)
        self.params = jax.device_put(params)
        self._steps = {
            greedy: jax.jit(
                lambda p, c, o, k, g=greedy: self.dreamer.policy_step(p, c, o, k, explore=not g)
            )
            for greedy in (True, False)
        }

    def initial_state(self, seed: int = 0) -> tuple[Any, Any]:
        """A fresh state: the policy's carry for one env and a random key."""
        import jax

        return self.dreamer.initial_carry(1), jax.random.PRNGKey(seed)

    def act(
        self,
        obs: Mapping[str, np.ndarray],
        state: tuple[Any, Any] | None = None,
        greedy: bool = True,
    ):
        """One step: (action, new state); see the class doc."""
        import jax

        first = state is None
        carry, key = self.initial_state() if first else state
        missing = sorted(set(self.obs_space) - set(obs))
        if missing:
            raise ValueError(
                f"obs lacks the keys {', '.join(missing)}; "
                f"the policy needs {', '.join(sorted(self.obs_space))}"
            )
        for k, space in self.obs_space.items():
            if np.shape(obs[k]) != tuple(space.shape):
                raise ValueError(
                    f"obs[{k!r}] has shape {tuple(np.shape(obs[k]))}; the policy needs shape "
                    f"{tuple(space.shape)} (one env's observation, no batch axis)"
                )
        batch = {k: np.asarray(obs[k], self.obs_space[k].dtype)[None] for k in self.obs_space}
        batch["is_first"] = np.asarray([obs.get("is_first", first)], bool)
        key, step_key = jax.random.split(key)
        carry, action, _ = self._steps[greedy](self.params, carry, batch, step_key)
        action = np.asarray(jax.device_get(action))[0].astype(self.act_space.dtype)
        return action, (carry, key)


def load_policy(path: str | Path) -> Policy:
    """The :class:`Policy` exported to `path` by :func:`export`; ValueError (one line) for
    another file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        meta = json.loads(bytes(arrays.pop(META)).decode())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise refuse(
            "policy", str(path), f"a policy file written by `dreamerbench export` ({error})"
        ) from None
    if meta.get("format") != FORMAT:
        raise refuse(
            "policy", str(path), f"a file of format {FORMAT} (it says {meta.get('format')!r})"
        )
    from flax import traverse_util

    params = traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in arrays.items()})
    config = from_dict(meta["config"])
    obs_space = {k: _space(v) for k, v in meta["obs_space"].items()}
    return Policy(config, obs_space, _space(meta["act_space"]), params)


def _space_dict(space: Space) -> dict[str, Any]:
    """A Space as JSON: bounds as numbers (one per space) or lists (one per dimension)."""

    def plain(bound):
        if bound is None:
            return None
        return float(bound) if np.ndim(bound) == 0 else np.asarray(bound, np.float64).tolist()

    return {
        "dtype": np.dtype(space.dtype).name,
        "shape": list(space.shape),
        "low": plain(space.low),
        "high": plain(space.high),
    }


def _space(data: Mapping[str, Any]) -> Space:
    low, high = data["low"], data["high"]
    return Space(
        np.dtype(data["dtype"]).type,
        tuple(data["shape"]),
        np.asarray(low, np.float32) if isinstance(low, list) else low,
        np.asarray(high, np.float32) if isinstance(high, list) else high,
    )
