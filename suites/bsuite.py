"""BSuite (Osband et al. 2020, arXiv 1908.03568): the Behaviour Suite's 468 configurations.

The reference runs bsuite experiments by id (danijar/dreamerv3 ``embodied/envs/bsuite.py`` and
``configs.yaml`` ``bsuite`` at e3f0224: train ratio 1024, 1 env; the paper reports the whole
sweep). Each task here is one configuration of ``bsuite.sweep.SWEEP``, ``EXPERIMENT/INDEX``
written ``EXPERIMENT_INDEX`` (``catch_0``) so that task names stay file and tag friendly.
Observations are flattened to one float32 vector, as in the reference; actions are bsuite's
discrete actions. An episode ends where bsuite ends it, and is a termination where bsuite's
discount is 0 (bsuite counts its own time limits, e.g. mountain_car's 1000 steps, as
terminations); the conversion is the ``dm_env`` suite's (:class:`dreamerbench.suites.gym.DmEnv`).

Seeds: bsuite fixes each configuration's settings; where a setting is ``seed=None`` (bsuite
would draw one), the run's seed and the configuration's index seed it, so runs are reproducible
and the 20 replicates of an experiment stay distinct.

Score rule. bsuite's own score of an experiment (its ``experiments/*/analysis.py``, in [0, 1])
reads bsuite's per-episode log of every configuration of the experiment, over its first
``bsuite_num_episodes`` episodes (1,000 or 10,000). The env logs bsuite's scoring counters per
episode (``log/bsuite_<key>``, so ``episodes.jsonl`` holds them), and :func:`bsuite_score`
turns a run's episode records into bsuite's log and calls bsuite's score (not for the two
``deep_sea`` experiments, :data:`UNSCORABLE`). That score is no affine function of returns, so
``dreamerbench table`` shows the mean return of every episode of a run (the final window is the
whole budget, as bsuite's regret scores average over the whole run) and no normalised score;
for runs from a tracking store (``--runs``) it adds bsuite's own scores per experiment and by
bsuite's tags (``dreamerbench.analysis.bsuite``), read from the ``episode/bsuite_<key>``
metrics that carry the counters to MLflow.
The budget of 1M agent steps covers the longest experiments (1,000 episodes of up to 1,000
steps); bsuite itself stops a configuration after ``bsuite_num_episodes`` episodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from dreamerbench.suites.base import Suite

# bsuite.sweep.SWEEP (bsuite 0.3.6): experiment -> number of configurations, spelled out so that
# listing the suite does not import bsuite; a test checks they agree.
CONFIGS = {
    "bandit": 20,
    "bandit_noise": 20,
    "bandit_scale": 20,
    "cartpole": 20,
    "cartpole_noise": 20,
    "cartpole_scale": 20,
    "cartpole_swingup": 20,
    "catch": 20,
    "catch_noise": 20,
    "catch_scale": 20,
    "deep_sea": 21,
    "deep_sea_stochastic": 21,
    "discounting_chain": 20,
    "memory_len": 23,
    "memory_size": 17,
    "mnist": 20,
    "mnist_noise": 20,
    "mnist_scale": 20,
    "mountain_car": 20,
    "mountain_car_noise": 20,
    "mountain_car_scale": 20,
    "umbrella_distract": 23,
    "umbrella_length": 23,
}
TASKS = tuple(f"{name}_{index}" for name, count in CONFIGS.items() for index in range(count))


def bsuite_id(task: str) -> str:
    """bsuite's id of a task: ``catch_3`` -> ``catch/3``."""
    name, _, index = task.rpartition("_")
    return f"{name}/{index}"


def experiment_of(task: str) -> str:
    """The bsuite experiment of a task: ``catch_noise_3`` -> ``catch_noise``."""
    return task.rpartition("_")[0]


MNIST = ("mnist", "mnist_noise", "mnist_scale")
"""Experiments whose environment downloads MNIST on first use (bsuite's
``bsuite.utils.datasets.load_mnist``, into ``/tmp/mnist``), so they need the internet once."""


def load(task: str, seed: int):
    """The bsuite environment (a ``dm_env.Environment``) of ``task``, seeded as the module says.
    Raises ValueError (one line) where a :data:`MNIST` experiment cannot get MNIST."""
    import bsuite
    from bsuite import sweep

    settings = dict(sweep.SETTINGS[bsuite_id(task)])
    if "seed" in settings and settings["seed"] is None:
        index = int(task.rpartition("_")[2])
        settings["seed"] = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
    try:
        return bsuite.load(experiment_of(task), settings)
    except OSError as error:  # urllib's URLError, a damaged download's gzip error
        if experiment_of(task) not in MNIST:
            raise
        raise ValueError(
            f"task={task!r} needs MNIST, which bsuite downloads into /tmp/mnist on first use, "
            f"and it could not ({getattr(error, 'reason', error)}); run it once where the "
            "internet can be reached, or choose another experiment"
        ) from None


