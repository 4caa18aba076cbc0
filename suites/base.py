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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import numpy as np

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


@dataclass(frozen=True)
class Suite:
    """One benchmark: its tasks, protocol, budget and references.

    ``make_env(task, seed, protocol)`` builds one environment;
    ``protocol`` is ``default_protocol`` updated with the run's ``env``
    overrides (validated by :meth:`resolve_protocol`).
    """

    name: str
    tasks: tuple[str, ...]
    default_protocol: Mapping[str, Any]
    make_env: Callable[[str, int, Mapping[str, Any]], Env]
    budget_steps: int
    agent_defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def check_task(self, task: str) -> str:
        if task not in self.tasks:
            raise ValueError(
                f"task={task!r} is not in suite {self.name!r}; allowed: {', '.join(self.tasks)}"
            )
        return task

    def resolve_protocol(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(overrides) - set(self.default_protocol))
        if unknown:
            raise ValueError(
                f"env.{unknown[0]} is not a protocol field of suite {self.name!r}; "
                f"allowed: {', '.join(sorted(self.default_protocol))}"
            )
        return {**self.default_protocol, **overrides}
