"""What the figures say: readable frame ticks, labels, a legend clear of every label, percent
like the tables, the CI named; at one seed and at five. Episodes are small synthetic tables."""

import io

import numpy as np
import pandas as pd
import pytest

from dreamerbench import suites
from dreamerbench.analysis import plots
from dreamerbench.analysis.metrics import aggregate_iqm

ATARI = suites.get_suite("atari100k")


def _episodes(
    seeds: int, tasks=("pong", "breakout", "alien"), method="ours", every=20_000
) -> pd.DataFrame:
    rows = []
    for task in tasks:
        random, human = ATARI.score_refs[task]
        for seed in range(seeds):
            frames = np.arange(every, 400_001, every, dtype=np.float64)
            score = random + (human - random) * frames / 400_000 * (1 + 0.1 * seed)
            rows.append(
                pd.DataFrame(
                    {
                        "method": method,
                        "task": task,
                        "seed": seed,
                        "frames": frames,
                        "step": frames / 4,
                        "score": score,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_compact_tick_labels():
    assert [plots.compact(x) for x in (0, 250, 1_000, 200_000, 1_500_000, 2e8, -0.5)] == [
        "0",
        "250",
        "1k",
        "200k",
        "1.5M",
        "200M",
        "-0.5",
    ]


def _texts(labels) -> list[str]:
    return [t.get_text() for t in labels if t.get_text()]


@pytest.mark.parametrize("seeds", [1, 5])
def test_curve_grid_reads(seeds):
    episodes = pd.concat(
        [
            _episodes(seeds),
            _episodes(5, tasks=("pong", "breakout", "alien", "boxing"), method="other"),
        ]
    )
    fig = plots.plot_curves(
        episodes, ATARI, ["ours", "other"], np.random.default_rng(0), 400_000, bins=10, reps=100
    )
    fig.canvas.draw()
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert [ax.get_title() for ax in axes] == [
        "alien",
        "breakout",
        "pong",
    ]  # ours first: its tasks only
    for ax in axes:
        ticks = _texts(ax.get_xticklabels())
        assert ticks == ["0", "200k", "400k"]
        boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()]
        assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:]))  # no two labels touch
    assert (
        fig.get_supylabel() == "episode return (mean over seeds)"
        and fig.get_supxlabel() == "environment frames"
    )
    legend = fig.legends[0]
    texts = _texts(legend.get_texts())
    assert texts == [f"ours ({seeds} seed{'s' if seeds > 1 else ''})", "other (5 seeds)"]
    assert "95% CI, stratified bootstrap, 100 resamples" in legend.get_title().get_text()
    top = max(ax.get_tightbbox().y1 for ax in axes)  # panels with their titles
    assert (
        legend.get_window_extent().y0 >= top
    )  # above the panels: clear of titles and of the x label below


@pytest.mark.parametrize("seeds", [1, 5])
def test_aggregate_is_in_percent_and_names_its_band(seeds):
    episodes = _episodes(seeds, every=100_000)  # one episode per bin, at its end
    fig = plots.plot_aggregate(
        episodes, ATARI, ["ours"], np.random.default_rng(0), 400_000, bins=4, reps=100
    )
    ax = fig.axes[0]
    assert (
        ax.get_ylabel() == "IQM human-normalised score (%)"
        and ax.get_xlabel() == "environment frames"
    )
    assert "95% CI, stratified bootstrap" in ax.get_title()
    # The last bin: every run is at (1 + 0.1 seed) x its human score (normalised 1 + 0.1 seed).
    expected = 100 * aggregate_iqm(np.repeat((1 + 0.1 * np.arange(seeds))[:, None], 3, axis=1))
    assert ax.get_lines()[0].get_ydata()[-1] == pytest.approx(expected)
    legend = fig.legends[0]
    assert _texts(legend.get_texts()) == [f"ours (3 tasks, {seeds} seed{'s' if seeds > 1 else ''})"]
    fig.canvas.draw()
    assert (
        legend.get_window_extent().y1 <= ax.get_tightbbox().y0
    )  # under the x label, clear of the curves


