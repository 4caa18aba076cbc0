"""The training loop: collect with the policy, replay, update, log, checkpoint, resume.

Read `Trainer.run` top to bottom: it is the whole algorithm's outer loop.

Files in the logdir:
- `config.yaml`     the resolved config (checked on resume)
- `episodes.jsonl`  one record per finished episode: step, score, length, log/* flags
- `metrics.jsonl`   training metrics averaged over each logging interval, and fps
- `checkpoint/`     agent state (msgpack), replay (npz), counters (JSON)
- `summary.json`    written when the run finishes

On resume the JSONL files are cut back to their size at the checkpoint, so an
interrupted and resumed run holds each record exactly once.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import jax
import numpy as np
import yaml

from agent import checkpoint
from agent.config import Config, ConfigError, apply_overrides, flatten, to_dict, validate
from agent.dreamer import Dreamer
from agent.replay import Replay
from suites import get_suite
from suites.base import SPECIAL_KEYS
from suites.vector import make_vector_env


class Output(Protocol):
    """A sink for records (e.g. MLflow).

    `flush()` is called after every checkpoint: what was written before it is
    covered by that checkpoint, so a sink that publishes only at `flush()`
    delivers every record exactly once across kills and resumes. `close()` is
    called once, when the run has reached its budget (not when stopped early).
    """

    def write(self, step: int, kind: str, values: Mapping[str, float]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def resolve_config(
    suite: str,
    task: str,
    seed: int = 0,
    overrides: Mapping[str, Any] | Sequence[str] = (),
) -> Config:
    """Defaults <- the suite's agent defaults <- `overrides`; validated, with the task checked."""
    suite_def = get_suite(suite)
    suite_def.check_task(task)
    config = Config(suite=suite, task=task, seed=seed)
    config = apply_overrides(config, dict(suite_def.agent_defaults))
    config = apply_overrides(config, overrides)
    suite_def.resolve_protocol(config.env)
    return validate(config)