LOG_PREFIX = "bsuite_"
_PANDAS_2 = "bsuite 0.3.6 scores it with pandas' Series.append, which pandas 2 removed"
UNSCORABLE = {"deep_sea": _PANDAS_2, "deep_sea_stochastic": _PANDAS_2}
"""Experiments whose bsuite score function fails with this project's pandas, and why."""
_BEFORE_THE_END = float(np.finfo(np.float32).min)


class BsuiteEnv:
    """One bsuite configuration as an :class:`dreamerbench.suites.base.Env`: the ``dm_env``
    suite's conversion (:class:`dreamerbench.suites.gym.DmEnv`) plus bsuite's scoring counters.

    Every step carries ``log/bsuite_<key>`` for each key of bsuite's ``bsuite_info()`` (e.g.
    ``total_regret``): the counter's value on an episode's last step, the lowest float32
    before it, so that the trainer's per-episode maximum of a ``log/`` value is the counter at
    the episode's end (some counters fall within an episode), as bsuite's own logger records
    it. :func:`bsuite_score` reads them back. ``log/bsuite_env_episode`` (:data:`ENV_EPISODE`)
    counts the episodes this object has ended, 1 at its first: where it starts again, a new
    environment (a resumed run's) started bsuite's counters again, which :func:`continued`
    undoes.
    """

    def __init__(self, task: str, seed: int, protocol: Mapping[str, Any]):
        from dreamerbench.suites.gym import DmEnv

        self._bsuite = load(task, seed)
        self._env = DmEnv(f"bsuite:{bsuite_id(task)}", seed, protocol, env=self._bsuite)
        self.obs_space, self.act_space = self._env.obs_space, self._env.act_space
        self._episodes = 0

    def reset(self) -> dict[str, np.ndarray]:
        """Start an episode."""
        return self._counters(self._env.reset())

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """One bsuite step with a discrete action."""
        return self._counters(self._env.step(action))

    def close(self) -> None:
        """Close the bsuite environment."""
        self._env.close()

    def _counters(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._episodes += int(obs["is_last"])
        info = {**self._bsuite.bsuite_info(), ENV_EPISODE: self._episodes}
        for key, value in info.items():
            end = float(value) if obs["is_last"] else _BEFORE_THE_END
            obs[f"log/{LOG_PREFIX}{key}"] = np.float32(end)
        return obs


def make_bsuite(task: str, seed: int, protocol: Mapping[str, Any]) -> BsuiteEnv:
    """One bsuite configuration (``catch_0``, ``deep_sea_20``, ...). The ``mnist`` experiments
    download MNIST on first use (bsuite's own loader), so they need internet access once."""
    return BsuiteEnv(BSUITE.check_task(task), seed, BSUITE.resolve_protocol(protocol))


ENV_EPISODE = "env_episode"
"""Episodes the environment object has ended (1 at its first): where it starts again, a new
bsuite environment counts bsuite's counters from 0 again (a resumed run, an env restarted)."""
SUMS = (
    "total_regret",
    "raw_return",
    "total_perfect",
    "total_bad_episodes",
    "denoised_return",
    "total_upright",
)
"""bsuite counters (``bsuite_info()`` keys) that sum over a whole run; a test checks that
every counter of every experiment is here or in :data:`MAXIMA`."""
MAXIMA = ("best_episode",)
"""bsuite counters that are a running maximum over a whole run."""


def continued(records: Sequence[Mapping[str, float]]) -> list[dict[str, float]]:
    """One run's episode records, in order, with bsuite's counters counted on across a new
    environment (a resume): where :data:`ENV_EPISODE` starts again, the value each of
    :data:`SUMS` (and :data:`ENV_EPISODE` itself) had reached is added to that record and every
    later one, and each of :data:`MAXIMA` stays the maximum over the whole run, so the records
    read as one environment's (on which this is the identity). Records written before
    :data:`ENV_EPISODE` existed mark a new environment only where ``total_regret`` falls."""
    out: list[dict[str, float]] = []
    offsets = dict.fromkeys((*SUMS, ENV_EPISODE), 0.0)
    previous: dict[str, float] = {}  # the last record as recorded, before continuing it
    for record in records:
        record = dict(record)
        marker = LOG_PREFIX + ENV_EPISODE
        regret = LOG_PREFIX + "total_regret"
        if marker in record:
            restarted = record[marker] <= previous.get(marker, 0.0)
        else:
            restarted = record.get(regret, 0.0) < previous.get(regret, 0.0)
        if restarted:
            for key in offsets:
                offsets[key] += previous.get(LOG_PREFIX + key, 0.0)
        previous = dict(record)
        for key in offsets:
            if LOG_PREFIX + key in record:
                record[LOG_PREFIX + key] += offsets[key]
        for key in MAXIMA:
            column = LOG_PREFIX + key
            if column in record and out:
                record[column] = max(record[column], out[-1].get(column, record[column]))
        out.append(record)
    return out


def analysis_module(name: str):
    """``bsuite.experiments.<name>`` (``catch.analysis``, ``summary_analysis``), imported so
    that matplotlib's settings stay the caller's: bsuite's plotting module switches the
    process to its poster and ggplot styles when first imported."""
    import importlib

    import matplotlib

    with matplotlib.rc_context():
        return importlib.import_module(f"bsuite.experiments.{name}")


def bsuite_score(experiment: str, runs: Mapping[str, Sequence[Mapping[str, float]]]) -> float:
    """bsuite's own score in [0, 1] of ``experiment`` (its ``experiments/EXPERIMENT/analysis.py``
    ``score``), from its configurations' runs.

    ``runs``: task (``catch_0``) -> that run's episode records in order, each with ``score``,
    ``length`` and the ``bsuite_<key>`` counters (the records of ``LOGDIR/episodes.jsonl``,
    across resumes: :func:`continued`).
    They become the table bsuite's logger writes (``episode``, ``steps``, ``total_return``,
    ``episode_len``, ``episode_return``, the counters and the configuration's settings).
    Raises ValueError for a task of another experiment, a run without records, records
    without ``score`` and ``length``, records that lack a counter bsuite's score reads (it
    names the column), or an experiment of :data:`UNSCORABLE`.
    """
    import pandas as pd
    from bsuite import sweep

    if experiment in UNSCORABLE:
        raise ValueError(
            f"experiment={experiment!r} cannot be scored here: {UNSCORABLE[experiment]}"
        )
    tables = []
    for task, records in runs.items():
        if experiment_of(BSUITE.check_task(task)) != experiment:
            raise ValueError(f"task={task!r} is not a configuration of experiment={experiment!r}")
        if not records:
            raise ValueError(f"task={task!r} has no episode records")
        episodes = pd.DataFrame(continued(records))  # a resumed run's counters count on
        lacking = [field for field in ("score", "length") if field not in episodes]
        if lacking:
            raise ValueError(f"task={task!r}: the episode records lack {lacking[0]!r}")
        table = pd.DataFrame(
            {
                "episode": np.arange(1, len(episodes) + 1),
                "steps": episodes["length"].cumsum(),
                "total_return": episodes["score"].cumsum(),
                "episode_len": episodes["length"],
                "episode_return": episodes["score"],
            }
        )
        for column in episodes.columns:
            if column.startswith(LOG_PREFIX):
                table[column[len(LOG_PREFIX) :]] = episodes[column]
        settings = sweep.SETTINGS[bsuite_id(task)]
        tables.append(table.assign(bsuite_id=bsuite_id(task), bsuite_env=experiment, **settings))
    analysis = analysis_module(f"{experiment}.analysis")
    try:
        return float(analysis.score(pd.concat(tables, ignore_index=True)))
    except (KeyError, AttributeError) as error:  # a column read as df[...] or as df.<name>
        raise ValueError(
            f"experiment={experiment!r}: bsuite's score reads a column the episode records "
            f"lack ({type(error).__name__}: {error}); bsuite's counters are {LOG_PREFIX}<key>"
        ) from None


BSUITE = Suite(
    name="bsuite",
    tasks=TASKS,
    default_protocol={"action_repeat": 1, "image_size": 64},
    protocol_fields={
        "action_repeat": Literal[1],  # bsuite's experiments have no action repeat
        "image_size": Literal[64],  # unused: no bsuite observation is an image
    },
    make_env=make_bsuite,
    budget_steps=1_000_000,
    # Every episode of the run (bsuite's regret scores average over the whole run).
    final_window_frames=1_000_000,
    # Reference configs.yaml `bsuite`: train_ratio 1024, 1 env, default size.
    agent_defaults={
        "agent.size": "200m",
        "agent.train_ratio": 1024,
        "run.envs": 1,
        "run.parallel_envs": False,
    },
    description="BSuite: 23 experiments, 468 configurations (EXPERIMENT_INDEX), observations "
    "flattened to one float32 vector, bsuite's discrete actions, episodes and terminations as "
    "bsuite ends them. Score: mean return of every episode of the run; no normalised score. "
    "bsuite's own scores: 'table --runs' adds them per experiment and by tag, 'plot --kind "
    "radar|bar' draws bsuite's summaries (dreamerbench.analysis.bsuite).",
    published_prefix="bsuite_",
    notes="No score references and no published files: bsuite's own per-experiment score (in "
    "[0, 1]) is no normaliser of a return; dreamerbench.suites.bsuite.bsuite_score computes it "
    "from runs' episode records (which hold bsuite's counters, bsuite_<key>, in episodes.jsonl "
    "and as MLflow metrics episode/bsuite_<key>; `dreamerbench table --suite bsuite --runs "
    "SWEEP` shows it per experiment and by bsuite's tags), except for "
    "deep_sea and deep_sea_stochastic (bsuite 0.3.6 needs pandas < 2 there). The DreamerV3 "
    "reference published no bsuite scores. The budget (1M agent steps) covers the longest "
    "experiments; bsuite itself stops each configuration after bsuite_num_episodes episodes "
    "(1,000 or 10,000). The mnist experiments download MNIST on first use (offline, making "
    "their env is a one-line error naming the task).",
)
