"""The training loop: act, learn as the train ratio allows, log on a clock, save on a schedule.

Read :meth:`Trainer._loop` top to bottom: it is the algorithm's outer loop (compare
``embodied/run/train.py`` in danijar/dreamerv3 and dqn_zoo's ``run_loop``). It trains
one run, or K seeds of one task in lockstep (:meth:`Trainer.packed`,
``--seeds-per-process K``), each run with its own envs, replay and logdir.

Who does what:

- ``agent/rundir.py``   the logdir (config check, JSONL records with their identity,
  checkpoints, summary) and the :class:`~dreamerbench.agent.rundir.Counters`;
- ``agent/learner.py``  DreamerV3 for K runs (JAX); any :class:`Agent` can stand in;
- ``agent/schedule.py`` when training starts and the updates the train ratio has earned
  (:func:`~dreamerbench.agent.schedule.updates_due`), step and wall-clock schedules;
- ``agent/progress.py`` speed records and the progress line;
- this file             the loop.

Outputs are handed in by the caller (the trainer builds none: ``dreamerbench.experiments.outputs``
builds MLflow, TensorBoard and W&B). Each gets ``publish(logdir)`` after every save of all runs
(and after a failure, once :func:`dreamerbench.agent.rundir.settle_pack` kept only the
checkpoint a resume takes) and ``close()`` when the run stops, and reads from the files what
:func:`dreamerbench.core.records.deliverable` (and ``deliverable_media``) allows:
the trainer never hands a record to a store itself.

Besides training: evaluation episodes (``run.eval_every``, ``agent/evaluation.py``),
episode videos and open-loop world-model reports (``run.video_every``, ``agent/media.py``).
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dreamerbench.agent.config import (
    Config,
    ConfigError,
    flatten,
    to_dict,
    validate,
)
from dreamerbench.agent.evaluation import clip_action
from dreamerbench.agent.media import image_key, openloop_grid, openloop_plot, rgb
from dreamerbench.agent.progress import Progress, Speed
from dreamerbench.agent.replay import Replay
from dreamerbench.agent.rundir import Counters, EpisodeStats, RunDir, load_pack, settle_pack
from dreamerbench.agent.schedule import (
    Clock,
    Every,
    no_update_warning,
    schedule_warnings,
    updates_due,
)
from dreamerbench.suites import get_suite
from dreamerbench.suites.base import SPECIAL_KEYS, Space
from dreamerbench.suites.vector import VectorEnv, make_vector_env


class Agent(Protocol):
    """An agent for K runs stepping in lockstep; every argument and result holds one entry per run.

    ``agent/learner.py`` is DreamerV3's; tests drive the loop with a stub.
    """

    step_specs: Mapping[str, tuple[tuple[int, ...], Any]]
    """Per-step outputs of :meth:`act` (besides ``action``) that replay stores:
    name -> (shape, dtype)."""

    def act(
        self, obs: Sequence[Mapping[str, np.ndarray]], count: int
    ) -> list[dict[str, np.ndarray]]:
        """Observations [envs, ...] -> ``action`` [envs, ...] plus :attr:`step_specs`;
        `count` = policy calls so far."""

    def learn(
        self,
        replays: Sequence[Replay],
        count: int,
        updates: int,
        stop: threading.Event | None = None,
    ) -> list[list[dict[str, float]]]:
        """`updates` train steps on batches from each run's replay; metrics per run, per update.

        Once `stop` is set no further update starts: fewer than `updates` lists come back.
        """

    def eval_act(
        self, obs: Sequence[Mapping[str, np.ndarray]], count: int, greedy: bool
    ) -> list[np.ndarray]:
        """Evaluation actions [envs, ...] per run (policy state apart from :meth:`act`'s; `count`
        0 starts an evaluation). Needed only with ``run.eval_every`` or ``dreamerbench eval``."""

    def report(
        self, replays: Sequence[Replay], count: int
    ) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Open-loop (true, predicted) observations per run: ``image`` [B, T, H, W, C] uint8 and/or
        ``vector`` [B, T, D]. Optional: an agent without it makes no open-loop report."""

    def get_state(self) -> list[bytes]:
        """Each run's state as bytes, for checkpoints."""

    def set_state(self, states: Sequence[bytes]) -> None:
        """Continue from per-run states that :meth:`get_state` made."""


