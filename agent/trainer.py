"""The training loop: collect with the policy, replay, update, log, checkpoint, resume.

Read `Trainer._loop` top to bottom: it is the whole algorithm's outer loop. It
trains one run, or K seeds of one task at once (`Trainer.packed`,
`--seeds-per-process K`) with the policy and train steps vmapped over the runs.

Files in the logdir:
- `config.yaml`     the resolved config (checked on resume)
- `episodes.jsonl`  one record per finished episode: step, score, length, log/* flags
- `metrics.jsonl`   training metrics averaged over each logging interval, and fps
- `checkpoint/`     agent state (msgpack), replay (npz), counters (JSON); packed
                    runs keep the last two, so a kill between their saves
                    leaves a step that every run holds
- `summary.json`    written when the run finishes

On resume the JSONL files are cut back to their size at the checkpoint, so an
interrupted and resumed run holds each record exactly once.
"""

from __future__ import annotations

import contextlib
import functools
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
from agent.dreamer import Dreamer, over_runs
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
    """Trains one run, or several runs that differ only in seed (`Trainer.packed`).

    Packed runs step in lockstep: one vmapped policy step acts for all of
    them and one vmapped train step updates all of them, while each keeps its
    own parameters, optimizer state, replay, envs, logdir and outputs. Each
    run's logdir is the same as if it had trained alone, so a packed run
    resumes alone and vice versa.
    """

    def __init__(self, config: Config, logdir: str | Path, outputs: Sequence[Output] = ()):
        self.runs = [_Run(validate(config), Path(logdir).expanduser(), list(outputs))]

    @classmethod
    def packed(
        cls, configs: Sequence[Config], logdirs: Sequence[str | Path],
        outputs: Sequence[Sequence[Output]] | None = None,
    ) -> "Trainer":
        """K runs of one task and config, differing only in seed, trained by one process."""
        if not configs or len(configs) != len(logdirs) or (outputs is not None and len(outputs) != len(configs)):
            raise ValueError("packed runs need one logdir (and one list of outputs) per config")
        trainer = cls.__new__(cls)
        outputs = outputs or [() for _ in configs]
        trainer.runs = [_Run(validate(c), Path(d).expanduser(), list(o)) for c, d, o in zip(configs, logdirs, outputs)]
        first = _without_seed(configs[0])
        for config in configs[1:]:
            other = _without_seed(config)
            changed = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
            if changed:
                raise ConfigError(f"packed runs may differ only in seed; these keys differ: {', '.join(changed)}")
        seeds = [c.seed for c in configs]
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"packed runs need distinct seeds; got seed={seeds}")
        return trainer

    @property
    def config(self) -> Config:
        return self.runs[0].config

    def run(self, stop: threading.Event | None = None) -> dict[str, Any]:
        """Train one run until `config.run.steps` agent steps or until `stop` is set; resumes from the logdir."""
        if len(self.runs) != 1:
            raise TypeError("a packed Trainer trains several runs: call run_all()")
        return self.run_all(stop)[0]

    def run_all(self, stop: threading.Event | None = None) -> list[dict[str, Any]]:
        """Train every run to its budget or until `stop` is set; one summary per run, in order."""
        self.started = time.time()
        stop = stop or threading.Event()
        for run in self.runs:
            run.logdir.mkdir(parents=True, exist_ok=True)
            run.write_config()
        finished = [run.finished_summary() for run in self.runs]
        if all(finished):
            return finished  # finished before: nothing to do
        config = self.config
        _enable_compile_cache(config.run.compile_cache)
        suite = get_suite(config.suite)
        protocol = suite.resolve_protocol(config.env)
        with contextlib.ExitStack() as stack:
            for run in self.runs:
                run.envs = stack.enter_context(make_vector_env(
                    suite, config.task, run.config.seed, protocol, config.run.envs, config.run.parallel_envs,
                ))
            return self._loop(stop)

    def _loop(self, stop: threading.Event) -> list[dict[str, Any]]:
        config, cfg, schedule = self.config, self.config.agent, self.config.run
        runs, first_env = self.runs, self.runs[0].envs
        agent = Dreamer(config, first_env.obs_space, first_env.act_space)
        # Whole-run-axis arrays are built by one jitted call or in numpy: an eager
        # JAX op per parameter would compile once per distinct shape.
        run_keys = np.stack([np.asarray(jax.random.PRNGKey(run.config.seed)) for run in runs])
        state = jax.jit(over_runs(lambda key: agent.init(jax.random.fold_in(key, 0)), len(runs)))(run_keys)
        counters = {"steps": 0, "updates": 0, "policy_calls": 0, "update_credit": 0.0, "wall_s": 0.0}
        resume_step = self._resume_step()
        fresh = jax.device_get(state) if resume_step is not None else None
        loaded = []
        for index, run in enumerate(runs):
            run.replay = _make_replay(run.config, agent, run.envs)
            if resume_step is None:
                run.start_logs()
            else:
                run_state, saved = run.resume(resume_step, _unstack(fresh, index))
                loaded.append(run_state)
                counters.update(saved)
        if loaded:
            state = _stack(loaded)
        session_start, wall_offset = time.time(), counters["wall_s"]
        first_update_done = counters["updates"] > 0

        keep = 1 if len(runs) == 1 else 2  # a kill between the runs' saves leaves a step they all hold
        policy_step = jax.jit(over_runs(_keyed(functools.partial(agent.policy_step, explore=True), 1), len(runs)))
        train_step = jax.jit(over_runs(_keyed(agent.train_step, 2), len(runs)), donate_argnums=0)
        updates_per_step = cfg.train_ratio / (cfg.batch_size * cfg.batch_length)
        carry = jax.tree_util.tree_map(
            lambda leaf: np.zeros((len(runs), *leaf.shape), leaf.dtype), jax.eval_shape(functools.partial(agent.initial_carry, schedule.envs)),
        )
        obs = [run.envs.reset() for run in runs]
        progress = _Progress(schedule.steps, enabled=schedule.progress)
        next_save = counters["steps"] + schedule.save_every
        last_log = time.time()
        fps_clock = (time.time(), counters["steps"], counters["updates"])

        def counts(name: str):
            return np.full(len(runs), counters[name], np.uint32)

        def sample_batch():
            samples = [run.replay.sample(cfg.batch_size) for run in runs]
            return _stack([batch for batch, _, _ in samples]), [where for _, *where in samples]

        def record_episodes(obs):
            wall_s = round(wall_offset + time.time() - session_start, 3)
            for run, run_obs in zip(runs, obs):
                run.record_episodes(run_obs, counters["steps"], wall_s)

        while counters["steps"] < schedule.steps and not stop.is_set():
            # Act: observe the newest step of every env of every run and choose actions.
            device_obs = _stack([_device_obs(run_obs, run.envs) for run, run_obs in zip(runs, obs)])
            carry, action, (deter, stoch) = policy_step(state.params, carry, device_obs, run_keys, counts("policy_calls"))
            action, deter, stoch = jax.device_get((action, deter, stoch))
            for index, (run, run_obs) in enumerate(zip(runs, obs)):
                run.replay.add({
                    **_replay_obs(run_obs, run.envs), "action": action[index],
                    "deter": deter[index], "stoch": stoch[index],
                })
            record_episodes(obs)
            obs = [run.envs.step(_env_action(action[i], run.envs.act_space)) for i, run in enumerate(runs)]
            counters["steps"] += schedule.envs
            counters["policy_calls"] += 1

            # Learn: keep replayed steps per env step at train_ratio. The next
            # batch is sampled while the dispatched step runs.
            if counters["steps"] >= schedule.train_start and runs[0].replay.ready():
                counters["update_credit"] += schedule.envs * updates_per_step
                batch = sample_batch() if counters["update_credit"] >= 1.0 else None
                while batch is not None:
                    batch_arrays, sampled = batch
                    state, out = train_step(state, batch_arrays, run_keys, counts("updates"))
                    counters["updates"] += 1
                    counters["update_credit"] -= 1.0
                    batch = sample_batch() if counters["update_credit"] >= 1.0 else None
                    metrics, latents = jax.device_get((out.metrics, (out.deter, out.stoch)))
                    for index, (run, (batch_envs, starts)) in enumerate(zip(runs, sampled)):
                        run.replay.update_latents(batch_envs, starts, {"deter": latents[0][index], "stoch": latents[1][index]})
                        run.train_metrics.add({name: value[index] for name, value in metrics.items()})
                    if not first_update_done:  # start-up cost: env, replay warm-up and compiles
                        first_update_done = True
                        for run in runs:
                            run.emit("metrics", "fps", {
                                "step": counters["steps"], "time_to_first_update_s": time.time() - self.started,
                            })

            if time.time() - last_log >= schedule.log_every and runs[0].train_metrics.count:
                fps_clock = self._log_train(counters, fps_clock)
                last_log = time.time()
            counters["wall_s"] = wall_offset + time.time() - session_start
            if counters["steps"] >= next_save:
                self._save(state, counters, keep)
                next_save = counters["steps"] + schedule.save_every
            progress.update(counters, _latest_score(runs))

        finished = counters["steps"] >= schedule.steps
        if finished:  # the budget's last step may end an episode; nothing acts on it
            record_episodes(obs)
        if runs[0].train_metrics.count:
            self._log_train(counters, fps_clock)
        self._save(state, counters, keep)
        progress.close()
        return [run.finish(counters, finished) for run in runs]

    # ------------------------------------------------------------- helpers

    def _resume_step(self) -> int | None:
        """The newest checkpoint step that every run holds; None for a fresh start."""
        held = [set(checkpoint.steps(run.checkpoint_dir)) for run in self.runs]
        common = set.intersection(*held)
        if common:
            return max(common)
        if not set.union(*held):
            return None  # nothing saved yet
        seeds = [run.config.seed for run in self.runs]
        if all(len(steps) <= 1 for steps in held) and all(
            checkpoint.read_counters(checkpoint.path_for(run.checkpoint_dir, min(steps))).get("pack") == seeds
            for run, steps in zip(self.runs, held) if steps
        ):
            return None  # this pack's first save was cut short: start the pack afresh
        found = ", ".join(f"{run.logdir}: {sorted(steps) or 'none'}" for run, steps in zip(self.runs, held))
        raise ConfigError(
            f"packed runs hold checkpoints at no common step ({found}); resume them one per process "
            "(--seeds-per-process 1) or use new logdirs"
        )

    def _log_train(self, counters, fps_clock):
        now = time.time()
        then, steps, updates = fps_clock
        elapsed = max(now - then, 1e-9)
        fps = {
            "step": counters["steps"],
            "env_steps_per_s": (counters["steps"] - steps) / elapsed,
            "updates_per_s": (counters["updates"] - updates) / elapsed,
        }
        for run in self.runs:
            run.emit("metrics", "train", {"step": counters["steps"], "updates": counters["updates"], **run.train_metrics.pop()})
            run.emit("metrics", "fps", fps)
        return now, counters["steps"], counters["updates"]

    def _save(self, state, counters, keep: int) -> None:
        host_state = jax.device_get(state)
        pack = [run.config.seed for run in self.runs]
        for index, run in enumerate(self.runs):
            run.save(_unstack(host_state, index), counters, keep, pack)
        # Outputs publish only after every run's checkpoint holds their records.
        for run in self.runs:
            for output in run.outputs:
                output.flush()


