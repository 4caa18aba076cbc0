"""Slurm submissions that fit the cluster and fail cleanly (``experiments/launchers/slurm.py``):
a sweep larger than ``MaxArraySize`` goes out as several arrays; an array that sbatch refuses is
one error line quoting sbatch, leaves no run looking interrupted, and the next sweep submits only
what is missing. The cluster is a set of stand-in Slurm commands on PATH (MaxArraySize 10), as
in the issue, so the shared local cluster is never changed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_sweep_slurm import dreamerbench, tiny_spec

from dreamerbench.experiments import tracking
from dreamerbench.experiments.launchers.slurm import max_array_size, parse_max_array_size
from dreamerbench.experiments.profiles import load_profile, sbatch_text

SBATCH = r"""#!/bin/bash
# Stand-in sbatch: refuses arrays past $DIR/max tasks, and every submission after
# $DIR/refuse_after ones (if that file exists), as a cluster's limits do.
dir=$(dirname "$0")
array=$(sed -n 's/^#SBATCH --array=\(.*\)$/\1/p' "$1")
n=$(cat "$dir/count" 2>/dev/null || echo 0)
if [ -f "$dir/refuse_after" ] && [ "$n" -ge "$(cat "$dir/refuse_after")" ]; then
  echo "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy" >&2
  exit 1
