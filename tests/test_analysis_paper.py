"""Figures and tables for a paper: TrueType fonts in PDFs, titles inside the figure, a y range,
a LaTeX caption without paths and with a label, one footnote per text, lone points unclipped."""

import gzip
import json
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from test_analysis_data import (  # noqa: F401 (cli: a fixture)
    PUBLISHED,
    _spec,
    cli,
    needs_published,
    record_sweep,
)
from test_analysis_plots import ATARI, _episodes, _final_episodes

from dreamerbench import suites
from dreamerbench.analysis import plots
from dreamerbench.analysis.scores import FinalRule
from dreamerbench.analysis.tables import compare, render


def _figures():
    """Each kind of figure; the curves with one task (the narrowest figure)."""
    rng = np.random.default_rng(0)
    one_task = _episodes(1, tasks=("pong",))
    yield plots.plot_curves(one_task, ATARI, ["ours"], rng, 400_000, bins=5, reps=100)
    yield plots.plot_aggregate(_episodes(2), ATARI, ["ours"], rng, 400_000, bins=5, reps=100)
    yield plots.plot_profile({"ours": rng.uniform(0, 1, (3, 4))}, ATARI, rng, reps=100)


@pytest.mark.parametrize("index", range(3))
def test_everything_drawn_lies_inside_the_figure(index):
    fig = list(_figures())[index]
    # The CI line at the most resamples --reps allows: the longest title.
    for text in fig.findobj(Text):
        text.set_text(text.get_text().replace("100 resamples", "200,000 resamples"))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # the final (constrained) layout
    drawn = fig.get_tightbbox(canvas.get_renderer())  # inches, every artist drawn
    width, height = fig.get_size_inches()
    assert drawn.x0 >= -0.01 and drawn.x1 <= width + 0.01, (drawn, width)
    assert drawn.y0 >= -0.01 and drawn.y1 <= height + 0.01, (drawn, height)


def test_pdf_fonts_are_truetype(tmp_path):
    fig = next(_figures())
    _, pdf = plots.save(fig, tmp_path / "f.png")
    data = pdf.read_bytes()
    # Type 42: a CID-keyed TrueType font (CIDFontType2), never a Type 3 font.
    assert b"/Subtype /CIDFontType2" in data and b"/Type3" not in data


def test_a_lone_point_on_the_border_is_drawn_whole():
    # One episode at the budget's last frame: the point sits on the x limit.
    episodes = pd.DataFrame(
        {"method": "ours", "task": "pong", "seed": [0, 1], "frames": 1500.0, "step": 375.0}
    ).assign(score=[-20.0, -10.0])
    fig = plots.plot_curves(episodes, ATARI, ["ours"], np.random.default_rng(0), 1500, reps=200)
    (bar,) = fig.axes[0].containers
    point, caps, bars = bar.lines
    assert point.get_xdata()[0] == 1500 == fig.axes[0].get_xlim()[1]
    assert not point.get_clip_on() and not any(a.get_clip_on() for a in (*caps, *bars))


def test_plot_ylim():
    rng = np.random.default_rng(0)
    curves = plots.plot_curves(
        _episodes(1), ATARI, ["ours"], rng, 400_000, bins=5, reps=100, ylim=(0, 1000)
    )
    assert {ax.get_ylim() for ax in curves.axes if ax.axison} == {(0, 1000)}
    aggregate = plots.plot_aggregate(
        _episodes(2), ATARI, ["ours"], rng, 400_000, bins=5, reps=100, ylim=(-5, 150)
    )
    assert aggregate.axes[0].get_ylim() == (-5, 150)


def test_plot_ylim_through_the_cli(tmp_path, cli, capsys):  # noqa: F811
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    spec = _spec("name: y\nsuite: atari100k\ntasks: [pong]\nseeds: 1\nsteps: 1000\n")
    record_sweep(uri, spec, lambda run: [(s, {"score": float(s)}) for s in (500, 1000)])
    base = ["plot", "--suite", "atari100k", "--runs", "y", "--tracking-uri", uri, "--reps", "100"]
    out = tmp_path / "c.png"
    assert cli([*base, "--kind", "curves", "--ylim", "0,1000", "--out", str(out)]) == 0
    assert out.is_file()
    for value in ("1000,0", "0", "a,b", "0,inf"):
        with pytest.raises(SystemExit) as stop:
            cli([*base, "--kind", "curves", "--ylim", value, "--out", str(out)])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert f"--ylim='{value}' is not allowed; allowed: LOW,HIGH: two finite numbers" in err
    assert cli([*base, "--kind", "profile", "--ylim", "0,1", "--out", str(out)]) == 2
    assert "--ylim='0.0,1.0' is not allowed; allowed: --kind curves or aggregate" in (
        capsys.readouterr().err
    )


