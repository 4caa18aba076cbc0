"""Issue 21 item 13 through the trainer (the stub agent stands in for DreamerV3): the episode
videos a run makes reach TensorBoard and W&B once each across a stop and a resume, as they reach
MLflow (tests/test_watching.py)."""

from __future__ import annotations

import pytest
from test_outputs import offline_wandb
from test_rundir import EPISODE, train

from dreamerbench.core.records import media_files, media_step


def test_videos_reach_tensorboard_and_wandb_once_across_a_resume(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    extra = {
        "run.outputs": ["tensorboard", "wandb"],
        "run.video_every": EPISODE,
        "run.video_render": True,
    }
    train(tmp_path, 4 * EPISODE, stop_after_saves=2, **extra)  # stopped, as by Ctrl-C
    train(tmp_path, 4 * EPISODE, **extra)  # resumed to the end
    videos = media_files(tmp_path / "media")
    assert len(videos) >= 2 and all(path.suffix == ".gif" for path in videos)

    events = EventAccumulator(str(tmp_path / "tensorboard"), {IMAGES: 0}).Reload()
    shown = [(e.step, e.encoded_image_string) for e in events.Images("media/episode")]
    assert shown == [(media_step(path), path.read_bytes()) for path in videos]

    runs, rows = offline_wandb(
        tmp_path, lambda rows: sum("media/episode/_type" in row for row in rows) >= len(videos)
    )
    logged = [row["agent_step"] for row in rows if "media/episode/_type" in row]
    assert logged == [media_step(path) for path in videos]
    held = sorted(p.read_bytes() for run in runs for p in (run / "files" / "media").rglob("*.gif"))
    assert held == sorted(path.read_bytes() for path in videos)
