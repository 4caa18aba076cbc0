"""Sweep specs (``experiments/*.yaml``): parsing, validation and expansion into runs.

A spec names a sweep, one suite, its tasks and seeds, config overrides, a grid
of overrides (expanded as a product), the budget and the executor. Every
error names the file, the line where known, the field, the value and what is
allowed, and is raised before anything is created or submitted.

Expansion resolves each run's config exactly as the trainer will see it
(:func:`dreamerbench.agent.config.resolve_config`: suite defaults, then the spec's
overrides) and gives it a stable key: a hash of sweep, suite, task, seed and
the resolved config without its bookkeeping fields (:data:`BOOKKEEPING`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import itertools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from dreamerbench.agent.config import (
    Config,
    Seed,
    SeedsPerProcess,
    apply_overrides,
    flatten,
    resolve_config,
    to_dict,
)
from dreamerbench.core.reader import (
    Length,
    Match,
    PositiveInt,
    Range,
    ReadError,
    Source,
    describe,
    load_yaml,
    read,
    read_dataclass,
    refuse,
)
from dreamerbench.core.reader import flatten as reader_flatten

BOOKKEEPING = {
    "run.steps": "the budget: a larger one continues a finished run from its checkpoint",
    "run.save_every": "checkpoint cadence",
    "run.save_every_s": "checkpoint cadence (seconds)",
    "run.log_every": "training-metric record cadence",
    "run.progress": "progress bar on stderr",
    "run.compile_cache": "where compiled XLA programs are cached",
    "run.parallel_envs": (
        "whether the same envs (same seeds) step in worker processes or in the trainer's"
    ),
    "run.video_every": (
        "episode videos and open-loop reports (rendering draws no training randomness)"
    ),
    "run.video_render": "whether proprio tasks render a camera for the episode videos",
    "run.outputs": "TensorBoard / W&B copies of the records, beside MLflow",
}
"""The one list of config keys that say how a run is kept, not what it learns: they are
left out of its key (:func:`run_key`), so editing them in a spec keeps every run's key,
its MLflow run and its checkpoints. A job takes the new values when it (re)starts
(``dreamerbench.agent.rundir.RunDir.check_config`` lets every ``run.*`` key change on a resume).
Key -> why it is bookkeeping."""
MAX_RUNS = 10_000
"""Most runs one sweep may expand to (tasks x grid points x seeds): a typo such as
``seeds: 10000000`` is refused instead of expanding for minutes."""
NAME = Annotated[
    str,
    Match(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", "1 to 100 letters, digits and _.- (not first)"),
]
"""A sweep's (or train's ``--experiment``) name: a folder name and an MLflow experiment name,
bounded so that the logdirs below it stay within the file system's limits."""
TASKS = Literal["all"] | Annotated[tuple[str, ...], Length(min=1)] | None
SEEDS = (
    Annotated[int, Range(ge=1, le=MAX_RUNS)]
    | Annotated[tuple[Seed, ...], Length(min=1, max=MAX_RUNS)]
)


class SpecError(ReadError):
    """A sweep spec that cannot be run; the message names file, line, field and allowed values."""


