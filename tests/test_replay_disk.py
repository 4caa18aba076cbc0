"""The replay on disk through the trainer: `replay.storage=disk` trained and resumed through
`dreamerbench train`, and checkpoints of the format before chunks refused in one line."""

import json
import subprocess

import numpy as np
import pytest
from test_rundir import train
from test_train_command import EPISODE, read_jsonl, train_command

from dreamerbench.agent.replay import first_chunk
from dreamerbench.core import checkpoint, chunks
from dreamerbench.core.checkpoint import CheckpointError


@pytest.mark.slow
def test_a_disk_replay_trains_and_resumes_through_the_cli(tmp_path):
    logdir, cache = tmp_path / "run", tmp_path / "jax-cache"
    disk = ["replay.storage=disk", "replay.chunk=50"]
    first = subprocess.run(
        train_command(logdir, cache, 2 * EPISODE, disk), capture_output=True, text=True, timeout=600
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads(first.stdout.strip().splitlines()[-1])["updates"] > 0
    assert chunks.indices(logdir / "replay") == [0, 1, 2, 3, 4]  # 252 steps: 5 full chunks
    newest = checkpoint.complete(logdir / "checkpoint")[-1]
    _, replay, _ = checkpoint.load(newest)
    assert replay["chunks"].tolist() == [0, 5] and replay["tail/reward"].shape == (1, 2)

    # A longer budget resumes from the checkpoint at 252: the chunks it names are read back.
    resumed = subprocess.run(
        train_command(logdir, cache, 3 * EPISODE, disk), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["finished"] and summary["steps"] == 3 * EPISODE and summary["episodes"] == 3
    assert [e["step"] for e in read_jsonl(logdir / "episodes.jsonl")] == [
        EPISODE - 1,
        2 * EPISODE - 1,
        3 * EPISODE - 1,
    ]
    assert chunks.indices(logdir / "replay") == list(range(7))
    held = checkpoint.complete(logdir / "checkpoint")
    assert [first_chunk(c.path / "replay.npz") for c in held] == [0, 0]
    stored = chunks.read(logdir / "replay", 0, json.loads(bytes(replay["digests"]))[0])
    assert stored["is_first"][0, 0] and np.isfinite(stored["reward"]).all()


def test_a_checkpoint_holding_the_whole_replay_is_refused_as_an_older_format(tmp_path):
    logdir = tmp_path / "run"
    train(logdir, 2 * EPISODE, stop_after_saves=1)
    for ckpt in checkpoint.complete(logdir / "checkpoint"):  # rewritten as before chunks
        state, replay, counters = checkpoint.load(ckpt)
        whole = {k: v for k, v in replay.items() if not k.startswith(("tail/", "chunks", "dig"))}
        whole.update({f"data/{k[5:]}": v for k, v in replay.items() if k.startswith("tail/")})
        checkpoint.save(logdir / "checkpoint", ckpt.step, state, whole, counters, keep=9)
        checkpoint.remove(ckpt)
    with pytest.raises(CheckpointError) as error:
        train(logdir, 2 * EPISODE)
    message = str(error.value)
    assert "\n" not in message and "is complete but of an older format" in message, message
    assert str(logdir / "checkpoint" / "ckpt-") in message
