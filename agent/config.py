"""The one home of every default.

Frozen dataclasses are the schema: suite presets and ``--set key=value``
overrides only replace fields. Each field's annotation carries its type and
range (``PositiveInt``, ``Annotated[float, Range(gt=0, le=1)]``, ...), which
its docstring states too; :mod:`dreamerbench.core.reader` reads every value against it, so
``--set``, a spec's overrides and a job's config obey one rule (unknown keys,
wrong types, non-finite numbers and values out of range raise
:class:`ConfigError` naming the field, the value and what is allowed).
Values derived from the config live in :class:`ModelDims`.

Defaults follow DreamerV3 (Hafner et al. 2023, arXiv 2301.04104, Table W.1)
as in danijar/dreamerv3 ``configs.yaml`` (commit e3f0224).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from dreamerbench.core import reader
from dreamerbench.core.files import file_in_the_way
from dreamerbench.core.reader import (
    Fraction,
    Length,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    Range,
    ReadError,
    show,
)


class ConfigError(ReadError):
    """A config key or value that the schema does not allow (one line, naming the field)."""


@dataclass(frozen=True)
class ModelDims:
    """Network widths of one model size preset."""

    deter: int
    """Width of the deterministic GRU state."""
    hidden: int
    """Width of the RSSM's hidden layers."""
    classes: int
    """Classes per categorical latent."""
    units: int
    """Width of every MLP layer (encoder, decoder, heads)."""
    depth: int
    """Base channel count of the CNN encoder and decoder."""


# Paper sizes (arXiv 2301.04104 Table B.1 / configs.yaml size*). "debug" is
# ours: the smallest model that still exercises every code path, for tests.
SIZES: dict[str, ModelDims] = {
    "debug": ModelDims(deter=64, hidden=32, classes=4, units=32, depth=4),
    "1m": ModelDims(deter=512, hidden=64, classes=4, units=64, depth=4),
    "12m": ModelDims(deter=2048, hidden=256, classes=16, units=256, depth=16),
    "25m": ModelDims(deter=3072, hidden=384, classes=24, units=384, depth=24),
    "50m": ModelDims(deter=4096, hidden=512, classes=32, units=512, depth=32),
    "100m": ModelDims(deter=6144, hidden=768, classes=48, units=768, depth=48),
    "200m": ModelDims(deter=8192, hidden=1024, classes=64, units=1024, depth=64),
    "400m": ModelDims(deter=12288, hidden=1536, classes=96, units=1536, depth=96),
}


MAX_REPLAY = 10**9
"""Upper bound of ``replay.capacity``: 200x the paper's 5M-step replay."""
MAX_EPISODES = 100_000
EvalEpisodes = Annotated[int, Range(ge=1, le=MAX_EPISODES)]
"""Episodes of one evaluation (``run.eval_episodes``, ``eval --episodes``)."""
SeedsPerProcess = Annotated[int, Range(ge=1, le=256, note="one vmapped train step trains them")]
"""Seeds of one task trained together in one process (``--seeds-per-process``; a spec's
``seeds_per_process``): the presets' packs are 1 to 8, 256 is far past what one accelerator
holds, so more is a typo."""

SEED_MAX = 2**31 - 1
Seed = Annotated[int, Range(ge=0, le=SEED_MAX)]
"""A run's seed: it seeds JAX, numpy and (through ``dreamerbench.suites.vector.env_seeds``) the
envs."""


@dataclass(frozen=True)
class LossScales:
    """Weights of the loss terms summed into the single training loss (each a finite number
    >= 0)."""

    rec: NonNegativeFloat = 1.0
    """Observation reconstruction (every decoded key). Range: >= 0."""
    rew: NonNegativeFloat = 1.0
    """Reward prediction. Range: >= 0."""
    con: NonNegativeFloat = 1.0
    """Episode-continuation prediction. Range: >= 0."""
    dyn: NonNegativeFloat = 1.0
    """Dynamics KL: trains the prior towards the (stopped) posterior. Range: >= 0."""
    rep: NonNegativeFloat = 0.1
    """Representation KL: trains the posterior towards the (stopped) prior. Range: >= 0."""
    policy: NonNegativeFloat = 1.0
    """REINFORCE actor loss on imagined trajectories. Range: >= 0."""
    value: NonNegativeFloat = 1.0
    """Critic loss on imagined trajectories. Range: >= 0."""
    repval: NonNegativeFloat = 0.3
    """Critic loss on replayed trajectories. Range: >= 0."""


