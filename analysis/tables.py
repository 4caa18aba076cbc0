"""Comparison tables: per-task final scores and aggregates with CIs, methods side by side.

Nothing missing is dropped silently: every task without runs, missing seed and run
without an episode in the final window (and how it was treated) becomes a numbered
note; the cells it affects carry ``[n]``. Suites with per-episode successes
(``Suite.episode_successes``: Crafter achievements, the Minecraft diamond) get one row
per item: the percent of scored episodes with it, and how many runs ever had it.
Normalised scores, aggregates and success rates are in percent everywhere.

Suites without score references (``gym``, ``dm_env``: any task a user brings) get a
raw-score table: per-task scores with CIs and P(improvement), which compares runs
within each task and so needs no common scale, but no normalised column and no
aggregates (a mean over tasks of unnormalised returns weighs each task by its scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dreamerbench.analysis.metrics import AGGREGATES, bootstrap, bootstrap_improvement, task_means
from dreamerbench.analysis.scores import (
    DEFAULT_MISSING,
    MISSING,
    FinalRule,
    add_normalized,
    denormalized,
    final_scores,
    normalizes,
    success_table,
)
from dreamerbench.suites import Suite

AGGREGATE_NAMES = {
    "mean": "Mean",
    "median": "Median",
    "iqm": "IQM",
    "optimality_gap": "Optimality gap",
}
UNFINISHED = {
    "FAILED": "it stopped with an error",
    "RUNNING": "still training, or its job ended without saying so",
    "SCHEDULED": "stopped early, waiting for a job to resume it",
    "KILLED": "killed",
}
"""MLflow status of a run that did not finish -> what its footnote says (the lifecycle in
experiments/tracking.py)."""


ABSENT_SHOWN = 60
"""Tasks without runs that a note names: all of atari57's; bsuite's 468 configurations would
fill pages."""


def plural(n: int, word: str) -> str:
    """``1 task``, ``2 tasks``, ``0 runs``: the one plural rule of tables and figures."""
    return f"{n:,} {word}" + ("s" if n != 1 else "")


@dataclass
class Comparison:
    """Everything a table shows; ``per_task``/``aggregates``/``improvement``/``successes`` are long.

    Units: ``per_task.raw*`` the suite's score (return, or Crafter score in %),
    ``per_task.norm*`` and ``aggregates`` normalised scores as fractions (1 = the
    suite's reference high), ``improvement`` probabilities, ``successes.rate*`` percent.
    """

    suite: Suite
    methods: list[str]
    rule: FinalRule
    reps: int
    per_task: pd.DataFrame
    aggregates: pd.DataFrame
    improvement: pd.DataFrame
    successes: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    marks: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    """(method, task, aggregate key of :data:`AGGREGATE_NAMES` or "poi") -> note numbers
    (1-based, in the order the notes were made; tables renumber them by first appearance)."""
    task_rows: list[str] = field(default_factory=list)
    """The table's task rows: the tasks some method has runs on, in the suite's order."""
    finals: dict[str, pd.DataFrame] = field(default_factory=dict)
    """method -> final and normalised score per (task, seed), NaN where missing."""
    tasks: dict[str, list[str]] = field(default_factory=dict)
    """method -> tasks with a final score (those its aggregates use)."""
    sources: str = ""
    """Where the published scores came from."""
    evaluation: bool = False
    """Our runs' scores come from their evaluation episodes (``run.eval_every``), not training
    ones."""

    def note(self, text: str, *cells: tuple[str, str]) -> None:
        """Footnote ``text`` on ``cells``; a text noted before keeps its one number."""
        if text not in self.notes:
            self.notes.append(text)
        number = self.notes.index(text) + 1
        for cell in cells:
            if number not in self.marks.setdefault(cell, []):
                self.marks[cell].append(number)


def score_matrix(finals: pd.DataFrame, column: str, tasks: list[str]) -> np.ndarray:
    """``[R, T]`` matrix of ``column`` (seeds by ``tasks``), NaN where missing."""
    wide = finals.pivot(index="seed", columns="task", values=column)
    return wide.reindex(columns=tasks).to_numpy(dtype=np.float64)


def table_tasks(episodes: pd.DataFrame, suite: Suite) -> list[str]:
    """The table's rows: the suite's tasks, or for an open-task suite (gym, dm_env) every
    task the episodes have, by name. Raises ValueError naming a task outside a closed suite."""
    if suite.open_tasks is not None:
        return sorted(set(episodes["task"]))
    unknown = sorted(set(episodes["task"]) - set(suite.tasks))
    if unknown:
        raise ValueError(
            f"task={unknown[0]!r} is not in suite {suite.name!r}; allowed: {', '.join(suite.tasks)}"
        )
    return list(suite.tasks)


def _span(end: float, width: float) -> str:
    """``(start, end] frames`` of a window of ``width`` frames ending at ``end``; frames start
    at 0."""
    return f"({max(0.0, end - width):,.0f}, {end:,.0f}] frames"


def _window(rule: FinalRule) -> str:
    return _span(rule.budget_frames, rule.window_frames)


def _runs_text(task: str, seeds: list) -> str:
    """``pong``, ``pong, seed 1`` or ``pong, seeds 1, 3``: the runs of a task a note is about."""
    if not seeds:
        return task
    return f"{task}, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def _report_missing(
    comp: Comparison, method: str, finals: pd.DataFrame, all_tasks: list[str]
) -> list[str]:
    """Add notes for what ``method`` lacks of ``all_tasks``; return the tasks it has a final
    score on."""
    have = finals[finals["final"].notna()]

    def marked(tasks: list[str]) -> list[tuple[str, str]]:  # the tasks' cells and its aggregates
        return [
            (method, key) for key in [*tasks, *(AGGREGATE_NAMES if normalizes(comp.suite) else ())]
        ]

    absent = [t for t in all_tasks if t not in set(finals["task"])]
    if absent:
        comp.note(
            f"{method}: no runs on {len(absent)} of {plural(len(all_tasks), 'task')} "
            f"({', '.join(absent[:ABSENT_SHOWN])}"
            f"{f' and {len(absent) - ABSENT_SHOWN} more' if len(absent) > ABSENT_SHOWN else ''})"
            + ("; its aggregates use the other tasks only." if normalizes(comp.suite) else "."),
            *marked(absent),
        )
    # What is said of several tasks or runs alike is one note naming them all (issue 21 item 12:
    # a baseline lacking one seed on many tasks, or stopped early on many runs, had a footnote
    # per task or run).
    said: dict[str, dict[str, list]] = {}  # statement -> task -> the seeds concerned (or none)
    seeds = sorted(set(finals["seed"]))
    for task, group in finals.groupby("task"):
        lost = sorted(set(seeds) - set(group["seed"]))
        if lost:
            statement = (
                f"{len(group)} of {plural(len(seeds), 'seed')}; missing "
                f"seed(s) {', '.join(map(str, lost))}."
            )
            said.setdefault(statement, {})[task] = []
    for row in finals[finals["treated"] != ""].itertuples():
        how = row.treated
        if how == MISSING["last"]:
            how += f", {_span(row.scored_to, comp.rule.window_frames)}"
        last = (
            f"its last ended at {row.last_frames:,.0f} frames"
            if np.isfinite(row.last_frames)
            else "it has none"
        )
        statement = f"no episode in the final window {_window(comp.rule)} ({last}); {how}."
        said.setdefault(statement, {}).setdefault(row.task, []).append(row.seed)
    for statement, concerned in said.items():
        where = "; ".join(_runs_text(task, runs) for task, runs in concerned.items())
        comp.note(f"{method} on {where}: {statement}", *[(method, task) for task in concerned])
    tasks = [t for t in all_tasks if t in set(have["task"])]
    dead = sorted(set(finals["task"]) - set(tasks))
    if dead:
        comp.note(
            f"{method}: no final score on any seed of {', '.join(dead)}"
            + ("; its aggregates leave these tasks out." if normalizes(comp.suite) else "."),
            *marked(dead),
        )
    return tasks


def _report_unfinished(comp: Comparison, method: str, runs: pd.DataFrame) -> None:
    """A note on each run of ``method`` whose MLflow status is not FINISHED (columns
    ``status``, ``steps_done``, ``budget_steps`` of :func:`dreamerbench.analysis.data.load_runs`;
    published runs have no status), marking its task's cell."""
    if "status" not in runs.columns:
        return
    states = runs.groupby(["task", "seed"], sort=True)[
        ["status", "steps_done", "budget_steps"]
    ].first()
    for (task, seed), row in states.iterrows():
        if not isinstance(row.status, str) or row.status == "FINISHED":
            continue
        budget = f" of {row.budget_steps:,.0f}" if np.isfinite(row.budget_steps) else ""
        comp.note(
            f"{method} on {task}, seed {seed}: run {row.status} at {row.steps_done:,.0f}{budget} "
            f"steps ({UNFINISHED.get(row.status, 'not finished')}); "
            "its score comes from the episodes it recorded.",
            (method, task),
        )


def compare(
    episodes: pd.DataFrame,
    suite: Suite,
    rule: FinalRule,
    methods: list[str],
    rng: np.random.Generator,
    reps: int = 50_000,
    notes: tuple[tuple[str, str], ...] = (),
    sources: str = "",
    evaluation: bool = False,
) -> Comparison:
    """Final scores, per-task means with CIs, aggregates, P(first > other) and successes
    (without score references: no normalised scores and no aggregates, see the module doc).

    ``notes``: ``(method, text)`` pairs to footnote first; they mark the method's
    aggregates. ``sources``: where published scores came from, for the rule line.
    ``evaluation``: our runs' episodes are evaluation episodes (the rule line says so).
    """
    all_tasks = table_tasks(episodes, suite)
    comp = Comparison(suite, methods, rule, reps, pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    comp.sources, comp.evaluation = sources, evaluation
    for method, text in notes:  # on the method's aggregates; without them, its cells
        comp.note(
            text, *[(method, a) for a in (AGGREGATE_NAMES if normalizes(suite) else all_tasks)]
        )
    per_task, aggregates, normalized, seen = [], [], {}, set()
    for method in methods:
        runs = episodes[episodes["method"] == method]
        if runs.empty:
            raise ValueError(
                f"method={method!r} has no episodes; allowed: "
                f"{', '.join(sorted(set(episodes['method'])))}"
            )
        finals = final_scores(runs, suite, rule)
        finals = (
            add_normalized(finals, suite) if normalizes(suite) else finals.assign(normalized=np.nan)
        )
        tasks = _report_missing(comp, method, finals, all_tasks)
        _report_unfinished(comp, method, runs)
        seen.update(finals["task"])
        if not tasks:
            raise ValueError(
                f"method={method!r} has no final score on any task of {suite.name!r} "
                f"(final window {_window(rule)})"
            )
        raw = score_matrix(finals, "final", tasks)
        counts = np.sum(~np.isnan(raw), axis=0)
        comp.finals[method], comp.tasks[method] = finals, tasks
        if not normalizes(suite):  # P(improvement) compares runs within a task: raw scores do
            normalized[method] = (tasks, raw)
            t = bootstrap(raw, {"task": task_means}, rng, reps)["task"]
            for i, task in enumerate(tasks):
                per_task.append(
                    dict(
                        method=method,
                        task=task,
                        n_seeds=int(counts[i]),
                        raw=t.point[i],
                        raw_lo=t.lo[i],
                        raw_hi=t.hi[i],
                        raw_std=np.nanstd(raw[:, i]),
                        norm=np.nan,
                        norm_lo=np.nan,
                        norm_hi=np.nan,
                        norm_std=np.nan,
                    )
                )
            continue
        norm = score_matrix(finals, "normalized", tasks)
        normalized[method] = (tasks, norm)
        est = bootstrap(norm, {"task": task_means, **AGGREGATES}, rng, reps)
        std, norm_std = (
            np.nanstd(raw, axis=0),
            np.nanstd(norm, axis=0),
        )  # population std, as Crafter's scoreboard
        t, raw_means = est["task"], task_means(raw)
        for i, task in enumerate(tasks):
            raw_lo, raw_hi = denormalized(suite, task, [t.lo[i], t.hi[i]])
            per_task.append(
                dict(
                    method=method,
                    task=task,
                    n_seeds=int(counts[i]),
                    raw=raw_means[i],
                    raw_lo=raw_lo,
                    raw_hi=raw_hi,
                    raw_std=std[i],
                    norm=t.point[i],
                    norm_lo=t.lo[i],
                    norm_hi=t.hi[i],
                    norm_std=norm_std[i],
                )
            )
        for name in AGGREGATES:
            e = est[name]
            aggregates.append(
                dict(
                    method=method,
                    metric=name,
                    point=float(e.point),
                    lo=float(e.lo),
                    hi=float(e.hi),
                    n_tasks=len(tasks),
                    n_runs=int(counts.sum()),
                )
            )
    comp.task_rows = [t for t in all_tasks if t in seen]
    comp.per_task = pd.DataFrame(per_task)
    comp.aggregates = pd.DataFrame(
        aggregates, columns=["method", "metric", "point", "lo", "hi", "n_tasks", "n_runs"]
    )
    comp.improvement = _improvements(comp, normalized, rng, reps)
    comp.successes = _successes(episodes, comp, rng, reps)
    return comp


def _improvements(
    comp: Comparison, normalized: dict, rng: np.random.Generator, reps: int
) -> pd.DataFrame:
    """P(first method > each other method) on the tasks both have."""
    first, rows = comp.methods[0], []
    for other in comp.methods[1:]:
        tx, x = normalized[first]
        ty, y = normalized[other]
        common = [t for t in tx if t in ty]
        if not common:
            comp.note(f"P({first} > {other}): no task in common; not computed.", (other, "poi"))
            rows.append(dict(method=other, point=np.nan, lo=np.nan, hi=np.nan, n_tasks=0))
            continue
        if len(common) < max(len(tx), len(ty)):
            comp.note(
                f"P({first} > {other}) uses the {plural(len(common), 'task')} both methods have.",
                (other, "poi"),
            )
        e = bootstrap_improvement(
            x[:, [tx.index(t) for t in common]], y[:, [ty.index(t) for t in common]], rng, reps
        )
        rows.append(
            dict(
                method=other,
                point=float(e.point),
                lo=float(e.lo),
                hi=float(e.hi),
                n_tasks=len(common),
            )
        )
    return pd.DataFrame(rows, columns=["method", "point", "lo", "hi", "n_tasks"])


def _successes(
    episodes: pd.DataFrame, comp: Comparison, rng: np.random.Generator, reps: int
) -> pd.DataFrame:
    """Per (method, task, item): success rate in % (mean over seeds, 95% CI) and the runs that
    ever had it."""
    rows = []
    for method in comp.methods:
        table = success_table(episodes[episodes["method"] == method], comp.suite, comp.rule)
        for task, group in table.groupby("task", sort=False):
            wide = group.pivot(index="seed", columns="item", values="rate")
            items = list(dict.fromkeys(group["item"]))
            rates = wide.reindex(columns=items).to_numpy(dtype=np.float64)
            scored = ~np.isnan(rates).all(axis=1)
            obtained = group.groupby("item")["obtained"].sum()
            est = (
                bootstrap(rates[scored], {"m": task_means}, rng, reps)["m"]
                if scored.any()
                else None
            )
            for i, item in enumerate(items):
                rows.append(
                    dict(
                        method=method,
                        task=task,
                        item=item,
                        n_seeds=int(scored.sum()),
                        rate=est.point[i] if est else np.nan,
                        rate_lo=est.lo[i] if est else np.nan,
                        rate_hi=est.hi[i] if est else np.nan,
                        obtained=int(obtained[item]),
                        n_runs=int(group["seed"].nunique()),
                    )
                )
    return pd.DataFrame(rows)


# --- rendering -----------------------------------------------------------------------


def _num(x: float) -> str:
    if not np.isfinite(x):
        return "-"
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def _cell(point, lo, hi, marks=()) -> str:
    """``point [lo, hi]`` and the cell's note marks; ``-`` where there is no value."""
    text = f"{_num(point)} [{_num(lo)}, {_num(hi)}]" if np.isfinite(point) else "-"
    return text + "".join(f" [{n}]" for n in marks)


def _success_label(comp: Comparison, task: str, item: str) -> str:
    several = comp.successes["task"].nunique() > 1
    return f"{item} (% of episodes{', ' + task if several else ''})"


def grid(comp: Comparison) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, rows and notes: tasks, success items, aggregates (normalised, %), then
    P(improvement); without score references one score column per method and no
    aggregates. Notes are numbered in the order their marks first appear in the rows
    (left to right, top to bottom); a note on no shown cell comes last."""
    kinds = ("score", "norm. %") if normalizes(comp.suite) else ("score",)
    header = ["Task"] + [f"{m} {kind}" for m in comp.methods for kind in kinds]
    number: dict[int, int] = {}

    def marks(key: tuple[str, str]) -> list[int]:
        return sorted(number.setdefault(n, len(number) + 1) for n in comp.marks.get(key, []))

    rows = []
    by = comp.per_task.set_index(["task", "method"]) if len(comp.per_task) else None
    for task in comp.task_rows:
        row = [task]
        for m in comp.methods:
            if by is not None and (task, m) in by.index:
                r = by.loc[(task, m)]
                cells = [
                    _cell(r.raw, r.raw_lo, r.raw_hi, marks((m, task))),
                    _cell(100 * r.norm, 100 * r.norm_lo, 100 * r.norm_hi),
                ]
            else:
                cells = [_cell(np.nan, np.nan, np.nan, marks((m, task))), "-"]
            row += cells[: len(kinds)]
        rows.append(row)
    if len(comp.successes):
        succ = comp.successes.set_index(["task", "item", "method"])
        for task, item in dict.fromkeys(zip(comp.successes["task"], comp.successes["item"])):
            row = [_success_label(comp, task, item)]
            for m in comp.methods:
                if (task, item, m) in succ.index:
                    r = succ.loc[(task, item, m)]
                    row += [
                        f"{_cell(r.rate, r.rate_lo, r.rate_hi)} ({r.obtained:.0f} of "
                        f"{plural(int(r.n_runs), 'run')})",
                        "",
                    ]
                else:
                    row += ["-", ""]
            rows.append(row)
    agg = comp.aggregates.set_index(["metric", "method"])
    for name, label in AGGREGATE_NAMES.items() if normalizes(comp.suite) else ():
        row = [f"**{label}** (norm. %)"]
        for m in comp.methods:
            r = agg.loc[(name, m)]
            row += ["", _cell(100 * r.point, 100 * r.lo, 100 * r.hi, marks((m, name)))]
        rows.append(row)
    first = comp.methods[0]
    for r in comp.improvement.itertuples():
        row = [f"**P({first} > {r.method})**"]
        for m in comp.methods:  # in the method's last column
            cell = _cell(r.point, r.lo, r.hi, marks((m, "poi"))) if m == r.method else ""
            row += [""] * (len(kinds) - 1) + [cell]
        rows.append(row)
    for n in range(1, len(comp.notes) + 1):
        number.setdefault(n, len(number) + 1)
    notes = [text for _, text in sorted((number[n], text) for n, text in enumerate(comp.notes, 1))]
    return header, rows, notes


def rule_line(comp: Comparison) -> str:
    """How the table was made: final-score rule, budget and its source, window,
    treatment of runs without an episode in the window, CIs."""
    suite, rule = comp.suite, comp.rule
    episodes = "evaluation episodes (run.eval_every)" if comp.evaluation else "episodes"
    how = (
        f"Crafter score (%) of the {episodes}"
        if suite.run_score == "crafter"
        else f"mean score of the {episodes}"
    )
    capped = rule.window_frames == rule.budget_frames < suite.final_window_frames
    window = f"window {rule.window_frames:,.0f} frames" + (
        f" (the suite's {suite.final_window_frames:,} capped at the budget)" if capped else ""
    )
    missing = f"{MISSING[rule.missing]} (--missing {rule.missing}" + (
        "; the default, as it takes no score from outside a run's own window)"
        if rule.missing == DEFAULT_MISSING
        else ")"
    )
    text = (
        f"{suite.name}: final score = {how} ending in {_window(rule)}: "
        f"budget {rule.budget_frames:,.0f} frames ({rule.budget_from}), {window}. "
        f"Runs with no episode in the window: {missing}. "
        f"Per task: mean over seeds [95% CI, stratified bootstrap, {comp.reps:,} resamples]; "
    )
    if normalizes(suite):
        text += (
            f"normalised score = {suite.normalization()}; normalised scores and aggregates in %."
        )
    else:
        text += (
            f"raw scores only: {suite.name} has no score references, so there are no normalised "
            "scores and no aggregates over tasks (they need a common scale)."
        )
    if comp.sources:
        text += f" Published scores: {comp.sources}."
    if len(comp.successes):
        text += (
            " Success rows: % of the scored episodes with the item, mean over seeds [95% CI]; "
            "(k of n runs): runs with it in at least one episode up to the budget."
        )
    return text


def to_markdown(comp: Comparison) -> str:
    header, rows, notes = grid(comp)
    lines = [rule_line(comp), "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [""] + [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
    ):
        text = text.replace(a, b)
    if text.startswith("**") and "**" in text[2:]:
        end = text.index("**", 2)
        text = r"\textbf{" + text[2:end] + "}" + text[end + 2 :]
    return text


def caption(comp: Comparison) -> str:
    """The LaTeX table's caption: what the numbers are, in one sentence, with no file path
    (the full rule line, which may name a local --published-dir, goes to % comments)."""
    score = "Crafter score (%)" if comp.suite.run_score == "crafter" else "mean episode score"
    norm = "; normalised scores and aggregates in %" if normalizes(comp.suite) else ""
    return (
        f"{comp.suite.name}: final {score} in {_window(comp.rule)}, per task the mean over "
        f"seeds [95% CI, stratified bootstrap]{norm}."
    )


def label(comp: Comparison) -> str:
    """``tab:<suite>``: what the LaTeX table's ``\\label`` names it, for ``\\ref``."""
    return f"tab:{comp.suite.name}"


def to_latex(comp: Comparison) -> str:
    header, rows, notes = grid(comp)
    lines = [
        *("% " + line for line in rule_line(comp).splitlines()),
        r"\begin{table}",
        r"\centering",
        r"\caption{" + _tex(caption(comp)) + "}",
        r"\label{" + label(comp) + "}",
        r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
        r"\toprule",
        " & ".join(_tex(h) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_tex(c) for c in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [r"\par\footnotesize [" + str(i) + "] " + _tex(n) for i, n in enumerate(notes, 1)]
    lines += [r"\end{table}"]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = [
    "section",
    "name",
    "task",
    "method",
    "quantity",
    "unit",
    "value",
    "lo",
    "hi",
    "std",
    "n_seeds",
    "n_tasks",
    "n_runs",
    "notes",
]


def to_csv(comp: Comparison) -> str:
    """Long format: one quantity per row with its ``unit`` (normalised scores, aggregates
    and success rates in percent, probabilities as fractions); ``n_seeds`` counts seeds
    of a task, ``n_tasks`` tasks of an aggregate, ``n_runs`` runs; the text of every note
    on a row in its ``notes`` (a task row the markdown shows as ``-`` has an empty value
    and its notes)."""

    def notes(method, key):
        return " ".join(comp.notes[n - 1] for n in comp.marks.get((method, key), []))

    unit = "Crafter score %" if comp.suite.run_score == "crafter" else "return"
    rows = []
    by = comp.per_task.set_index(["task", "method"]) if len(comp.per_task) else None
    quantities = ["score", "normalized"] if normalizes(comp.suite) else ["score"]
    for (
        task
    ) in comp.task_rows:  # the rows the table shows, a method without a score with an empty value
        for m in comp.methods:
            common = dict(section="task", name=task, task=task, method=m, notes=notes(m, task))
            if by is None or (task, m) not in by.index:
                rows += [
                    dict(common, quantity=q, unit=unit if q == "score" else "%", n_seeds=0)
                    for q in quantities
                ]
                continue
            r = by.loc[(task, m)]
            common["n_seeds"] = r.n_seeds
            rows.append(
                dict(
                    common,
                    quantity="score",
                    unit=unit,
                    value=r.raw,
                    lo=r.raw_lo,
                    hi=r.raw_hi,
                    std=r.raw_std,
                )
            )
            if normalizes(comp.suite):
                rows.append(
                    dict(
                        common,
                        quantity="normalized",
                        unit="%",
                        value=100 * r.norm,
                        lo=100 * r.norm_lo,
                        hi=100 * r.norm_hi,
                        std=100 * r.norm_std,
                    )
                )
    for r in comp.successes.itertuples():
        common = dict(
            section="success",
            name=r.item,
            task=r.task,
            method=r.method,
            n_seeds=r.n_seeds,
            n_runs=r.n_runs,
        )
        rows.append(
            dict(
                common,
                quantity="episodes_with_item",
                unit="%",
                value=r.rate,
                lo=r.rate_lo,
                hi=r.rate_hi,
            )
        )
        rows.append(dict(common, quantity="runs_with_item", unit="runs", value=r.obtained))
    for r in comp.aggregates.itertuples():
        rows.append(
            dict(
                section="aggregate",
                name=r.metric,
                method=r.method,
                quantity=r.metric,
                unit="%",
                value=100 * r.point,
                lo=100 * r.lo,
                hi=100 * r.hi,
                n_tasks=r.n_tasks,
                n_runs=r.n_runs,
                notes=notes(r.method, r.metric),
            )
        )
    for r in comp.improvement.itertuples():
        rows.append(
            dict(
                section="probability_of_improvement",
                name=f"P({comp.methods[0]} > {r.method})",
                method=r.method,
                quantity="probability_of_improvement",
                unit="probability",
                value=r.point,
                lo=r.lo,
                hi=r.hi,
                n_tasks=r.n_tasks,
                notes=notes(r.method, "poi"),
            )
        )
    out = pd.DataFrame(rows, columns=CSV_COLUMNS)
    counts = ["n_seeds", "n_tasks", "n_runs"]
    out[counts] = out[counts].astype("Int64")  # integers, blank where a count does not apply
    return out.to_csv(index=False)


FORMATS = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}


def render(comp: Comparison, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is unknown; allowed: {', '.join(FORMATS)}")
    return FORMATS[fmt](comp)
