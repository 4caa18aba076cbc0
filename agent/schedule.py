"""When the loop trains, evaluates, films, logs and saves: the train ratio, step and time schedules.

After danijar/dreamerv3's ``embodied/run/train.py`` (commit e3f0224), which starts updating once
its replay holds a batch of windows and then asks ``elements.when.Ratio`` how many updates are due
after each env step. Here the updates due are a function of the agent steps alone
(:func:`updates_due`), and the updates done are in the checkpointed
:class:`~dreamerbench.agent.rundir.Counters`, so a resumed run keeps the schedule exactly;
:func:`no_update_warning` tells before a run starts that its budget earns no update.
"""

from __future__ import annotations

import math
import time

from dreamerbench.agent.config import Config


def train_start(config: Config) -> int:
    """The agent step (all envs together) at which the first update is due.

    ``run.train_start`` null (the default) is the reference's rule (``run/train.py:L70-71``: no
    update while ``len(replay) < batch_size * batch_length``, its replay counting windows of
    ``batch_length + 1`` steps): with E envs adding in turn, E x T steps fill every env's first
    window but its last step, and each step after that adds a window, so replay holds B x T
    windows after (E + B) x T steps, e.g. 2,048 for 16 envs at B 16, T 64, and 1,088 for one
    env. A set ``run.train_start`` is taken as given, but never before every env holds a window
    (E x (T + 1) steps), which the reference's rule always satisfies.
    """
    run, agent = config.run, config.agent
    if run.train_start is None:
        return (run.envs + agent.batch_size) * agent.batch_length
    return max(run.train_start, run.envs * (agent.batch_length + 1))


def updates_due(config: Config, steps: int) -> int:
    """Updates earned by the time `steps` agent steps are taken: 0 before :func:`train_start`,
    then ``1 + floor((steps - start) * train_ratio / (batch_size * batch_length))``.

    DreamerV3's train ratio counts replayed steps per agent step (Hafner et al. 2023, arXiv
    2301.04104, "replay ratio"); one update replays B x T steps. The reference's
    ``elements.when.Ratio`` grants one update on its first call, then a whole number of updates
    per ``batch_size * batch_length / train_ratio`` steps since. It accumulates the steps spent
    in floats, so it is sometimes one update behind this exact count for a step (at train ratio
    40, B 2, T 8 and one env, at 7,636 of the first 20,000 steps), never ahead. The loop asks
    once per policy step, after all envs stepped: at the same step counts the same number of
    updates are due as in the reference, whose loop asks after every env's step.
    """
    agent = config.agent
    start = train_start(config)
    if steps < start:
        return 0
    return 1 + int((steps - start) * agent.train_ratio // (agent.batch_size * agent.batch_length))


def no_update_warning(config: Config) -> str | None:
    """Why a run of `config` would end without a single update, or None if it updates.

    The loop takes ``run.envs`` agent steps per policy step until ``run.steps``; the first
    update is due at :func:`train_start`.
    """
    run, agent = config.run, config.agent
    taken = -(-run.steps // run.envs) * run.envs  # agent steps when the loop ends
    if updates_due(config, taken):
        return None
    if run.train_start is None:
        why = (
            f"once replay holds agent.batch_size x agent.batch_length = "
            f"{agent.batch_size * agent.batch_length} windows, as in the reference: "
            f"(run.envs + agent.batch_size) x agent.batch_length with run.envs={run.envs}"
        )
    else:
        why = (
            f"run.train_start={run.train_start}, and not before a replay window of "
            f"agent.batch_length + 1 = {agent.batch_length + 1} steps per env, run.envs={run.envs}"
        )
    return (
        f"run.steps={run.steps} is too few for any update: updates start after "
        f"{train_start(config)} agent steps ({why}); raise run.steps or set a lower "
        f"run.train_start"
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