@dataclass(frozen=True)
class OptimizerConfig:
    """LaProp with adaptive gradient clipping, as an optax chain."""

    lr: PositiveFloat = 4e-5
    """Learning rate after warm-up. Range: > 0."""
    warmup: NonNegativeInt = 1000
    """Updates of linear learning-rate warm-up from 0 (0: none). Range: >= 0."""
    agc: PositiveFloat = 0.3
    """Adaptive gradient clipping: max ratio of update norm to parameter norm. Range: > 0."""
    agc_pmin: PositiveFloat = 1e-3
    """Floor on the parameter norm in adaptive gradient clipping. Range: > 0."""
    beta1: Annotated[float, Fraction] = 0.9
    """Momentum decay (applied after RMS scaling, as in LaProp). Range: in [0, 1)."""
    beta2: Annotated[float, Fraction] = 0.999
    """Decay of the squared-gradient average. Range: in [0, 1)."""
    eps: PositiveFloat = 1e-20
    """Added to the RMS denominator. Range: > 0."""


# Upper bounds on the sizes a person may set (batch, sequence, latents, layers, ...): far above
# every published DreamerV3 run (every model size, 200m and 400m on one GPU included, trains with
# B x T = 16 x 64, 32 latents, 15 imagined steps; arXiv 2301.04104 Table W.1), so any real run
# fits inside them; a typo such as 1e6 is refused in one line before anything is created, where
# the run would otherwise die out of memory with a traceback.
MAX_BATCH = 1024
"""Largest agent.batch_size, agent.batch_length and agent.imag_length (64x or more the paper's)."""
MAX_WIDTH = 1024
"""Largest agent.stoch and agent.decoder_blocks (the paper: 32 latents, 8 blocks)."""
MAX_LAYERS = 32
"""Largest agent.mlp_layers and agent.head_layers (the paper: 3 and 1)."""
CnnMults = Annotated[tuple[Annotated[int, Range(ge=1, le=64)], ...], Length(min=1, max=8)]
"""agent.cnn_mults: 1 to 8 stages (each halves the image), each multiplier in [1, 64]."""


