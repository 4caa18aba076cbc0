"""The one delivery loop (core.records.deliver) and a run's outputs (experiments.outputs): built in
one place, checked before anything starts, ended one way; no MLflow server, no JAX."""

from __future__ import annotations

import json

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
