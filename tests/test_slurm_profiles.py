"""Slurm profiles: parsing, errors, and the sbatch text they produce."""

import pytest

from dreamerbench.experiments.profiles import (
    available_profiles,
    executor_parameters,
    load_profile,
    mem_text,
    parse_profile,
    sbatch_text,
)
from dreamerbench.experiments.spec import SpecError

EXPECTED_PACKED_ARRAY = """\
#!/bin/bash

# Parameters
#SBATCH --account=my-lab
#SBATCH --array=0-22%16
#SBATCH --cpus-per-task=16
#SBATCH --gpus-per-node=1
#SBATCH --job-name=dmc_proprio
#SBATCH --mem=96GB
#SBATCH --nodes=1
#SBATCH --open-mode=append
#SBATCH --output=/shared/sweeps/dmc_proprio/slurm/%A_%a/%A_%a_0_log.out
#SBATCH --partition=gpu
#SBATCH --signal=USR2@180
#SBATCH --time=1440
#SBATCH --wckey=submitit

# setup
module load cuda/12.4 || true

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /shared/sweeps/dmc_proprio/slurm/%A_%a/%A_%a_%t_log.out python -u -m submitit.core._submit /shared/sweeps/dmc_proprio/slurm/%j
"""  # noqa: E501 (submitit's own line)

EXPECTED_SINGLE_JOB = """\
#!/bin/bash

# Parameters
#SBATCH --cpus-per-task=1
#SBATCH --job-name=one
#SBATCH --mem=1536MB
#SBATCH --nodes=1
#SBATCH --open-mode=append
#SBATCH --output=/w/%j/%j_0_log.out
#SBATCH --partition=debug
#SBATCH --signal=USR2@120
#SBATCH --time=30
#SBATCH --wckey=submitit

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /w/%j/%j_%t_log.out python -u -m submitit.core._submit /w/%j
"""


def test_sbatch_text_of_packed_gpu_array():
    text = sbatch_text(
        load_profile("gpu_packed"), "dmc_proprio", "/shared/sweeps/dmc_proprio/slurm/%j", 23
    )
    assert text == EXPECTED_PACKED_ARRAY


def test_sbatch_text_of_a_single_job():
    profile = parse_profile({"partition": "debug", "timeout_min": 30, "mem_gb": 1.5}, "x.yaml")
    assert sbatch_text(profile, "one", "/w/%j", 1) == EXPECTED_SINGLE_JOB


def test_shipped_profiles_load():
    assert {"local", "gpu_example", "gpu_packed"} <= set(available_profiles())
    for name in available_profiles():
        profile = load_profile(name)
        assert profile.timeout_min > 10
        assert executor_parameters(profile, "x")["time"] == profile.timeout_min


def test_mem_text():
    assert mem_text(4) == "4GB"
    assert mem_text(1.5) == "1536MB"


def test_unknown_field_names_file_line_and_allowed(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("partition: gpu\ngpus: 2\n")
    with pytest.raises(SpecError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert f"{path}:2" in message and "'gpus'" in message and "gpus_per_node" in message


def test_short_timeout_is_refused(tmp_path):
    path = tmp_path / "short.yaml"
    path.write_text("timeout_min: 10\n")
    with pytest.raises(
        SpecError,
        match=r"short.yaml:1: timeout_min=10 is not allowed; allowed: an integer > 10 \(submitit",
    ):
        load_profile(str(path))


def test_bad_value_type(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("cpus_per_task: two\n")
    with pytest.raises(
        SpecError, match=r"p.yaml:1: cpus_per_task='two' is not allowed; allowed: an integer >= 1"
    ):
        load_profile(str(path))


def test_missing_profile_lists_available():
    with pytest.raises(SpecError, match="no such Slurm profile; available in .*local"):
        load_profile("nope")
