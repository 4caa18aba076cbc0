"""Slurm executor profiles (``slurm/profiles/*.yaml``): the resources a sweep's jobs get.

A profile is a YAML mapping of :class:`SlurmProfile` fields. It maps to
submitit's :class:`submitit.SlurmExecutor` parameters through the pure
function :func:`executor_parameters`; the resulting sbatch text comes from
submitit's own pure builder (``sbatch_text``), both tested against expected
output in ``tests/test_slurm_profiles.py``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from experiments.spec import SpecError, _load_yaml

PROFILE_DIR = Path(__file__).resolve().parent.parent / "slurm" / "profiles"


@dataclass(frozen=True)
class SlurmProfile:
    """Resources of one Slurm job and how a sweep's runs map onto jobs."""

    name: str = "local"
    """Profile name (the file name without .yaml)."""
    partition: str | None = None
    """Slurm partition (--partition); the cluster's default if unset."""
    account: str | None = None
    """Slurm account (--account)."""
    qos: str | None = None
    """Quality of service (--qos)."""
    constraint: str | None = None
    """Node features (--constraint), e.g. 'a100|h100'."""
    gpus_per_node: int = 0
    """GPUs per job (--gpus-per-node); the packed runs of a job share them."""
    cpus_per_task: int = 1
    """CPUs per job (--cpus-per-task)."""
    mem_gb: float = 4.0
    """Memory per job in GB (--mem)."""
    timeout_min: int = 24 * 60
    """Wall-clock limit per job in minutes (--time). Keep it above 10: submitit treats
    every USR2 as a time-out (not a preemption) when timeout_min <= 10."""
    array_parallelism: int = 64
    """At most this many jobs of the sweep's job array run at once (--array=...%N)."""
    runs_per_job: int = 1
    """Packs per job, sharing its GPU (threads of one process). A pack is one run, or up
    to the sweep's ``seeds_per_process`` seeds of one task trained by one vmapped train
    step, so a job trains up to runs_per_job x seeds_per_process runs."""
    signal_delay_s: int = 120
    """Seconds between Slurm's USR2 and the kill at the time limit: time to checkpoint."""
    max_requeues: int = 20
    """Time-outs after which a run is not requeued again (preemptions do not count)."""
    setup: tuple[str, ...] = ()
    """Shell lines run in the job before the run (e.g. 'module load cuda'); trusted text."""
    workdir: str | None = None
    """Shared directory for run logdirs and submitit files; default ./runs/sweeps."""

    def describe(self) -> str:
        """One line: the resources every job gets."""
        parts = [f"partition={self.partition or '(default)'}"]
        parts += [f"{k}={getattr(self, k)}" for k in ("account", "qos", "constraint") if getattr(self, k)]
        parts += [
            f"gpus={self.gpus_per_node}",
            f"cpus={self.cpus_per_task}",
            f"mem={self.mem_gb:g}GB",
            f"time={self.timeout_min}min",
            f"runs/job={self.runs_per_job}",
            f"array%{self.array_parallelism}",
        ]
        return " ".join(parts)


_FIELDS = {f.name: f for f in dataclasses.fields(SlurmProfile)}
_INT_FIELDS = ("gpus_per_node", "cpus_per_task", "timeout_min", "array_parallelism",
               "runs_per_job", "signal_delay_s", "max_requeues")
_MIN = {"gpus_per_node": 0, "signal_delay_s": 0, "max_requeues": 0}


def profile_path(name_or_path: str) -> Path:
    """A profile name ('local') is looked up in slurm/profiles/; anything with a '/' or
    '.yaml' is a path."""
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        return Path(name_or_path)
    return PROFILE_DIR / f"{name_or_path}.yaml"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> SlurmProfile:
    """Read and validate one profile; SpecError names file, line, field and allowed values."""
    path = profile_path(name_or_path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(
            f"{path}: no such Slurm profile; available in {PROFILE_DIR}: "
            f"{', '.join(available_profiles())}"
        ) from None
    data, lines = _load_yaml(text, str(path))
    return parse_profile(data or {}, str(path), lines, default_name=path.stem)


def parse_profile(
    data: Mapping[str, Any], path: str, lines: Mapping[str, int] | None = None,
    default_name: str = "local",
) -> SlurmProfile:
    lines = lines or {}

    def fail(key: str, message: str) -> SpecError:
        line = lines.get(key)
        return SpecError(f"{path}{f':{line}' if line else ''}: {message}")

    if not isinstance(data, Mapping):
        raise SpecError(f"{path}: a profile is a YAML mapping with the fields {', '.join(_FIELDS)}")
    values: dict[str, Any] = {"name": default_name}
    for key, value in data.items():
        if key not in _FIELDS:
            raise fail(str(key), f"unknown field {key!r}; allowed fields: {', '.join(_FIELDS)}")
        if value is None:
            continue
        if key in _INT_FIELDS:
            if not isinstance(value, int) or isinstance(value, bool) or value < _MIN.get(key, 1):
                raise fail(key, f"{key}={value!r} must be an integer >= {_MIN.get(key, 1)}")
        elif key == "mem_gb":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise fail(key, f"mem_gb={value!r} must be a positive number")
            value = float(value)
        elif key == "setup":
            if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
                raise fail(key, f"setup={value!r} must be a list of shell lines")
            value = tuple(value)
        elif not isinstance(value, str) or "\n" in value:
            raise fail(key, f"{key}={value!r} must be a one-line string")
        values[key] = value
    profile = SlurmProfile(**values)
    if profile.timeout_min <= 10:
        raise fail(
            "timeout_min",
            f"timeout_min={profile.timeout_min} must be > 10: submitit treats a preemption "
            "signal as a time-out below that",
        )
    return profile


def mem_text(mem_gb: float) -> str:
    """4 -> '4GB', 1.5 -> '1536MB' (what sbatch --mem reads)."""
    if float(mem_gb).is_integer():
        return f"{int(mem_gb)}GB"
    return f"{math.ceil(mem_gb * 1024)}MB"


def executor_parameters(profile: SlurmProfile, job_name: str) -> dict[str, Any]:
    """submitit.SlurmExecutor.update_parameters(...) arguments for a profile."""
    params: dict[str, Any] = {
        "job_name": job_name,
        "time": profile.timeout_min,
        "cpus_per_task": profile.cpus_per_task,
        "mem": mem_text(profile.mem_gb),
        "array_parallelism": profile.array_parallelism,
        "signal_delay_s": profile.signal_delay_s,
        "stderr_to_stdout": True,
    }
    if profile.gpus_per_node:
        params["gpus_per_node"] = profile.gpus_per_node
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(profile, key):
            params[key] = getattr(profile, key)
    if profile.setup:
        params["setup"] = list(profile.setup)
    return params


def sbatch_text(profile: SlurmProfile, job_name: str, folder: str, array_size: int | None) -> str:
    """The sbatch script submitit writes for this profile (submitit's own pure builder)."""
    from submitit.slurm.slurm import _make_sbatch_string

    command = "python -u -m submitit.core._submit " + folder
    return _make_sbatch_string(
        command=command,
        folder=folder,
        map_count=array_size if array_size and array_size > 1 else None,
        **executor_parameters(profile, job_name),
    )
