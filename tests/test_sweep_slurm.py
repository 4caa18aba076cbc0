"""Sweeps end to end on the real local Slurm cluster, recorded in real MLflow.

`make test` starts the cluster (slurm/local/start.sh) and exports SLURM_CONF.
Without a cluster these tests fail under CI=true and skip (with the reason)
otherwise. One module-scoped sweep (quickstart-sized: 2 tasks x 2 seeds) is
shared by the tests: while it runs, one job is preempted with USR2.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dreamerbench.core import checkpoint
from dreamerbench.experiments import tracking
from dreamerbench.experiments.launchers.slurm import SlurmUnavailable, check_slurm, wait_slurm
from dreamerbench.experiments.slurm_cluster import default_state_dir

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "experiments" / "quickstart.yaml"
# One DMC episode is 1000 steps: 1600 gives each run one episode, a checkpoint
# every 250 steps (the quickstart's save_every), and time to preempt a run.
STEPS = 1600


def tiny_spec(directory: Path, name: str, **changes) -> Path:
    """The quickstart spec (the one home of the tiny test config) with a few fields changed."""
    data = yaml.safe_load(QUICKSTART.read_text())
    data.update(name=name, **changes)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def dreamerbench(*args: str, env: dict | None = None, timeout: float = 600):
    """Run the CLI in a fresh process from the repository root (as a user would)."""
    return subprocess.run(
        [sys.executable, "-m", "dreamerbench.experiments.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@contextlib.contextmanager
def launched(*args: str):
    """``dreamerbench ARGS`` started in the background from the repository root, as a user would
    (stdout and stderr merged, text); killed on leaving the block if it still runs."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dreamerbench.experiments.cli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def require_slurm() -> None:
    os.environ.setdefault("SLURM_CONF", f"{default_state_dir()}/slurm.conf")
    try:
        check_slurm()
    except SlurmUnavailable as error:
        message = f"the local Slurm cluster is not up ({error})"
        if os.environ.get("CI"):
            pytest.fail(
                message + "; `make test` starts it with slurm/local/start.sh", pytrace=False
            )
        pytest.skip(message)


