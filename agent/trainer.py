"""The training loop: act, learn as the train ratio allows, log on a clock, save on a schedule.

Read :meth:`Trainer._loop` top to bottom: it is the algorithm's outer loop (compare
``embodied/run/train.py`` in danijar/dreamerv3 and dqn_zoo's ``run_loop``). It trains
one run, or K seeds of one task in lockstep (:meth:`Trainer.packed`,
``--seeds-per-process K``), each run with its own envs, replay and logdir.

Who does what:

- ``agent/rundir.py``   the logdir (config check, JSONL records with their identity,
  checkpoints, summary) and the :class:`~agent.rundir.Counters`;
- ``agent/learner.py``  DreamerV3 for K runs (JAX); any :class:`Agent` can stand in;
- this file             the loop.

Outputs (MLflow: ``experiments/tracking.py``) get ``publish(logdir)`` after every
save of all runs and read from the files what :func:`agent.rundir.deliverable`
allows: the trainer never hands a record to a store itself.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from agent.config import Config, ConfigError, apply_overrides, flatten, to_dict, validate
from agent.replay import Replay
from agent.rundir import Counters, EpisodeStats, RunDir, load_pack
from suites import get_suite
from suites.base import SPECIAL_KEYS, Space
from suites.vector import VectorEnv, make_vector_env


class Agent(Protocol):
    """An agent for K runs stepping in lockstep; every argument and result holds one entry per run.

    ``agent/learner.py`` is DreamerV3's; tests drive the loop with a stub.
    """

    step_specs: Mapping[str, tuple[tuple[int, ...], Any]]
    """Per-step outputs of :meth:`act` (besides ``action``) that replay stores: name -> (shape, dtype)."""

    def act(self, obs: Sequence[Mapping[str, np.ndarray]], count: int) -> list[dict[str, np.ndarray]]:
        """Observations [envs, ...] -> ``action`` [envs, ...] plus :attr:`step_specs`; `count` = policy calls so far."""

    def learn(self, replays: Sequence[Replay], count: int, updates: int,
              stop: threading.Event | None = None) -> list[list[dict[str, float]]]:
        """`updates` train steps on batches from each run's replay; metrics per run, per update.

        Once `stop` is set no further update starts: fewer than `updates` lists come back.
        """

    def get_state(self) -> list[bytes]:
        """Each run's state as bytes, for checkpoints."""

    def set_state(self, states: Sequence[bytes]) -> None:
        """Continue from per-run states that :meth:`get_state` made."""


class Output(Protocol):
    """A store that a run's records go to (e.g. MLflow); see the module doc."""

    def publish(self, logdir: Path) -> None:
        """Called after every save: take the records :func:`agent.rundir.deliverable` allows."""


AgentFactory = Callable[[Config, Mapping[str, Space], Space, Sequence[int]], Agent]


def resolve_config(
    suite: str,
    task: str,
    seed: int = 0,
    overrides: Mapping[str, Any] | Sequence[str] = (),
) -> Config:
    """Defaults <- the suite's agent defaults <- `overrides`, then :func:`agent.config.validate`
    (which checks the task and the protocol too); ConfigError or ValueError, one line."""
    config = Config(suite=suite, task=task, seed=seed)
    config = apply_overrides(config, dict(get_suite(suite).agent_defaults))
    return validate(apply_overrides(config, overrides))


def dreamer_agent(config: Config, obs_space: Mapping[str, Space], act_space: Space, seeds: Sequence[int]) -> Agent:
    """The default :data:`AgentFactory`: DreamerV3 (JAX loads here, only when a Dreamer trains)."""
    from agent.learner import PackedDreamer

    return PackedDreamer(config, obs_space, act_space, seeds)


