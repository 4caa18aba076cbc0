"""When the loop trains, evaluates, films, logs and saves: the train ratio, step and time schedules.

After danijar/dreamerv3's ``embodied/run/train.py`` (commit e3f0224), which asks
``elements.when.Ratio`` how many updates are due after each env step and clocks
when to log, report and save. Here the update credit is part of the checkpointed
:class:`~dreamerbench.agent.rundir.Counters`, so a resumed run keeps the schedule exactly;
:func:`no_update_warning` tells before a run starts that its budget earns no update.
"""

from __future__ import annotations

import math
import time

from dreamerbench.agent.config import AgentConfig, Config
from dreamerbench.agent.rundir import Counters


def updates_per_step(agent: AgentConfig) -> float:
    """Updates earned per agent step: ``train_ratio / (batch_size * batch_length)``.

    DreamerV3's train ratio counts replayed steps per agent step (Hafner et al. 2023,
    arXiv 2301.04104, "replay ratio"); one update replays B x T steps.
    """
    return agent.train_ratio / (agent.batch_size * agent.batch_length)


def no_update_warning(config: Config) -> str | None:
    """Why a run of `config` would end without a single update, or None if it updates.

    The loop updates once ``steps >= run.train_start`` and every env holds a replay window
    (``agent.batch_length + 1`` steps); from there each policy step earns
    ``run.envs * train_ratio / (batch_size * batch_length)`` updates.
    """
    run, agent = config.run, config.agent
    per_step = updates_per_step(agent)
    calls = -(-run.steps // run.envs)  # policy steps in the run
    first = max(agent.batch_length + 1, -(-run.train_start // run.envs))  # first to update
    if max(0, calls - first + 1) * run.envs * per_step >= 1:
        return None
    return (
        f"run.steps={run.steps} is too few for any update: updates start after "
        f"{first * run.envs} agent steps (run.train_start={run.train_start}, a replay window of "
        f"agent.batch_length + 1 = {agent.batch_length + 1} steps per env, run.envs={run.envs}) "
        f"and then earn train_ratio / (batch_size * batch_length) = {per_step:g} per step; "
        f"raise run.steps or lower run.train_start"
    )


def schedule_warnings(config: Config) -> list[str]:
    """``run.video_every`` / ``run.eval_every`` that cannot fire within ``run.steps`` (0: off)."""
    run = config.run
    return [
        f"run.{name}={every} > run.steps={run.steps}: {what}"
        for name, every, what in (
            ("video_every", run.video_every, "no video or open-loop report is made"),
            ("eval_every", run.eval_every, "only the run's last step evaluates"),
        )
        if every > run.steps
    ]


class Ratio:
    """Updates due at a fixed train ratio: each agent step earns `per_step` updates.

    The credit (updates earned and not done yet, a float) is ``counters.update_credit``:
    every checkpoint carries it, so a stop that cuts a burst of updates short loses
    none, and the resumed run does them. E.g. ``per_step`` 2.5: one step earns 2
    updates (0.5 left over), the next 3.
    """

    def __init__(self, per_step: float, counters: Counters):
        self.per_step = per_step
        self.counters = counters

    def earn(self, steps: int) -> int:
        """Credit `steps` agent steps; returns the whole number of updates due now."""
        self.counters.update_credit += steps * self.per_step
        return int(self.counters.update_credit)

    def spend(self, updates: int) -> None:
        """Take `updates` done (at most the ones :meth:`earn` said were due) off the credit."""
        self.counters.update_credit -= updates


class Every:
    """A step schedule: true once each time the agent steps reach the next due step.

    Aligned, the due steps are the multiples of `every`; otherwise the first due step
    is `every` after `step` and each next one `every` after the step that fired.
    `every` 0 never fires.
    """

    def __init__(self, every: int, step: int, aligned: bool = True):
        self.every, self.aligned = every, aligned
        self.due = self._after(step)

    def __call__(self, step: int) -> bool:
        """Whether `step` has reached the due step (which then moves on)."""
        if step < self.due:
            return False
        self.due = self._after(step)
        return True

    def _after(self, step: int) -> float:
        if not self.every:
            return math.inf
        return (step // self.every + 1) * self.every if self.aligned else step + self.every


class Clock:
    """A wall-clock schedule: true once `every` seconds have passed since its start or its last
    firing."""

    def __init__(self, every: float):
        self.every = every
        self.last = time.monotonic()

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.every:
            return False
        self.last = now
        return True