@dataclass(frozen=True)
class AgentConfig:
    """Architecture and learning hyperparameters of DreamerV3.

    Sizes have upper bounds (:data:`MAX_BATCH`, :data:`MAX_WIDTH`, :data:`MAX_LAYERS`) far above
    the paper's, a 200m model on one GPU included: they refuse typos, not runs."""

    size: Literal[tuple(SIZES)] = "12m"  # type: ignore[valid-type]
    """Model size preset, one of SIZES."""
    stoch: Annotated[int, Range(ge=1, le=MAX_WIDTH)] = 32
    """Number of categorical latents in the stochastic state. Range: in [1, 1024]."""
    blocks: PositiveInt = 8
    """Blocks of the block-diagonal GRU; must divide the size's deter. Range: >= 1."""
    unimix: Annotated[float, Fraction] = 0.01
    """Uniform mixture in the latent categoricals (posterior and prior). Range: in [0, 1)."""
    policy_unimix: Annotated[float, Fraction] = 0.0
    """Uniform mixture in the discrete policy. 0 as in the reference code (its
    categorical policy head has none); the paper (Section 3, "unimix categoricals") says 0.01.
    Range: in [0, 1)."""
    free_nats: NonNegativeFloat = 1.0
    """Free bits: KL terms below this many nats (summed over latents) are clipped. Range: >= 0."""
    norm_eps: PositiveFloat = 1e-4
    """Epsilon of RMSNorm. Range: > 0."""
    mlp_layers: Annotated[int, Range(ge=1, le=MAX_LAYERS)] = 3
    """Hidden layers of the vector encoder/decoder, policy and value MLPs. Range: in [1, 32]."""
    head_layers: Annotated[int, Range(ge=1, le=MAX_LAYERS)] = 1
    """Hidden layers of the reward and continue heads. Range: in [1, 32]."""
    cnn_mults: CnnMults = (2, 3, 4, 4)
    """Channel multipliers of the CNN stages (times the size's depth), one per stage; each
    stage halves the image (2x2 max-pooling; 8 stages take 256 pixels to 1).
    Range: 1 to 8 items, each in [1, 64]."""
    cnn_kernel: Annotated[int, Range(ge=1, le=64)] = 5
    """Kernel size of every convolution. Range: in [1, 64]."""
    decoder_blocks: Annotated[int, Range(ge=1, le=MAX_WIDTH)] = 8
    """Blocks of the block-linear map from the deterministic state to the image decoder.
    Range: in [1, 1024]."""
    bins: Annotated[int, Range(ge=2, le=4096)] = 255
    """Bins of the symexp two-hot reward and value heads. Range: in [2, 4096]."""
    policy_outscale: NonNegativeFloat = 0.01
    """Init scale of the policy's output layers: their initial weights are this times a
    fan-in-scaled truncated normal (the reference's `outscale`). Range: >= 0."""
    min_std: PositiveFloat = 0.1
    """Lower bound of the continuous policy's standard deviation. Range: > 0, and <= max_std."""
    max_std: PositiveFloat = 1.0
    """Upper bound of the continuous policy's standard deviation. Range: > 0, and >= min_std."""
    imag_length: Annotated[int, Range(ge=1, le=MAX_BATCH)] = 15
    """Imagination horizon in steps. Range: in [1, 1024]."""
    horizon: PositiveInt = 333
    """Discount horizon: gamma = 1 - 1/horizon. Range: >= 1."""
    lam: Annotated[float, Probability] = 0.95
    """Lambda of the lambda-returns. Range: in [0, 1]."""
    actent: NonNegativeFloat = 3e-4
    """Entropy bonus of the actor. Range: >= 0."""
    slow_critic_rate: Annotated[float, Range(gt=0, le=1)] = 0.02
    """EMA rate of the slow critic that regularises the critic. Range: in (0, 1]."""
    slowreg: NonNegativeFloat = 1.0
    """Weight of the critic's regulariser towards the slow critic. Range: >= 0."""
    retnorm_rate: Annotated[float, Range(gt=0, le=1)] = 0.01
    """EMA rate of the return percentiles (decay 0.99). Range: in (0, 1]."""
    retnorm_limit: PositiveFloat = 1.0
    """Returns are divided by max(limit, P95 - P5). Range: > 0."""
    retnorm_low: Annotated[float, Range(ge=0, le=100)] = 5.0
    """Lower return percentile. Range: in [0, 100], and < retnorm_high."""
    retnorm_high: Annotated[float, Range(ge=0, le=100)] = 95.0
    """Upper return percentile. Range: in [0, 100], and > retnorm_low."""
    train_ratio: PositiveFloat = 32.0
    """Replayed steps per environment step: updates/step = train_ratio / (B * T). Range: > 0."""
    batch_size: Annotated[int, Range(ge=1, le=MAX_BATCH)] = 16
    """Sequences per training batch (B). Range: in [1, 1024]."""
    batch_length: Annotated[int, Range(ge=2, le=MAX_BATCH)] = 64
    """Trained steps per sequence (T); one more context step is replayed in front.
    Range: in [2, 1024]."""
    loss_scales: LossScales = field(default_factory=LossScales)
    opt: OptimizerConfig = field(default_factory=OptimizerConfig)
    compute_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """float32, bfloat16, or auto (bfloat16 on GPU, float32 on CPU). Parameters stay float32."""


@dataclass(frozen=True)
class ReplayConfig:
    """Replay buffer."""

    capacity: Annotated[int, Range(ge=1, le=MAX_REPLAY)] = 5_000_000
    """Environment steps kept (oldest dropped first). Range: in [1, 1000000000]
    (:data:`MAX_REPLAY`), and >= batch_length + 1."""
    online: bool = True
    """Put every fresh window into the next batches before uniform samples."""
    storage: Literal["memory", "disk"] = "memory"
    """Where the replay lives while training: ``memory`` (a ring buffer in RAM) or ``disk``
    (the full chunks memory-mapped from ``<logdir>/replay/``, only the chunk being filled in
    RAM: a replay larger than RAM still trains; sampling reads from the page cache or disk)."""
    chunk: PositiveInt = 1024
    """Steps per replay chunk, all envs together (``chunk // run.envs`` of each, at least 1),
    each chunk written once to ``<logdir>/replay/`` when full; a checkpoint holds only the steps
    since the last chunk, fewer than this many. Range: >= 1."""


