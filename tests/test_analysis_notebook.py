"""notebooks/analysis.ipynb runs headless against a tiny MLflow store and the published files."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from test_analysis_data import PUBLISHED, _spec, record_sweep

ROOT = Path(__file__).resolve().parents[1]


needs_published = pytest.mark.skipif(not PUBLISHED.is_dir(), reason=f"{PUBLISHED} not present")


def _execute(uri: str, sweep: str, tmp_path, monkeypatch, **extra: str):
    """The notebook executed on ``sweep`` of store ``uri`` (``extra``: more variables)."""
    env = {
        "DREAMERBENCH_TRACKING_URI": uri,
        "DREAMERBENCH_SWEEP": sweep,
        "DREAMERBENCH_PUBLISHED": str(PUBLISHED),
        "DREAMERBENCH_SUITE": "atari100k",
        "DREAMERBENCH_REPS": "500",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **extra,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(ROOT / "notebooks" / "analysis.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    return nb


def _text(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@needs_published
def test_notebook_executes(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    spec = _spec(
        "name: nb\nsuite: atari100k\ntasks: [pong]\nseeds: 1\noverrides: {agent.size: debug}\n"
    )
    record_sweep(
        uri,
        spec,
        lambda run: [(step, {"score": -20.0 + step / 100}) for step in (25_000, 50_000, 99_000)],
    )
    nb = _execute(uri, "nb", tmp_path, monkeypatch)
    table = _text(nb)
    assert "| pong | " in table and "dreamerbench" in table
    # The plot cells draw: an image, not only a "<Figure size ...>" line (plots.py used to
    # switch matplotlib to Agg at import).
    plotted = [c for c in nb.cells if c.cell_type == "code" and "plots.plot_" in "".join(c.source)]
    assert len(plotted) == 2
    for cell in plotted:
        assert any("image/png" in o.get("data", {}) for o in cell.outputs), cell.outputs


@needs_published
def test_budget_frames_decides_where_the_runs_budgets_differ(tmp_path, monkeypatch):
    # Two runs of one experiment with different run.steps: the notebook used to raise
    # "pass --budget-frames" before reading DREAMERBENCH_BUDGET_FRAMES.
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    for task, steps in (("pong", 1000), ("breakout", 500)):
        spec = _spec(
            f"name: mixed\nsuite: atari100k\ntasks: [{task}]\nseeds: 1\nsteps: {steps}\n"
            "overrides: {agent.size: debug}\n"
        )
        record_sweep(uri, spec, lambda run: [(s, {"score": float(s)}) for s in (250, 500)])
    nb = _execute(uri, "mixed", tmp_path, monkeypatch, DREAMERBENCH_BUDGET_FRAMES="2000")
    text = _text(nb)
    assert "budget_frames=2000.0" in text and "| pong | " in text and "| breakout | " in text