class Trainer:
    def __init__(self, config: Config, logdir: str | Path, outputs: Sequence[Output] = ()):
        self.config = validate(config)
        self.logdir = Path(logdir).expanduser()
        self.outputs = list(outputs)

    def run(self, stop: threading.Event | None = None) -> dict[str, Any]:
        """Train until `config.run.steps` agent steps or until `stop` is set; resumes from the logdir."""
        config, run = self.config, self.config.run
        self.started = time.time()
        stop = stop or threading.Event()
        self.logdir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        done = self.logdir / "summary.json"
        if done.exists() and json.loads(done.read_text())["steps"] >= run.steps:
            return json.loads(done.read_text())  # finished before: nothing to do
        _enable_compile_cache(run.compile_cache)

        suite = get_suite(config.suite)
        protocol = suite.resolve_protocol(config.env)
        envs = make_vector_env(suite, config.task, config.seed, protocol, run.envs, run.parallel_envs)
        try:
            return self._loop(envs, stop)
        finally:
            envs.close()

    def _loop(self, envs, stop: threading.Event) -> dict[str, Any]:
        config, cfg, run = self.config, self.config.agent, self.config.run
        agent = Dreamer(config, envs.obs_space, envs.act_space)
        replay = _make_replay(config, agent, envs)
        root_key = jax.random.PRNGKey(config.seed)
        state = jax.jit(agent.init)(jax.random.fold_in(root_key, 0))
        counters = {"steps": 0, "updates": 0, "episodes": 0, "policy_calls": 0, "update_credit": 0.0, "wall_s": 0.0}
        files = {"episodes": self.logdir / "episodes.jsonl", "metrics": self.logdir / "metrics.jsonl"}
        latest = checkpoint.latest(self.logdir / "checkpoint")
        if latest:
            state, replay_state, saved = checkpoint.load(latest, state)
            replay.load_state_dict(replay_state)
            counters.update(saved["counters"])
            for name, path in files.items():
                _truncate(path, saved["file_sizes"][name])
        else:
            for path in files.values():
                path.write_text("")
        logs = {name: open(path, "a", buffering=1) for name, path in files.items()}  # line-buffered: readable live
        session_start, wall_offset = time.time(), counters["wall_s"]
        first_update_done = counters["updates"] > 0

        policy_step = jax.jit(agent.policy_step, static_argnames="explore")
        train_step = jax.jit(agent.train_step, donate_argnums=0)
        updates_per_step = cfg.train_ratio / (cfg.batch_size * cfg.batch_length)
        carry = agent.initial_carry(run.envs)
        obs = envs.reset()
        episode = _EpisodeStats(run.envs)
        train_metrics = _Mean()
        progress = _Progress(run.steps, enabled=run.progress)
        next_save = counters["steps"] + run.save_every
        last_log = time.time()
        fps_clock = (time.time(), counters["steps"], counters["updates"])
        scores: list[float] = []

        def record_episodes(obs):
            for record in episode.track(obs):
                record["step"] = counters["steps"]
                record["wall_s"] = round(wall_offset + time.time() - session_start, 3)
                self._emit(logs["episodes"], "episode", record)
                scores.append(record["score"])
                counters["episodes"] += 1

        while counters["steps"] < run.steps and not stop.is_set():
            # Act: observe the newest step of every env and choose actions.
            key = jax.random.fold_in(jax.random.fold_in(root_key, 1), counters["policy_calls"])
            carry, action, (deter, stoch) = policy_step(state.params, carry, _device_obs(obs, envs), key)
            action = np.asarray(action)
            replay.add({**_replay_obs(obs, envs), "action": action, "deter": np.asarray(deter), "stoch": np.asarray(stoch)})
            record_episodes(obs)
            obs = envs.step(_env_action(action, envs.act_space))
            counters["steps"] += run.envs
            counters["policy_calls"] += 1

            # Learn: keep replayed steps per env step at train_ratio.
            if counters["steps"] >= run.train_start and replay.ready():
                counters["update_credit"] += run.envs * updates_per_step
                while counters["update_credit"] >= 1.0:
                    batch, batch_envs, starts = replay.sample(cfg.batch_size)
                    key = jax.random.fold_in(jax.random.fold_in(root_key, 2), counters["updates"])
                    state, out = train_step(state, batch, key)
                    replay.update_latents(batch_envs, starts, {"deter": np.asarray(out.deter), "stoch": np.asarray(out.stoch)})
                    train_metrics.add(out.metrics)
                    counters["updates"] += 1
                    counters["update_credit"] -= 1.0
                    if not first_update_done:  # start-up cost: env, replay warm-up and compiles
                        jax.block_until_ready(state)
                        first_update_done = True
                        self._emit(logs["metrics"], "fps", {
                            "step": counters["steps"], "time_to_first_update_s": time.time() - self.started,
                        })

            if time.time() - last_log >= run.log_every and train_metrics.count:
                fps_clock = self._log_train(logs["metrics"], counters, train_metrics, fps_clock)
                last_log = time.time()
            counters["wall_s"] = wall_offset + time.time() - session_start
            if counters["steps"] >= next_save:
                self._save(state, replay, counters, logs)
                next_save = counters["steps"] + run.save_every
            progress.update(counters, scores[-1] if scores else None)

        finished = counters["steps"] >= run.steps
        if finished:  # the budget's last step may end an episode; nothing acts on it
            record_episodes(obs)
        if train_metrics.count:
            self._log_train(logs["metrics"], counters, train_metrics, fps_clock)
        self._save(state, replay, counters, logs)
        progress.close()
        for log in logs.values():
            log.close()
        summary = {
            "steps": counters["steps"], "updates": counters["updates"], "episodes": counters["episodes"],
            "finished": finished, "last_score": scores[-1] if scores else None,
            "mean_score_last_10": float(np.mean(scores[-10:])) if scores else None,
        }
        if finished:
            checkpoint.atomic_write_text(self.logdir / "summary.json", json.dumps(summary, indent=1))
            for output in self.outputs:
                output.close()
        return summary

    # ------------------------------------------------------------- helpers

    def _emit(self, log, kind: str, record: Mapping[str, Any]) -> None:
        log.write(json.dumps(record) + "\n")
        values = {k: float(v) for k, v in record.items() if k != "step"}
        for output in self.outputs:
            output.write(int(record["step"]), kind, values)

    def _log_train(self, log, counters, train_metrics, fps_clock):
        now = time.time()
        then, steps, updates = fps_clock
        elapsed = max(now - then, 1e-9)
        record = {"step": counters["steps"], "updates": counters["updates"], **train_metrics.pop()}
        self._emit(log, "train", record)
        fps = {
            "step": counters["steps"],
            "env_steps_per_s": (counters["steps"] - steps) / elapsed,
            "updates_per_s": (counters["updates"] - updates) / elapsed,
        }
        self._emit(log, "fps", fps)
        return now, counters["steps"], counters["updates"]

    def _save(self, state, replay, counters, logs) -> None:
        for log in logs.values():
            log.flush()
            os.fsync(log.fileno())
        sizes = {name: os.path.getsize(log.name) for name, log in logs.items()}
        saved = {"counters": counters, "file_sizes": sizes}
        checkpoint.save(self.logdir / "checkpoint", counters["steps"], state, replay.state_dict(), saved)
        for output in self.outputs:
            output.flush()

    def _write_config(self) -> None:
        path = self.logdir / "config.yaml"
        current = to_dict(self.config)
        if path.exists():
            previous = flatten(yaml.safe_load(path.read_text()) or {})
            changed = sorted(
                key for key in set(previous) | set(flatten(current))
                if previous.get(key) != flatten(current).get(key) and not key.startswith("run.")
            )
            if changed:
                raise ConfigError(
                    f"logdir {self.logdir} holds a run with a different config ({', '.join(changed)}); "
                    "use a new logdir, or the same settings to resume"
                )
        checkpoint.atomic_write_text(path, yaml.safe_dump(current, sort_keys=False))