@dataclass(frozen=True)
class RunConfig:
    """How long and how a training run goes."""

    steps: PositiveInt = 1_000_000
    """Agent steps (environment steps after action repeat) in total. Range: >= 1."""
    envs: Annotated[int, Range(ge=1, le=1000, note="one process steps them all")] = 1
    """Environments stepped in parallel by one process. The presets use at most 16 (the paper's
    runs 1 to 16); a thousand is far past what one process can step, so more is a typo. Env
    seeds come from the run seed (``dreamerbench.suites.vector.env_seeds``). Range: in [1, 1000]."""
    parallel_envs: bool = False
    """Step environments in worker processes rather than in the trainer's process."""
    train_start: NonNegativeInt | None = None
    """Agent steps (all envs together) collected with the untrained policy before the first
    update; null: the reference's rule, the first update once replay holds ``agent.batch_size``
    x ``agent.batch_length`` windows, i.e. after (``run.envs`` + ``agent.batch_size``) x
    ``agent.batch_length`` steps (``dreamerbench.agent.schedule.train_start``). Never before
    every env holds a window. Range: >= 0, or null."""
    save_every: PositiveInt = 10_000
    """Agent steps between checkpoints (the reference's ``run.save_every`` counts seconds: see
    ``save_every_s``). Range: >= 1."""
    save_every_s: NonNegativeFloat = 900.0
    """Seconds between checkpoints besides ``save_every`` (0: by steps only). The outputs
    (MLflow, TensorBoard, W&B) take a run's records at its checkpoints, so they lag the run by
    at most about this; the reference saves every 900 s too. A save writes only what is new
    (the replay's chunks are written once), so frequent saves stay cheap. Range: >= 0."""
    log_every: NonNegativeFloat = 30.0
    """Seconds between training-metric records (0: after every update). Range: >= 0."""
    progress: bool = True
    """Show a progress bar on stderr."""
    compile_cache: str = "~/.cache/dreamerbench/jax"
    """Persistent XLA compilation cache directory ('' to disable)."""
    eval_every: NonNegativeInt = 0
    """Agent steps between evaluations (0: none). An evaluation plays ``run.eval_episodes``
    episodes on envs of its own (fresh each time, seeded apart from the training envs) and
    writes one ``eval`` record per episode to ``eval.jsonl``; the run's last step always
    evaluates when this is > 0. Range: >= 0."""
    eval_episodes: EvalEpisodes = 1
    """Episodes per evaluation. Range: in [1, 100000] (:data:`MAX_EPISODES`)."""
    eval_mode: Literal["greedy", "sample"] = "sample"
    """Evaluation actions: the policy's mode (greedy) or samples from it."""
    video_every: NonNegativeInt = 0
    """Agent steps between videos (0: none): the next training episode of env 0 is written to
    ``media/episode-<step>.gif``, and an open-loop world-model report: true, predicted and
    error frames (``media/openloop-<step>.gif``, image tasks) or a plot of true and predicted
    vector observations (``media/openloop-<step>.png``); all reach MLflow as run artifacts and
    TensorBoard and W&B (``run.outputs``) as ``media/<kind>``.
    Range: >= 0."""
    video_render: bool = False
    """Tasks without image observations (dmc_proprio): render the env's camera for episode videos.
    Off by default, since rendering costs far more than a proprio step."""
    outputs: tuple[Literal["tensorboard", "wandb"], ...] = ()
    """Outputs beside MLflow that the run's records also go to: ``tensorboard`` (event files in
    ``<logdir>/tensorboard``) and ``wandb`` (Weights & Biases; ``WANDB_MODE=offline`` keeps it
    in ``<logdir>/wandb``). Each needs its package (in a checkout:
    ``pip install -e '.[outputs]'``)."""


