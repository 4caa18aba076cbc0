"""Watching and evaluating an agent without JAX (issue 14): evaluation episodes, episode
videos, media that survive a resume, progress, the short-run warning, TensorBoard and
W&B outputs, and videos reaching MLflow once. The stub agent drives the real loop on a
real DMC task (cartpole, action repeat 8: episodes of 126 observations, see test_rundir).
"""

from __future__ import annotations

import glob
import json
import struct
import threading
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from stub_agent import StubAgent
from test_rundir import EPISODE, TINY, config, records, train

from dreamerbench.agent.config import resolve_config
from dreamerbench.agent.media import openloop_plot
from dreamerbench.agent.progress import progress_line
from dreamerbench.agent.rundir import Counters, RunDir
from dreamerbench.agent.schedule import no_update_warning
from dreamerbench.agent.trainer import Trainer
from dreamerbench.core import checkpoint
from dreamerbench.core.records import deliverable_media, media_files


def test_eval_episodes_are_recorded_apart_from_training_and_change_nothing_there(tmp_path):
    evaluated = train(
        tmp_path / "eval",
        2 * EPISODE,
        **{"run.eval_every": EPISODE, "run.eval_episodes": 2, "run.eval_mode": "greedy"},
    )
    plain = train(tmp_path / "plain", 2 * EPISODE)
    assert evaluated == plain
    untimed = lambda name: [  # noqa: E731
        {k: v for k, v in r.items() if k not in ("time_ms", "wall_s")}
        for r in records(tmp_path / name / "episodes.jsonl")
    ]
    assert untimed("eval") == untimed("plain") and len(untimed("plain")) == 2
    evals = records(tmp_path / "eval" / "eval.jsonl")
    assert [(r["index"], r["step"], r["length"], r["mode"]) for r in evals] == [
        (0, EPISODE, EPISODE - 1, "greedy"),
        (1, EPISODE, EPISODE - 1, "greedy"),
        (2, 2 * EPISODE, EPISODE - 1, "greedy"),
        (3, 2 * EPISODE, EPISODE - 1, "greedy"),
    ]
    # Fresh eval envs with the same seed and a policy keyed by (seed, count): each evaluation
    # replays the same episodes; the second episode of one starts from the env's next reset.
    assert evals[0]["score"] == evals[2]["score"] and evals[1]["score"] == evals[3]["score"]
    assert evals[0]["score"] != evals[1]["score"]
    assert not (tmp_path / "plain" / "eval.jsonl").read_text()


def test_the_last_step_evaluates_even_off_the_schedule(tmp_path):
    train(tmp_path, EPISODE + 10, **{"run.eval_every": 100})
    assert [r["step"] for r in records(tmp_path / "eval.jsonl")] == [100, EPISODE + 10]


def _gif_frames(path):
    """(frames, (height, width)) of a GIF; Pillow merges identical consecutive frames into one."""
    frames = iio.imread(path, index=None)
    assert frames.std() > 0  # a picture, not a blank
    return frames.shape[0], frames.shape[1:3]


def test_proprio_episode_video_only_when_asked(tmp_path):
    train(tmp_path / "quiet", 2 * EPISODE, **{"run.video_every": 10})
    assert not media_files(tmp_path / "quiet" / "media")
    train(tmp_path / "render", 2 * EPISODE, **{"run.video_every": 10, "run.video_render": True})
    # Due at step 10: the next episode starts at step 126 and ends at 251.
    (video,) = media_files(tmp_path / "render" / "media")
    assert video.name == f"episode-{2 * EPISODE - 1:012d}.gif"
    count, size = _gif_frames(video)
    assert size == (128, 128) and EPISODE // 2 < count <= EPISODE


def test_image_task_episode_video_comes_from_the_observations(tmp_path):
    overrides = {
        **TINY,
        "run.steps": 2 * EPISODE,
        "run.video_every": 1,
        "run.parallel_envs": False,
        "env.image_size": 16,
    }
    config = resolve_config("dmc_vision", "cartpole_balance", 0, overrides)
    Trainer(config, tmp_path, make_agent=StubAgent).run()
    (video,) = media_files(tmp_path / "media")  # due at step 1: the episode from 126 to 251
    count, size = _gif_frames(video)
    assert size == (16, 16) and EPISODE // 2 < count <= EPISODE


