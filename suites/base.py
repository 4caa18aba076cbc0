"""The environment protocol every suite implements, and the suite record.

An environment speaks dicts of numpy values, one step at a time:

- ``reset() -> obs`` and ``step(action) -> obs``, where ``obs`` holds the
  observation keys of ``obs_space`` plus ``reward`` (float32),
  ``is_first``, ``is_last`` and ``is_terminal`` (bool) and optional
  ``log/<name>`` scalars (e.g. Crafter achievements) that the trainer
  aggregates per episode with ``max``.
- ``is_last and not is_terminal`` means the episode was truncated (time
  limit): the agent bootstraps through it.
- ``act_space`` is one :class:`Space`: discrete (integer dtype, ``shape ()``,
  actions ``0 .. high - 1``) or continuous (float32 vector in [low, high]).
- optional ``render() -> [H, W, 3] uint8``: a camera frame, for episode videos of
  tasks without image observations (``run.video_render``; DMC proprio has one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from dreamerbench.core.reader import read, refuse

SPECIAL_KEYS = ("reward", "is_first", "is_last", "is_terminal")


@dataclass(frozen=True)
class Space:
    """Shape, dtype and bounds of one observation or action."""

    dtype: Any
    shape: tuple[int, ...] = ()
    low: float | None = None
    high: float | None = None

    @property
    def discrete(self) -> bool:
        return np.issubdtype(np.dtype(self.dtype), np.integer)

    @property
    def num_actions(self) -> int:
        """Number of discrete actions (``high``)."""
        if not self.discrete or self.high is None:
            raise ValueError(f"{self} is not a discrete action space")
        return int(self.high)

    @property
    def is_image(self) -> bool:
        return np.dtype(self.dtype) == np.uint8 and len(self.shape) == 3


class Env(Protocol):
    obs_space: Mapping[str, Space]
    act_space: Space

    def reset(self) -> dict[str, np.ndarray]: ...

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


RUN_SCORES = ("mean", "crafter")
SCORE_EPISODES = ("train", "eval")


@dataclass(frozen=True)
class PublishedScores:
    """Per-run score files published for a suite, pinned to one commit of one repository.

    Each file is a gzip (or plain) JSON list of runs (see ``dreamerbench.analysis.data``). The
    default source of ``dreamerbench table/plot --baseline METHOD`` is :attr:`url`;
    a local folder or another URL holding the same file names overrides it.
    """

    repo: str
    """GitHub ``owner/name``."""
    commit: str
    """Full commit hash the files are read at (raw URLs of a commit never change)."""
    folder: str
    """Folder of the files in the repository."""
    files: Mapping[str, str]
    """method -> file name in :attr:`folder` (``dreamerv3`` -> ``atari100k-dreamerv3.json.gz``)."""
    reward_free: tuple[str, ...] = ()
    """Methods whose policy never sees the reward (a random policy): their
    episodes are episodes of every task that differs from theirs only in the reward."""

    @property
    def url(self) -> str:
        """``https://raw.githubusercontent.com/REPO/COMMIT/FOLDER``."""
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.folder}"

    @property
    def where(self) -> str:
        """Human-readable origin: ``github.com/REPO, folder FOLDER/, commit 1234567``."""
        return f"github.com/{self.repo}, folder {self.folder}/, commit {self.commit[:7]}"