def test_profile_is_in_percent():
    finals = {"ours": np.array([[0.5, 1.0], [1.5, np.nan]])}
    fig = plots.plot_profile(finals, ATARI, np.random.default_rng(0), reps=100)
    ax = fig.axes[0]
    assert ax.get_xlabel() == r"final human-normalised score $\tau$ (%)"
    xs = ax.get_lines()[0].get_xdata()
    assert xs[-1] == pytest.approx(1.5 * 1.05 * 100)
    assert _texts(fig.legends[0].get_texts()) == ["ours (2 tasks, 3 runs)"]


def test_a_lone_point_gets_a_ci_bar():
    # A quickstart-sized run: one episode per run, at 1000 of 1500 frames.
    episodes = pd.DataFrame(
        {
            "method": "ours",
            "task": "pong",
            "seed": [0, 1],
            "frames": 1000.0,
            "step": 250.0,
            "score": [-20.0, -10.0],
        }
    )
    fig = plots.plot_curves(
        episodes, ATARI, ["ours"], np.random.default_rng(0), 1500, bins=30, reps=200
    )
    ax = fig.axes[0]
    (bar,) = ax.containers
    assert bar.lines[0].get_ydata()[0] == pytest.approx(
        -15.0
    )  # mean of the two seeds, with its CI bar
    assert _texts(ax.get_xticklabels()) == ["0", "500", "1k", "1.5k"]


def test_evaluation_episodes_are_named_in_the_labels_and_the_rule_line():
    """New-user test, fault 6: with --episodes eval the y-labels and the table's rule line read
    as for training episodes."""
    from dreamerbench.analysis.tables import FinalRule, compare, rule_line

    episodes = _episodes(2, every=100_000)
    fig = plots.plot_curves(
        episodes,
        ATARI,
        ["ours"],
        np.random.default_rng(0),
        400_000,
        bins=4,
        reps=50,
        evaluation=True,
    )
    assert fig.get_supylabel() == "evaluation episodes: episode return (mean over seeds)"
    fig = plots.plot_aggregate(
        episodes,
        ATARI,
        ["ours"],
        np.random.default_rng(0),
        400_000,
        bins=4,
        reps=50,
        evaluation=True,
    )
    assert fig.axes[0].get_ylabel() == "evaluation episodes: IQM human-normalised score (%)"
    rule = FinalRule.for_suite(ATARI, 400_000)
    for evaluation, text in [
        (True, "final score = mean score of the evaluation episodes (run.eval_every) ending in"),
        (False, "final score = mean score of the episodes ending in"),
    ]:
        comp = compare(
            episodes,
            ATARI,
            rule,
            ["ours"],
            np.random.default_rng(0),
            reps=50,
            evaluation=evaluation,
        )
        assert text in rule_line(comp)


def test_table_help_shows_one_percent_sign(capsys):
    """New-user test, fault 6: `dreamerbench table --help` showed a literal 95%%."""
    from dreamerbench.experiments.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["table", "--help"])
    out = capsys.readouterr().out
    assert "95% stratified-bootstrap CIs" in " ".join(out.split()) and "%%" not in out


def test_curves_of_an_open_task_suite_show_its_own_tasks():
    """gym's tasks are whatever the runs used (here a MODULE:ID task outside its example list)."""
    episodes = _episodes(2, tasks=("pong",)).assign(task="my_envs:my_envs/Corridor-v0")
    fig = plots.plot_curves(
        episodes,
        suites.get_suite("gym"),
        ["ours"],
        np.random.default_rng(0),
        400_000,
        bins=10,
        reps=50,
    )
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert [ax.get_title() for ax in axes] == ["my_envs:my_envs/Corridor-v0"]