fi
last=${array#0-}; last=${last%%\%*}
if [ -n "$array" ] && [ "$last" -ge "$(cat "$dir/max")" ]; then
  echo "sbatch: error: Batch job submission failed: Invalid job array specification" >&2
  exit 1
fi
echo $((n + 1)) > "$dir/count"
echo "$((1000 + n)) $array" >> "$dir/submitted"
echo "Submitted batch job $((1000 + n))"
"""

SQUEUE = r"""#!/bin/bash
# Stand-in squeue -h -r -o '%i|%T': every submitted job (array task) is pending.
dir=$(dirname "$0")
[ -f "$dir/submitted" ] || exit 0
while read -r id array; do
  if [ -z "$array" ]; then echo "$id|PENDING"; continue; fi
  last=${array#0-}; last=${last%%\%*}
  for i in $(seq 0 "$last"); do echo "${id}_$i|PENDING"; done
done < "$dir/submitted"
"""

SCONTROL = r"""#!/bin/bash
dir=$(dirname "$0")
if [ "$1 $2" = "show config" ]; then
  printf 'MaxArraySize            = %s\nMaxJobCount             = 10000\n' "$(cat "$dir/max")"
fi
"""


@pytest.fixture
def cluster(tmp_path):
    """A directory of stand-in sbatch, squeue, scontrol, sinfo and srun; returns it and the
    environment that puts it first on PATH (without the shared cluster's SLURM_CONF)."""
    bin_dir = tmp_path / "slurm-bin"
    bin_dir.mkdir()
    scripts = {
        "sbatch": SBATCH,
        "squeue": SQUEUE,
        "scontrol": SCONTROL,
        "sinfo": "#!/bin/bash\necho 'debug*'\n",
        "srun": "#!/bin/bash\nexit 0\n",
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (bin_dir / "max").write_text("10\n")
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SLURM_CONF": ""}
    return bin_dir, env


def _sweep(tmp_path, env, *extra):
    spec = tiny_spec(
        tmp_path, "arrays", tasks=["cartpole_balance", "reacher_easy"], seeds=6, executor="slurm"
    )
    profile = tmp_path / "profiles" / "small.yaml"
    profile.parent.mkdir(exist_ok=True)
    profile.write_text(yaml.safe_dump({"partition": "debug", "mem_gb": 4, "array_parallelism": 4}))
    db = tmp_path / "mlflow.db"
    args = ("--profile", str(profile), "--tracking-uri", f"sqlite:///{db}")
    result = dreamerbench(
        "sweep", str(spec), *args, "--workdir", str(tmp_path / "work"), *extra, env=env
    )
    return result, spec, db


def _states(spec, db, env) -> str:
    return dreamerbench("status", str(spec), "--tracking-uri", f"sqlite:///{db}", env=env).stdout


def test_parse_max_array_size():
    text = "Configuration data as of 2026-12-06T22:00:00\nMaxArraySize            = 1001\n"
    assert parse_max_array_size(text) == 1001
    assert parse_max_array_size("MaxJobCount = 10000\n") is None


def test_sweep_larger_than_max_array_size_is_split(tmp_path, cluster):
    bin_dir, env = cluster
    result, spec, db = _sweep(tmp_path, env)
    assert result.returncode == 0, result.stderr
    arrays = (bin_dir / "submitted").read_text().splitlines()
    assert arrays == ["1000 0-9%4", "1001 0-1%2"]
    assert "submitted 12 runs as 12 Slurm jobs in 2 array(s) of at most 10 (MaxArraySize)" in (
        result.stdout
    )
    runs = tracking.Tracker(f"sqlite:///{db}").runs(
        tracking.Tracker(f"sqlite:///{db}").find_experiment("arrays").experiment_id
    )
    job_ids = sorted(r.data.tags[tracking.TAG + "slurm_job_id"] for r in runs)
    assert job_ids == sorted([f"1000_{i}" for i in range(10)] + ["1001_0", "1001_1"])
    assert _states(spec, db, env).count("queued") >= 12


def test_refused_array_is_one_line_and_the_rerun_submits_only_the_rest(tmp_path, cluster):
    bin_dir, env = cluster
    (bin_dir / "refuse_after").write_text("1\n")
    result, spec, db = _sweep(tmp_path, env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = [text for text in result.stderr.splitlines() if "error" in text]
    assert line == (
        "dreamerbench sweep: error: sbatch refused array 2 of 2 (2 jobs): sbatch: error: Batch "
        "job submission failed: Job violates accounting/QOS policy; 10 runs submitted, 2 not "
        "(run the sweep again to submit them)"
    )
    states = _states(spec, db, env)
    assert "interrupted" not in states
    tracker = tracking.Tracker(f"sqlite:///{db}")
    runs = tracker.runs(tracker.find_experiment("arrays").experiment_id)
    assert len(runs) == 10 and all(r.info.status == "SCHEDULED" for r in runs)

    (bin_dir / "refuse_after").unlink()
    result, spec, db = _sweep(tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert (bin_dir / "submitted").read_text().splitlines() == ["1000 0-9%4", "1001 0-1%2"]
    assert "skip" in result.stdout and "submitted 2 runs as 2 Slurm jobs" in result.stdout
    runs = tracker.runs(tracker.find_experiment("arrays").experiment_id)
    assert len(runs) == 12 and "interrupted" not in _states(spec, db, env)


def test_profile_passes_additional_sbatch_flags(tmp_path):
    path = tmp_path / "flags.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "partition": "gpu",
                "additional_parameters": {"mail_type": "END", "reservation": "lab"},
            }
        )
    )
    text = sbatch_text(load_profile(str(path)), "s", "/shared/s/%j", 3)
    assert "#SBATCH --mail-type=END\n" in text and "#SBATCH --reservation=lab\n" in text
    path.write_text(yaml.safe_dump({"additional_parameters": {"mem": "9G"}}))
    with pytest.raises(ValueError, match=r"additional_parameters.mem='9G' is not allowed"):
        load_profile(str(path))
    path.write_text(yaml.safe_dump({"additional_parameters": {"comment": "a\nb"}}))
    with pytest.raises(ValueError, match="a one-line string or a number"):
        load_profile(str(path))


@pytest.mark.skipif(
    not Path("/tmp/dreamerbench-slurm/slurm.conf").is_file() or shutil.which("scontrol") is None,
    reason="the local test cluster is not running (slurm/local/start.sh)",
)
def test_max_array_size_of_the_local_cluster(monkeypatch):
    """The real cluster's answer (read only): Slurm's default, as its slurm.conf leaves it."""
    monkeypatch.setenv("SLURM_CONF", "/tmp/dreamerbench-slurm/slurm.conf")
    shown = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True)
    assert max_array_size() == parse_max_array_size(shown.stdout) == 1001