@dataclass(frozen=True)
class Suite:
    """One benchmark: its tasks, protocol, budget, references and final-score rule.

    ``make_env(task, seed, protocol)`` builds one environment;
    ``protocol`` is ``default_protocol`` updated with the run's ``env``
    overrides (read and checked by :meth:`resolve_protocol`).

    The budget is written once, as :attr:`budget_steps`; ``agent_defaults``
    gets ``run.steps`` from it (giving ``run.steps`` there is an error).
    """

    name: str
    tasks: tuple[str, ...]
    default_protocol: Mapping[str, Any]
    make_env: Callable[[str, int, Mapping[str, Any]], Env]
    budget_steps: int
    """Training budget in agent steps (frames = steps x ``action_repeat``)."""
    final_window_frames: int
    """Final score of a run = its episodes ending in ``(budget - window, budget]``
    frames (see ``dreamerbench.analysis.scores.FinalRule``; a shorter budget caps the window)."""
    agent_defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    published_prefix: str = ""
    """Prefix that turns a task into its name in the published score files
    (``atari_`` + ``pong``); see :meth:`published_task`."""
    published: PublishedScores | None = None
    """Published per-run scores of other methods, or None where none were published."""
    run_score: str = "mean"
    """How a run's episodes in the final window make its final score: ``mean`` of their scores,
    or ``crafter``: the Crafter score (:func:`dreamerbench.suites.scores.crafter_score`) of the
    success rates of :attr:`episode_successes`."""
    episode_successes: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    """Per-episode successes the tables report next to the score: given an
    episode's columns (``score``, ``achievement_<name>``, ...: arrays over
    episodes) return item -> bool array (Crafter: the 22 achievements;
    Minecraft: the diamond). None: the suite has none."""
    score_refs: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """Per task ``(low, high)`` scores that normalise a score to
    ``(score - low) / (high - low)`` (Atari: random and human returns; DMC: 0,
    1000; Crafter: 0, 100 on the Crafter score in percent; Minecraft: 0, 12
    milestones). The one normaliser of the project: analysis uses it too."""
    score_ref_names: tuple[str, str] = ("low", "high")
    """What the two reference scores of :attr:`score_refs` are (Atari: random, human), for
    :meth:`normalization`."""
    normalized_name: str = "normalised score"
    """What a normalised score is called on plot axes (``human-normalised score``)."""
    notes: str = ""
    """Caveats printed by ``dreamerbench suites NAME`` (e.g. unverified adapters)."""
    score_episodes: str = "train"
    """Which of our runs' episodes make final scores (``analysis``): ``train`` (training
    episodes, as the published DreamerV3 scores of every suite here) or ``eval``
    (evaluation episodes, ``run.eval_every``), for a protocol that scores a separate
    evaluation policy. ``dreamerbench table/plot --episodes`` overrides it."""
    protocol_fields: Mapping[str, Any] = field(default_factory=dict)
    """Type hint, with its range or allowed values (:mod:`dreamerbench.core.reader`), of each
    protocol field, e.g. ``{"action_repeat": PositiveInt}``; every numeric field has one."""
    open_tasks: Callable[[str], str] | None = None
    """For suites whose tasks are whatever an outside registry holds (``gym``, ``dm_env``):
    returns a task name it accepts, else raises ValueError naming it and what is allowed;
    :attr:`tasks` then lists examples (what a spec's ``tasks: all`` means)."""
    film_refusal: Callable[[str], str] | None = None
    """For suites whose tasks may lack both image observations and a working ``render()``
    (``gym``, ``dm_env``): ``""`` if a task's episodes can be filmed (``run.video_render``), else
    why not. None: every task can."""
    unavailable: str = ""
    """Why no environment of this suite can be made here (``dmlab30``: DeepMind Lab has no
    installable build); ``train`` and ``sweep`` refuse the suite with it. ``""``: they can."""
    check_protocol: Callable[[Mapping[str, Any]], None] | None = None
    """Rules that join protocol fields (e.g. Atari's max_pool <= action_repeat): raises
    ValueError (:func:`check_field`) on a resolved protocol."""

    def __post_init__(self):
        if "run.steps" in self.agent_defaults:
            raise ValueError(
                f"suite {self.name!r}: give the budget once, as budget_steps, not as "
                "agent_defaults['run.steps']"
            )
        if self.score_episodes not in SCORE_EPISODES:
            raise ValueError(
                f"score_episodes={self.score_episodes!r} is unknown; allowed: "
                f"{', '.join(SCORE_EPISODES)}"
            )
        if self.run_score not in RUN_SCORES:
            raise ValueError(
                f"run_score={self.run_score!r} is unknown; allowed: {', '.join(RUN_SCORES)}"
            )
        if self.run_score == "crafter" and self.episode_successes is None:
            raise ValueError(f"suite {self.name!r}: run_score 'crafter' needs episode_successes")
        if not 0 < self.final_window_frames <= self.budget_frames:
            raise ValueError(
                f"suite {self.name!r}: final_window_frames={self.final_window_frames} "
                f"must be in (0, budget_frames={self.budget_frames}]"
            )
        object.__setattr__(
            self, "agent_defaults", {**self.agent_defaults, "run.steps": self.budget_steps}
        )

    def check_task(self, task: str) -> str:
        """Return ``task`` if it is in the suite (:attr:`open_tasks` decides where given),
        else raise ValueError listing the valid tasks."""
        if self.open_tasks is not None:
            return self.open_tasks(task)
        if task not in self.tasks:
            raise ValueError(
                f"task={task!r} is not in suite {self.name!r}; allowed: {', '.join(self.tasks)}"
            )
        return task

    def resolve_protocol(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The default protocol with ``overrides`` applied, each read against its
        :attr:`protocol_fields` hint (the default's type where none is given),
        then :attr:`check_protocol`. Idempotent: a resolved protocol resolves
        to itself, so an env may check the protocol it is given this way.

        Unknown fields and values of another type or out of range raise
        ValueError naming the field, the value and what is allowed.
        """
        unknown = sorted(set(overrides) - set(self.default_protocol))
        if unknown:
            raise ValueError(
                f"env.{unknown[0]} is not a protocol field of suite {self.name!r}; "
                f"allowed: {', '.join(sorted(self.default_protocol))}"
            )
        resolved = dict(self.default_protocol)
        for key, value in overrides.items():
            hint = self.protocol_fields.get(key, type(self.default_protocol[key]))
            resolved[key] = read(value, hint, f"env.{key}")
        if self.check_protocol is not None:
            self.check_protocol(resolved)
        return resolved

    def published_task(self, task: str) -> str:
        """Name of ``task`` in the published score files, e.g. ``dmc_walker_walk``; an open-task
        suite's (gym, dm_env) files name tasks as its runs do."""
        if self.open_tasks is not None:
            return task
        return self.published_prefix + self.check_task(task)

    def task_of_published(self, name: str) -> str:
        """Inverse of :meth:`published_task`: ``atari_pong`` -> ``pong``; Crafter's
        files also write ``crafter-reward``. Raises naming the suite's tasks. An open-task
        suite (gym, dm_env) takes the name as it is: a task is whatever a user's runs name."""
        if self.open_tasks is not None:
            return name
        name = name.replace("-", "_")
        task = (
            name[len(self.published_prefix) :] if name.startswith(self.published_prefix) else name
        )
        if task not in self.tasks:
            raise ValueError(
                f"published task {name!r} is not in suite {self.name!r}; "
                f"allowed: {', '.join(self.published_task(t) for t in self.tasks)}"
            )
        return task

    @property
    def action_repeat(self) -> int:
        """Frames (emulator or physics control steps) per agent step by default."""
        return int(self.default_protocol["action_repeat"])

    @property
    def budget_frames(self) -> int:
        """Default budget in frames: ``budget_steps * action_repeat``."""
        return self.budget_steps * self.action_repeat

    def normalization(self) -> str:
        """What :meth:`normalize` divides by, in words, from :attr:`score_refs`: ``score / 1000``
        where every task shares one reference pair with low 0; the general formula otherwise."""
        refs = set(self.score_refs.values())
        if len(refs) == 1:
            low, high = refs.pop()
            return f"score / {high:g}" if low == 0 else f"(score - {low:g}) / ({high:g} - {low:g})"
        if refs:
            low, high = self.score_ref_names
            return (
                f"(score - {low}) / ({high} - {low}) with each task's {low} and {high} scores "
                f"({self.normalized_name})"
            )
        return "none (this suite has no score references)"

    def normalize(self, task: str, score: float) -> float:
        """``(score - low) / (high - low)`` with the task's score reference."""
        if task not in self.score_refs:
            raise ValueError(
                f"suite {self.name!r} has no score reference for task={task!r}; "
                f"tasks with references: {', '.join(self.score_refs) or 'none'}"
            )
        low, high = self.score_refs[task]
        return (score - low) / (high - low)  # works on numpy arrays of scores too


def step_obs(
    values: Mapping[str, Any], reward: float, is_first: bool, is_last: bool, is_terminal: bool
) -> dict[str, np.ndarray]:
    """One step of an :class:`Env`: ``values`` (observation keys and ``log/*``) plus the
    special keys, ``reward`` as float32 and the flags as numpy bools."""
    return {
        **values,
        "reward": np.float32(reward),
        "is_first": np.bool_(is_first),
        "is_last": np.bool_(is_last),
        "is_terminal": np.bool_(is_terminal),
    }


def check_field(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise ValueError ``env.KEY=VALUE is not allowed; allowed: ALLOWED`` unless ``ok``."""
    if not ok:
        raise refuse(f"env.{key}", value, allowed)
