"""Comparison tables: per-task final scores and aggregates with CIs, methods side by side.

Nothing missing is dropped silently: every task without runs, missing seed and run
without a final score becomes a numbered note; the cells it affects carry ``[n]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.metrics import AGGREGATES, bootstrap, bootstrap_improvement, task_means
from analysis.references import SuiteReference
from analysis.scores import FinalRule, add_normalized, denormalized, final_scores

AGGREGATE_NAMES = {"mean": "Mean", "median": "Median", "iqm": "IQM", "optimality_gap": "Optimality gap"}


@dataclass
class Comparison:
    """Everything a table shows; ``per_task``/``aggregates``/``improvement`` are long."""

    suite: str
    methods: list[str]
    rule: FinalRule
    reps: int
    per_task: pd.DataFrame
    aggregates: pd.DataFrame
    improvement: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    marks: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    """(method, task or aggregate name) -> note numbers."""
    finals: dict[str, pd.DataFrame] = field(default_factory=dict)
    """method -> final and normalised score per (task, seed), NaN where missing."""
    tasks: dict[str, list[str]] = field(default_factory=dict)
    """method -> tasks with a final score (those its aggregates use)."""

    def note(self, text: str, *cells: tuple[str, str]) -> None:
        self.notes.append(text)
        for cell in cells:
            self.marks.setdefault(cell, []).append(len(self.notes))


def score_matrix(finals: pd.DataFrame, column: str, tasks: list[str]) -> np.ndarray:
    """``[R, T]`` matrix of ``column`` (seeds by ``tasks``), NaN where missing."""
    wide = finals.pivot(index="seed", columns="task", values=column)
    return wide.reindex(columns=tasks).to_numpy(dtype=np.float64)


def _check_tasks(episodes: pd.DataFrame, ref: SuiteReference) -> None:
    unknown = sorted(set(episodes["task"]) - set(ref.tasks))
    if unknown:
        raise ValueError(f"task={unknown[0]!r} is not in suite {ref.name!r}; allowed: {', '.join(ref.tasks)}")


def _report_missing(comp: Comparison, method: str, finals: pd.DataFrame, ref: SuiteReference) -> list[str]:
    """Add notes for what ``method`` lacks; return the tasks it has a final score on."""
    have = finals[finals["final"].notna()]
    absent = [t for t in ref.tasks if t not in set(finals["task"])]
    if absent:
        comp.note(f"{method}: no runs on {len(absent)} of {len(ref.tasks)} tasks ({', '.join(absent)}); "
                  f"its aggregates use the other tasks only.",
                  *[(method, a) for a in AGGREGATE_NAMES])
    seeds = sorted(set(finals["seed"]))
    for task, group in finals.groupby("task"):
        lost = sorted(set(seeds) - set(group["seed"]))
        if lost:
            comp.note(f"{method} on {task}: {len(group)} of {len(seeds)} seeds; missing seed(s) {', '.join(map(str, lost))}.",
                      (method, task))
    for row in finals[finals["final"].isna()].itertuples():
        comp.note(f"{method} on {row.task}, seed {row.seed}: no episode in the final window "
                  f"({comp.rule.budget_frames - comp.rule.window_frames:.0f}, {comp.rule.budget_frames:.0f}] frames "
                  f"(run ended at {row.last_frames:.0f} frames); left out of the mean.", (method, row.task))
    tasks = [t for t in ref.tasks if t in set(have["task"])]
    dead = sorted(set(finals["task"]) - set(tasks))
    if dead:
        comp.note(f"{method}: no final score on any seed of {', '.join(dead)}; its aggregates leave these tasks out.",
                  *[(method, a) for a in AGGREGATE_NAMES])
    return tasks


def compare(
    episodes: pd.DataFrame,
    ref: SuiteReference,
    rule: FinalRule,
    methods: list[str],
    rng: np.random.Generator,
    reps: int = 50_000,
) -> Comparison:
    """Final scores, per-task means with CIs, aggregates and P(first > other)."""
    _check_tasks(episodes, ref)
    comp = Comparison(ref.name, methods, rule, reps, pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    per_task, aggregates, normalized = [], [], {}
    for method in methods:
        runs = episodes[episodes["method"] == method]
        if runs.empty:
            raise ValueError(f"method={method!r} has no episodes; allowed: {', '.join(sorted(set(episodes['method'])))}")
        finals = add_normalized(final_scores(runs, ref, rule), ref)
        tasks = _report_missing(comp, method, finals, ref)
        if not tasks:
            raise ValueError(f"method={method!r} has no final score on any task of {ref.name!r} "
                             f"(final window ({rule.budget_frames - rule.window_frames:.0f}, {rule.budget_frames:.0f}] frames)")
        raw = score_matrix(finals, "final", tasks)
        norm = score_matrix(finals, "normalized", tasks)
        normalized[method] = (tasks, norm)
        comp.finals[method], comp.tasks[method] = finals, tasks
        est = bootstrap(norm, {"task": task_means, **AGGREGATES}, rng, reps)
        counts = np.sum(~np.isnan(raw), axis=0)
        t = est["task"]
        for i, task in enumerate(tasks):
            raw_point, raw_lo, raw_hi = denormalized(ref, task, [t.point[i], t.lo[i], t.hi[i]])
            per_task.append(dict(method=method, task=task, n_seeds=int(counts[i]),
                                 raw=raw_point, raw_lo=raw_lo, raw_hi=raw_hi,
                                 norm=t.point[i], norm_lo=t.lo[i], norm_hi=t.hi[i]))
        for name in AGGREGATES:
            e = est[name]
            aggregates.append(dict(method=method, metric=name, point=float(e.point), lo=float(e.lo),
                                   hi=float(e.hi), n_tasks=len(tasks), n_runs=int(counts.sum())))
    comp.per_task = pd.DataFrame(per_task)
    comp.aggregates = pd.DataFrame(aggregates)
    comp.improvement = _improvements(comp, normalized, rng, reps)
    return comp


def _improvements(comp: Comparison, normalized: dict, rng: np.random.Generator, reps: int) -> pd.DataFrame:
    """P(first method > each other method) on the tasks both have."""
    first, rows = comp.methods[0], []
    for other in comp.methods[1:]:
        tx, x = normalized[first]
        ty, y = normalized[other]
        common = [t for t in tx if t in ty]
        if not common:
            comp.note(f"P({first} > {other}): no task in common; not computed.")
            continue
        if len(common) < max(len(tx), len(ty)):
            comp.note(f"P({first} > {other}) uses the {len(common)} tasks both methods have.", (other, "poi"))
        e = bootstrap_improvement(x[:, [tx.index(t) for t in common]], y[:, [ty.index(t) for t in common]], rng, reps)
        rows.append(dict(method=other, point=float(e.point), lo=float(e.lo), hi=float(e.hi), n_tasks=len(common)))
    return pd.DataFrame(rows, columns=["method", "point", "lo", "hi", "n_tasks"])


# --- rendering -----------------------------------------------------------------------


def _num(x: float) -> str:
    if not np.isfinite(x):
        return "-"
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def _cell(point, lo, hi, marks=()) -> str:
    text = f"{_num(point)} [{_num(lo)}, {_num(hi)}]"
    return text + "".join(f" [{n}]" for n in marks)


def grid(comp: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and rows: tasks, then aggregates (normalised, %), then P(improvement)."""
    header = ["Task"] + [f"{m} {kind}" for m in comp.methods for kind in ("score", "norm. %")]
    rows = []
    by = comp.per_task.set_index(["task", "method"]) if len(comp.per_task) else None
    tasks = [t for t in dict.fromkeys(comp.per_task["task"])] if by is not None else []
    missing_tasks = {(m, t) for (m, t) in comp.marks if t not in AGGREGATE_NAMES and t != "poi"}
    tasks += sorted({t for _, t in missing_tasks} - set(tasks))
    for task in tasks:
        row = [task]
        for m in comp.methods:
            marks = comp.marks.get((m, task), [])
            if (task, m) in by.index:
                r = by.loc[(task, m)]
                row += [_cell(r.raw, r.raw_lo, r.raw_hi, marks), _cell(100 * r.norm, 100 * r.norm_lo, 100 * r.norm_hi)]
            else:
                row += ["-" + "".join(f" [{n}]" for n in marks), "-"]
        rows.append(row)
    agg = comp.aggregates.set_index(["metric", "method"])
    for name, label in AGGREGATE_NAMES.items():
        row = [f"**{label}** (norm. %)"]
        for m in comp.methods:
            r = agg.loc[(name, m)]
            row += ["", _cell(100 * r.point, 100 * r.lo, 100 * r.hi, comp.marks.get((m, label), []))]
        rows.append(row)
    first = comp.methods[0]
    for r in comp.improvement.itertuples():
        row = [f"**P({first} > {r.method})**"]
        for m in comp.methods:
            row += ["", _cell(r.point, r.lo, r.hi, comp.marks.get((m, "poi"), [])) if m == r.method else ""]
        rows.append(row)
    return header, rows


