"""Sweep specs (``experiments/*.yaml``): parsing, validation and expansion into runs.

A spec names a sweep, one suite, its tasks and seeds, config overrides, a grid
of overrides (expanded as a product), the budget and the executor. Every
error names the file, the line where known, the field, the value and what is
allowed, and is raised before anything is created or submitted.

Expansion resolves each run's config exactly as the trainer will see it
(:func:`agent.trainer.resolve_config`: suite defaults, then the spec's
overrides) and gives it a stable key: a hash of sweep, suite, task, seed and
the resolved config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from agent.config import Config, ConfigError, apply_overrides, flatten, to_dict

EXECUTORS = ("local", "slurm")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SpecError(ValueError):
    """A sweep spec that cannot be run; the message names file, line, field and allowed values."""


@dataclass(frozen=True)
class SweepSpec:
    """One sweep as written in its YAML file (field names are the YAML keys)."""

    name: str
    """Sweep name: the MLflow experiment and the work directory are named after it."""
    suite: str
    """Suite name, one of ``suites.SUITES``."""
    tasks: tuple[str, ...] | None = None
    """Task names without suite prefix; ``all`` (or leaving it out) means every task of the suite."""
    seeds: tuple[int, ...] = (0,)
    """A list of seeds, or a count N meaning seeds 0 .. N-1."""
    steps: int | None = None
    """Budget in agent steps per run (``run.steps``); by default the suite's budget."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Config overrides applied to every run, as dotted keys or nested mappings."""
    grid: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    """Dotted config key -> list of values; every combination becomes its own run."""
    executor: str = "local"
    """Where runs go by default: local or slurm (``--executor`` overrides)."""
    profile: str = "local"
    """Slurm profile: a name in slurm/profiles/ or a path (``--profile`` overrides)."""
    parallel: int = 1
    """Processes the local executor runs at once (each trains one pack of seeds)."""
    seeds_per_process: int = 1
    """Seeds of one task and grid point trained together by one vmapped train step
    (``Trainer.packed``): one local worker process, or one of the ``runs_per_job``
    packs of a Slurm job; ``--seeds-per-process`` overrides."""
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
        path = field_path
        while path:
            if path in self.lines:
                return f"{self.path}:{self.lines[path]}"
            path = path.rsplit(".", 1)[0] if "." in path else ""
        return self.path or "<spec>"


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


_FIELDS = {f.name: f for f in dataclasses.fields(SweepSpec) if f.name not in ("path", "lines")}
_REQUIRED = ("name", "suite")


def _field_list() -> str:
    return ", ".join(_FIELDS)