@dataclass(frozen=True)
class Config:
    """A whole run: what to train on, the agent, replay and the run schedule."""

    suite: str = "dmc_proprio"
    """Suite name (see `dreamerbench suites`)."""
    task: str = "cartpole_balance"
    """Task within the suite."""
    seed: Seed = 0
    """Seeds parameters, policy sampling, replay sampling and environments.
    Range: in [0, 2147483647]."""
    env: Mapping[str, Any] = field(default_factory=dict)
    """Overrides of the suite's protocol (read and checked by the suite's protocol fields)."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @property
    def dims(self) -> ModelDims:
        return model_dims(self.agent)


def model_dims(agent: AgentConfig) -> ModelDims:
    """Widths of ``agent.size``; ConfigError naming the presets if it is not one."""
    if agent.size not in SIZES:
        raise ConfigError(
            f"agent.size={agent.size!r} is not allowed; allowed: {', '.join(SIZES)}", "agent.size"
        )
    return SIZES[agent.size]


def to_dict(config: Any) -> dict[str, Any]:
    """Nested plain dict (tuples become lists), e.g. for YAML or JSON."""

    def convert(value):
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Mapping):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, (tuple, list)):
            return [convert(v) for v in value]
        return value

    return convert(config)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; ConfigError if one key is given both nested and dotted."""
    try:
        return reader.flatten(tree, prefix)
    except ReadError as error:
        raise ConfigError(str(error), error.field) from None


def from_dict(tree: Mapping[str, Any]) -> Config:
    """Inverse of :func:`to_dict`, reading every key and value (types and ranges)."""
    return apply_overrides(Config(), flatten(tree))


def hint(key: str) -> Any:
    """The type hint (with its range) of a dotted config key, e.g. for a CLI flag that sets it."""
    return reader.field_hint(Config, key)


def parse_override(text: str) -> tuple[str, Any]:
    """'agent.train_ratio=64' -> ('agent.train_ratio', 64); the value is YAML 1.2, read as in
    specs."""
    if "=" not in text:
        raise ConfigError(
            f"--set {text!r} is not allowed; allowed: KEY=VALUE, e.g. agent.train_ratio=64"
        )
    key, raw = text.split("=", 1)
    return key.strip(), reader.parse_value(raw)


REFERENCE_NAMES = {
    "run.train_ratio": "agent.train_ratio",
    "batch_size": "agent.batch_size",
    "batch_length": "agent.batch_length",
    "replay.size": "replay.capacity",
    "env.repeat": "env.action_repeat",
    "run.num_envs": "run.envs",
    "run.eval_eps": "run.eval_episodes",
}
"""Names a DreamerV3 user types from the reference's ``configs.yaml`` (danijar/dreamerv3
e3f0224) -> ours, for the refusal's "did you mean"."""


def did_you_mean(key: str, suite: Any = None) -> str:
    """``"; did you mean agent.train_ratio?"`` for a reference name ``key``
    (:data:`REFERENCE_NAMES`, and ``task=dmc_walker_walk``: the reference's task names carry
    the suite's ``published_prefix``), else ``""``. Appended to one-line refusals."""
    if key.startswith("task=") and suite is not None and suite.published_prefix:
        task = key[len("task=") :]
        bare = task[len(suite.published_prefix) :]
        if task.startswith(suite.published_prefix) and bare in suite.tasks:
            prefix = suite.published_prefix
            return f"; did you mean task={bare!r}? (the reference adds the prefix {prefix!r})"
    ours = REFERENCE_NAMES.get(key)
    return f"; did you mean {ours}? ({key} is the reference's name)" if ours else ""


def _with_hint(error: ReadError, key: str, suite: Any = None) -> ConfigError:
    """``error`` as a ConfigError, with :func:`did_you_mean` for ``key`` appended."""
    return ConfigError(str(error) + did_you_mean(key, suite), error.field)


def apply_overrides(config: Config, overrides: Mapping[str, Any] | Sequence[str]) -> Config:
    """Return a copy of `config` with dotted keys replaced, each value read against its field.

    `overrides` is a mapping {'agent.train_ratio': 64} or a list of
    'key=value' strings (a key given twice is refused). Keys under `env` are
    free-form here; :func:`validate` reads them against the suite's protocol.
    ConfigError names the key, the value and what is allowed.
    """
    if not isinstance(overrides, Mapping):
        pairs = [parse_override(text) for text in overrides]
        overrides = dict(pairs)
        if len(overrides) != len(pairs):
            twice = next(k for i, (k, _) in enumerate(pairs) if k in dict(pairs[:i]))
            given = " and ".join(f"{k}={show(v)}" for k, v in pairs if k == twice)
            raise ConfigError(f"{twice} is given twice ({given}); give each key once", twice)
    try:
        for key, value in overrides.items():
            config = reader.override(config, key, value)
    except ReadError as error:
        raise _with_hint(error, error.field) from None
    return config