def _comparison(published_dir: str):
    episodes = _final_episodes({("ours", "pong"): [1, 2], ("ours", "breakout"): [3, 4]})
    return compare(
        episodes,
        ATARI,
        FinalRule.for_suite(ATARI, 400_000),
        ["ours"],
        np.random.default_rng(0),
        reps=200,
        sources=f"dreamerv3 from {published_dir}",
    )


def test_latex_caption_is_short_with_a_label_and_no_path():
    comp = _comparison("/home/someone/private/scores")
    latex = render(comp, "latex")
    (caption,) = re.findall(r"\\caption\{(.*)\}", latex)
    assert "/home/someone" not in caption and len(caption) < 200
    assert caption.startswith("atari100k: final mean episode score in (390,000, 400,000] frames")
    assert r"\label{tab:atari100k}" in latex.splitlines()
    # The full rule line stays in the file, as comments above the table.
    assert latex.startswith("% atari100k: final score = ")


def test_identical_footnotes_are_one():
    comp = _comparison("x")
    before = len(comp.notes)
    for task in ("pong", "breakout") * 32:  # 64 identical notes
        comp.note("dreamerv3: published with 5 seeds.", ("ours", task))
    assert len(comp.notes) == before + 1
    markdown = render(comp, "markdown")
    assert markdown.count("dreamerv3: published with 5 seeds.") == 1
    number = comp.notes.index("dreamerv3: published with 5 seeds.") + 1
    assert comp.marks[("ours", "pong")].count(number) == 1


def _footnotes(markdown: str) -> list[str]:
    """The footnote lines of a markdown table (``[n] text``)."""
    return [line for line in markdown.splitlines() if re.match(r"\[\d+\] ", line)]


def test_64_identical_baseline_footnotes_are_one_through_the_table(tmp_path, cli, capsys):  # noqa: F811
    """Issue 21 item 12 for real: a baseline whose runs stopped at half the budget on 16 DMC tasks
    (4 seeds each) had 64 footnotes saying the same of each run; ``dreamerbench table`` now
    prints one, naming every run and marking each of their tasks."""
    tasks = suites.get_suite("dmc_proprio").tasks
    stopped = tasks[2:]  # 16 tasks
    runs = [
        {
            "task": f"dmc_{task}",
            "method": "halfway",
            "seed": seed,
            "xs": [240_000.0, 250_000.0] if task in stopped else [480_000.0, 490_000.0],
            "ys": [100.0 + seed, 200.0 + seed],
        }
        for task in tasks
        for seed in range(4)
    ]
    with gzip.open(tmp_path / "dmc_proprio-halfway.json.gz", "wt") as file:
        json.dump(runs, file)
    args = ["table", "--suite", "dmc_proprio", "--baseline", "halfway", "--reps", "100"]
    assert cli([*args, "--published-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    said = "no episode in the final window (475,000, 500,000] frames (its last ended at 250,000 "
    (note,) = [line for line in _footnotes(out) if said in line]
    where = "; ".join(f"{task}, seeds 0, 1, 2, 3" for task in stopped)
    number = note.split()[0]
    assert note == f"{number} halfway on {where}: {said}frames); left out."
    for task in stopped:  # the note marks each task's row once
        (row,) = [line for line in out.splitlines() if line.startswith(f"| {task} |")]
        assert row.count(number) == 1, row
    assert len(_footnotes(out)) == 2  # and the note that these tasks have no final score


@needs_published
def test_published_tasks_missing_the_same_seed_share_one_footnote(cli, capsys):  # noqa: F811
    """The published DreamerV3 Atari57 runs lack seed 4 on six games, seed 0 on four, ...: one
    footnote for each statement (16 with the two runs that miss the final window), not 31."""
    args = ["table", "--suite", "atari57", "--baseline", "dreamerv3", "--reps", "100"]
    assert cli([*args, "--published-dir", str(PUBLISHED)]) == 0
    out = capsys.readouterr().out
    notes = _footnotes(out)
    (seed4,) = [line for line in notes if line.endswith(": 5 of 6 seeds; missing seed(s) 4.")]
    games = ["alien", "beam_rider", "kangaroo", "seaquest", "tennis", "venture"]
    assert (
        seed4.split(" ", 1)[1]
        == f"dreamerv3 on {'; '.join(games)}: 5 of 6 seeds; missing seed(s) 4."
    )
    for game in games:
        (row,) = [line for line in out.splitlines() if line.startswith(f"| {game} |")]
        assert seed4.split()[0] in row
    assert len(notes) == len(set(notes)) == 16
