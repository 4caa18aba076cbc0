"""What the figures say: readable frame ticks, labels, a legend clear of every label, percent
like the tables, the CI named; at one seed and at five. Episodes are small synthetic tables."""

import numpy as np
import pandas as pd
import pytest

import suites
from analysis import plots
from analysis.metrics import aggregate_iqm

ATARI = suites.get_suite("atari100k")


def _episodes(seeds: int, tasks=("pong", "breakout", "alien"), method="ours", every=20_000) -> pd.DataFrame:
    rows = []
    for task in tasks:
        random, human = ATARI.score_refs[task]
        for seed in range(seeds):
            frames = np.arange(every, 400_001, every, dtype=np.float64)
            score = random + (human - random) * frames / 400_000 * (1 + 0.1 * seed)
            rows.append(pd.DataFrame({"method": method, "task": task, "seed": seed, "frames": frames,
                                      "step": frames / 4, "score": score}))
    return pd.concat(rows, ignore_index=True)


def test_compact_tick_labels():
    assert [plots.compact(x) for x in (0, 250, 1_000, 200_000, 1_500_000, 2e8, -0.5)] == [
        "0", "250", "1k", "200k", "1.5M", "200M", "-0.5"]


def _texts(labels) -> list[str]:
    return [t.get_text() for t in labels if t.get_text()]


@pytest.mark.parametrize("seeds", [1, 5])
def test_curve_grid_reads(seeds):
    episodes = pd.concat([_episodes(seeds), _episodes(5, tasks=("pong", "breakout", "alien", "boxing"), method="other")])
    fig = plots.plot_curves(episodes, ATARI, ["ours", "other"], np.random.default_rng(0), 400_000, bins=10, reps=100)
    fig.canvas.draw()
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert [ax.get_title() for ax in axes] == ["alien", "breakout", "pong"]  # ours first: its tasks only
    for ax in axes:
        ticks = _texts(ax.get_xticklabels())
        assert ticks == ["0", "200k", "400k"]
        boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()]
        assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:]))  # no two labels touch
    assert fig.get_supylabel() == "episode return (mean over seeds)" and fig.get_supxlabel() == "environment frames"
    legend = fig.legends[0]
    texts = _texts(legend.get_texts())
    assert texts == [f"ours ({seeds} seed{'s' if seeds > 1 else ''})", "other (5 seeds)"]
    assert "95% CI, stratified bootstrap, 100 resamples" in legend.get_title().get_text()
    top = max(ax.get_tightbbox().y1 for ax in axes)  # panels with their titles
    assert legend.get_window_extent().y0 >= top  # above the panels: clear of titles and of the x label below


@pytest.mark.parametrize("seeds", [1, 5])
def test_aggregate_is_in_percent_and_names_its_band(seeds):
    episodes = _episodes(seeds, every=100_000)  # one episode per bin, at its end
    fig = plots.plot_aggregate(episodes, ATARI, ["ours"], np.random.default_rng(0), 400_000, bins=4, reps=100)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "IQM human-normalised score (%)" and ax.get_xlabel() == "environment frames"
    assert "95% CI, stratified bootstrap" in ax.get_title()
    # The last bin: every run is at (1 + 0.1 seed) x its human score (normalised 1 + 0.1 seed).
    expected = 100 * aggregate_iqm(np.repeat((1 + 0.1 * np.arange(seeds))[:, None], 3, axis=1))
    assert ax.get_lines()[0].get_ydata()[-1] == pytest.approx(expected)
    legend = fig.legends[0]
    assert _texts(legend.get_texts()) == [f"ours (3 tasks, {seeds} seed{'s' if seeds > 1 else ''})"]
    fig.canvas.draw()
    assert legend.get_window_extent().y1 <= ax.get_tightbbox().y0  # under the x label, clear of the curves


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
    episodes = pd.DataFrame({"method": "ours", "task": "pong", "seed": [0, 1], "frames": 1000.0, "step": 250.0,
                             "score": [-20.0, -10.0]})
    fig = plots.plot_curves(episodes, ATARI, ["ours"], np.random.default_rng(0), 1500, bins=30, reps=200)
    ax = fig.axes[0]
    (bar,) = ax.containers
    assert bar.lines[0].get_ydata()[0] == pytest.approx(-15.0)  # mean of the two seeds, with its CI bar
    assert _texts(ax.get_xticklabels()) == ["0", "500", "1k", "1.5k"]


def test_evaluation_episodes_are_named_in_the_labels_and_the_rule_line():
    """New-user test, fault 6: with --episodes eval the y-labels and the table's rule line read as for training episodes."""
    from analysis.tables import FinalRule, compare, rule_line

    episodes = _episodes(2, every=100_000)
    fig = plots.plot_curves(episodes, ATARI, ["ours"], np.random.default_rng(0), 400_000, bins=4, reps=50,
                            evaluation=True)
    assert fig.get_supylabel() == "evaluation episodes: episode return (mean over seeds)"
    fig = plots.plot_aggregate(episodes, ATARI, ["ours"], np.random.default_rng(0), 400_000, bins=4, reps=50,
                               evaluation=True)
    assert fig.axes[0].get_ylabel() == "evaluation episodes: IQM human-normalised score (%)"
    rule = FinalRule.for_suite(ATARI, 400_000)
    for evaluation, text in [(True, "final score = mean score of the evaluation episodes (run.eval_every) ending in"),
                             (False, "final score = mean score of the episodes ending in")]:
        comp = compare(episodes, ATARI, rule, ["ours"], np.random.default_rng(0), reps=50, evaluation=evaluation)
        assert text in rule_line(comp)


def test_table_help_shows_one_percent_sign(capsys):
    """New-user test, fault 6: `dreamerbench table --help` showed a literal 95%%."""
    from experiments.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["table", "--help"])
    out = capsys.readouterr().out
    assert "95% stratified-bootstrap CIs" in " ".join(out.split()) and "%%" not in out


def test_curves_of_an_open_task_suite_show_its_own_tasks():
    """gym's tasks are whatever the runs used (here a MODULE:ID task outside its example list)."""
    episodes = _episodes(2, tasks=("pong",)).assign(task="my_envs:my_envs/Corridor-v0")
    fig = plots.plot_curves(episodes, suites.get_suite("gym"), ["ours"], np.random.default_rng(0), 400_000,
                            bins=10, reps=50)
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert [ax.get_title() for ax in axes] == ["my_envs:my_envs/Corridor-v0"]


def test_a_table_of_an_open_task_suite_is_refused_in_one_line_naming_why():
    """No score references: the table says so, not that a valid gym task is outside the suite."""
    from analysis.scores import FinalRule
    from analysis.tables import compare

    gym = suites.get_suite("gym")
    episodes = _episodes(2, tasks=("pong",)).assign(task="my_envs:my_envs/Corridor-v0")
    rule = FinalRule(budget_frames=400_000, window_frames=gym.final_window_frames)
    with pytest.raises(ValueError, match=r"^suite='gym' has no score references, so a table cannot normalise"):
        compare(episodes, gym, rule, ["ours"], np.random.default_rng(0), reps=50)
