"""`dreamerbench status SWEEP`: one line per run (suite, state, steps, rate, ETA, score), an
overall progress bar, for each failed run its last error line and its log, and how to resume
interrupted runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreamerbench.core import checkpoint
from dreamerbench.core.files import StorageError
from dreamerbench.experiments import tracking, train_tracking
from dreamerbench.experiments.launchers import Watch

TAIL_BYTES = 65536
"""How much of the end of a run's ``metrics.jsonl`` :func:`live_rate` reads (its newest records)."""


@dataclass(frozen=True)
class StatusRow:
    """One run as ``status`` shows it."""

    label: str
    key: str
    state: str
    steps: int
    """Agent steps done: the newest step MLflow holds, or the logdir's (its newest checkpoint, its
    newest speed record while running) if that is newer."""
    budget: int
    score: float | None
    rate: float | None = None
    """Agent steps per second over the trainer's newest log interval (``fps/env_steps_per_s``)
    of the job that trains the run now."""
    eta_s: float | None = None
    """Seconds to the budget at ``rate`` (running runs only)."""
    error: str | None = None
    """Last line of a failed run's error."""
    log: str | None = None
    """Where a failed run's job wrote its output."""
    suite: str = "-"
    """The run's suite."""
    resume: str | None = None
    """How to resume the run if it is not a sweep's: ``dreamerbench train`` (None: its sweep)."""


def run_state(status: str | None, alive: bool | None, steps: int) -> str:
    """The one state rule: a run's state from its MLflow `status` (None: no MLflow run), whether
    its job is `alive` (None: cannot be told here) and its `steps` done. ``status`` shows it and
    the sweep decides from it what to submit (``sweep.decide``). States: not submitted, finished,
    failed, killed, interrupted (its job is gone), queued, requeued (queued again with steps
    done), running."""
    if status is None:
        return "not submitted"
    if status in ("FINISHED", "FAILED", "KILLED"):
        return status.lower()
    if alive is False:
        return "interrupted"
    if status == "SCHEDULED":
        return "requeued" if steps > 0 else "queued"
    return "running"


def state_of(run: Any, watch: Watch) -> str:
    """:func:`run_state` of an MLflow `run` (None: not submitted): its status, its steps tag and
    whether its launcher says its job is alive (`watch`, one per table or plan)."""
    if run is None:
        return run_state(None, None, 0)
    tags = run.data.tags
    alive = watch.alive(run.info.status, tags)
    return run_state(run.info.status, alive, int(float(tags.get(tracking.STEPS_TAG, 0) or 0)))


def live_rate(logdir: str | Path) -> tuple[int, float] | None:
    """(step, agent steps per second) of the newest speed record in ``LOGDIR/metrics.jsonl``, which
    the trainer writes every ``run.log_every`` seconds, ahead of what MLflow holds (records
    reach MLflow at checkpoints); None if there is none (or the logdir cannot be read here)."""
    if not logdir:  # a run being created has no logdir tag yet
        return None
    path = Path(logdir) / "metrics.jsonl"
    try:
        with open(path, "rb") as file:
            size = file.seek(0, 2)
            file.seek(max(0, size - TAIL_BYTES))
            lines = file.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:  # a line cut by the tail's start, or being written
            continue
        if isinstance(record, dict) and "env_steps_per_s" in record:
            return int(record["step"]), float(record["env_steps_per_s"])
    return None


def checkpoint_steps(logdir: str | Path) -> int | None:
    """Agent steps of the newest complete checkpoint in ``LOGDIR/checkpoint`` whose counters can be
    read: what a resume starts from, although a run that failed may have delivered none of it to
    MLflow. None if there is none (or the logdir cannot be read here)."""
    if not logdir:
        return None
    for saved in reversed(checkpoint.complete(Path(logdir) / "checkpoint")):
        try:
            return int(checkpoint.read_counters(saved)["counters"]["steps"])
        except (StorageError, OSError, KeyError, TypeError, ValueError):
            continue  # damaged: a resume falls back to the one before, so does this
    return None


def eta_seconds(steps: int, budget: int, rate: float | None) -> float | None:
    """``(budget - steps) / rate`` in seconds; None without a positive rate."""
    if not rate or rate <= 0:
        return None
    return max(budget - steps, 0) / rate


