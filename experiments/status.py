"""`dreamerbench status SWEEP`: one line per run and an overall progress bar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from experiments import tracking
from experiments.sweep import job_alive


@dataclass(frozen=True)
class StatusRow:
    label: str
    key: str
    state: str
    steps: int
    budget: int
    score: float | None


def run_state(status: str | None, alive: bool | None, steps: int) -> str:
    """Human state of a run from its MLflow status and whether its job is alive."""
    if status is None:
        return "not submitted"
    if status in ("FINISHED", "FAILED", "KILLED"):
        return status.lower()
    if alive is False:
        return "interrupted"
    if status == "SCHEDULED":
        return "requeued" if steps > 0 else "queued"
    return "running"


def rows_from_runs(
    runs: Sequence[Any], queue: Mapping[str, str] | None, expected: Sequence[Any] = ()
) -> list[StatusRow]:
    """Rows for MLflow runs (newest per run key), plus `expected` RunSpecs not yet submitted."""
    by_key = tracking.runs_by_key(runs)
    rows = []
    for key, run in by_key.items():
        tags = run.data.tags
        steps = int(float(tags.get(tracking.STEPS_TAG, 0) or 0))
        label = f"{tags.get(tracking.TAG + 'task', '?')}/seed{tags.get(tracking.TAG + 'seed', '?')}"
        grid = sorted(k for k in tags if k.startswith(tracking.TAG + "grid."))
        if grid:
            label += "/" + ",".join(f"{k.rsplit('.', 1)[-1]}={tags[k]}" for k in grid)
        rows.append(StatusRow(
            label=label,
            key=key,
            state=run_state(run.info.status, job_alive(tags, queue), steps),
            steps=steps,
            budget=int(float(run.data.params.get("run.steps", 0) or 0)),
            score=run.data.metrics.get("episode/score"),
        ))
    for run in expected:
        if run.key not in by_key:
            rows.append(StatusRow(run.label, run.key, "not submitted", 0, run.config.run.steps, None))
    return sorted(rows, key=lambda r: r.label)


def render(sweep: str, rows: Sequence[StatusRow], width: int = 40) -> str:
    """The status table and progress bar as text."""
    header = f"{'run':<36} {'key':<16} {'state':<13} {'steps / budget':>21} {'score':>9}"
    lines = [f"sweep {sweep}: {len(rows)} runs", header, "-" * len(header)]
    for row in rows:
        score = f"{row.score:9.1f}" if row.score is not None else f"{'-':>9}"
        steps = f"{row.steps:,} / {row.budget:,}"
        lines.append(f"{row.label:<36} {row.key:<16} {row.state:<13} {steps:>21} {score}")
    done = sum(min(r.steps, r.budget) if r.state != "finished" else r.budget for r in rows)
    total = sum(r.budget for r in rows)
    fraction = done / total if total else 0.0
    filled = int(round(fraction * width))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    lines.append("")
    lines.append(f"[{'#' * filled}{'.' * (width - filled)}] {fraction:6.1%}  "
                 f"{done:,} / {total:,} steps  ({summary})")
    return "\n".join(lines)
