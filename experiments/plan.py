"""The resource plan: host RAM, GPU memory and checkpoint disk of a run and of a job, before
anything is submitted (``dreamerbench sweep`` and its dry run print it and refuse a profile whose
``mem_gb`` cannot hold a job; ``dreamerbench train`` prints it at start).

All figures are bytes; printed in GiB (2**30 bytes), the unit Slurm reads ``--mem=64GB`` in.

Per run (one seed), from the resolved config and the task's observation and action spaces:

- **replay** (:func:`replay_memory`; the one term that follows how replay is stored): every
  step stores the observations, reward and flags, the action and the policy's latent (``deter``
  float16, ``stoch`` uint8: ``agent.trainer.replay_specs``), ``step_bytes`` in all. Each of the
  ``run.envs`` envs keeps up to ``cap = max(T + 1, replay.capacity // envs)`` steps, so a run of
  ``run.steps`` holds ``held = min(cap, ceil(steps / envs))`` per env, in chunks of
  ``chunk = min(max(1, replay.chunk // envs), cap)`` steps written once each to the logdir
  (``agent.replay``): ``chunks = envs x held x step_bytes`` on disk. ``replay.storage: memory``
  also keeps them in RAM, in arrays that start at ``min(cap, max(4096, T + 1))`` slots and double
  when full: ``resident = envs x slots x step_bytes`` with ``slots = min(cap, first doubling >=
  ceil(steps / envs))``; ``disk`` keeps only the chunk being filled (``envs x chunk x
  step_bytes``; full chunks are memory-mapped files, page cache the kernel may drop). A
  checkpoint copies only the steps since the last chunk (``Replay.state_dict``), at most
  ``stored = envs x min(chunk, held) x step_bytes``, so the host peak is ``resident + stored``.
- **agent state** (:func:`model`): parameters, optimizer moments, slow critic and return
  norm, exactly (``jax.eval_shape`` of ``Dreamer.init``, no arrays made). A checkpoint holds a
  host copy and its msgpack bytes: ``2 x state`` on the host.
- **train step** (:attr:`RunPlan.step`; on the GPU, or in host RAM on a CPU): the state, one
  gradient per parameter, and the activations kept for the backward pass, a rough formula
  (:func:`activation_bytes`) fitted to XLA's own count of the step's temporaries
  (``bench/train_step.py`` ``step_buffers``; docs/benchmarks.md "Memory: what holds the
  extra"), not measured on a GPU.
- **checkpoint disk**: up to :data:`CHECKPOINTS_ON_DISK` checkpoints at once (``keep=2`` plus
  the one being written), each ``state + stored`` bytes, plus the replay's ``chunks``.

Per job (one process): ``runs_per_job`` packs, each of up to ``seeds_per_process`` runs:
``host = BASE_HOST_BYTES + sum over runs (replay peak + 2 x state)`` plus, without a GPU, every
pack's train step; ``gpu = sum over packs of their train steps``; ``disk = sum over runs``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dreamerbench.agent.config import Config, model_dims, to_dict
from dreamerbench.suites.base import Space

GIB = 2**30
"""Bytes per GiB (Slurm's ``--mem=64GB`` is 64 GiB)."""

BASE_HOST_BYTES = int(1.7 * GIB)
"""Host RAM of one job's process beside its replay, state and (on a CPU) train step: Python,
JAX, the env libraries and XLA compiling the policy and train steps (the compile peak is most
of it). Fitted to the peak RSS of short ``dreamerbench train`` runs on a CPU, compile cache
off (debug and 1m, DMC proprio and Crafter: 1.62-1.73 GiB; docs/benchmarks.md "Resource
plan")."""

ACTIVATION_BUFFERS = 1.6
"""Bytes kept per activation value and dtype byte: the factor of :func:`activation_bytes`, fitted
to XLA's temporaries of the train step (float32, CPU: proprio 1m 424 MB, proprio 12m 921 MB,
image 1m 1,632 MB, docs/benchmarks.md; the fit is within 25% of each)."""

CHECKPOINTS_ON_DISK = 3
"""Checkpoints a run holds at once: ``core.checkpoint.save`` keeps 2 and writes the next one
before removing the oldest."""


def gib(nbytes: float) -> str:
    """Bytes as GiB text with one decimal: ``1.5 GiB``."""
    return f"{nbytes / GIB:.1f} GiB"


# ---------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class ReplayMemory:
    """What one run's replay takes, in bytes."""

    step_bytes: int
    """Bytes of one stored step (all keys)."""
    resident: int
    """Replay arrays in RAM at the end of the run (``memory``: the ring, ``sum(a.nbytes for a in
    Replay.data.values())``; ``disk``: the chunk being filled)."""
    stored: int
    """At most what a checkpoint copies: the steps since the last chunk (``tail/*`` of
    ``Replay.state_dict``)."""
    chunks: int
    """The chunk files on disk at the end (each written once): the steps the replay holds."""

    @property
    def peak(self) -> int:
        """Host peak: the arrays plus the checkpoint's copy of the tail."""
        return self.resident + self.stored


def replay_memory(config: Config, specs: Mapping[str, tuple[tuple[int, ...], Any]]) -> ReplayMemory:
    """Replay bytes of a run of ``config`` (``run.steps``, ``run.envs``, ``replay.capacity``,
    ``replay.chunk``, ``replay.storage``, ``agent.batch_length``) that stores `specs` (key ->
    (per-step shape, dtype), as ``agent.trainer.replay_specs``) each step; the rules of
    ``agent.replay.Replay`` (module doc above)."""
    step = sum(
        int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        for shape, dtype in specs.values()
    )
    envs, length = config.run.envs, config.agent.batch_length + 1
    capacity = max(length, config.replay.capacity // envs)
    per_env = -(-config.run.steps // envs)
    held = min(capacity, per_env)
    chunk = min(max(1, config.replay.chunk // envs), capacity)
    if config.replay.storage == "memory":
        slots = min(capacity, max(4096, length))
        while slots < per_env and slots < capacity:
            slots = min(capacity, 2 * slots)
    else:
        slots = chunk
    return ReplayMemory(
        step, envs * slots * step, envs * min(chunk, held) * step, envs * held * step
    )


def tree_bytes(tree: Any) -> int:
    """Bytes of every array (or ``jax.ShapeDtypeStruct``) leaf of a pytree."""
    import jax

    leaves = jax.tree_util.tree_leaves(tree)
    return int(
        sum(int(np.prod(x.shape, dtype=np.int64)) * np.dtype(x.dtype).itemsize for x in leaves)
    )


@dataclass(frozen=True)
class Model:
    """What the plan reads of the agent for one config and spaces (no arrays are made)."""

    state: int
    """Bytes of the whole ``TrainState``: parameters, optimizer moments, slow critic, ..."""
    params: int
    """Bytes of the parameters alone (one gradient each in the train step)."""
    specs: Mapping[str, tuple[tuple[int, ...], Any]]
    """What replay stores per step (``agent.trainer.replay_specs``)."""


def model(config: Config, obs_space: Mapping[str, Space], act_space: Space) -> Model:
    """Parameter and state bytes (``jax.eval_shape`` of ``Dreamer.init``: a few seconds at
    size200m, no arrays) and the replay's per-step specs."""
    import jax

    from dreamerbench.agent.dreamer import Dreamer
    from dreamerbench.agent.learner import latent_step_specs
    from dreamerbench.agent.trainer import replay_specs

    dreamer = Dreamer(config, obs_space, act_space)
    shapes = jax.eval_shape(dreamer.init, jax.random.PRNGKey(0))
    specs = replay_specs(obs_space, act_space, latent_step_specs(dreamer.latent_shape))
    return Model(tree_bytes(shapes), tree_bytes(shapes.params), specs)


def _spaces_key(spaces: Mapping[str, Space]) -> list:
    return [[k, list(s.shape), np.dtype(s.dtype).str, s.high] for k, s in sorted(spaces.items())]


def activation_bytes(
    config: Config, obs_space: Mapping[str, Space], act_space: Space, dtype_bytes: int
) -> int:
    """Rough bytes of the activations one train step keeps for its backward pass.

    ``ACTIVATION_BUFFERS x dtype_bytes x (B T f_wm + B T (H + 1) f_im)`` with B, T =
    ``agent.batch_size``, ``batch_length``, H = ``agent.imag_length``, and per state the widths
    (D deter, h hidden, S x C latents, u units, L mlp_layers, l head_layers, n bins)

    - world model: ``f_wm = 4D + 3h + 3SC + 2Lu + 2lu + 2n`` plus, per image key, the encoder's
      and decoder's feature maps (convolution, norm, activation and pooling or upsampling:
      ``4 sum_i (size / 2^i)^2 depth mult_i``) and 2 images, per vector key ``2 x`` its width;
    - imagination: ``f_im = 2D + 2h + 2SC + 3Lu + 2lu + 3n`` (dynamics, actor, critic and slow
      critic, reward and continue heads).
    """
    agent, dims = config.agent, model_dims(config.agent)
    units, latents = dims.units, agent.stoch * dims.classes
    world = 4 * dims.deter + 3 * dims.hidden + 3 * latents + 2 * agent.mlp_layers * units
    world += 2 * agent.head_layers * units + 2 * agent.bins
    for space in obs_space.values():
        if space.is_image:
            size, channels = space.shape[0], space.shape[2]
            maps = sum(
                (size // 2**i) ** 2 * dims.depth * mult for i, mult in enumerate(agent.cnn_mults)
            )
            world += 4 * maps + 2 * size * size * channels
        else:
            world += 2 * int(np.prod(space.shape))
    imagine = 2 * dims.deter + 2 * dims.hidden + 2 * latents + 3 * agent.mlp_layers * units
    imagine += 2 * agent.head_layers * units + 3 * agent.bins
    states = agent.batch_size * agent.batch_length
    values = states * world + states * (agent.imag_length + 1) * imagine
    return int(ACTIVATION_BUFFERS * dtype_bytes * values)


@dataclass(frozen=True)
class RunPlan:
    """Resources of one run (one seed); ``unknown`` says why there is none (spaces unknown)."""

    label: str
    replay: ReplayMemory | None = None
    state: int = 0
    """Agent state bytes (``Model.state``)."""
    step: int = 0
    """Train step bytes: state, gradients and activations (on the GPU, else in host RAM)."""
    unknown: str = ""

    @property
    def host(self) -> int:
        """Host bytes of this run beside its job's base and train step: replay peak and the
        checkpoint's two copies of the state."""
        return self.replay.peak + 2 * self.state

    @property
    def disk(self) -> int:
        """Logdir disk: :data:`CHECKPOINTS_ON_DISK` x (state + the replay's tail), plus the
        replay's chunks."""
        return CHECKPOINTS_ON_DISK * (self.state + self.replay.stored) + self.replay.chunks


def plan_run(
    config: Config,
    obs_space: Mapping[str, Space],
    act_space: Space,
    on_gpu: bool,
    label: str = "",
    found: Model | None = None,
) -> RunPlan:
    """The plan of one run of `config` on these spaces; `on_gpu` picks the compute dtype of
    ``agent.compute_dtype: auto`` (bfloat16 on a GPU, float32 on a CPU); `found` is
    :func:`model`'s answer for them, if known already."""
    found = found or model(config, obs_space, act_space)
    dtype = config.agent.compute_dtype
    dtype_bytes = 2 if dtype == "bfloat16" or (dtype == "auto" and on_gpu) else 4
    step = found.state + found.params + activation_bytes(config, obs_space, act_space, dtype_bytes)
    return RunPlan(label, replay_memory(config, found.specs), found.state, step)


def probe_spaces(config: Config) -> tuple[Mapping[str, Space], Space]:
    """(observation spaces, action space) of `config`'s task: one env is made and closed (ALE,
    dm_control, Crafter: 0.1-0.4 s). Raises whatever making the env raises (ImportError where
    the suite's library is missing here)."""
    from dreamerbench.suites import get_suite

    suite = get_suite(config.suite)
    env = suite.make_env(config.task, config.seed, suite.resolve_protocol(config.env))
    try:
        return dict(env.obs_space), env.act_space
    finally:
        env.close()


def planner(on_gpu: bool) -> Callable[[Config, str], RunPlan]:
    """``plan(config, label) -> RunPlan``, making one env per suite, task and protocol
    (:func:`probe_spaces`) and one :func:`model` per agent config and spaces; a task whose env
    cannot be made here gets a plan with ``unknown``."""
    spaces: dict[str, Any] = {}
    models: dict[str, Model] = {}

    def plan(config: Config, label: str = "") -> RunPlan:
        key = json.dumps([config.suite, config.task, to_dict(config)["env"]], sort_keys=True)
        if key not in spaces:
            spaces[key] = _or_reason(probe_spaces, config)
        if isinstance(spaces[key], str):
            return RunPlan(label, unknown=f"{config.suite}/{config.task}: {spaces[key]}")
        obs_space, act_space = spaces[key]
        agent = json.dumps(
            [to_dict(config.agent), _spaces_key(obs_space), _spaces_key({"": act_space})],
            sort_keys=True,
        )
        if agent not in models:
            models[agent] = _or_reason(model, config, obs_space, act_space)
        if isinstance(models[agent], str):
            return RunPlan(label, unknown=f"{config.suite}/{config.task}: {models[agent]}")
        return plan_run(config, obs_space, act_space, on_gpu, label, models[agent])

    return plan


def _or_reason(function: Callable, *args: Any) -> Any:
    """``function(*args)``, or one line saying why it failed: a plan that cannot be made is
    printed as "not planned (why)" and never stops a sweep or a run."""
    try:
        return function(*args)
    except Exception as error:  # noqa: BLE001 - any failure only means "not planned"
        lines = str(error).strip().splitlines() or [""]
        return f"{type(error).__name__}: {lines[0][:120]}"


# ---------------------------------------------------------------------------- one job


@dataclass(frozen=True)
class JobPlan:
    """Resources of one job: one process training `packs` (lists of runs that share one train
    step, the packed runs' step memory adding up)."""

    packs: tuple[tuple[RunPlan, ...], ...]
    on_gpu: bool

    @property
    def runs(self) -> list[RunPlan]:
        return [run for pack in self.packs for run in pack]

    @property
    def unknown(self) -> str:
        return next((run.unknown for run in self.runs if run.unknown), "")

    @property
    def gpu(self) -> int:
        """Train step bytes of every pack (0 without a GPU: they are in :attr:`host`)."""
        return sum(run.step for run in self.runs) if self.on_gpu else 0

    @property
    def host(self) -> int:
        steps = 0 if self.on_gpu else sum(run.step for run in self.runs)
        return BASE_HOST_BYTES + sum(run.host for run in self.runs) + steps

    @property
    def disk(self) -> int:
        return sum(run.disk for run in self.runs)

    def host_text(self) -> str:
        """``12.3 GiB host RAM (replay ..., agent state ..., [train step ...,] base ...)``."""
        replay = sum(run.replay.peak for run in self.runs)
        state = sum(2 * run.state for run in self.runs)
        step = self.host - replay - state - BASE_HOST_BYTES
        return (
            f"{gib(self.host)} host RAM (replay {gib(replay)}, agent state {gib(state)}"
            + ("" if self.on_gpu else f", train step {gib(step)}")
            + f", base {gib(BASE_HOST_BYTES)})"
        )

    def line(self) -> str:
        """One line: runs, host RAM (replay, state, base), GPU memory and disk."""
        if self.unknown:
            return f"{len(self.runs)} run(s): not planned ({self.unknown})"
        parts = [self.host_text()] + ([f"GPU {gib(self.gpu)}"] if self.on_gpu else [])
        return f"{len(self.runs)} run(s): " + ", ".join([*parts, f"checkpoints {gib(self.disk)}"])


def table(jobs: Sequence[JobPlan], word: str = "job", rows: int = 6) -> list[str]:
    """A short table: one row per distinct job line (``N jobs like this``), largest host first,
    at most `rows` rows."""
    counts: dict[str, tuple[int, int, int]] = {}
    for index, job in enumerate(jobs):
        line = job.line()
        count, first, host = counts.get(line, (0, index, 0 if job.unknown else job.host))
        counts[line] = (count + 1, first, host)
    ordered = sorted(counts.items(), key=lambda item: -item[1][2])
    plural = word + ("es" if word.endswith("s") else "s")
    lines = [
        f"  {count:>4} {word if count == 1 else plural} like {word} {first + 1}: {line}"
        for line, (count, first, _) in ordered[:rows]
    ]
    if len(ordered) > rows:
        lines.append(f"  ... and {len(ordered) - rows} other job shapes, all smaller")
    return lines


# ---------------------------------------------------------------------------- a sweep

Pack = Sequence[tuple[Config, str]]
"""Runs (config, label) that one trainer trains together (``seeds_per_process`` seeds)."""


def plan_jobs(
    packs: Sequence[Pack], packs_per_job: int, plan: Callable[[Config, str], RunPlan], on_gpu: bool
) -> list[JobPlan]:
    """The plan of each job: `packs_per_job` consecutive packs per job, as launchers group them."""
    return [
        JobPlan(
            tuple(
                tuple(plan(c, label) for c, label in pack) for pack in packs[i : i + packs_per_job]
            ),
            on_gpu,
        )
        for i in range(0, len(packs), packs_per_job)
    ]


def refusal(
    jobs: Sequence[JobPlan],
    packs: Sequence[Pack],
    packs_per_job: int,
    seeds_per_process: int,
    plan: Callable[[Config, str], RunPlan],
    mem_gb: float,
) -> str:
    """'' if every job's host estimate fits ``mem_gb`` GiB; else one line naming the largest
    job, its estimate and what would make it fit: ``replay.storage=disk``, ``replay.capacity``,
    ``runs_per_job`` or ``seeds_per_process`` lowered alone (the largest value that fits,
    re-planned), or ``mem_gb`` raised."""
    known = [i for i, job in enumerate(jobs) if not job.unknown]
    if not known:
        return ""
    worst = max(known, key=lambda i: jobs[i].host)
    job = jobs[worst]
    if job.host <= mem_gb * GIB:
        return ""
    mine = packs[worst * packs_per_job : (worst + 1) * packs_per_job]

    def replan(capacity=None, runs=None, seeds=None, storage=None):
        chosen = [pack[:seeds] for pack in mine[:runs]]
        changes = {"capacity": capacity, "storage": storage}
        changes = {key: value for key, value in changes.items() if value is not None}
        if changes:
            chosen = [[(_with_replay(c, **changes), label) for c, label in p] for p in chosen]
        return plan_jobs(chosen, len(chosen), plan, job.on_gpu)[0]

    fits = lambda plan: plan.host <= mem_gb * GIB  # noqa: E731
    options = []
    first = mine[0][0][0]
    if first.replay.storage == "memory" and fits(replan(storage="disk")):
        options.append("replay.storage=disk")
    rest = job.host - sum(run.replay.peak for run in job.runs)
    # Below run.steps, replay holds `capacity` steps in RAM (and a checkpoint copies a chunk).
    capacity = int((mem_gb * GIB - rest) // sum(run.replay.step_bytes for run in job.runs))
    capacity = _round_down(min(capacity, first.replay.capacity - 1))
    length = first.agent.batch_length + 1
    if capacity >= length and fits(replan(capacity=capacity)):
        options.append(f"replay.capacity<={capacity:,}")
    for name, current, arg in (
        ("runs_per_job", packs_per_job, "runs"),
        ("seeds_per_process", seeds_per_process, "seeds"),
    ):
        fitting = [v for v in range(current - 1, 0, -1) if fits(replan(**{arg: v}))]
        if fitting:
            options.append(f"{name}<={fitting[0]}")
    options.append(f"mem_gb>={math.ceil(job.host / GIB)}")
    labels = [run.label for run in job.runs]
    return (
        f"mem_gb={mem_gb:g} cannot hold job {worst + 1} ({', '.join(labels[:3])}"
        + (f", +{len(labels) - 3} runs" if len(labels) > 3 else "")
        + f") needing about {job.host_text()}; to fit, set one of: {', '.join(options)}"
    )


def _with_replay(config: Config, **changes: Any) -> Config:
    return dataclasses.replace(config, replay=dataclasses.replace(config.replay, **changes))


def _round_down(value: int) -> int:
    """Down to two significant digits: 1,234,567 -> 1,200,000."""
    if value < 100:
        return value
    scale = 10 ** (len(str(value)) - 2)
    return value // scale * scale


def process_line(configs: Sequence[Config]) -> str:
    """One line: the plan of this process training `configs` as one pack (``dreamerbench
    train``; the GPU figure where JAX has a GPU here)."""
    import jax

    on_gpu = jax.default_backend() == "gpu"
    pack = [(config, f"seed{config.seed}") for config in configs]
    return "resource plan: " + plan_jobs([pack], 1, planner(on_gpu), on_gpu)[0].line()