class Output(Protocol):
    """A store that a run's records go to (``experiments/outputs/``: MLflow, TensorBoard, W&B);
    see the module doc. Whoever made it ends it after the run (``end``, not the trainer's)."""

    def publish(self, logdir: Path) -> None:
        """Called after every save: take the records that
        :func:`dreamerbench.core.records.deliverable` allows."""

    def close(self) -> None:
        """Called once when the run stops (finished, stopped or failed): take what became final."""


AgentFactory = Callable[[Config, Mapping[str, Space], Space, Sequence[int]], Agent]


def dreamer_agent(
    config: Config, obs_space: Mapping[str, Space], act_space: Space, seeds: Sequence[int]
) -> Agent:
    """The default :data:`AgentFactory`: DreamerV3 (JAX loads here, only when a Dreamer trains)."""
    from dreamerbench.agent.learner import PackedDreamer

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
    film_due: bool = False
    """A video is due: film env 0's next episode (``run.video_every``)."""
    frames: list[np.ndarray] | None = None
    """Frames of env 0's episode being filmed; None when not filming."""

    def __post_init__(self):
        self.episodes = EpisodeStats(self.config.run.envs)


class Trainer:
    """Trains one run, or several runs that differ only in seed (:meth:`packed`).

    Packed runs step in lockstep: one vmapped policy step acts for all of them and
    one vmapped train step updates all of them, while each keeps its own parameters,
    optimizer state, replay, envs, logdir and outputs. Each run's logdir is the same
    as if it had trained alone, so a packed run resumes alone and vice versa.
    """

    def __init__(
        self,
        config: Config,
        logdir: str | Path,
        outputs: Sequence[Output] = (),
        make_agent: AgentFactory = dreamer_agent,
        *,
        notes: Sequence[str] = (),
    ):
        """`notes`: lines for stderr once the run has started (after every refusal of its
        logdir, config and checkpoints), e.g. the resource plan."""
        self.runs = [_Run(validate(config), RunDir(logdir), list(outputs))]
        self.make_agent = make_agent
        self.notes = list(notes)

    @classmethod
    def packed(
        cls,
        configs: Sequence[Config],
        logdirs: Sequence[str | Path],
        outputs: Sequence[Sequence[Output]] | None = None,
        make_agent: AgentFactory = dreamer_agent,
        *,
        notes: Sequence[str] = (),
    ) -> Trainer:
        """K runs of one task and config, differing only in seed, trained by one process."""
        if (
            not configs
            or len(configs) != len(logdirs)
            or (outputs is not None and len(outputs) != len(configs))
        ):
            raise ValueError("packed runs need one logdir (and one list of outputs) per config")
        first = _without_seed(configs[0])
        for config in configs[1:]:
            other = _without_seed(config)
            changed = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
            if changed:
                raise ConfigError(
                    f"packed runs may differ only in seed; these keys differ: {', '.join(changed)}"
                )
        seeds = [c.seed for c in configs]
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"packed runs need distinct seeds; got seed={seeds}")
        outputs = outputs or [() for _ in configs]
        trainer = cls(configs[0], logdirs[0], outputs[0], make_agent, notes=notes)
        trainer.runs += [
            _Run(validate(c), RunDir(d), list(o))
            for c, d, o in zip(configs[1:], logdirs[1:], outputs[1:])
        ]
        return trainer

    @property
    def config(self) -> Config:
        return self.runs[0].config

    def run(self, stop: threading.Event | None = None) -> dict[str, Any]:
        """Train one run until `config.run.steps` agent steps or until `stop` is set; resumes from
        the logdir."""
        if len(self.runs) != 1:
            raise TypeError("a packed Trainer trains several runs: call run_all()")
        return self.run_all(stop)[0]

    def run_all(self, stop: threading.Event | None = None) -> list[dict[str, Any]]:
        """Train every run to its budget or until `stop` is set; one summary per run, in order.

        Raises LogdirBusy if another process trains one of the logdirs, ConfigError
        if a logdir holds another config, CheckpointError if no checkpoint can be
        read, DiskFull naming the file if the disk fills up (run again to resume).
        """
        started = time.monotonic()
        config = self.config
        with contextlib.ExitStack() as stack:
            for run in self.runs:
                stack.enter_context(run.dir)
                run.dir.check_config(run.config)
            for run in self.runs:  # each output takes what became final when the run stops
                for output in run.outputs:
                    stack.callback(output.close)
            finished = [run.dir.finished_summary(run.config.run.steps) for run in self.runs]
            if all(finished):
                return finished  # finished before: nothing to do
            self._open_envs(stack)
            agent = self._make_agent()
            counters = self._resume(agent)
            # After every refusal (logdir, config, checkpoints): a refused start is one line.
            warnings = [no_update_warning(config), *schedule_warnings(config)]
            for line in [*self.notes, *(f"warning: {w}" for w in warnings if w)]:
                print(line, file=sys.stderr, flush=True)
            try:
                return self._loop(agent, counters, stop or threading.Event(), started)
            except BaseException:
                self._settle()
                raise

    def _open_envs(self, stack: contextlib.ExitStack) -> None:
        """Start each run's envs (closed when `stack` closes), then write each run's config: an
        env that fails to start leaves no config behind."""
        config = self.config
        suite = get_suite(config.suite)
        protocol = suite.resolve_protocol(config.env)
        for run in self.runs:
            envs = make_vector_env(
                suite,
                config.task,
                run.config.seed,
                protocol,
                config.run.envs,
                config.run.parallel_envs,
            )
            run.envs = stack.enter_context(envs)
        for run in self.runs:
            run.dir.write_config(run.config)

    def _make_agent(self) -> Agent:
        """The agent of all runs, and each run's replay with the agent's per-step outputs."""
        envs = self.runs[0].envs
        seeds = [run.config.seed for run in self.runs]
        agent = self.make_agent(self.config, envs.obs_space, envs.act_space, seeds)
        for run in self.runs:
            run.replay = _make_replay(run.config, agent.step_specs, run.envs, run.dir.replay_dir)
        return agent

    def _settle(self) -> None:
        """A failed loop (the logdirs still locked): keep only the checkpoint each run's resume
        will take (:func:`dreamerbench.agent.rundir.settle_pack`), then publish, so that the
        outputs hold every record it covers before the failure is reported. A fault here is a
        warning: the failure counts."""
        try:
            settle_pack([run.dir for run in self.runs], [run.config.seed for run in self.runs])
            for run in self.runs:
                for output in run.outputs:
                    output.publish(run.dir.logdir)
        except Exception as error:  # noqa: BLE001 - the loop's own error is the one to raise
            print(
                "warning: after the failure, the records could not be settled for delivery: "
                f"{error}",
                file=sys.stderr,
                flush=True,
            )

    def _loop(
        self, agent: Agent, counters: Counters, stop: threading.Event, started: float
    ) -> list[dict[str, Any]]:
        """Train from `counters` until the budget or `stop`; one summary per run."""
        schedule = self.config.run
        self._start_session(counters, started)
        should_log = Clock(schedule.log_every)
        should_eval = Every(schedule.eval_every, counters.steps)
        should_film = Every(schedule.video_every, counters.steps)
        should_save = Every(schedule.save_every, counters.steps, aligned=False)
        save_clock = Clock(schedule.save_every_s or math.inf)  # 0: by steps only
        obs = [run.envs.reset() for run in self.runs]
        while counters.steps < schedule.steps and not stop.is_set():
            acts = agent.act(obs, counters.policy_calls)
            self._record(obs, acts, counters.steps)
            obs = self._step(acts, counters)
            self._train(agent, counters, stop)
            counters.wall_s = time.monotonic() - self._origin
            if self.runs[0].train.count and should_log():
                self._log(counters)
            # Evaluate every eval_every steps and at the budget's last step.
            last_step = counters.steps >= schedule.steps
            if should_eval(counters.steps) or (last_step and schedule.eval_every):
                self._evaluate(agent, counters.steps)
            if should_film(counters.steps):
                self._start_videos(agent, counters)
            if should_save(counters.steps) | save_clock():  # both schedules move on
                self._save(agent, counters)
            self._progress.update(counters, self._latest_score())
        return self._finish(agent, counters, obs)

    # ------------------------------------------------------- the loop's steps

    def _start_session(self, counters: Counters, started: float) -> None:
        """This process's clocks: wall seconds count on from the checkpoint's, speed and progress
        measure from now; `started` (time.monotonic() when :meth:`run_all` began) times the
        start-up. Durations use the monotonic clock: a wall clock stepped back (NTP, a VM
        resume) made them negative."""
        self._started = started
        self._origin = time.monotonic() - counters.wall_s
        self._speed = Speed(counters)
        self._progress = Progress(self.config.run.steps, enabled=self.config.run.progress)
        # The first act compiles the policy step (seconds to minutes).
        self._progress.note("compiling the policy step")
        self._compiled = False

    def _record(
        self,
        obs: Sequence[Mapping[str, np.ndarray]],
        acts: Sequence[Mapping[str, np.ndarray]],
        step: int,
    ) -> None:
        """Store the newest step of every env of every run in replay, with the agent's outputs for
        it; record the episodes it ends and film it if a video is due."""
        for run, run_obs, act in zip(self.runs, obs, acts):
            keys = (*run.envs.obs_space, *SPECIAL_KEYS)
            run.replay.add({**{key: run_obs[key] for key in keys}, **act})
        self._record_episodes(obs, step)
        self._film(obs, step)

    def _step(
        self, acts: Sequence[Mapping[str, np.ndarray]], counters: Counters
    ) -> list[dict[str, np.ndarray]]:
        """Step every run's envs with its actions (clipped to the action space); returns the new
        observations."""
        obs = [
            run.envs.step(clip_action(act["action"], run.envs.act_space))
            for run, act in zip(self.runs, acts)
        ]
        counters.steps += self.config.run.envs
        counters.policy_calls += 1
        return obs

    def _train(self, agent: Agent, counters: Counters, stop: threading.Event) -> None:
        """Do the updates of every run that the train ratio has earned by now and that are not
        done yet (:func:`~dreamerbench.agent.schedule.updates_due`; fewer once `stop` is set).

        A stop (preemption, Ctrl-C) cuts the burst after the running update; the updates left
        stay due, and the resumed run does them. The first update of a run records the start-up
        time.
        """
        due = updates_due(self.config, counters.steps) - counters.updates
        if due <= 0:
            return
        first = counters.updates == 0
        if not self._compiled:  # this process's first update compiles the train step
            self._progress.note("compiling the train step (first update)")
            self._compiled = True
        learned = agent.learn([run.replay for run in self.runs], counters.updates, due, stop)
        for run, metrics in zip(self.runs, learned):
            run.train.extend(metrics)
        counters.updates += len(learned[0])
        if first:  # start-up cost: env, replay warm-up and compiles
            startup = {"kind": "fps", "step": counters.steps}
            startup["time_to_first_update_s"] = time.monotonic() - self._started
            for run in self.runs:
                run.dir.append("metrics", startup)

    def _start_videos(self, agent: Agent, counters: Counters) -> None:
        """A video is due: film each run's next episode and, once it has updated, write its
        open-loop report."""
        for run in self.runs:
            run.film_due = True
        if counters.updates:
            self._report(agent, counters)

    def _finish(
        self, agent: Agent, counters: Counters, obs: Sequence[Mapping[str, np.ndarray]]
    ) -> list[dict[str, Any]]:
        """Record, log and save what the loop left when it ended; one summary per run."""
        finished = counters.steps >= self.config.run.steps
        if finished:  # the budget's last step may end an episode; nothing acts on it
            self._record_episodes(obs, counters.steps)
        if self.runs[0].train.count:
            self._log(counters)
        self._save(agent, counters)
        self._progress.close(counters, self._latest_score())
        return [run.dir.summary(counters, finished) for run in self.runs]

    # ------------------------------------------------------------- helpers

    def _evaluate(self, agent: Agent, step: int) -> None:
        """Play ``run.eval_episodes`` evaluation episodes per run; record them as ``eval``
        records."""
        from dreamerbench.agent.evaluation import evaluate

        config = self.config
        self._progress.note(f"evaluating ({config.run.eval_episodes} episodes)")
        suite = get_suite(config.suite)
        greedy = config.run.eval_mode == "greedy"
        records, _ = evaluate(
            agent,
            suite,
            config.task,
            [run.config.seed for run in self.runs],
            suite.resolve_protocol(config.env),
            config.run.eval_episodes,
            greedy,
        )
        wall_s = round(time.monotonic() - self._origin, 3)
        for run, run_records in zip(self.runs, records):
            for record in run_records:
                run.dir.record_eval(
                    {**record, "step": step, "wall_s": wall_s, "mode": config.run.eval_mode}
                )

    def _film(self, obs: Sequence[Mapping[str, np.ndarray]], step: int) -> None:
        """Collect env 0's frames from the first episode start after a video is due; write the video
        when that episode ends. Tasks without images film only with ``run.video_render``."""
        for run, run_obs in zip(self.runs, obs):
            key = image_key(run.envs.obs_space)
            if key is None and not run.config.run.video_render:
                continue
            if run.frames is None:
                if not (run.film_due and run_obs["is_first"][0]):
                    continue
                run.frames, run.film_due = [], False
            run.frames.append(rgb(run_obs[key][0]) if key else run.envs.render(0))
            if run_obs["is_last"][0]:
                run.dir.write_media("episode", step, np.stack(run.frames))
                run.frames = None

    def _report(self, agent: Agent, counters: Counters) -> None:
        """Write the open-loop world-model report of each run (agents that make one): a video of the
        images, a plot of the vector observations."""
        report = getattr(agent, "report", None)
        results = report([run.replay for run in self.runs], counters.updates) if report else ()
        for run, result in zip(self.runs, results):
            if "image" in result:
                true, pred = (rgb(images) for images in result["image"])
                run.dir.write_media(
                    "openloop", counters.steps, openloop_grid(true, pred, true.shape[1] // 2)
                )
            if "vector" in result:
                true, pred = (values[0] for values in result["vector"])  # the newest window
                run.dir.write_plot(
                    "openloop", counters.steps, openloop_plot(true, pred, len(true) // 2)
                )

    def _record_episodes(self, obs: Sequence[Mapping[str, np.ndarray]], step: int) -> None:
        wall_s = round(time.monotonic() - self._origin, 3)
        for run, run_obs in zip(self.runs, obs):
            for record in run.episodes.track(run_obs):
                run.dir.record_episode({**record, "step": step, "wall_s": wall_s})
                run.last_score = record["score"]

    def _log(self, counters: Counters) -> None:
        """Append each run's mean train metrics since the last log and the speed since then."""
        fps = self._speed.measure(counters)
        for run in self.runs:
            run.dir.append(
                "metrics",
                {
                    "kind": "train",
                    "step": counters.steps,
                    "updates": counters.updates,
                    **run.train.pop(),
                },
            )
            run.dir.append("metrics", {"kind": "fps", "step": counters.steps, **fps})

    def _save(self, agent: Agent, counters: Counters) -> None:
        pack = [run.config.seed for run in self.runs]
        for run, state in zip(self.runs, agent.get_state()):
            run.dir.save(state, run.replay.state_dict(), counters, pack)
            run.replay.prune(run.dir.first_chunks())
        # Outputs publish only after every run's checkpoint holds their records.
        for run in self.runs:
            for output in run.outputs:
                output.publish(run.dir.logdir)

    def _resume(self, agent: Agent) -> Counters:
        """Continue every run from the checkpoint :func:`dreamerbench.agent.rundir.load_pack`
        picks, or start afresh."""
        loaded = load_pack([run.dir for run in self.runs], [run.config.seed for run in self.runs])
        if loaded is None:
            for run in self.runs:
                run.dir.start()
                run.replay.start()
            return Counters()
        agent.set_state([state for _, state, _, _ in loaded])
        for run, (ckpt, _, replay, saved) in zip(self.runs, loaded):
            counters = run.dir.resume(ckpt, saved)  # first: it drops later checkpoints, and
            run.replay.load_state_dict(replay, str(ckpt.path))  # then their chunks go
        return counters

    def _latest_score(self) -> float | None:
        scores = [run.last_score for run in self.runs if run.last_score is not None]
        return float(np.mean(scores)) if scores else None


def _without_seed(config: Config) -> dict[str, Any]:
    values = flatten(to_dict(config))
    values.pop("seed")
    return values


def replay_specs(
    obs_space: Mapping[str, Space], act_space: Space, step_specs: Mapping[str, tuple]
) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Key -> (per-step shape, dtype) of everything replay stores of one step: the
    observations, reward and flags, the action and the agent's `step_specs`."""
    specs = {k: (s.shape, s.dtype) for k, s in obs_space.items()}
    specs.update({key: ((), np.float32 if key == "reward" else bool) for key in SPECIAL_KEYS})
    specs.update({"action": (act_space.shape, act_space.dtype), **step_specs})
    return specs


def _make_replay(
    config: Config, step_specs: Mapping[str, tuple], envs: VectorEnv, directory: Path
) -> Replay:
    return Replay(
        replay_specs(envs.obs_space, envs.act_space, step_specs),
        config.run.envs,
        config.replay.capacity,
        config.agent.batch_length + 1,
        config.replay.online,
        seed=config.seed,
        chunk=config.replay.chunk,
        storage=config.replay.storage,
        directory=directory,
        cache=tuple(step_specs),
    )