def rows_from_runs(
    runs: Sequence[Any], watch: Watch, expected: Sequence[Any] = ()
) -> list[StatusRow]:
    """Rows for MLflow runs (newest per run key), plus `expected` RunSpecs not yet submitted;
    `watch` tells whether their jobs are alive."""
    by_key = tracking.runs_by_key(runs)
    rows = []
    for key, run in by_key.items():
        tags = run.data.tags
        steps = int(float(tags.get(tracking.STEPS_TAG, 0) or 0))
        label = f"{tags.get(tracking.TAG + 'task', '?')}/seed{tags.get(tracking.TAG + 'seed', '?')}"
        grid = sorted(k for k in tags if k.startswith(tracking.TAG + "grid."))
        if grid:
            label += "/" + ",".join(f"{k.rsplit('.', 1)[-1]}={tags[k]}" for k in grid)
        state = state_of(run, watch)
        budget = tracking.budget_steps(run) or 0
        rate = eta = error = log = None
        logdir = tags.get(tracking.TAG + "logdir", "")
        if state != "finished":
            steps = max(steps, checkpoint_steps(logdir) or 0)
        if state == "running":
            # Only this job's speed counts: records up to where it took the run up are an
            # earlier job's (until its first record, e.g. while it compiles, there is no rate).
            resumed_at = int(tags.get(tracking.TAG + "resumed_at", 0) or 0)
            live = live_rate(logdir)
            if live is not None and live[0] > resumed_at:
                steps, rate = max(steps, live[0]), live[1]
            elif live is None and not resumed_at:  # a logdir this machine cannot read
                rate = run.data.metrics.get("fps/env_steps_per_s")
            eta = eta_seconds(steps, budget, rate)
        if state == "failed":
            lines = [
                line for line in tags.get(tracking.TAG + "error", "").splitlines() if line.strip()
            ]
            error = lines[-1].strip() if lines else "(no error recorded)"
            log = tags.get(tracking.TAG + "logs") or (
                str(Path(logdir) / "job.log") if logdir else None
            )
        rows.append(
            StatusRow(
                label=label,
                key=key,
                state=state,
                steps=steps,
                budget=budget,
                score=run.data.metrics.get("episode/score"),
                rate=rate,
                eta_s=eta,
                error=error,
                log=log,
                suite=tags.get(tracking.TAG + "suite", "-"),
                resume=train_resume(logdir)
                if tags.get(tracking.TAG + train_tracking.COMMAND_TAG)
                else None,
            )
        )
    for run in expected:
        if run.key not in by_key:
            rows.append(
                StatusRow(
                    run.label,
                    run.key,
                    "not submitted",
                    0,
                    run.config.run.steps,
                    None,
                    suite=run.suite,
                )
            )
    return sorted(rows, key=lambda r: r.label)


def train_resume(logdir: str) -> str:
    """How to resume a run of ``dreamerbench train --tracking-uri``, as ``train`` itself says it
    when stopped: its command again, on its logdir."""
    return f"run its dreamerbench train command again (--logdir {logdir})"


def duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``42s``; ``-`` for None."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def render(
    sweep: str, rows: Sequence[StatusRow], width: int = 40, resume: str | None = None
) -> str:
    """The status table, the progress bar and, below them, each failed run's error and log.

    `resume` is the command that resumes the sweep's interrupted runs (said once if there are any);
    a stopped run of ``dreamerbench train`` says its own (:attr:`StatusRow.resume`).
    """
    suite = max([len("suite"), *(len(row.suite) for row in rows)])
    header = (
        f"{'run':<36} {'suite':<{suite}} {'key':<16} {'state':<13} {'steps / budget':>21} "
        f"{'steps/s':>8} {'ETA':>7} {'score':>9}"
    )
    lines = [f"sweep {sweep}: {len(rows)} runs", header, "-" * len(header)]
    for row in rows:
        score = f"{row.score:9.1f}" if row.score is not None else f"{'-':>9}"
        steps = f"{row.steps:,} / {row.budget:,}"
        rate = f"{row.rate:8.1f}" if row.rate is not None else f"{'-':>8}"
        lines.append(
            f"{row.label:<36} {row.suite:<{suite}} {row.key:<16} {row.state:<13} {steps:>21} "
            f"{rate} {duration(row.eta_s):>7} {score}"
        )
    done = sum(min(r.steps, r.budget) if r.state != "finished" else r.budget for r in rows)
    total = sum(r.budget for r in rows)
    fraction = done / total if total else 0.0
    filled = int(round(fraction * width))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    lines.append("")
    lines.append(
        f"[{'#' * filled}{'.' * (width - filled)}] {fraction:6.1%}  "
        f"{done:,} / {total:,} steps  ({summary})"
    )
    for row in rows:
        if row.state == "failed":
            lines.append(
                f"failed {row.label}: {row.error}" + (f"  (log: {row.log})" if row.log else "")
            )
    for row in rows:  # no queue takes a train run up: whatever stopped it, its command resumes it
        if row.resume and row.state not in ("running", "finished"):
            lines.append(f"{row.state} {row.label}: {row.resume}")
    swept = sum(1 for row in rows if row.state == "interrupted" and not row.resume)
    if swept and resume:
        lines.append(f"{swept} run(s) interrupted; resume them with: {resume}")
    return "\n".join(lines)
