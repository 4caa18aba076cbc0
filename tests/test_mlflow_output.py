"""MLflow recording against a real sqlite store: delivery at flush() only, batching, naming."""

from __future__ import annotations

import pytest

from experiments import tracking


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    client = tracking.client(uri)
    experiment_id = tracking.ensure_experiment(client, "output_test", uri)
    assert tracking.ensure_experiment(client, "output_test", uri) == experiment_id
    return client, experiment_id


def history(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_records_are_delivered_at_flush_only(store):
    client, experiment_id = store
    run_id = client.create_run(experiment_id).info.run_id
    output = tracking.MlflowOutput(client, run_id)
    output.write(1000, "episode", {"score": 12.5, "length": 1000, "achievement_collect_wood": 1.0})
    output.write(1000, "train", {"loss/total": 0.5})
    output.write(1000, "fps", {"env_steps_per_s": 80.0})
    assert client.get_run(run_id).data.metrics == {}
    output.flush()
    metrics = client.get_run(run_id).data.metrics
    assert metrics == {
        "episode/score": 12.5, "episode/length": 1000.0, "episode/achievement_collect_wood": 1.0,
        "train/loss/total": 0.5, "fps/env_steps_per_s": 80.0,
    }
    assert history(client, run_id, "episode/score") == [(1000, 12.5)]
    assert client.get_run(run_id).data.tags[tracking.STEPS_TAG] == "1000"
    # Written after the last flush = not covered by a checkpoint: dropped at close
    # (the trainer re-generates them after a resume).
    output.write(1200, "train", {"loss/total": 0.4})
    output.close()
    output.flush()
    assert history(client, run_id, "train/loss/total") == [(1000, 0.5)]


def test_large_flush_is_split_into_batches(store):
    client, experiment_id = store
    run_id = client.create_run(experiment_id).info.run_id
    output = tracking.MlflowOutput(client, run_id)
    for step in range(2500):
        output.write(step, "train", {"loss/total": float(step)})
    output.flush()
    assert history(client, run_id, "train/loss/total") == [(s, float(s)) for s in range(2500)]
    assert client.get_run(run_id).data.tags[tracking.STEPS_TAG] == "2499"


def test_unknown_record_kind():
    output = tracking.MlflowOutput(None, "x")
    with pytest.raises(ValueError, match="kind='eval'; allowed: episode, train, fps"):
        output.write(1, "eval", {"score": 1.0})


def test_tracking_uri_resolution(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert tracking.resolve_tracking_uri("sqlite:///x/m.db") == f"sqlite:///{tmp_path.resolve()}/x/m.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.resolve_tracking_uri() == "http://127.0.0.1:5000"
    with pytest.raises(ValueError, match="file store in maintenance mode"):
        tracking.resolve_tracking_uri("file:///tmp/mlruns")
    with pytest.raises(ValueError, match="unsupported scheme 'ftp'"):
        tracking.resolve_tracking_uri("ftp://x")
