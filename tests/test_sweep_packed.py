"""Sweeps with seeds_per_process: which runs share a trainer, and packed runs end to end
(local executor and the real local Slurm cluster, recorded in real MLflow)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from test_sweep_slurm import REPO, dreamerbench, require_slurm, tiny_spec, wait_for

from dreamerbench.experiments import tracking
from dreamerbench.experiments.job import RunTask, SweepJob
from dreamerbench.experiments.spec import expand, parse_spec
from dreamerbench.experiments.sweep import Planned, pack_runs

SPEC = """\
name: packing
suite: dmc_proprio
tasks: [cartpole_balance, reacher_easy]
seeds: 3
steps: 300
overrides: {agent.size: debug}
grid: {agent.train_ratio: [8, 16]}
"""


def labels(packs):
    return [[item.run.label for item in pack] for pack in packs]


def test_seeds_of_one_task_and_grid_point_are_packed_in_order():
    planned = [Planned(run, "new", "not started") for run in expand(parse_spec(SPEC))]
    packs = pack_runs(planned, 2)
    assert labels(packs) == [
        [f"{task}/seed{seed}/train_ratio={ratio}" for seed in seeds]
        for task in ("cartpole_balance", "reacher_easy")
        for ratio in (8, 16)
        for seeds in ((0, 1), (2,))
    ]
    # K above the seed count: one pack per task and grid point, never across them.
    assert labels(pack_runs(planned, 5)) == [
        [f"{task}/seed{seed}/train_ratio={ratio}" for seed in (0, 1, 2)]
        for task in ("cartpole_balance", "reacher_easy")
        for ratio in (8, 16)
    ]
    assert [len(pack) for pack in pack_runs(planned, 1)] == [1] * 12


def test_skipped_runs_are_left_out_and_new_runs_never_join_resumed_ones():
    runs = expand(parse_spec(SPEC))[:3]  # cartpole_balance, train_ratio=8, seeds 0-2
    planned = [
        Planned(runs[0], "skip", "finished"),
        Planned(runs[1], "resume", "killed; resume"),
        Planned(runs[2], "new", "not started"),
    ]
    assert labels(pack_runs(planned, 3)) == [
        ["cartpole_balance/seed1/train_ratio=8"],
        ["cartpole_balance/seed2/train_ratio=8"],
    ]


def test_requeue_keeps_the_unfinished_packs():
    def task(name):
        return RunTask(run_id=name, key=name, label=name, logdir=f"/tmp/{name}", config={})

    job = SweepJob(
        [[task("a0"), task("a1")], [task("b0"), task("b1")], [task("c0")]], "sqlite:///x.db", "1"
    )
    job._results = {
        "a0": {"finished": True},
        "a1": {"finished": True},
        "b0": {"finished": False},
        "b1": {"finished": False},
        "c0": {"error": "boom", "finished": False},
    }
    requeued = job.checkpoint().function
    assert [[t.key for t in pack] for pack in requeued.packs] == [["b0", "b1"]]


def test_a_failing_pack_marks_each_of_its_runs_failed(tmp_path):
    from dreamerbench.agent.config import to_dict

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = tracking.Tracker(uri)
    experiment_id = tracker.experiment("packing")
    runs = expand(parse_spec(SPEC.replace("seeds: 3", "seeds: 1")))[:2]  # train_ratio 8 and 16
    pack = []
    for run in runs:
        logdir = str(tmp_path / run.key)
        run_id = tracker.schedule(experiment_id, run, tracking.git_state(), lambda _: logdir)
        pack.append(RunTask(run_id, run.key, run.label, logdir, to_dict(run.config)))
    # Runs that differ in more than seed cannot share a trainer: the pack fails as a whole.
    with pytest.raises(RuntimeError, match="runs failed"):
        SweepJob([pack], uri, experiment_id)()
    for task in pack:
        run = tracker.run(task.run_id)
        assert run.info.status == "FAILED"
        assert "packed runs may differ only in seed" in run.data.tags["dreamerbench.error"]


def test_the_local_job_file_is_json_and_round_trips(tmp_path):
    """The local launcher's job file is plain JSON (reading it cannot run code) and loads back
    equal."""
    import json

    from dreamerbench.agent.config import to_dict

    runs = expand(parse_spec(SPEC))[:2]
    pack = [
        RunTask(f"id{i}", run.key, run.label, str(tmp_path / run.key), to_dict(run.config))
        for i, run in enumerate(runs)
    ]
    job = SweepJob([pack], "sqlite:///x.db", "7")
    job.save(tmp_path / "job.json")
    assert json.loads((tmp_path / "job.json").read_text())["packs"][0][1]["key"] == runs[1].key
    loaded = SweepJob.load(tmp_path / "job.json")
    assert loaded.packs == [pack] and (loaded.tracking_uri, loaded.experiment_id) == (
        "sqlite:///x.db",
        "7",
    )
    assert [p.name for p in tmp_path.iterdir()] == ["job.json"]  # no temporary file left


def test_a_job_with_an_invalid_config_marks_its_runs_failed_never_running(tmp_path):
    from dreamerbench.agent.config import to_dict

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = tracking.Tracker(uri)
    experiment_id = tracker.experiment("packing")
    run = expand(parse_spec(SPEC))[0]
    run_id = tracker.schedule(
        experiment_id, run, tracking.git_state(), lambda _: str(tmp_path / "run")
    )
    config = to_dict(run.config)
    config["agent"]["batch_size"] = 0
    with pytest.raises(RuntimeError, match="runs failed"):
        SweepJob(
            [[RunTask(run_id, run.key, run.label, str(tmp_path / "run"), config)]],
            uri,
            experiment_id,
        )()
    recorded = tracker.run(run_id)
    assert (
        recorded.info.status == "FAILED"
        and "batch_size" in recorded.data.tags["dreamerbench.error"]
    )
    assert "dreamerbench.host" not in recorded.data.tags  # never taken up by the job (RUNNING)
    assert not (tmp_path / "run").exists()


def sweep_runs(uri, name):
    tracker = tracking.Tracker(uri)
    experiment = tracker.client.get_experiment_by_name(name)
    return tracker.runs(experiment.experiment_id) if experiment else []


def assert_packed_runs_finished(uri, name, steps, same_tag):
    client = tracking.Tracker(uri).client
    runs = sweep_runs(uri, name)
    assert sorted(r.data.tags["dreamerbench.seed"] for r in runs) == ["0", "1"]
    for run in runs:
        assert run.info.status == "FINISHED", run.data.tags.get("dreamerbench.error")
        assert run.data.tags[tracking.STEPS_TAG] == str(steps)
        assert any(k.startswith("train/loss/") for k in run.data.metrics)
        assert any(k.startswith("fps/") for k in run.data.metrics)
        assert {"config.yaml", "summary.json"} <= {
            a.path for a in client.list_artifacts(run.info.run_id)
        }
    assert len({r.data.tags["dreamerbench.logdir"] for r in runs}) == 2
    # Both runs trained in one process (local pid) or one job (Slurm job id).
    assert len({r.data.tags[same_tag] for r in runs}) == 1
    return runs


def test_local_sweep_trains_two_seeds_in_one_process_stops_and_resumes(tmp_path):
    steps = 600  # checkpoints at 250 and 500: time to stop the pack between them
    spec = tiny_spec(
        tmp_path,
        "test_local_packed",
        tasks=["cartpole_balance"],
        seeds=2,
        steps=steps,
        seeds_per_process=2,
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ("sweep", str(spec), "--workdir", str(tmp_path / "work"), "--tracking-uri", uri)
    sweep = subprocess.Popen(
        [sys.executable, "-m", "dreamerbench.experiments.cli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def checkpointed():
        runs = sweep_runs(uri, "test_local_packed")
        return len(runs) == 2 and all(
            int(r.data.tags.get(tracking.STEPS_TAG, "0")) > 0 for r in runs
        )

    wait_for(checkpointed, 300, "the pack's first checkpoint")
    sweep.send_signal(signal.SIGTERM)  # the launcher forwards it to the worker
    output = sweep.communicate(timeout=120)[0]
    assert "training 2 runs locally in 1 processes" in output, output
    assert "stopped (resumable) cartpole_balance/seed0 + cartpole_balance/seed1" in output, output
    stopped = {r.info.run_id: r for r in sweep_runs(uri, "test_local_packed")}
    assert {r.info.status for r in stopped.values()} == {"SCHEDULED"}

    result = dreamerbench(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = assert_packed_runs_finished(uri, "test_local_packed", steps, "dreamerbench.local_pid")
    # Resumed together, from the checkpoint step both hold, into the same MLflow runs.
    assert {r.info.run_id for r in runs} == set(stopped)
    (resumed_at,) = {r.data.tags["dreamerbench.resumed_at"] for r in runs}
    assert 0 < int(resumed_at) < steps


def test_slurm_sweep_trains_two_seeds_in_one_job(tmp_path):
    require_slurm()
    spec = tiny_spec(tmp_path, "test_slurm_packed", tasks=["cartpole_balance"], seeds=2, steps=300)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = dreamerbench(
        "sweep",
        str(spec),
        "--executor",
        "slurm",
        "--profile",
        "local",
        "--seeds-per-process",
        "2",
        "--workdir",
        str(tmp_path / "work"),
        "--tracking-uri",
        uri,
        "--wait",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "submitted 2 runs as 1 Slurm jobs" in result.stdout, result.stdout
    assert_packed_runs_finished(uri, "test_slurm_packed", 300, "dreamerbench.slurm_job_id")