def _caption(comp: Comparison) -> str:
    return (f"{comp.suite}: final score = mean of episodes ending in "
            f"({comp.rule.budget_frames - comp.rule.window_frames:.0f}, {comp.rule.budget_frames:.0f}] frames; "
            f"mean over seeds [95% CI, stratified bootstrap, {comp.reps} resamples].")


def to_markdown(comp: Comparison) -> str:
    header, rows = grid(comp)
    lines = [_caption(comp), "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [""] + [f"[{i}] {n}" for i, n in enumerate(comp.notes, 1)]
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(a, b)
    if text.startswith("**") and "**" in text[2:]:
        end = text.index("**", 2)
        text = r"\textbf{" + text[2:end] + "}" + text[end + 2 :]
    return text


def to_latex(comp: Comparison) -> str:
    header, rows = grid(comp)
    lines = [r"\begin{table}", r"\centering", r"\caption{" + _tex(_caption(comp)) + "}",
             r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
             " & ".join(_tex(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex(c) for c in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [r"\par\footnotesize [" + str(i) + "] " + _tex(n) for i, n in enumerate(comp.notes, 1)]
    lines += [r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv(comp: Comparison) -> str:
    """Long format, one number per column; notes go in the ``notes`` column."""
    def notes(method, key):
        return " ".join(comp.notes[n - 1] for n in comp.marks.get((method, key), []))

    rows = []
    for r in comp.per_task.itertuples():
        rows.append(dict(section="task", name=r.task, method=r.method, score=r.raw, score_lo=r.raw_lo,
                         score_hi=r.raw_hi, normalized=r.norm, normalized_lo=r.norm_lo, normalized_hi=r.norm_hi,
                         n=r.n_seeds, notes=notes(r.method, r.task)))
    for r in comp.aggregates.itertuples():
        rows.append(dict(section="aggregate", name=r.metric, method=r.method, normalized=r.point,
                         normalized_lo=r.lo, normalized_hi=r.hi, n=r.n_tasks,
                         notes=notes(r.method, AGGREGATE_NAMES[r.metric])))
    for r in comp.improvement.itertuples():
        rows.append(dict(section="probability_of_improvement", name=f"P({comp.methods[0]} > {r.method})",
                         method=r.method, normalized=r.point, normalized_lo=r.lo, normalized_hi=r.hi,
                         n=r.n_tasks, notes=notes(r.method, "poi")))
    return pd.DataFrame(rows).to_csv(index=False)


FORMATS = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}


def render(comp: Comparison, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is unknown; allowed: {', '.join(FORMATS)}")
    return FORMATS[fmt](comp)