def test_media_made_after_the_resumed_checkpoint_are_deleted_and_only_final_ones_deliverable(
    tmp_path,
):
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    counters = Counters(steps=15)
    with RunDir(tmp_path) as run:
        run.start()
        run.write_media("episode", 10, frames)
        assert deliverable_media(tmp_path) == []  # no checkpoint yet: a resume could start afresh
        run.save(b"state", {}, counters, [0])
        run.write_media("episode", 20, frames)
        assert [p.name for p in deliverable_media(tmp_path)] == [f"episode-{10:012d}.gif"]
    with RunDir(tmp_path) as run:
        (ckpt,) = run.checkpoints()
        _, _, saved = run.load(ckpt)
        run.resume(ckpt, saved)
    assert [p.name for p in media_files(tmp_path / "media")] == [f"episode-{10:012d}.gif"]


def test_checkpoints_from_before_eval_records_still_resume(tmp_path):
    """A checkpoint saved before eval.jsonl existed covers no eval bytes (not a KeyError)."""
    with RunDir(tmp_path) as run:
        run.start()
        run.save(b"state", {}, Counters(steps=5), [0])
    (ckpt,) = checkpoint.complete(tmp_path / "checkpoint")
    counters = json.loads((ckpt.path / "counters.json").read_text())
    del counters["file_sizes"]["eval"], counters["evals"]
    state, replay, _ = checkpoint.load(ckpt)
    checkpoint.remove(ckpt)
    checkpoint.save(tmp_path / "checkpoint", 5, state, replay, counters)
    with RunDir(tmp_path) as run:
        (ckpt,) = run.checkpoints()
        _, _, saved = run.load(ckpt)
        assert run.resume(ckpt, saved).steps == 5 and run.evals == 0


@pytest.mark.parametrize("steps, warns", [(40, True), (41, True), (50, False), (1000, False)])
def test_a_run_too_short_for_one_update_warns(steps, warns):
    # batch 2 x 8 at train ratio 16: 1 update per agent step, from step max(train_start=32, 9).
    # The loop updates at step >= 32 once credit >= 1: steps 32.. earn one each.
    cfg = config(steps, **{"run.train_start": 48})
    message = no_update_warning(cfg)
    assert (message is not None) == warns
    if warns:
        assert message.startswith(
            f"run.steps={steps} is too few for any update: updates start after 48 agent steps"
        )


def test_short_run_warning_is_one_line_on_stderr_and_matches_the_loop(tmp_path, capsys):
    summary = train(tmp_path / "short", 40, **{"run.train_start": 48})
    err = capsys.readouterr().err
    assert summary["updates"] == 0
    assert [line for line in err.splitlines() if line.startswith("warning:")] == [
        f"warning: {no_update_warning(config(40, **{'run.train_start': 48}))}"
    ]
    summary = train(tmp_path / "enough", 50, **{"run.train_start": 48})
    assert summary["updates"] > 0 and "too few" not in capsys.readouterr().err


def test_progress_line_shows_current_fps_and_eta():
    # 100 steps in the last 10 s: 10 fps now, whatever the average since the start was.
    line = progress_line(500, 1400, 7, [(100.0, 400), (110.0, 500)], 3.25)
    assert "500/1400 steps" in line and "7 updates" in line and "10 fps" in line
    assert "ETA 0:01:30" in line and "score 3.2" in line
    assert "ETA -" in progress_line(0, 10, 0, [(1.0, 0)], None)


