"""Slurm executor profiles (``slurm/profiles/*.yaml``): the resources a sweep's jobs get.

A profile is a YAML mapping of :class:`SlurmProfile` fields. It maps to
submitit's :class:`submitit.SlurmExecutor` parameters through the pure
function :func:`executor_parameters`; the resulting sbatch text comes from
submitit's own pure builder (``sbatch_text``), both tested against expected
output in ``tests/test_slurm_profiles.py``.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from dreamerbench.core.reader import (
    NonNegativeInt,
    OneLine,
    PositiveFloat,
    PositiveInt,
    Range,
    ReadError,
    Source,
    load_yaml,
    read_dataclass,
    refuse,
)
from dreamerbench.experiments.spec import SpecError

PROFILE_DIR = Path(str(importlib.resources.files("dreamerbench.slurm") / "profiles"))
"""The shipped profiles: ``slurm/profiles`` of the repository (editable install), package data
``dreamerbench/slurm/profiles`` of a wheel."""


@dataclass(frozen=True)
class SlurmProfile:
    """Resources of one Slurm job and how a sweep's runs map onto jobs.

    Each field's annotation is its type and range (:mod:`dreamerbench.core.reader`); a
    profile file gives any of them, and ``null`` leaves a field's default.
    """

    name: str = "local"
    """Profile name (the file name without .yaml)."""
    partition: OneLine | None = None
    """Slurm partition (--partition); the cluster's default if unset."""
    account: OneLine | None = None
    """Slurm account (--account)."""
    qos: OneLine | None = None
    """Quality of service (--qos)."""
    constraint: OneLine | None = None
    """Node features (--constraint), e.g. 'a100|h100'."""
    gpus_per_node: NonNegativeInt = 0
    """GPUs per job (--gpus-per-node); the packed runs of a job share them. Range: >= 0."""
    cpus_per_task: PositiveInt = 1
    """CPUs per job (--cpus-per-task). Range: >= 1."""
    mem_gb: PositiveFloat = 4.0
    """Memory per job in GB (--mem). Range: > 0."""
    timeout_min: Annotated[
        int, Range(gt=10, note="submitit takes every USR2 for a time-out at 10 or less")
    ] = 24 * 60
    """Wall-clock limit per job in minutes (--time). Range: > 10: submitit treats every USR2
    as a time-out (not a preemption) when timeout_min <= 10."""
    array_parallelism: PositiveInt = 64
    """At most this many jobs of the sweep's job array run at once (--array=...%N). Range: >= 1."""
    runs_per_job: PositiveInt = 1
    """Packs per job, sharing its GPU (threads of one process). A pack is one run, or up
    to the sweep's ``seeds_per_process`` seeds of one task trained by one vmapped train
    step, so a job trains up to runs_per_job x seeds_per_process runs. Range: >= 1."""
    signal_delay_s: NonNegativeInt = 120
    """Seconds between Slurm's USR2 and the kill at the time limit: time to checkpoint.
    Range: >= 0."""
    max_requeues: NonNegativeInt = 20
    """Time-outs after which a run is not requeued again (preemptions do not count). Range: >= 0."""
    setup: tuple[OneLine, ...] = ()
    """Shell lines run in the job before the run (e.g. 'module load cuda'); trusted text."""
    workdir: OneLine | None = None
    """Shared directory for run logdirs and submitit files; default ./runs/sweeps."""
    additional_parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Further sbatch flags, name -> value, each written as ``#SBATCH --name=value`` (submitit's
    ``additional_parameters``; ``_`` in a name becomes ``-``), e.g. ``{mail_type: END,
    reservation: lab}``. Names: letters, digits, ``_`` and ``-``; values: one-line strings or
    numbers. A name that a field above sets is refused (set the field)."""

    def describe(self) -> str:
        """One line: the resources every job gets."""
        parts = [f"partition={self.partition or '(default)'}"]
        parts += [
            f"{k}={getattr(self, k)}" for k in ("account", "qos", "constraint") if getattr(self, k)
        ]
        parts += [
            f"gpus={self.gpus_per_node}",
            f"cpus={self.cpus_per_task}",
            f"mem={self.mem_gb:g}GB",
            f"time={self.timeout_min}min",
            f"runs/job={self.runs_per_job}",
            f"array%{self.array_parallelism}",
        ]
        parts += [f"--{k}={v}" for k, v in self.additional_parameters.items()]
        return " ".join(parts)


_FIELDS = [f.name for f in dataclasses.fields(SlurmProfile)]


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
    try:
        data, lines = load_yaml(text, str(path))
    except ReadError as error:
        raise SpecError(str(error), error.field) from None
    return parse_profile(data or {}, str(path), lines, default_name=path.stem)


def parse_profile(
    data: Mapping[str, Any],
    path: str,
    lines: Mapping[str, int] | None = None,
    default_name: str = "local",
) -> SlurmProfile:
    """A profile from the mapping of a profile file, every field read against its annotation
    (``null`` keeps the default); SpecError ``FILE:LINE: FIELD=VALUE ...; allowed: ...``."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{path}: a profile is a YAML mapping with the fields {', '.join(_FIELDS)}")
    given = {key: value for key, value in data.items() if value is not None}
    try:
        profile = read_dataclass(SlurmProfile, {"name": default_name, **given})
        _check_flags(profile.additional_parameters)
    except ReadError as error:
        raise SpecError(
            f"{Source(path, lines or {}).where(error.field)}: {error}", error.field
        ) from None
    return profile


_FLAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_SET_BY_FIELDS = {
    "job_name",
    "time",
    "cpus_per_task",
    "mem",
    "array",
    "gpus_per_node",
    "partition",
    "account",
    "qos",
    "constraint",
    "signal",
    "output",
    "error",
    "open_mode",
    "nodes",
    "ntasks_per_node",
}
"""sbatch flags that the profile's fields and submitit set (``_`` spelling)."""


def _check_flags(flags: Mapping[str, Any]) -> None:
    """ReadError unless every additional sbatch flag has a plain name that no field sets and a
    one-line string or number value."""
    for name, value in flags.items():
        field = f"additional_parameters.{name}"
        if not isinstance(name, str) or not _FLAG_NAME.fullmatch(name):
            raise refuse(field, name, "an sbatch option name: letters, digits, _ and -")
        if name.replace("-", "_") in _SET_BY_FIELDS:
            raise refuse(field, value, "a flag no profile field sets (set the field instead)")
        if (
            isinstance(value, bool)
            or not isinstance(value, (str, int, float))
            or (isinstance(value, str) and ("\n" in value or "\r" in value or not value.strip()))
        ):
            raise refuse(field, value, "a one-line string or a number")


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
    if profile.additional_parameters:
        params["additional_parameters"] = dict(profile.additional_parameters)
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