def wait_for(predicate, timeout: float, what: str, poll: float = 0.3):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Submit a 4-run sweep, preempt one running job with USR2, wait for all jobs."""
    require_slurm()
    root = tmp_path_factory.mktemp("slurm_sweep")
    spec = tiny_spec(root, "test_slurm_sweep", steps=STEPS)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    args = (
        str(spec),
        "--executor",
        "slurm",
        "--profile",
        "local",
        "--workdir",
        str(root / "work"),
        "--tracking-uri",
        uri,
    )
    start = time.monotonic()
    result = dreamerbench("sweep", *args)
    assert result.returncode == 0, result.stderr
    assert "submitted 4 runs as 4 Slurm jobs" in result.stdout, result.stdout
    tracker = tracking.Tracker(uri)
    client = tracker.client
    experiment = client.get_experiment_by_name("test_slurm_sweep")
    runs = tracker.runs(experiment.experiment_id)
    assert len(runs) == 4
    job_ids = [r.data.tags[tracking.TAG + "slurm_job_id"] for r in runs]

    def covers_a_train_record(logdir: Path, ckpt) -> bool:
        size = checkpoint.read_counters(ckpt)["file_sizes"].get("metrics", 0)
        return any(
            "updates" in json.loads(line)
            for line in (logdir / "metrics.jsonl").read_bytes()[:size].splitlines()
        )

    def checkpointed_running_run():
        for run in tracker.runs(experiment.experiment_id):
            logdir = Path(run.data.tags[tracking.TAG + "logdir"])
            held = checkpoint.complete(logdir / "checkpoint")
            # A checkpoint every 250 steps: one at 800 or below leaves time to preempt. It must
            # cover a training record (one every 5 s, so on a fast machine the first comes after
            # the checkpoint at 250): the stop keeps it as the older checkpoint, so MLflow holds
            # training records from before the resume (test_preempted_run_resumes_...).
            if (
                run.info.status == "RUNNING"
                and held
                and held[-1].step <= 800
                and covers_a_train_record(logdir, held[-1])
            ):
                return run
        return None

    victim = wait_for(checkpointed_running_run, 480, "a running job with a checkpoint")
    victim_job = victim.data.tags[tracking.TAG + "slurm_job_id"]
    print(
        f"preempting {victim_job} at steps_done={victim.data.tags.get(tracking.STEPS_TAG)}, "
        f"{time.monotonic() - start:.1f} s after submission"
    )
    # USR2 is what Slurm sends before preempting or timing out a submitit job
    # (--signal=USR2@delay). Plain `scontrol requeue` would restart the job
    # without calling checkpoint(); a SIGTERM to the job step makes srun cancel it.
    # scancel's exit code is not the evidence: once the signal lands, the job
    # requeues, and scancel's retries against the now-pending job can end in
    # "Job can not be altered now". The resume is checked from MLflow and sacct below.
    # scancel keeps retrying while the job is requeued ("Job can not be altered now", every
    # 5-10 s), and a retry that lands once the requeued job starts again kills it by USR2
    # before submitit handles the signal (seen: the run left SCHEDULED with no job). So
    # scancel is stopped once the job has taken the signal: its run is SCHEDULED again
    # (the job's checkpoint() reschedules it before submitit requeues the job).
    signalled = subprocess.Popen(
        ["scancel", "--signal=USR2", victim_job], stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(
            lambda: (
                signalled.poll() is not None
                or tracker.run(victim.info.run_id).info.status == "SCHEDULED"
            ),
            120,
            "the preempted job's checkpoint()",
        )
    finally:
        if signalled.poll() is None:
            signalled.terminate()
    print(f"scancel exit {signalled.wait()}: {signalled.stderr.read().strip()}")
    wait_slurm(job_ids, poll_s=2, timeout_s=480)
    return {
        "client": client,
        "tracker": tracker,
        "experiment_id": experiment.experiment_id,
        "spec": spec,
        "args": args,
        "victim": victim,
        "victim_job": victim_job,
        "root": root,
        "seconds": time.monotonic() - start,
    }


def test_every_run_finished_with_params_tags_metrics(sweep):
    client = sweep["client"]
    runs = sweep["tracker"].runs(sweep["experiment_id"])
    assert len(runs) == 4
    print(f"4-run Slurm sweep (one preempted and requeued): {sweep['seconds']:.0f} s")
    assert {(r.data.tags["dreamerbench.task"], r.data.tags["dreamerbench.seed"]) for r in runs} == {
        (t, s) for t in ("cartpole_balance", "reacher_easy") for s in ("0", "1")
    }
    for run in runs:
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert run.info.status == "FINISHED", (run.info.run_id, tags.get("dreamerbench.error"))
        for name in (
            "run_key",
            "sweep",
            "suite",
            "task",
            "seed",
            "method",
            "git_commit",
            "git_dirty",
            "slurm_job_id",
            "slurm_array_job_id",
            "slurm_array_task_id",
            "host",
        ):
            assert tags.get(f"dreamerbench.{name}"), name
        assert tags["dreamerbench.sweep"] == "test_slurm_sweep"
        assert tags["dreamerbench.method"] == "dreamerbench"
        assert tags[tracking.STEPS_TAG] == str(STEPS)
        assert params["run.steps"] == str(STEPS) and params["agent.size"] == "debug"
        assert params["suite"] == "dmc_proprio" and "protocol.action_repeat" in params
        assert params["agent.lr" if "agent.lr" in params else "agent.opt.lr"]
        assert "episode/score" in metrics and "episode/length" in metrics
        assert any(k.startswith("train/loss/") for k in metrics)
        assert any(k.startswith("fps/") for k in metrics)
        # One 1000-step episode (a resumed run starts a new episode at its checkpoint).
        (episode,) = client.get_metric_history(run.info.run_id, "episode/length")
        assert episode.value == 1000.0 and 1000 <= episode.step <= STEPS
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "summary.json", "logs"} <= artifacts
        # Slurm's output file of the job (submitit's stdout; the profiles send stderr there too)
        # is an artifact of the run.
        logs = [Path(path) for path in tags["dreamerbench.logs"].split(", ")]
        assert [p.suffix for p in logs] == [".out"] and all(p.is_file() for p in logs), logs
        assert {a.path for a in client.list_artifacts(run.info.run_id, "logs")} == {
            f"logs/{p.name}" for p in logs
        }


def test_preempted_run_resumes_into_the_same_mlflow_run(sweep):
    client, victim = sweep["client"], sweep["victim"]
    run = client.get_run(victim.info.run_id)
    assert run.info.status == "FINISHED"
    # The requeued job resumed from the checkpoint it saved on USR2, not from scratch.
    resumed_at = int(run.data.tags.get("dreamerbench.resumed_at", "0"))
    assert 0 < resumed_at < STEPS, run.data.tags
    same_key = [
        r
        for r in sweep["tracker"].runs(sweep["experiment_id"])
        if r.data.tags["dreamerbench.run_key"] == run.data.tags["dreamerbench.run_key"]
    ]
    assert [r.info.run_id for r in same_key] == [victim.info.run_id]
    # Slurm saw the requeue: sacct --duplicates lists the job's earlier attempt too.
    attempts = subprocess.run(
        ["sacct", "-n", "-X", "-D", "-j", sweep["victim_job"], "-o", "State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(attempts) >= 2 and attempts[-1] == "COMPLETED", attempts
    # MLflow holds every record exactly once: its histories equal the trainer's
    # own logs (which the trainer cuts back to the checkpoint on resume).
    logdir = Path(run.data.tags["dreamerbench.logdir"])
    train = [r for r in jsonl(logdir / "metrics.jsonl") if "updates" in r]
    for metric, expected in (
        ("train/updates", [(r["step"], r["updates"]) for r in train]),
        ("episode/score", [(r["step"], r["score"]) for r in jsonl(logdir / "episodes.jsonl")]),
    ):
        history = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
        steps = [m.step for m in history]
        assert steps == sorted(set(steps)), f"{metric}: duplicate steps {steps}"
        assert [(m.step, m.value) for m in history] == [(s, float(v)) for s, v in expected], metric
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/updates")]
    assert any(s <= resumed_at for s in steps) and any(s > resumed_at for s in steps), (
        steps,
        resumed_at,
    )


def test_resubmitting_submits_nothing_then_only_the_deleted_run(sweep):
    client = sweep["client"]
    result = dreamerbench("sweep", *sweep["args"], "--wait")
    assert result.returncode == 0, result.stderr
    assert "nothing to submit" in result.stdout, result.stdout
    assert "submitted" not in result.stdout

    status = dreamerbench("status", "test_slurm_sweep", "--tracking-uri", sweep["args"][-1])
    assert status.returncode == 0, status.stderr
    assert status.stdout.count(" finished ") == 4 and "100.0%" in status.stdout, status.stdout

    runs = sweep["tracker"].runs(sweep["experiment_id"])
    gone = runs[0]
    client.delete_run(gone.info.run_id)
    result = dreamerbench("sweep", *sweep["args"], "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "submitted 1 runs as 1 Slurm jobs" in result.stdout, result.stdout
    assert result.stdout.count("skip ") == 3
    after = tracking.runs_by_key(sweep["tracker"].runs(sweep["experiment_id"]))
    key = gone.data.tags["dreamerbench.run_key"]
    assert len(after) == 4 and all(r.info.status == "FINISHED" for r in after.values())
    assert after[key].info.run_id != gone.info.run_id
    assert (
        "dreamerbench.resumed_at" not in after[key].data.tags
    )  # a new logdir: trained from scratch
    unchanged = {r.info.run_id for r in runs[1:]}
    assert unchanged == {r.info.run_id for k, r in after.items() if k != key}


def test_packed_runs_share_one_job(tmp_path):
    """runs_per_job: 2 runs train as threads of one Slurm job (sharing its GPU on a GPU cluster)."""
    require_slurm()
    profile = tmp_path / "packed.yaml"
    profile.write_text(
        "partition: debug\ncpus_per_task: 2\nmem_gb: 4\ntimeout_min: 30\nruns_per_job: 2\n"
    )
    spec = tiny_spec(tmp_path, "test_packed", seeds=1, steps=300)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = dreamerbench(
        "sweep",
        str(spec),
        "--executor",
        "slurm",
        "--profile",
        str(profile),
        "--workdir",
        str(tmp_path / "work"),
        "--tracking-uri",
        uri,
        "--wait",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "submitted 2 runs as 1 Slurm jobs" in result.stdout, result.stdout
    tracker = tracking.Tracker(uri)
    runs = tracker.runs(tracker.find_experiment("test_packed").experiment_id)
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    assert len({r.data.tags["dreamerbench.slurm_job_id"] for r in runs}) == 1
    assert {r.data.tags["dreamerbench.task"] for r in runs} == {"cartpole_balance", "reacher_easy"}
    assert all(r.data.tags[tracking.STEPS_TAG] == "300" for r in runs)