def test_progress_says_when_it_compiles(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DREAMERBENCH_PROGRESS", "1")
    train(tmp_path, 60, **{"run.progress": True})
    err = capsys.readouterr().err
    assert "compiling the policy step" in err and "compiling the train step (first update)" in err
    assert "ETA" in err and "60/60 steps" in err


def _wandb_history(run_file: Path) -> list[dict[str, float]]:
    """History rows of an offline W&B run file (LevelDB log format: 32 KiB blocks of
    records with a 7-byte header: CRC32, length, type; the file starts with a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    rows, chunk, pos = [], b"", 7
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record.FromString(chunk)
            chunk = b""
            if record.WhichOneof("record_type") == "history":
                rows.append(
                    {
                        item.key or "/".join(item.nested_key): json.loads(item.value_json)
                        for item in record.history.item
                    }
                )
    return rows


def test_tensorboard_and_offline_wandb_hold_the_metrics(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    extra = {"run.outputs": ["tensorboard", "wandb"], "run.eval_every": EPISODE}
    train(tmp_path, 2 * EPISODE, stop_after_saves=1, **extra)  # stops after the first save
    train(tmp_path, 2 * EPISODE, **extra)  # resumed: nothing is sent twice
    episodes = records(tmp_path / "episodes.jsonl")
    evals = records(tmp_path / "eval.jsonl")
    losses = [r for r in records(tmp_path / "metrics.jsonl") if r["kind"] == "train"]

    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()

    def scalars(tag):
        return [(e.step, pytest.approx(e.value)) for e in events.Scalars(tag)]

    assert scalars("episode/score") == [(r["step"], r["score"]) for r in episodes]
    assert scalars("eval/score") == [(r["step"], r["score"]) for r in evals]
    assert scalars("train/loss") == [(r["step"], r["loss"]) for r in losses]

    rows = []
    for path in sorted(glob.glob(str(tmp_path / "wandb" / "*run-*" / "run-*.wandb"))):
        rows += _wandb_history(Path(path))
    got = [(row["agent_step"], row["episode/score"]) for row in rows if "episode/score" in row]
    assert got == [(r["step"], pytest.approx(r["score"])) for r in episodes]
    assert [(row["agent_step"], row["eval/score"]) for row in rows if "eval/score" in row] == [
        (r["step"], pytest.approx(r["score"])) for r in evals
    ]
    assert len({(tmp_path / "wandb" / "run_id").read_text()}) == 1


def test_videos_and_eval_episodes_reach_mlflow_once_across_a_resume(tmp_path, monkeypatch):
    from dreamerbench.analysis import load_runs
    from dreamerbench.experiments import train_tracking
    from dreamerbench.experiments.outputs import build, end

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logdir = tmp_path / "run"
    uploads: list[str] = []

    def session(steps, stop_after_saves=None):
        cfg = config(
            steps,
            **{"run.video_every": EPISODE, "run.video_render": True, "run.eval_every": 2 * EPISODE},
        )
        tracker, run_ids = train_tracking.start(uri, "watch", [cfg], [logdir])
        (run_outputs,) = build([cfg], [logdir], tracker, run_ids)
        (recorder,) = run_outputs
        client = recorder.tracker.client
        real = client.log_artifact
        monkeypatch.setattr(
            client,
            "log_artifact",
            lambda run_id, path, where: (
                uploads.append(Path(path).name),
                real(run_id, path, where),
            ),
        )
        stop = threading.Event()
        outputs = [recorder]
        if stop_after_saves:
            from test_rundir import _StopAfter

            outputs.append(_StopAfter(stop_after_saves, stop))
        summary = Trainer(cfg, logdir, outputs, make_agent=StubAgent).run(stop)
        end(run_outputs, summary)
        return recorder

    session(4 * EPISODE, stop_after_saves=3)
    recorder = session(4 * EPISODE)
    held = sorted(
        Path(a.path).name for a in recorder.tracker.client.list_artifacts(recorder.run_id, "media")
    )
    assert held == [p.name for p in media_files(logdir / "media")] and len(held) >= 2
    assert (
        sorted(u for u in uploads if u.endswith(".gif")) == held
    )  # each uploaded once, over both sessions

    # Evaluation episodes are metrics of their own (eval/<name>), and the final-score
    # rules read them instead of the training episodes when asked.
    evals = records(logdir / "eval.jsonl")
    history = recorder.tracker.client.get_metric_history(recorder.run_id, "eval/score")
    assert sorted((m.step, m.value) for m in history) == [(r["step"], r["score"]) for r in evals]
    assert [r["step"] for r in evals] == [2 * EPISODE, 4 * EPISODE]
    table = load_runs(uri, "watch", episodes="eval")
    assert table[["step", "score"]].values.tolist() == [[r["step"], r["score"]] for r in evals]
    assert table["frames"].tolist() == [8 * r["step"] for r in evals]
    trained = load_runs(uri, "watch")
    assert trained["score"].tolist() == [r["score"] for r in records(logdir / "episodes.jsonl")]


def test_openloop_grid_layout_borders_and_error():
    from dreamerbench.agent.media import CONTEXT_COLOR, OPENLOOP_COLOR, openloop_grid

    true = np.zeros((2, 4, 3, 5, 3), np.uint8)  # B=2 sequences, T=4 steps, 3x5 images
    pred = np.full_like(true, 10)
    grid = openloop_grid(true, pred, context=2)
    assert grid.shape == (4, 3 * 3 + 4, 2 * (5 + 4), 3)
    assert (grid[:2, 0, 0] == CONTEXT_COLOR).all() and (grid[2:, 0, 0] == OPENLOOP_COLOR).all()
    assert (grid[0, 2:5, 2:7] == 0).all() and (grid[0, 5:8, 2:7] == 10).all()  # true over pred
    assert (grid[0, 8:11, 2:7] == (10 + 255) // 2).all()  # the error image: (pred - true + 255) / 2


def test_openloop_of_a_proprio_task_is_a_plot_of_true_and_predicted_vectors(tmp_path):
    """Proprio tasks have no images: the open-loop report plots each vector dimension."""
    import jax
    from test_agent_model import CONTINUOUS, VECTOR_OBS, make_agent

    from dreamerbench.agent.synthetic import random_batch

    dreamer = make_agent("debug", VECTOR_OBS, CONTINUOUS)
    params = dreamer.init(jax.random.PRNGKey(0)).params
    batch = random_batch(dreamer, 2, 8)
    out = jax.jit(dreamer.openloop)(params, batch, jax.random.PRNGKey(1))
    assert set(out) == {"vector"}
    true, pred = out["vector"]
    assert true.shape == pred.shape == (2, 8, 5)
    np.testing.assert_array_equal(true, batch["vector"][:, 1:])
    assert np.isfinite(pred).all()
    with RunDir(tmp_path) as run:
        run.start()
        path = run.write_plot(
            "openloop", 48, openloop_plot(np.asarray(true[0]), np.asarray(pred[0]), 4)
        )
    assert media_files(tmp_path / "media") == [path] and path.name == f"openloop-{48:012d}.png"
    image = iio.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0


def test_wandb_without_a_login_is_one_error_and_the_run_resumes_offline(tmp_path, monkeypatch):
    """New-user test, fault 5: without a login, --output wandb failed only after training."""
    pytest.importorskip("wandb")
    from dreamerbench.core.files import StorageError

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc with a W&B key
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logdir = tmp_path / "run"
    # No login at all: refused at startup, before the logdir is made (it used to fail after
    # training).
    with pytest.raises(
        StorageError,
        match=r"^run.outputs has wandb but W&B has no login here \(WANDB_MODE=online, "
        r"no WANDB_API_KEY, no api.wandb.ai entry in .*\.netrc\); log in \(wandb login\), "
        r"set WANDB_MODE=offline",
    ):
        train(logdir, EPISODE, **{"run.outputs": ["wandb"]})
    assert not logdir.exists()
    # A key that W&B rejects only when it starts: one error at the first save, and the run resumes.
    monkeypatch.setenv("WANDB_API_KEY", "not-a-key")
    with pytest.raises(
        StorageError,
        match=r"^W&B did not start a run for .*; log in \(wandb login\), set WANDB_MODE=offline",
    ):
        train(logdir, EPISODE, **{"run.outputs": ["wandb"]})
    assert checkpoint.complete(logdir / "checkpoint")  # it failed at the first save's publish
    monkeypatch.setenv("WANDB_API_KEY", "")
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert train(logdir, EPISODE, **{"run.outputs": ["wandb"]})["finished"]
    rows = [
        row
        for path in glob.glob(str(logdir / "wandb" / "*run-*" / "run-*.wandb"))
        for row in _wandb_history(Path(path))
    ]
    assert [row["episode/score"] for row in rows if "episode/score" in row] == [
        pytest.approx(r["score"]) for r in records(logdir / "episodes.jsonl")
    ]


class _ReportingStub(StubAgent):
    """The stub plus an open-loop report whose 'prediction' is the replayed vectors shifted by
    0.1."""

    def report(self, replays, count):
        out = []
        for replay in replays:
            windows = replay.latest(2)
            true = np.concatenate([windows[k] for k in ("position", "velocity")], -1)[:, 1:]
            out.append({"vector": (true, true + 0.1)})
        return out


def test_the_trainer_writes_an_openloop_plot_for_a_proprio_task_every_video_every_steps(tmp_path):
    cfg = config(2 * EPISODE, **{"run.video_every": 64})
    Trainer(cfg, tmp_path, make_agent=_ReportingStub).run()
    plots = [p for p in media_files(tmp_path / "media") if p.suffix == ".png"]
    assert [p.name for p in plots] == [f"openloop-{step:012d}.png" for step in (64, 128, 192)]
    assert all(iio.imread(p).std() > 0 for p in plots)
