"""The one delivery loop (core.records.deliver) and a run's outputs (experiments.outputs): built in
one place, checked before anything starts, ended one way; no MLflow server, no JAX."""

from __future__ import annotations

import json
import time

import pytest

from dreamerbench import __version__
from dreamerbench.agent.config import ConfigError, resolve_config
from dreamerbench.core.files import StorageError
from dreamerbench.core.records import Cursor, deliver, head
from dreamerbench.experiments import tracking
from dreamerbench.experiments.outputs import build, end
from dreamerbench.experiments.outputs.mlflow import RunRecorder
from dreamerbench.experiments.spec import expand, parse_spec


def write_run(logdir, steps, start_ms=1_000, finished=True):
    """A logdir whose metrics.jsonl holds one train record (3 values) per step in `steps`;
    all of it deliverable once `finished` (summary.json)."""
    logdir.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"kind": "train", "step": s, "time_ms": start_ms + i, "a": 1.0, "b": 2, "c": s})
        for i, s in enumerate(steps)
    ]
    (logdir / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    if finished:
        (logdir / "summary.json").write_text("{}")
    return [len("".join(line + "\n" for line in lines[: i + 1])) for i in range(len(lines))]


def test_deliver_batches_by_values_and_moves_the_cursor_with_each_batch(tmp_path):
    ends = write_run(tmp_path, range(5))
    sent = []
    cursor = deliver(tmp_path, Cursor(), lambda *batch: sent.append(batch), max_values=7)
    # 3 values a record, at most 7 a batch: records 2 + 2 + 1, each batch with its own cursor.
    assert [[r.step for r in records] for _, records, _ in sent] == [[0, 1], [2, 3], [4]]
    assert [c.offsets["metrics"] for _, _, c in sent] == [ends[1], ends[3], ends[4]]
    assert sent[0][1][0].values == [("train/a", 1.0), ("train/b", 2.0), ("train/c", 0.0)]
    assert cursor == sent[-1][2] and cursor.heads["metrics"] == head(tmp_path / "metrics.jsonl")
    assert cursor.pending(tmp_path) == 0
    assert deliver(tmp_path, cursor, lambda *batch: pytest.fail("sent twice")) == cursor


def test_a_store_that_fails_midway_holds_what_it_took_and_gets_the_rest_once(tmp_path):
    write_run(tmp_path, range(4))
    taken: list[tuple[int, Cursor]] = []
    calls = []

    def flaky(file, records, cursor):
        calls.append(file)
        if len(calls) == 2:  # the second batch is lost with the connection
            raise OSError("connection reset")
        taken.extend((r.step, cursor) for r in records)

    with pytest.raises(OSError):
        deliver(tmp_path, Cursor(), flaky, max_values=6)
    held = taken[-1][1]  # the cursor the store took with its last batch
    rest = []
    deliver(tmp_path, held, lambda file, records, cursor: rest.extend(r.step for r in records))
    assert [step for step, _ in taken] + rest == [0, 1, 2, 3]


def test_another_timeline_is_delivered_from_its_start_never_from_the_old_cursor(tmp_path):
    """Issue 21: a run started afresh (its only checkpoint damaged) got the old timeline's cursor
    and failed with 'metrics.jsonl is damaged: the line at byte ...'."""
    write_run(tmp_path, range(40))
    old = deliver(tmp_path, Cursor(), lambda *batch: None)
    write_run(tmp_path, range(0, 60, 2), start_ms=9_000)  # the new timeline: other times
    assert old.replaced(tmp_path) == ["metrics"] and old.pending(tmp_path) > 0
    steps = []
    new = deliver(tmp_path, old, lambda file, records, c: steps.extend(r.step for r in records))
    assert steps == list(range(0, 60, 2)) and new.replaced(tmp_path) == []
    # The same timeline cut back behind what a store holds is an error, not a silent skip.
    write_run(tmp_path, range(0, 10, 2), start_ms=9_000)
    with pytest.raises(StorageError, match="the store holds its records up to byte"):
        deliver(tmp_path, new, lambda *batch: None)


def test_a_cursor_reads_its_older_form_and_round_trips():
    old = Cursor.from_json('{"episodes": 3, "metrics": 10, "eval": 0}')
    assert old.offsets == {"episodes": 3, "metrics": 10, "eval": 0} and not old.heads
    cursor = Cursor({"episodes": 3, "metrics": 10, "eval": 0}, {"metrics": "ab" * 8})
    assert Cursor.from_json(cursor.to_json()) == cursor
    held = Cursor(cursor.offsets, cursor.heads, frozenset({"episode-000000000001.gif"}))
    assert Cursor.from_json(held.to_json()) == held and held != cursor


SPEC = """\
name: outputs
suite: dmc_proprio
tasks: [cartpole_balance]
seeds: 1
steps: 1000
overrides: {agent.size: debug, env.action_repeat: 8}
"""


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    return tracking.Tracker(f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}")


def schedule(tracker, name, logdir):
    (run,) = expand(parse_spec(SPEC))
    experiment_id = tracker.experiment(name)
    return tracker.schedule(experiment_id, run, tracking.git_state(), lambda _: str(logdir))


def test_build_checks_every_output_before_an_mlflow_run_starts(tracker, tmp_path, monkeypatch):
    run_id = schedule(tracker, "build-checks", tmp_path)
    config = resolve_config("dmc_proprio", "cartpole_balance", 0, ["run.outputs=[tensorboard]"])
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[outputs\]' in a checkout"):
        build([config], [tmp_path], tracker, [run_id])
    assert tracker.run(run_id).info.status == "SCHEDULED"
    monkeypatch.undo()
    (outputs,) = build([config], [tmp_path], tracker, [run_id])
    assert isinstance(outputs[0], RunRecorder) and type(outputs[1]).__name__ == "TensorBoardOutput"
    run = tracker.run(run_id)
    assert run.info.status == "RUNNING" and run.data.tags["dreamerbench.version"] == __version__


def test_end_ends_every_output_and_raises_the_first_error_after(tmp_path):
    class Output:
        def __init__(self, fails):
            self.fails, self.ended = fails, None

        def end(self, summary=None, error=None):
            self.ended = (summary, error)
            if self.fails:
                raise StorageError(f"output {self.fails} failed")

    outputs = [Output(1), Output(0), Output(2)]
    with pytest.raises(StorageError, match="output 1 failed"):
        end(outputs, {"finished": True})
    assert all(o.ended == ({"finished": True}, None) for o in outputs)
    end(outputs, error="Traceback: boom")  # a failed run: the outputs' errors are warnings
    assert all(o.ended == (None, "Traceback: boom") for o in outputs)


def test_a_recorder_refuses_a_run_of_another_logdir_before_it_is_running(tracker, tmp_path):
    run_id = schedule(tracker, "other-logdir", tmp_path / "a")
    with pytest.raises(StorageError, match=f"MLflow run {run_id} records the logdir .*a, not"):
        tracker.start(run_id, {}, tmp_path / "b")
    assert tracker.run(run_id).info.status == "SCHEDULED"


def test_an_mlflow_error_in_delivery_postpones_it_and_never_fails_the_run(
    tracker, tmp_path, monkeypatch, capsys
):
    """Issue 21: a restarting server answered log-batch with HTTP 400 'Invalid HTTP request
    received' and the job died; during an outage every save waited for MLflow."""
    from mlflow.exceptions import MlflowException

    run_id = schedule(tracker, "postponed", tmp_path)
    recorder = tracker.start(run_id, {}, tmp_path)
    write_run(tmp_path, range(3))
    tries = []

    def refused(*args, **kwargs):
        tries.append(args)
        raise MlflowException("Invalid HTTP request received", error_code="BAD_REQUEST")

    monkeypatch.setattr(tracker, "log_batch", refused)
    recorder.publish(tmp_path)  # no error: the records wait on disk
    recorder.publish(tmp_path)  # the next save skips MLflow for a while
    assert len(tries) == 1 and recorder.pending() > 0
    (warning,) = capsys.readouterr().err.strip().splitlines()
    assert "Invalid HTTP request received" in warning and "delivered later" in warning
    monkeypatch.undo()
    recorder.publish(tmp_path)  # still paused
    assert recorder.pending() > 0
    end([recorder], {"finished": True, "steps": 2})  # the run's end tries at once
    assert recorder.pending() == 0 and tracker.run(run_id).info.status == "FINISHED"


def media_run(logdir):
    """A finished logdir (:func:`write_run`) with an episode video (GIF, 3 frames) at step 1 and an
    open-loop report (PNG) at step 2, as the trainer names them; their paths."""
    from PIL import Image

    write_run(logdir, range(3))
    (logdir / "media").mkdir()
    gif, png = (
        logdir / "media" / f"episode-{1:012d}.gif",
        logdir / "media" / f"openloop-{2:012d}.png",
    )
    frames = [Image.new("RGB", (8, 6), (80 * i, 40, 200 - 60 * i)) for i in range(3)]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=50)
    Image.new("RGBA", (10, 4), (0, 128, 255, 255)).save(png)
    return gif, png