@dataclass(frozen=True)
class SweepSpec:
    """One sweep as written in its YAML file (field names are the YAML keys)."""

    name: NAME
    """Sweep name: the MLflow experiment and the work directory are named after it."""
    suite: str
    """Suite name, one of ``suites.SUITES``."""
    tasks: TASKS = None
    """Task names without suite prefix, each once; ``all`` (or leaving it out) means every task
    of the suite."""
    seeds: SEEDS = (0,)
    """A count N in [1, MAX_RUNS] meaning seeds 0 .. N-1, or a list of distinct seeds
    (each in [0, 2147483647], as ``Config.seed``)."""
    steps: PositiveInt | None = None
    """Budget in agent steps per run (``run.steps``); by default the suite's budget. Range: >= 1."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Config overrides applied to every run, as dotted keys or nested mappings (a key once)."""
    grid: Mapping[str, Any] = field(default_factory=dict)
    """Dotted config key -> non-empty list of values; every combination becomes its own run."""
    executor: str = "local"
    """Where runs go by default: a launcher's name (``dreamerbench.experiments.launchers``:
    local, slurm, ...); ``--executor`` overrides."""
    profile: str = "local"
    """The launcher's profile, for a launcher that reads one (Slurm: a name in slurm/profiles/
    or a path); ``--profile`` overrides."""
    parallel: PositiveInt = 1
    """Processes the local executor runs at once (each trains one pack of seeds). Range: >= 1."""
    seeds_per_process: SeedsPerProcess = 1
    """Seeds of one task and grid point trained together by one vmapped train step
    (``Trainer.packed``): one local worker process, or one of the ``runs_per_job``
    packs of a Slurm job; ``--seeds-per-process`` overrides. Range: in [1, 256]."""
    method: str = "dreamerbench"
    """Method label recorded on every run (tag ``dreamerbench.method``)."""
    description: str = ""
    """Free text."""
    path: str = ""
    """File the spec was read from (for error messages)."""
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)
    """YAML field path (``tasks[1]``, ``overrides.agent.size``) -> line number, for errors."""

    def where(self, field_path: str) -> str:
        """'file:line' of a field (or of the closest parent that has a line), or 'file'."""
        return Source(self.path or "<spec>", self.lines).where(field_path)


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: everything a job needs, and its stable key."""

    key: str
    """Stable hash of sweep, suite, task, seed and resolved config."""
    sweep: str
    suite: str
    task: str
    seed: int
    method: str
    point: Mapping[str, Any]
    """This run's grid point (dotted key -> value); empty without a grid."""
    config: Config
    """Fully resolved config (suite defaults, spec overrides, grid point, budget)."""
    protocol: Mapping[str, Any]
    """The suite protocol the environment gets (defaults updated with ``config.env``)."""

    @property
    def label(self) -> str:
        point = ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in self.point.items())
        return f"{self.task}/seed{self.seed}" + (f"/{point}" if point else "")


_FIELDS = [f.name for f in dataclasses.fields(SweepSpec) if f.name not in ("path", "lines")]
_REQUIRED = ("name", "suite")
_OWN_FIELDS = {"run.steps": "steps", "seed": "seeds", "suite": "suite", "task": "tasks"}
"""Config keys that the spec sets through its own fields, never as overrides or grid keys."""


def parse_spec(text: str, path: str = "<spec>") -> SweepSpec:
    """Parse and read a spec (suite and tasks are checked by :func:`expand`).

    Text is YAML 1.2 without aliases (:func:`dreamerbench.core.reader.load_yaml`); each
    field is read against its annotation above and each override and grid
    value against its config field, so a spec, ``--set`` and a job refuse
    the same values. SpecError: ``FILE:LINE: FIELD=VALUE ...; allowed: ...``.
    """
    try:
        data, lines = load_yaml(text, path)
    except ReadError as error:
        raise SpecError(str(error), error.field) from None
    source = Source(path, lines)
    if not isinstance(data, Mapping):
        raise SpecError(
            f"{path}: a sweep spec is a YAML mapping with the fields {', '.join(_FIELDS)}"
        )
    for key in _REQUIRED:
        if data.get(key) in (None, ""):
            raise SpecError(
                f"{path}: the field {key!r} is required (fields: {', '.join(_FIELDS)})", key
            )
    unknown = [key for key in data if key not in _FIELDS]
    if unknown:
        raise SpecError(
            f"{source.where(str(unknown[0]))}: unknown field {unknown[0]!r}; "
            f"allowed fields: {', '.join(_FIELDS)}",
            str(unknown[0]),
        )
    try:
        plain = {k: v for k, v in data.items() if k not in ("name", "suite", "overrides", "grid")}
        spec = read_dataclass(
            SweepSpec,
            plain,
            name=read(data["name"], NAME, "name"),
            suite=read(data["suite"], str, "suite"),
            path=path,
            lines=lines,
        )
        spec = dataclasses.replace(
            spec, **_read_lists(spec), overrides=_read_overrides(data), grid=_read_grid(data)
        )
        _check_executor(spec.executor)
    except ReadError as error:
        raise SpecError(f"{source.where(error.field)}: {error}", error.field) from None
    return spec


def _read_lists(spec: SweepSpec) -> dict[str, Any]:
    """Rules beyond one hint: tasks and seeds are distinct, and a seed count N means 0 .. N-1."""
    tasks = None if spec.tasks in ("all", None) else spec.tasks
    if tasks is not None and len(set(tasks)) != len(tasks):
        raise refuse("tasks", list(tasks), "'all' or a list of distinct task names")
    seeds = tuple(range(spec.seeds)) if isinstance(spec.seeds, int) else spec.seeds
    if len(set(seeds)) != len(seeds):
        raise refuse("seeds", list(seeds), describe(SEEDS) + ", the seeds distinct")
    return {"tasks": tasks, "seeds": seeds}