def _enable_compile_cache(directory: str) -> None:
    if directory:
        jax.config.update("jax_compilation_cache_dir", str(Path(directory).expanduser()))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def _make_replay(config: Config, agent: Dreamer, envs) -> Replay:
    deter, stoch, _ = agent.latent_shape
    specs = {k: (s.shape, s.dtype) for k, s in envs.obs_space.items()}
    specs.update({
        **{key: ((), np.float32 if key == "reward" else bool) for key in SPECIAL_KEYS},
        "action": (envs.act_space.shape, envs.act_space.dtype),
        # float16 halves the memory of stored start states; deter lies in [-1, 1].
        "deter": ((deter,), np.float16), "stoch": ((stoch,), np.uint8),
    })
    return Replay(
        specs, config.run.envs, config.replay.capacity, config.agent.batch_length + 1,
        config.replay.online, seed=config.seed,
    )


def _replay_obs(obs, envs) -> dict[str, np.ndarray]:
    keys = (*envs.obs_space, *SPECIAL_KEYS)
    return {k: obs[k] for k in keys}


def _device_obs(obs, envs) -> dict[str, np.ndarray]:
    return {k: obs[k] for k in (*envs.obs_space, "is_first")}


def _env_action(action: np.ndarray, space) -> np.ndarray:
    if space.discrete:
        return action
    return np.clip(action, space.low, space.high)


def _truncate(path: Path, size: int) -> None:
    with open(path, "a+b") as file:
        file.truncate(size)


class _EpisodeStats:
    """Per-env running score, length and max of `log/*` values; yields a record per finished episode."""

    def __init__(self, num_envs: int):
        self.score = np.zeros(num_envs)
        self.length = np.zeros(num_envs, np.int64)
        self.logs: list[dict[str, float]] = [{} for _ in range(num_envs)]

    def track(self, obs):
        for i in range(len(self.score)):
            if obs["is_first"][i]:
                self.score[i], self.length[i], self.logs[i] = 0.0, 0, {}
            else:
                self.score[i] += float(obs["reward"][i])
                self.length[i] += 1
            for key in obs:
                if key.startswith("log/"):
                    name = key[4:]
                    self.logs[i][name] = max(self.logs[i].get(name, -np.inf), float(obs[key][i]))
            if obs["is_last"][i]:
                yield {"score": float(self.score[i]), "length": int(self.length[i]), **self.logs[i]}


class _Mean:
    """Running mean of dicts of scalars (device arrays are fetched once per add)."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, values: Mapping[str, Any]) -> None:
        for key, value in jax.device_get(dict(values)).items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.count += 1

    def pop(self) -> dict[str, float]:
        means = {k: v / self.count for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return means


class _Progress:
    """One status line on stderr: steps, updates, fps, latest score."""

    def __init__(self, total: int, enabled: bool):
        self.total = total
        self.enabled = enabled and (sys.stderr.isatty() or os.environ.get("DREAMERBENCH_PROGRESS") == "1")
        self.start = time.time()
        self.last = 0.0
        self.first_steps: int | None = None

    def update(self, counters, score) -> None:
        now = time.time()
        if self.first_steps is None:
            self.first_steps = counters["steps"]
        if not self.enabled or now - self.last < 1.0:
            return
        self.last = now
        done = counters["steps"] / self.total
        fps = (counters["steps"] - self.first_steps) / max(now - self.start, 1e-9)
        bar = "#" * int(30 * done) + "-" * (30 - int(30 * done))
        score_text = "-" if score is None else f"{score:.1f}"
        sys.stderr.write(
            f"\r[{bar}] {counters['steps']}/{self.total} steps  {counters['updates']} updates  "
            f"{fps:.0f} fps  score {score_text}   "
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
