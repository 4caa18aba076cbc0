"""`dreamerbench sweep` refuses bad specs and a missing Slurm clearly, creating and submitting
nothing; it reads the examples shipped with the package."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from test_sweep_slurm import dreamerbench, tiny_spec


def test_bad_spec_fails_before_anything_is_created(tmp_path):
    spec = tiny_spec(tmp_path, "bad", tasks=["cartpole_balance", "cartpole_balanse"])
    db = tmp_path / "mlflow.db"
    result = dreamerbench(
        "sweep", str(spec), "--tracking-uri", f"sqlite:///{db}", "--workdir", str(tmp_path / "work")
    )
    assert result.returncode == 2
    line = next(
        i for i, text in enumerate(spec.read_text().splitlines(), 1) if "cartpole_balanse" in text
    )
    assert (
        f"{spec}:{line}: tasks[1]='cartpole_balanse' is not a task of suite 'dmc_proprio'"
        in result.stderr
    )
    assert "allowed: all, acrobot_swingup" in result.stderr
    assert "Traceback" not in result.stderr
    assert not db.exists() and not (tmp_path / "work").exists()


def test_unknown_executor_and_profile(tmp_path):
    spec = tiny_spec(tmp_path, "p")
    result = dreamerbench("sweep", str(spec), "--executor", "slurm", "--profile", "nope")
    assert result.returncode == 2
    assert "no such Slurm profile; available in" in result.stderr and "local" in result.stderr
    result = dreamerbench("sweep", str(spec), "--executor", "cloud")
    assert result.returncode == 2 and "invalid choice: 'cloud'" in result.stderr


def test_missing_slurm_submits_nothing(tmp_path):
    spec = tiny_spec(tmp_path, "noslurm")
    db = tmp_path / "mlflow.db"
    args = (
        "sweep",
        str(spec),
        "--executor",
        "slurm",
        "--profile",
        "local",
        "--tracking-uri",
        f"sqlite:///{db}",
        "--workdir",
        str(tmp_path / "work"),
    )
    # A controller that does not answer (no cluster behind this config).
    conf = tmp_path / "slurm.conf"
    conf.write_text(
        "ClusterName=none\nSlurmctldHost=localhost\nSlurmctldPort=1\n"
        "NodeName=localhost\nPartitionName=debug Nodes=localhost\n"
    )
    result = dreamerbench(*args, env={"SLURM_CONF": str(conf)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Slurm does not answer" in result.stderr and "nothing was submitted" in result.stderr
    assert "slurm/local/start.sh" in result.stderr
    result = dreamerbench(*args, env={"SLURM_CONF": str(tmp_path / "missing.conf")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"SLURM_CONF={tmp_path / 'missing.conf'} does not exist" in result.stderr
    # No Slurm commands at all.
    result = dreamerbench(*args, env={"PATH": str(tmp_path / "empty")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Slurm is not installed here (missing sbatch" in result.stderr
    assert not db.exists() and not (tmp_path / "work").exists()


def test_dry_run_prints_runs_and_resources(tmp_path):
    spec = tiny_spec(tmp_path, "dry")
    db = tmp_path / "mlflow.db"
    result = dreamerbench(
        "sweep",
        str(spec),
        "--dry-run",
        "--executor",
        "slurm",
        "--profile",
        "gpu_packed",
        "--tracking-uri",
        f"sqlite:///{db}",
    )
    assert result.returncode == 0, result.stderr
    assert "4 runs (dmc_proprio) -> slurm, profile gpu_packed: 1 array jobs" in result.stdout
    assert "gpus=1 cpus=16 mem=96GB time=1440min runs/job=4" in result.stdout
    assert result.stdout.count(" new ") == 4 and "nothing created or submitted" in result.stdout
    assert not db.exists()


def test_seeds_per_process_flag_is_checked_and_the_dry_run_shows_the_packs(tmp_path):
    spec = tiny_spec(tmp_path, "packs", seeds=3)
    db = tmp_path / "mlflow.db"
    result = dreamerbench(
        "sweep", str(spec), "--seeds-per-process", "0", "--tracking-uri", f"sqlite:///{db}"
    )
    assert (
        result.returncode == 2
        and "--seeds-per-process=0 is not allowed; allowed: an integer in [1, 256]" in result.stderr
    )
    result = dreamerbench(
        "sweep",
        str(spec),
        "--dry-run",
        "--seeds-per-process",
        "2",
        "--executor",
        "slurm",
        "--profile",
        "gpu_packed",
        "--tracking-uri",
        f"sqlite:///{db}",
    )
    assert result.returncode == 0, result.stderr
    assert "6 runs (dmc_proprio) -> slurm, profile gpu_packed: 1 array jobs" in result.stdout
    assert "6 runs in 4 packs of up to 2 seeds" in result.stdout
    assert "job 1: cartpole_balance/seed0 + cartpole_balance/seed1\n" in result.stdout
    assert "job 1: reacher_easy/seed2\n" in result.stdout
    assert not db.exists()


def test_an_example_spec_is_read_from_the_package_when_no_such_file_is_here(
    tmp_path, monkeypatch, capsys
):
    """`dreamerbench sweep atari100k` (or experiments/atari100k.yaml) away from a checkout reads
    the example shipped as package data, saying so in one line on stderr."""
    from dreamerbench.experiments import cli, tracking

    monkeypatch.chdir(tmp_path)  # no experiments/ folder here
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for name in ("quickstart", "experiments/atari100k.yaml"):
        assert cli.main(["sweep", name, "--dry-run", "--tracking-uri", uri]) == 0
        out, err = capsys.readouterr()
        example = name.removeprefix("experiments/").removesuffix(".yaml")
        shipped = Path(importlib.resources.files("dreamerbench.experiments") / f"{example}.yaml")
        assert err.strip() == (
            f"dreamerbench: no file {name} here; reading the example shipped with dreamerbench: "
            f"{shipped}"
        )
        assert f"sweep {example}: " in out and "dry run: nothing created" in out
    tracking.Tracker(uri).experiment("quickstart")
    assert cli.main(["status", "experiments/quickstart.yaml", "--tracking-uri", uri]) == 0
    out, err = capsys.readouterr()
    assert "reading the example shipped with dreamerbench" in err
    assert "sweep quickstart: 4 runs" in out and "(4 not submitted)" in out
    # Neither a file nor an example: the usual one line, naming the examples.
    assert cli.main(["sweep", "nope.yaml", "--dry-run"]) == 2
    assert "nope.yaml: no such sweep spec; examples shipped with dreamerbench: atari100k, " in (
        capsys.readouterr().err
    )