def _check_executor(name: str) -> None:
    """ReadError unless `name` is a registered launcher (``launchers.LAUNCHERS``)."""
    # Imported here: the launchers import the profiles, which import this module.
    from dreamerbench.experiments.launchers import LAUNCHERS

    if name not in LAUNCHERS:
        raise refuse("executor", name, ", ".join(LAUNCHERS))


def _read_overrides(data: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` flattened to dotted keys, each value read against its config field."""
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        raise refuse("overrides", overrides, "a mapping of config keys to values")
    flat = _flat(overrides, "overrides")
    for key, value in flat.items():
        _check_key(key, "overrides")
        _read_config_value(key, value, f"overrides.{key}")
    return flat


def _read_grid(data: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
    """``grid`` flattened to dotted keys, each a non-empty list of values read against its config
    field."""
    grid = data.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise refuse("grid", grid, "a mapping of config keys to lists of values")
    out = {}
    overrides = _flat(data.get("overrides") or {}, "overrides")
    for key, options in _flat(grid, "grid").items():
        if not isinstance(options, list) or not options:
            raise refuse(f"grid.{key}", options, "a non-empty list of values")
        if key in overrides:
            raise ReadError(f"{key} is both in overrides and in grid; give it once", f"grid.{key}")
        _check_key(key, "grid")
        for index, value in enumerate(options):
            _read_config_value(key, value, f"grid.{key}[{index}]")
        out[key] = tuple(options)
    return out


def _flat(tree: Mapping[str, Any], field_name: str) -> dict[str, Any]:
    """``tree`` as dotted keys; ReadError naming ``FIELD.KEY`` if a key is given twice."""
    prefix = f"{field_name}."
    return {key[len(prefix) :]: value for key, value in reader_flatten(tree, prefix).items()}


def _check_key(key: str, field_name: str) -> None:
    if key in _OWN_FIELDS:
        raise ReadError(
            f"{field_name}.{key} is not allowed; allowed: the spec's own field "
            f"'{_OWN_FIELDS[key]}' (give it once)",
            f"{field_name}.{key}",
        )


def _read_config_value(key: str, value: Any, field_path: str) -> None:
    """Read one value as ``--set`` would: ReadError about ``field_path`` if its config field
    refuses it."""
    try:
        apply_overrides(Config(), {key: value})
    except ReadError as error:
        raise ReadError(str(error), field_path) from None


def _blame(spec: SweepSpec, key: str, point: Mapping[str, Any]) -> str:
    """The spec field that set config ``key``: its grid or override line, else the whole section."""
    if key in spec.grid:
        return f"grid.{key}[{spec.grid[key].index(point[key])}]"
    if key in spec.overrides:
        return f"overrides.{key}"
    if key == "run.steps":
        return "steps"
    return "grid" if point else "overrides"


def load_spec(path: str | Path) -> SweepSpec:
    """Read and parse one spec file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(
            f"{path}: no such sweep spec; examples shipped with dreamerbench: "
            f"{', '.join(example_names())}"
        ) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: cannot read the sweep spec: {error}") from None
    return parse_spec(text, str(path))


_EXAMPLE = re.compile(r"(?:experiments/)?([A-Za-z0-9][A-Za-z0-9_.-]*?)(?:\.ya?ml)?")


def example_spec(name: str) -> Path | None:
    """The example spec shipped with the package (``dreamerbench.experiments`` package data)
    that `name` names: an example's name (``atari100k``) or ``experiments/<name>.yaml``; None
    if `name` names none."""
    match = _EXAMPLE.fullmatch(name)
    if match is None:
        return None
    path = importlib.resources.files("dreamerbench.experiments") / f"{match.group(1)}.yaml"
    return Path(str(path)) if path.is_file() else None


def example_names() -> list[str]:
    """Names of the example specs shipped with the package."""
    folder = importlib.resources.files("dreamerbench.experiments")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def key_fields(config: Config) -> dict[str, Any]:
    """The flattened resolved config that makes a run's key: every field but :data:`BOOKKEEPING`."""
    return {k: v for k, v in flatten(to_dict(config)).items() if k not in BOOKKEEPING}


def run_key(sweep: str, suite: str, task: str, seed: int, config: Config) -> str:
    """Stable 16-hex-digit key of one run (same inputs -> same key, across processes).

    SHA-256 of sweep, suite, task, seed and :func:`key_fields` of the config, so
    bookkeeping edits (:data:`BOOKKEEPING`) keep the key.
    """
    payload = json.dumps(
        {"sweep": sweep, "suite": suite, "task": task, "seed": seed, "config": key_fields(config)},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def key_differences(run: RunSpec, params: Mapping[str, str]) -> list[str]:
    """The key fields in which `run` differs from a recorded MLflow run's `params`, as
    ``FIELD: RECORDED -> NOW`` (``-`` where one side lacks the field), sorted by field.

    `params` are that run's MLflow params (:func:`dreamerbench.experiments.tracking.run_params`: the
    flattened resolved config as text); bookkeeping fields never count.
    """
    from dreamerbench.experiments.tracking import run_params

    now = {
        k: v
        for k, v in run_params(run).items()
        if k not in BOOKKEEPING and not k.startswith("protocol.")
    }
    then = {
        k: v for k, v in params.items() if k not in BOOKKEEPING and not k.startswith("protocol.")
    }
    return [
        f"{k}: {then.get(k, '-')} -> {now.get(k, '-')}"
        for k in sorted(set(now) | set(then))
        if now.get(k) != then.get(k)
    ]


Resolver = Callable[..., Config]


def default_resolver() -> Resolver:
    return resolve_config


def expand(spec: SweepSpec, resolve: Resolver | None = None) -> list[RunSpec]:
    """All runs of a sweep in a stable order (task, grid point, seed).

    ``resolve(suite=, task=, seed=, overrides=)`` builds the resolved config;
    it is :func:`dreamerbench.agent.config.resolve_config` unless given, which ends in
    :func:`dreamerbench.agent.config.validate`: every run gets the whole validation a job
    does (fields, joint rules, suite protocol) before anything is created, so
    ``sweep --dry-run`` refuses what a job would. SpecError names the line of
    the override or grid value at fault, the run and the rule; also when the
    sweep would have more than ``MAX_RUNS`` runs.
    """
    from dreamerbench import suites  # cheap: environment libraries load inside make_env.

    resolve = resolve or default_resolver()
    if spec.suite not in suites.SUITES:
        raise SpecError(
            f"{spec.where('suite')}: suite={spec.suite!r} is not allowed; "
            f"allowed: {', '.join(suites.SUITES)}",
            "suite",
        )
    suite = suites.get_suite(spec.suite)
    tasks = spec.tasks if spec.tasks is not None else suite.tasks
    if not tasks:
        raise SpecError(
            f"{spec.where('tasks')}: tasks='all' is not allowed for suite {suite.name!r}, "
            "which has no fixed task list; allowed: a list of its task names",
            "tasks",
        )
    for index, task in enumerate(tasks):
        if suite.open_tasks is not None:
            try:
                suite.check_task(task)
            except ValueError as error:
                raise SpecError(
                    f"{spec.where(f'tasks[{index}]')}: tasks[{index}]: {error}", f"tasks[{index}]"
                ) from None
        elif task not in suite.tasks:
            raise SpecError(
                f"{spec.where(f'tasks[{index}]')}: tasks[{index}]={task!r} is not a task of "
                f"suite {suite.name!r}; allowed: all, {', '.join(suite.tasks)}",
                f"tasks[{index}]",
            )
    count = len(tasks) * len(spec.seeds) * math.prod(len(values) for values in spec.grid.values())
    if count > MAX_RUNS:
        raise SpecError(
            f"{spec.where('seeds')}: this sweep has {count:,} runs ({len(tasks)} tasks x "
            f"{math.prod(len(v) for v in spec.grid.values())} grid points x "
            f"{len(spec.seeds)} seeds); "
            f"allowed: at most {MAX_RUNS:,} runs per sweep",
            "seeds",
        )
    steps = spec.steps if spec.steps is not None else suite.budget_steps
    grid_keys = list(spec.grid)
    points = [dict(zip(grid_keys, combo)) for combo in itertools.product(*spec.grid.values())]
    runs: list[RunSpec] = []
    for task in tasks:
        for point in points:
            for seed in spec.seeds:
                overrides = {**spec.overrides, **point, "run.steps": steps}
                try:
                    config = resolve(suite=suite.name, task=task, seed=seed, overrides=overrides)
                    protocol = suite.resolve_protocol(config.env)
                except ValueError as error:  # ConfigError and the suite's own checks
                    where = spec.where(_blame(spec, getattr(error, "field", ""), point))
                    raise SpecError(f"{where}: run {task}/seed{seed}: {error}") from None
                runs.append(
                    RunSpec(
                        key=run_key(spec.name, suite.name, task, seed, config),
                        sweep=spec.name,
                        suite=suite.name,
                        task=task,
                        seed=seed,
                        method=spec.method,
                        point=point,
                        config=config,
                        protocol=protocol,
                    )
                )
    return runs