def sessions(output_class, logdir, config):
    """Two sessions of one output on `logdir`, as a run stopped and resumed: the first publishes at
    two saves and stops; the resumed one closes at once (its cursor file says what it holds)."""
    first = output_class(logdir, config)
    first.publish(logdir)
    first.publish(logdir)
    end([first], {"finished": False})
    end([output_class(logdir, config)], {"finished": True})


def test_tensorboard_gets_each_video_and_open_loop_report_once(tmp_path):
    """Issue 21 item 13: only MLflow got the run's media."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    from dreamerbench.experiments.outputs.tensorboard import TensorBoardOutput

    gif, png = media_run(tmp_path)
    config = resolve_config("dmc_proprio", "cartpole_balance", 0, ["run.outputs=[tensorboard]"])
    sessions(TensorBoardOutput, tmp_path, config)
    events = EventAccumulator(str(tmp_path / "tensorboard"), {IMAGES: 0}).Reload()
    assert sorted(events.Tags()["images"]) == ["media/episode", "media/openloop"]
    (video,) = events.Images("media/episode")
    (report,) = events.Images("media/openloop")
    assert (video.step, video.width, video.height) == (1, 8, 6)
    assert (report.step, report.width, report.height) == (2, 10, 4)
    assert video.encoded_image_string == gif.read_bytes()
    assert report.encoded_image_string == png.read_bytes()
    assert [e.step for e in events.Scalars("train/c")] == [0, 1, 2]  # the records, once too


def offline_wandb(logdir, done, wait_s=60.0):
    """(run folders, history rows) of the offline W&B runs in ``<logdir>/wandb`` once `done(rows)`
    holds, or after `wait_s` seconds: W&B's service finishes writing a run's file a moment after
    ``run.finish()`` has returned (seen here: the file still empty right after it)."""
    from test_watching import _wandb_history

    deadline = time.monotonic() + wait_s
    while True:
        runs = sorted((logdir / "wandb").glob("offline-run-*"))
        rows = [row for run in runs for row in _wandb_history(next(run.glob("run-*.wandb")))]
        if done(rows) or time.monotonic() > deadline:
            return runs, rows
        time.sleep(0.2)


def test_offline_wandb_gets_each_video_and_open_loop_report_once(tmp_path, monkeypatch):
    """Issue 21 item 13: W&B gets them as a ``wandb.Video`` and a ``wandb.Image``."""
    pytest.importorskip("wandb")
    from dreamerbench.experiments.outputs.wandb import WandbOutput

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    gif, png = media_run(tmp_path)
    config = resolve_config("dmc_proprio", "cartpole_balance", 0, ["run.outputs=[wandb]"])
    sessions(WandbOutput, tmp_path, config)
    runs, rows = offline_wandb(tmp_path, lambda rows: len(rows) == 5)
    # The history flattens a media value's fields to <key>/<field>: <key>/_type names its kind.
    media = [(row["agent_step"], k, v) for row in rows for k, v in row.items() if "/_type" in k]
    assert media == [
        (1, "media/episode/_type", "video-file"),
        (2, "media/openloop/_type", "image-file"),
    ]
    files = [path for run in runs for path in (run / "files" / "media").rglob("*.*")]
    assert sorted(path.suffix for path in files) == [".gif", ".png"]
    (video,) = [path for path in files if path.suffix == ".gif"]
    assert video.read_bytes() == gif.read_bytes()
    assert [row["agent_step"] for row in rows if "train/c" in row] == [0, 1, 2]
