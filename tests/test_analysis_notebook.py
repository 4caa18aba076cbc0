"""notebooks/analysis.ipynb runs headless against a tiny MLflow store and the published files."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from test_analysis_data import PUBLISHED, _spec, record_sweep

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not PUBLISHED.is_dir(), reason=f"{PUBLISHED} not present")
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
    env = {
        "DREAMERBENCH_TRACKING_URI": uri,
        "DREAMERBENCH_SWEEP": "nb",
        "DREAMERBENCH_PUBLISHED": str(PUBLISHED),
        "DREAMERBENCH_SUITE": "atari100k",
        "DREAMERBENCH_REPS": "500",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(ROOT / "notebooks" / "analysis.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    table = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "| pong | " in table and "dreamerbench" in table
    # The plot cells draw: an image, not only a "<Figure size ...>" line (plots.py used to
    # switch matplotlib to Agg at import).
    plotted = [c for c in nb.cells if c.cell_type == "code" and "plots.plot_" in "".join(c.source)]
    assert len(plotted) == 2
    for cell in plotted:
        assert any("image/png" in o.get("data", {}) for o in cell.outputs), cell.outputs
