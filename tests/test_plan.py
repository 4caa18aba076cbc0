"""The resource plan (``experiments/plan.py``): its replay bytes are a real Replay's, and
``sweep`` refuses, in one line and before anything is created, a profile whose ``mem_gb`` cannot
hold a job, naming the fields that would make it fit."""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml
from test_sweep_slurm import dreamerbench, tiny_spec

from dreamerbench.agent.config import resolve_config
from dreamerbench.agent.replay import Replay
from dreamerbench.experiments import plan
from dreamerbench.suites.base import Space

PROPRIO = {"position": Space(np.float32, (5,)), "velocity": Space(np.float32, (4,))}
ACTION = Space(np.float32, (1,), -1.0, 1.0)


@pytest.mark.parametrize(
    "steps, envs, capacity, storage",
    [
        (3000, 2, 1000, "memory"),
        (20_000, 2, 100_000, "memory"),
        (9000, 1, 5_000_000, "memory"),
        (50, 3, 100, "memory"),
        (20_000, 2, 100_000, "disk"),
        (3000, 1, 5_000_000, "disk"),
    ],
    ids=["capacity-bound", "doubled-twice", "one-env", "short", "disk", "disk-one-env"],
)
def test_replay_bytes_are_a_real_replays(tmp_path, steps, envs, capacity, storage):
    config = resolve_config(
        "dmc_proprio",
        "cartpole_balance",
        0,
        [
            "agent.size=debug",
            "agent.batch_length=8",
            f"run.steps={steps}",
            f"run.envs={envs}",
            f"replay.capacity={capacity}",
            f"replay.storage={storage}",
        ],
    )
    found = plan.model(config, PROPRIO, ACTION)
    memory = plan.replay_memory(config, found.specs)
    replay = Replay(
        found.specs,
        envs,
        capacity,
        config.agent.batch_length + 1,
        True,
        seed=0,
        chunk=config.replay.chunk,
        storage=storage,
        directory=tmp_path,
    )
    step = {k: np.zeros((envs, *shape), dtype) for k, (shape, dtype) in found.specs.items()}
    for _ in range(-(-steps // envs)):
        replay.add(step)
    arrays = replay.data if storage == "memory" else replay.tail
    assert memory.resident == sum(array.nbytes for array in arrays.values())
    assert memory.step_bytes == sum(array[0, 0].nbytes for array in arrays.values())
    # A checkpoint copies the steps since the last chunk: at most one chunk of every env.
    saved = replay.state_dict()
    tail = sum(saved[f"tail/{key}"].nbytes for key in found.specs)
    assert tail <= memory.stored == envs * replay.chunk * memory.step_bytes or tail == memory.stored
    # The chunk files hold what the replay holds, in whole chunks (no eviction below capacity).
    if steps <= capacity:
        written = sum(
            np.load(path, mmap_mode="r").nbytes for path in tmp_path.glob("chunk-*/*.npy")
        )
        assert memory.chunks - envs * replay.chunk * memory.step_bytes < written <= memory.chunks


def test_state_bytes_count_params_optimizer_and_slow_critic():
    config = resolve_config("dmc_proprio", "cartpole_balance", 0, ["agent.size=debug"])
    found = plan.model(config, PROPRIO, ACTION)
    # LaProp keeps two moments per parameter; the slow critic is a copy of the critic.
    assert 3 * found.params < found.state < 4 * found.params


def _profile(directory, name, **fields):
    path = directory / "profiles" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump({"partition": "debug", **fields}))
    return str(path)


def _error_line(stderr: str) -> str:
    """The one error line (the last; ALE prints its banner to stderr before it)."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr and sum("error" in line for line in lines) == 1, stderr
    return lines[-1]


def _sweep(tmp_path, spec, profile):
    db = tmp_path / "mlflow.db"
    work = tmp_path / "work"
    args = ["sweep", str(spec), "--executor", "slurm", "--profile", profile]
    result = dreamerbench(*args, "--tracking-uri", f"sqlite:///{db}", "--workdir", str(work))
    dry = dreamerbench(*args, "--dry-run", "--tracking-uri", f"sqlite:///{db}")
    return result, dry, db, work


@pytest.mark.parametrize("profile", ["gpu_example", "gpu_packed"])
def test_example_gpu_profiles_refuse_atari57(tmp_path, profile):
    """Atari57 at the suite's defaults stores 5M steps of 96x96 frames plus 200m latents
    (~119 GiB in RAM with replay.storage memory; a checkpoint copies only the newest chunk):
    neither 64 nor 96 GB holds it, and the disk storage would."""
    spec = tmp_path / "a57.yaml"
    spec.write_text(
        yaml.safe_dump(
            {"name": "a57", "suite": "atari57", "tasks": ["pong"], "seeds": 1, "executor": "slurm"}
        )
    )
    result, dry, db, work = _sweep(tmp_path, spec, profile)
    for run in (result, dry):
        assert run.returncode == 2, run.stderr
        line = _error_line(run.stderr)
        mem = {"gpu_example": 64, "gpu_packed": 96}[profile]
        assert f"profile '{profile}': mem_gb={mem} cannot hold job 1 (pong/seed0)" in line
        assert "replay 119.4 GiB" in line and "replay.capacity<=" in line
        assert "set one of: replay.storage=disk, " in line
        assert "mem_gb>=126" in line and line.endswith("nothing was submitted")
        assert "(replay 119.4 GiB, agent state 4.3 GiB" in run.stdout
    assert not db.exists() and not work.exists()


def test_example_gpu_profile_plans_atari100k(tmp_path):
    """Atari100k's 100k steps (131,072 slots once doubled, 3.5 GiB; a checkpoint copies only
    the newest chunk) fit the 64 GB profile."""
    spec = tmp_path / "a100k.yaml"
    spec.write_text(
        yaml.safe_dump({"name": "a100k", "suite": "atari100k", "tasks": ["pong"], "seeds": 2})
    )
    db = tmp_path / "mlflow.db"
    dry = dreamerbench(
        "sweep",
        str(spec),
        "--executor",
        "slurm",
        "--profile",
        "gpu_example",
        "--dry-run",
        "--tracking-uri",
        f"sqlite:///{db}",
    )
    assert dry.returncode == 0, dry.stderr
    assert "2 jobs like job 1: 1 run(s): " in dry.stdout
    assert "host RAM (replay 3.5 GiB, agent state 3.8 GiB" in dry.stdout


def test_tiny_profile_is_refused_in_one_line_naming_the_fields(tmp_path):
    """2M steps of replay (0.4 GB per run) x 4 runs per job do not fit 3 GiB; 2 runs per job
    would, as would a smaller replay or one on disk."""
    spec = tiny_spec(
        tmp_path, "tiny", seeds=4, seeds_per_process=2, executor="slurm", steps=2_000_000
    )
    profile = _profile(tmp_path, "tiny", mem_gb=3, runs_per_job=2)
    result, dry, db, work = _sweep(tmp_path, spec, profile)
    for run in (result, dry):
        assert run.returncode == 2
        line = _error_line(run.stderr)
        assert line.startswith("dreamerbench sweep: error: profile 'tiny': mem_gb=3 cannot"), line
        # reacher_easy's observations are wider than cartpole_balance's: its job is the largest.
        seeds = ", ".join(f"reacher_easy/seed{seed}" for seed in range(3))
        assert f"job 2 ({seeds}, +1 runs)" in line
        found = re.search(
            r"set one of: replay.storage=disk, replay.capacity<=([\d,]+), runs_per_job<=1, "
            r"seeds_per_process<=1, "
            r"mem_gb>=\d+; nothing was submitted$",
            line,
        )
        assert found, line
    assert not db.exists() and not work.exists()
    # The capacity it names does fit.
    capacity = int(found.group(1).replace(",", ""))
    overrides = {**yaml.safe_load(spec.read_text())["overrides"], "replay.capacity": capacity}
    spec = tiny_spec(
        tmp_path, "tiny", seeds=4, seeds_per_process=2, steps=2_000_000, overrides=overrides
    )
    dry = dreamerbench(
        "sweep",
        str(spec),
        "--executor",
        "slurm",
        "--profile",
        profile,
        "--dry-run",
        "--tracking-uri",
        f"sqlite:///{db}",
    )
    assert dry.returncode == 0, dry.stderr


def test_a_task_whose_env_cannot_be_made_here_is_not_planned_and_not_refused():
    config = resolve_config("minecraft_diamond", "diamond")
    job = plan.plan_jobs([[(config, "diamond/seed0")]], 1, plan.planner(True), True)[0]
    assert job.line().startswith("1 run(s): not planned (minecraft_diamond/diamond: ")
    assert "MineRL" in job.line()
    assert plan.refusal([job], [[(config, "x")]], 1, 1, plan.planner(True), mem_gb=1) == ""