def _final_episodes(
    finals: dict[tuple[str, str], list[float]], budget: int = 400_000, every: int = 1_000
):
    """Episodes whose score in the final window (and only there) is the given final per seed."""
    rows = []
    for (method, task), per_seed in finals.items():
        for seed, final in enumerate(per_seed):
            frames = np.arange(every, budget + 1, every, dtype=np.float64)
            score = np.where(frames > budget - 10_000, final, -1e6)  # gym's window: 10k frames
            rows.append(
                pd.DataFrame(
                    {
                        "method": method,
                        "task": task,
                        "seed": seed,
                        "frames": frames,
                        "step": frames,
                        "score": score,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_a_table_of_an_open_task_suite_shows_raw_scores_and_no_aggregates():
    """gym/dm_env have no score references: per-task raw scores with CIs and P(improvement),
    which compares runs within a task; no normalised column, no aggregate over tasks."""
    from dreamerbench.analysis.scores import FinalRule
    from dreamerbench.analysis.tables import compare, render

    gym = suites.get_suite("gym")
    corridor, cartpole, maze = (
        "my_envs:my_envs/Corridor-v0",
        "CartPole-v1",
        "my_envs:my_envs/Maze-v0",
    )
    episodes = _final_episodes(
        {
            ("ours", corridor): [10, 20, 30],
            ("ours", cartpole): [1, 2, 3],
            ("ours", maze): [5, 5, 5],
            ("other", corridor): [0, 0, 0],
            ("other", cartpole): [2, 2, 2],
        }
    )
    rule = FinalRule(budget_frames=400_000, window_frames=gym.final_window_frames)
    comp = compare(episodes, gym, rule, ["ours", "other"], np.random.default_rng(0), reps=2_000)
    per_task = comp.per_task.set_index(["method", "task"])
    assert (
        per_task.loc[("ours", corridor), "raw"] == 20.0
        and per_task.loc[("other", cartpole), "raw"] == 2.0
    )
    lo, hi = per_task.loc[("ours", corridor), ["raw_lo", "raw_hi"]]
    assert 10.0 <= lo < 20.0 < hi <= 30.0
    assert per_task["norm"].isna().all() and comp.aggregates.empty
    # P(ours > other) per task: corridor 1, cartpole (0 + 0.5 + 1) / 3 = 0.5; the maze is not in
    # common.
    (poi,) = comp.improvement.itertuples()
    assert poi.point == pytest.approx(0.75) and poi.n_tasks == 2
    assert comp.notes == [
        f"other: no runs on 1 of 3 tasks ({maze}).",
        "P(ours > other) uses the 2 tasks both methods have.",
    ]

    markdown = render(comp, "markdown")
    rule_text, _, header, _, *rows = markdown.splitlines()
    assert (
        "raw scores only: gym has no score references" in rule_text
        and "normalised score =" not in rule_text
    )
    assert header == "| Task | ours score | other score |"
    assert [r.split(" | ")[0] for r in rows[:4]] == [
        f"| {cartpole}",
        f"| {corridor}",
        f"| {maze}",
        "| **P(ours > other)**",
    ]
    assert rows[2] == f"| {maze} | 5.00 [5.00, 5.00] | - [1] |"  # the missing cell carries its note
    assert rows[3].startswith("| **P(ours > other)** |  | 0.75 [")
    assert "IQM" not in markdown and "norm." not in markdown
    csv = pd.read_csv(io.StringIO(render(comp, "csv")))
    assert sorted(set(csv["quantity"])) == ["probability_of_improvement", "score"]
    assert (
        len(csv[csv["quantity"] == "score"]) == 6
    )  # the missing cell is a row with its note and no value
    (missing,) = csv[(csv["name"] == maze) & (csv["method"] == "other")].itertuples()
    assert np.isnan(missing.value) and missing.notes == comp.notes[0]
    assert render(comp, "latex").count(r"\\") == 1 + 4  # header and four rows


@pytest.mark.parametrize("kind", ["aggregate", "profile"])
def test_normalised_plots_of_an_open_task_suite_are_refused_in_one_line(kind):
    gym = suites.get_suite("gym")
    episodes = _final_episodes({("ours", "CartPole-v1"): [1, 2]})
    if kind == "aggregate":
        with pytest.raises(
            ValueError, match=r"^suite='gym' has no score references, so plot --kind aggregate"
        ):
            plots.plot_aggregate(
                episodes, gym, ["ours"], np.random.default_rng(0), 400_000, bins=5, reps=50
            )
    else:
        with pytest.raises(
            ValueError, match=r"^suite='gym' has no score references, so plot --kind profile"
        ):
            plots.plot_profile({"ours": np.ones((2, 1))}, gym, np.random.default_rng(0), reps=50)


def _csv_notes(comp) -> "pd.DataFrame":
    from dreamerbench.analysis.tables import render

    return pd.read_csv(io.StringIO(render(comp, "csv")), keep_default_na=False, na_values=[""])


def test_a_task_without_a_final_score_keeps_its_row_and_notes_in_the_csv():
    """Tester, fault 2: markdown showed `Acrobot-v1 | - [1] [2] [3]`, the CSV had no Acrobot-v1
    row nor its notes."""
    from dreamerbench.analysis.scores import FinalRule
    from dreamerbench.analysis.tables import compare, render

    gym = suites.get_suite("gym")
    episodes = pd.concat(
        [
            _final_episodes({("ours", "CartPole-v1"): [1, 2]}),
            _final_episodes({("ours", "Acrobot-v1"): [-5, -6]}, budget=2_000),
        ],
        ignore_index=True,
    )
    comp = compare(
        episodes,
        gym,
        FinalRule(400_000, gym.final_window_frames),
        ["ours"],
        np.random.default_rng(0),
        reps=200,
    )
    # Its two seeds stopped at the same frame: one note names both (issue 21 item 12).
    assert "| Acrobot-v1 | - [1] [2] |" in render(comp, "markdown")
    assert comp.notes[0].startswith("ours on Acrobot-v1, seeds 0, 1: no episode in the final")
    csv = _csv_notes(comp)
    (row,) = csv[csv["name"] == "Acrobot-v1"].itertuples()
    assert (row.section, row.method, row.quantity, row.n_seeds) == (
        "task",
        "ours",
        "score",
        0,
    ) and np.isnan(row.value)
    assert row.notes == " ".join(comp.notes) and len(comp.notes) == 2
    assert comp.notes[1] == "ours: no final score on any seed of Acrobot-v1."


def test_every_note_marks_its_cells_and_reaches_the_csv():
    """atari100k: all seeds of a task stop before the window; a method lacks a task another
    has (its `-` cell is marked, not only its aggregates); P(improvement) on one common task."""
    from dreamerbench.analysis.scores import FinalRule
    from dreamerbench.analysis.tables import compare, render

    episodes = pd.concat(
        [
            _final_episodes(
                {
                    ("ours", "pong"): [1, 2],
                    ("other", "pong"): [0, 0],
                    ("other", "alien"): [300, 400],
                    ("other", "breakout"): [3, 4],
                }
            ),
            _final_episodes({("ours", "breakout"): [3, 4]}, budget=1_000),
        ],
        ignore_index=True,
    )
    comp = compare(
        episodes,
        ATARI,
        FinalRule.for_suite(ATARI, 400_000),
        ["ours", "other"],
        np.random.default_rng(0),
        reps=200,
    )
    markdown = render(comp, "markdown")
    lines = markdown.splitlines()
    assert (
        "| alien | - [1] | - | 350.0 [300.0, 400.0] |" in markdown
    )  # ours lacks alien: its cell is marked
    (breakout,) = [line for line in lines if line.startswith("| breakout |")]
    # Both seeds of breakout stopped at 1,000 frames: one note names both (issue 21 item 12).
    assert breakout.startswith("| breakout | - [2] [3] | - | 3.50 [3.00, 4.00]")
    assert any(line.startswith("[2] ours on breakout, seeds 0, 1: no episode") for line in lines)
    assert "[5] P(ours > other) uses the 1 task both methods have." in lines
    csv = _csv_notes(comp)
    for text in comp.notes:  # every note reaches the CSV, on the rows it concerns
        assert csv["notes"].fillna("").str.contains(text, regex=False).any(), text
    ours_breakout = csv[(csv["name"] == "breakout") & (csv["method"] == "ours")]
    assert (
        list(ours_breakout["quantity"]) == ["score", "normalized"]
        and ours_breakout["value"].isna().all()
    )
    assert ours_breakout["notes"].str.contains("ours: no final score on any seed of breakout").all()


def test_footnotes_are_numbered_in_order_of_appearance():
    """Notes are made method by method; the table numbers them by first mark, top to bottom,
    left to right."""
    from dreamerbench.analysis.scores import FinalRule
    from dreamerbench.analysis.tables import compare, render

    episodes = _final_episodes(
        {
            ("ours", "alien"): [1, 2],
            ("ours", "pong"): [1, 2, 3],
            ("other", "pong"): [0, 0, 0],
            ("other", "breakout"): [3, 4, 5],
            ("ours", "breakout"): [3, 4, 5],
        }
    )
    episodes = episodes[
        ~((episodes["method"] == "ours") & (episodes["task"] == "pong") & (episodes["seed"] == 1))
    ]
    comp = compare(
        episodes,
        ATARI,
        FinalRule.for_suite(ATARI, 400_000),
        ["ours", "other"],
        np.random.default_rng(0),
        reps=200,
    )
    made = [n.split(":")[0] for n in comp.notes]
    assert made == [
        "ours",
        "ours on alien",
        "ours on pong",
        "other",
        "P(ours > other) uses the 2 tasks both methods have.",
    ]
    lines = render(comp, "markdown").splitlines()
    notes = [line for line in lines if line[:1] == "["]
    # alien: ours' seeds note, then other's absent-task note; pong: ours' seed; the aggregates:
    # ours' absent tasks.
    assert notes == [f"[{i}] {comp.notes[n]}" for i, n in enumerate((1, 3, 2, 0, 4), 1)]
    (alien,) = [line for line in lines if line.startswith("| alien |")]
    assert alien.split(" | ")[1].endswith("] [1]") and alien.endswith(" | - [2] | - |")
    (pong,) = [line for line in lines if line.startswith("| pong |")]
    assert pong.split(" | ")[1].endswith("] [3]")
    (mean,) = [line for line in lines if line.startswith("| **Mean**")]
    assert mean.split(" | ")[2].endswith("] [4]")
    assert r"\par\footnotesize [2] other: no runs on 24 of 26 tasks" in render(comp, "latex")


def test_missing_last_window_starts_at_zero_and_plurals_follow_one_rule():
    from dreamerbench.analysis.scores import FinalRule
    from dreamerbench.analysis.tables import compare, plural

    assert [plural(1, "task"), plural(2, "task"), plural(0, "run"), plural(1, "run")] == [
        "1 task",
        "2 tasks",
        "0 runs",
        "1 run",
    ]
    episodes = pd.concat(
        [
            _final_episodes({("ours", "pong"): [1, 2]}),
            _final_episodes({("ours", "breakout"): [3, 4]}, budget=1_000),
        ],
        ignore_index=True,
    )
    comp = compare(
        episodes,
        ATARI,
        FinalRule.for_suite(ATARI, 400_000, missing="last"),
        ["ours"],
        np.random.default_rng(0),
        reps=200,
    )
    assert comp.notes[1].endswith("; scored on its own last episodes, (0, 1,000] frames.")