class _Run:
    """One run's files, outputs, envs, replay and episode records."""

    def __init__(self, config: Config, logdir: Path, outputs: list[Output]):
        self.config, self.logdir, self.outputs = config, logdir, outputs
        self.checkpoint_dir = logdir / "checkpoint"
        self.files = {"episodes": logdir / "episodes.jsonl", "metrics": logdir / "metrics.jsonl"}
        self.envs = self.replay = None
        self.logs: dict[str, Any] = {}
        self.episode = _EpisodeStats(config.run.envs)
        self.train_metrics = _Mean()
        self.scores: list[float] = []
        self.episodes = 0

    def write_config(self) -> None:
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

    def finished_summary(self) -> dict[str, Any] | None:
        path = self.logdir / "summary.json"
        summary = json.loads(path.read_text()) if path.exists() else None
        return summary if summary and summary["steps"] >= self.config.run.steps else None

    def start_logs(self) -> None:
        for path in self.files.values():
            path.write_text("")
        self._open_logs()

    def resume(self, step: int, state_template):
        """Load the checkpoint at `step`, cut the JSONL files back to it; returns (state, shared counters)."""
        state, replay_state, saved = checkpoint.load(checkpoint.path_for(self.checkpoint_dir, step), state_template)
        self.replay.load_state_dict(replay_state)
        for name, path in self.files.items():
            _truncate(path, saved["file_sizes"][name])
        self._open_logs()
        counters = dict(saved["counters"])
        self.episodes = counters.pop("episodes")
        return state, counters

    def _open_logs(self) -> None:
        self.logs = {name: open(path, "a", buffering=1) for name, path in self.files.items()}  # line-buffered: readable live

    def emit(self, file: str, kind: str, record: Mapping[str, Any]) -> None:
        self.logs[file].write(json.dumps(record) + "\n")
        values = {k: float(v) for k, v in record.items() if k != "step"}
        for output in self.outputs:
            output.write(int(record["step"]), kind, values)

    def record_episodes(self, obs, step: int, wall_s: float) -> None:
        for record in self.episode.track(obs):
            self.emit("episodes", "episode", {**record, "step": step, "wall_s": wall_s})
            self.scores.append(record["score"])
            self.episodes += 1

    def save(self, state, counters, keep: int, pack: list[int]) -> None:
        for log in self.logs.values():
            log.flush()
            os.fsync(log.fileno())
        sizes = {name: os.path.getsize(log.name) for name, log in self.logs.items()}
        saved = {"counters": {**counters, "episodes": self.episodes}, "file_sizes": sizes, "pack": pack}
        checkpoint.save(self.checkpoint_dir, counters["steps"], state, self.replay.state_dict(), saved, keep)

    def finish(self, counters, finished: bool) -> dict[str, Any]:
        for log in self.logs.values():
            log.close()
        scores = self.scores
        summary = {
            "steps": counters["steps"], "updates": counters["updates"], "episodes": self.episodes,
            "finished": finished, "last_score": scores[-1] if scores else None,
            "mean_score_last_10": float(np.mean(scores[-10:])) if scores else None,
        }
        if finished:
            checkpoint.atomic_write_text(self.logdir / "summary.json", json.dumps(summary, indent=1))
            for output in self.outputs:
                output.close()
        return summary


def _keyed(step, stream: int):
    """`step(*args, key)` called as `(*args, root_key, count)`: the key is derived inside the
    jitted step rather than by eager JAX ops (a dispatch each) on every call."""

    def keyed(*args):
        *args, root_key, count = args
        return step(*args, jax.random.fold_in(jax.random.fold_in(root_key, stream), count))

    return keyed


def _without_seed(config: Config) -> dict[str, Any]:
    values = flatten(to_dict(config))
    values.pop("seed")
    return values


def _stack(trees: Sequence[Any]) -> Any:
    if len(trees) == 1:  # a view: no copy of a single run's batch
        return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[None], trees[0])
    return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *trees)


def _unstack(tree: Any, index: int) -> Any:
    return jax.tree_util.tree_map(lambda leaf: leaf[index], tree)


def _latest_score(runs: Sequence[_Run]) -> float | None:
    scores = [run.scores[-1] for run in runs if run.scores]
    return float(np.mean(scores)) if scores else None


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
    """Running mean of dicts of host scalars."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
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