def _joint_rules(config: Config) -> list[tuple[bool, str, Any, str]]:
    """The rules that join fields (and the compile cache's path), each as (holds, key, value,
    what is allowed) for :func:`validate`."""
    agent, dims = config.agent, model_dims(config.agent)
    cache = config.run.compile_cache
    blocked = file_in_the_way(cache) if cache else None
    return [
        (
            dims.deter % agent.blocks == 0,
            "agent.blocks",
            agent.blocks,
            f"a divisor of the size's deter={dims.deter}",
        ),
        (
            agent.min_std <= agent.max_std,
            "agent.min_std",
            agent.min_std,
            f"a finite number > 0 and <= agent.max_std={agent.max_std}",
        ),
        (
            agent.retnorm_low < agent.retnorm_high,
            "agent.retnorm_low",
            agent.retnorm_low,
            f"a finite number in [0, 100) and < agent.retnorm_high={agent.retnorm_high}",
        ),
        (
            config.replay.capacity >= agent.batch_length + 1,
            "replay.capacity",
            config.replay.capacity,
            f"an integer >= agent.batch_length + 1 = {agent.batch_length + 1} "
            "(one replayed window)",
        ),
        (
            blocked is None,
            "run.compile_cache",
            cache,
            f"'' (no cache) or a directory, new or existing ({blocked} is a file)",
        ),
    ]


def validate(config: Config) -> Config:
    """Everything a run checks before it creates anything; returns the config, read anew.

    Every field is read again against its type and range (so a Config built
    in Python or loaded from a job file is checked too), then the rules that
    join fields, then the suite, the task and the protocol overrides
    (``Suite.resolve_protocol``). ``dreamerbench train``, ``sweep`` (its dry
    run too), a sweep's job and the Trainer all call this, so they accept
    and refuse the same configs. Raises ConfigError or ValueError, one line.
    """
    from dreamerbench import suites  # cheap: environment libraries load inside make_env.

    config = from_dict(to_dict(config))
    for ok, key, value, allowed in _joint_rules(config):
        if not ok:
            error = reader.refuse(key, value, allowed)
            raise ConfigError(str(error), key)
    suite = suites.get_suite(config.suite)
    if suite.unavailable:
        raise ConfigError(suite.unavailable, "suite")
    try:
        suite.check_task(config.task)
    except ValueError as error:
        raise _with_hint(ConfigError(str(error), "task"), f"task={config.task}", suite) from None
    try:
        suite.resolve_protocol(config.env)
    except ValueError as error:
        unknown = sorted(set(config.env) - set(suite.default_protocol))
        if not unknown:
            raise
        key = f"env.{unknown[0]}"
        raise _with_hint(ConfigError(str(error), key), key) from None
    refusal = (
        suite.film_refusal(config.task) if config.run.video_render and suite.film_refusal else ""
    )
    if refusal:
        error = reader.refuse(
            "run.video_render", True, f"false for task={config.task!r}: {refusal}"
        )
        raise ConfigError(str(error), "run.video_render")
    return config


def resolve_config(
    suite: str,
    task: str,
    seed: int = 0,
    overrides: Mapping[str, Any] | Sequence[str] = (),
) -> Config:
    """The config a run of `task` trains with: defaults <- suite's agent defaults <- `overrides`.

    `overrides` are ``key=value`` texts or a mapping of dotted keys. Ends in :func:`validate`
    (which checks the task and the protocol too); raises ConfigError or ValueError, one line.
    """
    from dreamerbench import suites  # cheap: environment libraries load inside make_env.

    config = Config(suite=suite, task=task, seed=seed)
    config = apply_overrides(config, dict(suites.get_suite(suite).agent_defaults))
    return validate(apply_overrides(config, overrides))
