"""What a training run shows while it runs: its speed records and the progress line on stderr."""

from __future__ import annotations

import collections
import os
import sys
import time
from collections.abc import Sequence

from dreamerbench.agent.rundir import Counters


class Speed:
    """Env steps and updates per second since the previous measurement."""

    def __init__(self, counters: Counters):
        self.last = (time.monotonic(), counters.steps, counters.updates)

    def measure(self, counters: Counters) -> dict[str, float]:
        now = time.monotonic()
        then, steps, updates = self.last
        elapsed = max(now - then, 1e-9)
        self.last = (now, counters.steps, counters.updates)
        return {
            "env_steps_per_s": (counters.steps - steps) / elapsed,
            "updates_per_s": (counters.updates - updates) / elapsed,
        }


class Progress:
    """One status line on stderr: steps, updates, current fps, ETA, latest score, what it awaits.

    The fps is that of the last :attr:`WINDOW_S` seconds (not since the start, which
    compiles and fills replay before any update); the ETA divides the steps left by it.
    """

    WINDOW_S = 30.0

    def __init__(self, total: int, enabled: bool):
        self.total = total
        self.enabled = enabled and (
            sys.stderr.isatty() or os.environ.get("DREAMERBENCH_PROGRESS") == "1"
        )
        self.last = 0.0
        self.samples: collections.deque[tuple[float, int]] = collections.deque()
        self.status = ""

    def note(self, status: str) -> None:
        """Show `status` (e.g. "compiling the train step") now; the next update clears it."""
        self.status = status
        if self.enabled:
            sys.stderr.write(f"\r{status} ...".ljust(100))
            sys.stderr.flush()

    def update(self, counters: Counters, score: float | None) -> None:
        now = time.monotonic()
        self.samples.append((now, counters.steps))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.WINDOW_S:
            self.samples.popleft()
        if not self.enabled or (now - self.last < 1.0 and not self.status):
            return
        self.last, self.status = now, ""
        sys.stderr.write(
            "\r"
            + progress_line(
                counters.steps, self.total, counters.updates, self.samples, score
            ).ljust(100)
        )
        sys.stderr.flush()

    def close(self, counters: Counters, score: float | None) -> None:
        """Show the final state and end the line."""
        if self.enabled:
            self.last = 0.0
            self.update(counters, score)
            sys.stderr.write("\n")


def progress_line(
    steps: int, total: int, updates: int, samples: Sequence[tuple[float, int]], score: float | None
) -> str:
    """The progress text: bar, steps, updates, fps over `samples` ((time s, steps), oldest
    first), ETA, score."""
    done = min(steps / total, 1.0)
    bar = "#" * int(30 * done) + "-" * (30 - int(30 * done))
    (t0, s0), (t1, s1) = samples[0], samples[-1]
    fps = (s1 - s0) / (t1 - t0) if t1 > t0 and s1 > s0 else None
    eta = "-" if fps is None else _duration((total - steps) / fps)
    score_text = "-" if score is None else f"{score:.1f}"
    fps_text = "-" if fps is None else f"{fps:.0f}"
    return (
        f"[{bar}] {steps}/{total} steps  {updates} updates  {fps_text} fps  ETA {eta}  "
        f"score {score_text}"
    )


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