def _load_yaml(text: str, path: str) -> tuple[Any, dict[str, int]]:
    """Parse YAML and record the line of every mapping key and list item."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = error.problem or error.context or "invalid YAML"
        raise SpecError(f"{path}{line}: bad YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: bad YAML: {error}") from None
    finally:
        loader.dispose()
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                name = f"{prefix}.{key}" if prefix else key
                if key in seen:
                    raise SpecError(
                        f"{path}:{key_node.start_mark.line + 1}: {name} is given twice"
                    )
                seen.add(key)
                lines[name] = key_node.start_mark.line + 1
                walk(value_node, name)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[f"{prefix}[{index}]"] = item.start_mark.line + 1
                walk(item, f"{prefix}[{index}]")

    if node is not None:
        walk(node, "")
    return data, lines


def parse_spec(text: str, path: str = "<spec>") -> SweepSpec:
    """Parse and type-check a spec (suite and tasks are checked by :func:`expand`)."""
    data, lines = _load_yaml(text, path)

    def fail(field_path: str, message: str) -> SpecError:
        line = lines.get(field_path)
        return SpecError(f"{path}{f':{line}' if line else ''}: {message}")

    if not isinstance(data, Mapping):
        raise SpecError(f"{path}: a sweep spec is a YAML mapping with the fields {_field_list()}")
    unknown = [key for key in data if key not in _FIELDS]
    if unknown:
        raise fail(
            str(unknown[0]), f"unknown field {unknown[0]!r}; allowed fields: {_field_list()}"
        )
    for key in _REQUIRED:
        if key not in data or data[key] in (None, ""):
            raise SpecError(f"{path}: the field {key!r} is required (fields: {_field_list()})")

    values: dict[str, Any] = {"path": path, "lines": lines}
    for key in ("name", "suite", "executor", "profile", "method", "description"):
        if key in data:
            if not isinstance(data[key], str):
                raise fail(key, f"{key}={data[key]!r} must be a string")
            values[key] = data[key]
    if not NAME_PATTERN.match(values["name"]):
        raise fail("name", f"name={values['name']!r} may only use letters, digits and _.- ")
    if values.get("executor", "local") not in EXECUTORS:
        raise fail(
            "executor", f"executor={values['executor']!r}; allowed: {', '.join(EXECUTORS)}"
        )

    tasks = data.get("tasks", "all")
    if tasks in ("all", None):
        values["tasks"] = None
    elif isinstance(tasks, list) and tasks and all(isinstance(t, str) for t in tasks):
        if len(set(tasks)) != len(tasks):
            raise fail("tasks", f"tasks={tasks!r} lists a task twice")
        values["tasks"] = tuple(tasks)
    else:
        raise fail("tasks", f"tasks={tasks!r} must be 'all' or a non-empty list of task names")

    seeds = data.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
        values["seeds"] = tuple(range(seeds))
    elif (
        isinstance(seeds, list)
        and seeds
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        and len(set(seeds)) == len(seeds)
    ):
        values["seeds"] = tuple(seeds)
    else:
        raise fail(
            "seeds", f"seeds={seeds!r} must be a count >= 1 or a list of distinct seeds >= 0"
        )

    if data.get("steps") is not None:
        steps = data["steps"]
        if isinstance(steps, float) and steps.is_integer():
            steps = int(steps)  # YAML reads 1e6 as a float.
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise fail("steps", f"steps={data['steps']!r} must be a positive integer")
        values["steps"] = steps

    for key in ("parallel", "seeds_per_process"):
        count = data.get(key, 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise fail(key, f"{key}={count!r} must be an integer >= 1")
        values[key] = count

    overrides = data.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        raise fail("overrides", "overrides must be a mapping of config keys to values")
    values["overrides"] = flatten(overrides)
    if "run.steps" in values["overrides"]:
        raise fail(
            "overrides.run.steps" if "overrides.run.steps" in lines else "overrides",
            "give the budget once, as the top-level field 'steps', not as run.steps",
        )

    grid = data.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise fail("grid", "grid must be a mapping of config keys to lists of values")
    values["grid"] = {}
    for key, options in flatten(grid).items():
        if not isinstance(options, list) or not options:
            raise fail(f"grid.{key}", f"grid.{key}={options!r} must be a non-empty list of values")
        if key in values["overrides"]:
            raise fail(f"grid.{key}", f"{key} is both in overrides and in grid")
        if key in ("run.steps", "seed", "suite", "task"):
            raise fail(f"grid.{key}", f"{key} cannot be a grid key; use the spec's own field")
        values["grid"][key] = tuple(options)

    spec = SweepSpec(**values)
    # Check every override key and type now, so the error can name its line.
    for key, value in {**spec.overrides, **{k: v[0] for k, v in spec.grid.items()}}.items():
        if key.split(".")[0] in ("suite", "task", "seed"):
            raise fail(_override_path(spec, key), f"{key} is set by the spec's own field, not an override")
        for candidate in ([value] if key in spec.overrides else list(spec.grid[key])):
            try:
                apply_overrides(Config(), {key: candidate})
            except ConfigError as error:
                raise SpecError(f"{spec.where(_override_path(spec, key))}: {error}") from None
    return spec


def _override_path(spec: SweepSpec, key: str) -> str:
    return f"grid.{key}" if key in spec.grid else f"overrides.{key}"


def load_spec(path: str | Path) -> SweepSpec:
    """Read and parse one spec file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"{path}: no such sweep spec") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: cannot read the sweep spec: {error}") from None
    return parse_spec(text, str(path))


def run_key(sweep: str, suite: str, task: str, seed: int, config: Config) -> str:
    """Stable 16-hex-digit key of one run (same inputs -> same key, across processes)."""
    payload = json.dumps(
        {"sweep": sweep, "suite": suite, "task": task, "seed": seed, "config": to_dict(config)},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


Resolver = Callable[..., Config]


def default_resolver() -> Resolver:
    # Imported here: agent.trainer imports JAX, which `dreamerbench status` does not need.
    from agent.trainer import resolve_config

    return resolve_config


def expand(spec: SweepSpec, resolve: Resolver | None = None) -> list[RunSpec]:
    """All runs of a sweep in a stable order (task, grid point, seed).

    ``resolve(suite=, task=, seed=, overrides=)`` builds the resolved config;
    it is :func:`agent.trainer.resolve_config` unless given.
    """
    import suites  # cheap: environment libraries load inside make_env.

    resolve = resolve or default_resolver()
    if spec.suite not in suites.SUITES:
        raise SpecError(
            f"{spec.where('suite')}: suite={spec.suite!r} is unknown; "
            f"allowed: {', '.join(suites.SUITES)}"
        )
    suite = suites.get_suite(spec.suite)
    tasks = spec.tasks if spec.tasks is not None else suite.tasks
    for index, task in enumerate(tasks):
        if task not in suite.tasks:
            raise SpecError(
                f"{spec.where(f'tasks[{index}]')}: tasks[{index}]={task!r} is not a task of "
                f"suite {suite.name!r}; allowed: all, {', '.join(suite.tasks)}"
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
                    where = spec.where("grid") if point else spec.where("overrides")
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