class _Mean:
    """Running mean of dicts of host scalars."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.count = 0

    def extend(self, items: Sequence[Mapping[str, Any]]) -> None:
        for values in items:
            for key, value in values.items():
                self.sums[key] = self.sums.get(key, 0.0) + float(value)
            self.count += 1

    def pop(self) -> dict[str, float]:
        means = {k: v / self.count for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return means


@dataclass
class _Run:
    """One run while it trains: its config, logdir, outputs, envs, replay and running statistics."""

    config: Config
    dir: RunDir
    outputs: list[Output]
    envs: VectorEnv | None = None
    replay: Replay | None = None
    episodes: EpisodeStats = field(init=False)
    train: _Mean = field(default_factory=_Mean)
    last_score: float | None = None

    def __post_init__(self):
        self.episodes = EpisodeStats(self.config.run.envs)


class Trainer:
    """Trains one run, or several runs that differ only in seed (:meth:`packed`).

    Packed runs step in lockstep: one vmapped policy step acts for all of them and
    one vmapped train step updates all of them, while each keeps its own parameters,
    optimizer state, replay, envs, logdir and outputs. Each run's logdir is the same
    as if it had trained alone, so a packed run resumes alone and vice versa.
    """

    def __init__(self, config: Config, logdir: str | Path, outputs: Sequence[Output] = (),
                 make_agent: AgentFactory = dreamer_agent):
        self.runs = [_Run(validate(config), RunDir(logdir), list(outputs))]
        self.make_agent = make_agent

    @classmethod
    def packed(
        cls, configs: Sequence[Config], logdirs: Sequence[str | Path],
        outputs: Sequence[Sequence[Output]] | None = None, make_agent: AgentFactory = dreamer_agent,
    ) -> "Trainer":
        """K runs of one task and config, differing only in seed, trained by one process."""
        if not configs or len(configs) != len(logdirs) or (outputs is not None and len(outputs) != len(configs)):
            raise ValueError("packed runs need one logdir (and one list of outputs) per config")
        first = _without_seed(configs[0])
        for config in configs[1:]:
            other = _without_seed(config)
            changed = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
            if changed:
                raise ConfigError(f"packed runs may differ only in seed; these keys differ: {', '.join(changed)}")
        seeds = [c.seed for c in configs]
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"packed runs need distinct seeds; got seed={seeds}")
        outputs = outputs or [() for _ in configs]
        trainer = cls(configs[0], logdirs[0], outputs[0], make_agent)
        trainer.runs += [_Run(validate(c), RunDir(d), list(o)) for c, d, o in zip(configs[1:], logdirs[1:], outputs[1:])]
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
        """Train every run to its budget or until `stop` is set; one summary per run, in order.

        Raises LogdirBusy if another process trains one of the logdirs, ConfigError
        if a logdir holds another config, CheckpointError if no checkpoint can be
        read, DiskFull naming the file if the disk fills up (run again to resume).
        """
        started = time.time()
        config = self.config
        with contextlib.ExitStack() as stack:
            for run in self.runs:
                stack.enter_context(run.dir)
                run.dir.check_config(run.config)
            finished = [run.dir.finished_summary(run.config.run.steps) for run in self.runs]
            if all(finished):
                return finished  # finished before: nothing to do
            for run in self.runs:
                run.dir.write_config(run.config)
            suite = get_suite(config.suite)
            protocol = suite.resolve_protocol(config.env)
            for run in self.runs:
                run.envs = stack.enter_context(make_vector_env(
                    suite, config.task, run.config.seed, protocol, config.run.envs, config.run.parallel_envs,
                ))
            envs = self.runs[0].envs
            agent = self.make_agent(config, envs.obs_space, envs.act_space, [run.config.seed for run in self.runs])
            for run in self.runs:
                run.replay = _make_replay(run.config, agent.step_specs, run.envs)
            counters = self._resume(agent)
            return self._loop(agent, counters, stop or threading.Event(), started)

    def _loop(self, agent: Agent, counters: Counters, stop: threading.Event, started: float) -> list[dict[str, Any]]:
        runs, schedule, cfg = self.runs, self.config.run, self.config.agent
        updates_per_step = cfg.train_ratio / (cfg.batch_size * cfg.batch_length)
        self._origin = time.time() - counters.wall_s  # wall-clock seconds count across sessions
        obs = [run.envs.reset() for run in runs]
        speed = _Speed(counters)
        last_log, next_save = time.time(), counters.steps + schedule.save_every
        progress = _Progress(schedule.steps, enabled=schedule.progress)
        while counters.steps < schedule.steps and not stop.is_set():
            # Act: observe the newest step of every env of every run, store it, choose actions.
            acts = agent.act(obs, counters.policy_calls)
            for run, run_obs, act in zip(runs, obs, acts):
                run.replay.add({**{key: run_obs[key] for key in (*run.envs.obs_space, *SPECIAL_KEYS)}, **act})
            self._record_episodes(obs, counters.steps)
            obs = [run.envs.step(_env_action(act["action"], run.envs.act_space)) for run, act in zip(runs, acts)]
            counters.steps += schedule.envs
            counters.policy_calls += 1

            # Learn: as many updates as the train ratio (replayed steps per env step) has earned.
            if counters.steps >= schedule.train_start and runs[0].replay.ready():
                counters.update_credit += schedule.envs * updates_per_step
                due = int(counters.update_credit)
                if due:
                    first = counters.updates == 0
                    # A stop (preemption, Ctrl-C) cuts the burst after the running update; the
                    # credit left is saved and spent after the resume.
                    learned = agent.learn([run.replay for run in runs], counters.updates, due, stop)
                    for run, metrics in zip(runs, learned):
                        run.train.extend(metrics)
                    counters.updates += len(learned[0])
                    counters.update_credit -= len(learned[0])
                    if first:  # start-up cost: env, replay warm-up and compiles
                        for run in runs:
                            run.dir.append("metrics", {
                                "kind": "fps", "step": counters.steps, "time_to_first_update_s": time.time() - started,
                            })

            # Log on a clock, save on a schedule.
            counters.wall_s = time.time() - self._origin
            if time.time() - last_log >= schedule.log_every and runs[0].train.count:
                self._log(counters, speed)
                last_log = time.time()
            if counters.steps >= next_save:
                self._save(agent, counters)
                next_save = counters.steps + schedule.save_every
            progress.update(counters, self._latest_score())

        finished = counters.steps >= schedule.steps
        if finished:  # the budget's last step may end an episode; nothing acts on it
            self._record_episodes(obs, counters.steps)
        if runs[0].train.count:
            self._log(counters, speed)
        self._save(agent, counters)
        progress.close()
        return [run.dir.summary(counters, finished) for run in runs]

    # ------------------------------------------------------------- helpers

    def _record_episodes(self, obs: Sequence[Mapping[str, np.ndarray]], step: int) -> None:
        wall_s = round(time.time() - self._origin, 3)
        for run, run_obs in zip(self.runs, obs):
            for record in run.episodes.track(run_obs):
                run.dir.record_episode({**record, "step": step, "wall_s": wall_s})
                run.last_score = record["score"]

    def _log(self, counters: Counters, speed: "_Speed") -> None:
        fps = speed.measure(counters)
        for run in self.runs:
            run.dir.append("metrics", {"kind": "train", "step": counters.steps, "updates": counters.updates, **run.train.pop()})
            run.dir.append("metrics", {"kind": "fps", "step": counters.steps, **fps})

    def _save(self, agent: Agent, counters: Counters) -> None:
        pack = [run.config.seed for run in self.runs]
        for run, state in zip(self.runs, agent.get_state()):
            run.dir.save(state, run.replay.state_dict(), counters, pack)
        # Outputs publish only after every run's checkpoint holds their records.
        for run in self.runs:
            for output in run.outputs:
                output.publish(run.dir.logdir)

    def _resume(self, agent: Agent) -> Counters:
        """Continue every run from the checkpoint :func:`agent.rundir.load_pack` picks, or start afresh."""
        loaded = load_pack([run.dir for run in self.runs], [run.config.seed for run in self.runs])
        if loaded is None:
            for run in self.runs:
                run.dir.start()
            return Counters()
        agent.set_state([state for _, state, _, _ in loaded])
        for run, (ckpt, _, replay, saved) in zip(self.runs, loaded):
            run.replay.load_state_dict(replay)
            counters = run.dir.resume(ckpt, saved)
        return counters

    def _latest_score(self) -> float | None:
        scores = [run.last_score for run in self.runs if run.last_score is not None]
        return float(np.mean(scores)) if scores else None


def _without_seed(config: Config) -> dict[str, Any]:
    values = flatten(to_dict(config))
    values.pop("seed")
    return values


def _make_replay(config: Config, step_specs: Mapping[str, tuple], envs: VectorEnv) -> Replay:
    specs = {k: (s.shape, s.dtype) for k, s in envs.obs_space.items()}
    specs.update({key: ((), np.float32 if key == "reward" else bool) for key in SPECIAL_KEYS})
    specs.update({"action": (envs.act_space.shape, envs.act_space.dtype), **step_specs})
    return Replay(
        specs, config.run.envs, config.replay.capacity, config.agent.batch_length + 1,
        config.replay.online, seed=config.seed,
    )


def _env_action(action: np.ndarray, space: Space) -> np.ndarray:
    if space.discrete:
        return action
    return np.clip(action, space.low, space.high)


class _Speed:
    """Env steps and updates per second since the previous measurement."""

    def __init__(self, counters: Counters):
        self.last = (time.time(), counters.steps, counters.updates)

    def measure(self, counters: Counters) -> dict[str, float]:
        now = time.time()
        then, steps, updates = self.last
        elapsed = max(now - then, 1e-9)
        self.last = (now, counters.steps, counters.updates)
        return {"env_steps_per_s": (counters.steps - steps) / elapsed, "updates_per_s": (counters.updates - updates) / elapsed}


class _Progress:
    """One status line on stderr: steps, updates, fps, latest score."""

    def __init__(self, total: int, enabled: bool):
        self.total = total
        self.enabled = enabled and (sys.stderr.isatty() or os.environ.get("DREAMERBENCH_PROGRESS") == "1")
        self.start = time.time()
        self.last = 0.0
        self.first_steps: int | None = None

    def update(self, counters: Counters, score: float | None) -> None:
        now = time.time()
        if self.first_steps is None:
            self.first_steps = counters.steps
        if not self.enabled or now - self.last < 1.0:
            return
        self.last = now
        done = counters.steps / self.total
        fps = (counters.steps - self.first_steps) / max(now - self.start, 1e-9)
        bar = "#" * int(30 * done) + "-" * (30 - int(30 * done))
        score_text = "-" if score is None else f"{score:.1f}"
        sys.stderr.write(
            f"\r[{bar}] {counters.steps}/{self.total} steps  {counters.updates} updates  "
            f"{fps:.0f} fps  score {score_text}   "
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
