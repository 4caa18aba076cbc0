"""The one home of every default.

Frozen dataclasses are the schema: suite presets and ``--set key=value``
overrides only replace fields, and are validated against the schema (unknown
keys and wrong types raise :class:`ConfigError` naming the field, the value and
what is allowed). Values derived from the config live in :class:`ModelDims`.

Defaults follow DreamerV3 (Hafner et al. 2023, arXiv 2301.04104, Table W.1)
as in danijar/dreamerv3 ``configs.yaml`` (commit e3f0224).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import yaml


class ConfigError(ValueError):
    """A config key or value that the schema does not allow."""


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


@dataclass(frozen=True)
class LossScales:
    """Weights of the loss terms summed into the single training loss."""

    rec: float = 1.0
    """Observation reconstruction (every decoded key)."""
    rew: float = 1.0
    """Reward prediction."""
    con: float = 1.0
    """Episode-continuation prediction."""
    dyn: float = 1.0
    """Dynamics KL: trains the prior towards the (stopped) posterior."""
    rep: float = 0.1
    """Representation KL: trains the posterior towards the (stopped) prior."""
    policy: float = 1.0
    """REINFORCE actor loss on imagined trajectories."""
    value: float = 1.0
    """Critic loss on imagined trajectories."""
    repval: float = 0.3
    """Critic loss on replayed trajectories."""


@dataclass(frozen=True)
class OptimizerConfig:
    """LaProp with adaptive gradient clipping, as an optax chain."""

    lr: float = 4e-5
    """Learning rate after warm-up."""
    warmup: int = 1000
    """Updates of linear learning-rate warm-up from 0."""
    agc: float = 0.3
    """Adaptive gradient clipping: max ratio of update norm to parameter norm."""
    agc_pmin: float = 1e-3
    """Floor on the parameter norm in adaptive gradient clipping."""
    beta1: float = 0.9
    """Momentum decay (applied after RMS scaling, as in LaProp)."""
    beta2: float = 0.999
    """Decay of the squared-gradient average."""
    eps: float = 1e-20
    """Added to the RMS denominator."""


@dataclass(frozen=True)
class AgentConfig:
    """Architecture and learning hyperparameters of DreamerV3."""

    size: str = "12m"
    """Model size preset, one of SIZES."""
    stoch: int = 32
    """Number of categorical latents in the stochastic state."""
    blocks: int = 8
    """Blocks of the block-diagonal GRU."""
    unimix: float = 0.01
    """Uniform mixture in the latent categoricals (posterior and prior), in [0, 1)."""
    policy_unimix: float = 0.0
    """Uniform mixture in the discrete policy, in [0, 1). 0 as in the reference code (its
    categorical policy head has none); the paper (Section 3, "unimix categoricals") says 0.01."""
    free_nats: float = 1.0
    """Free bits: KL terms below this many nats (summed over latents) are clipped."""
    norm_eps: float = 1e-4
    """Epsilon of RMSNorm."""
    mlp_layers: int = 3
    """Hidden layers of the vector encoder/decoder, policy and value MLPs."""
    head_layers: int = 1
    """Hidden layers of the reward and continue heads."""
    cnn_mults: tuple[int, ...] = (2, 3, 4, 4)
    """Channel multipliers of the CNN stages (times the size's depth)."""
    cnn_kernel: int = 5
    """Kernel size of every convolution."""
    decoder_blocks: int = 8
    """Blocks of the block-linear map from the deterministic state to the image decoder."""
    bins: int = 255
    """Bins of the symexp two-hot reward and value heads."""
    policy_outscale: float = 0.01
    """Init scale of the policy's output layers: their initial weights are this times a
    fan-in-scaled truncated normal (the reference's `outscale`)."""
    min_std: float = 0.1
    """Lower bound of the continuous policy's standard deviation."""
    max_std: float = 1.0
    """Upper bound of the continuous policy's standard deviation."""
    imag_length: int = 15
    """Imagination horizon in steps."""
    horizon: int = 333
    """Discount horizon: gamma = 1 - 1/horizon."""
    lam: float = 0.95
    """Lambda of the lambda-returns."""
    actent: float = 3e-4
    """Entropy bonus of the actor."""
    slow_critic_rate: float = 0.02
    """EMA rate of the slow critic that regularises the critic."""
    slowreg: float = 1.0
    """Weight of the critic's regulariser towards the slow critic."""
    retnorm_rate: float = 0.01
    """EMA rate of the return percentiles (decay 0.99)."""
    retnorm_limit: float = 1.0
    """Returns are divided by max(limit, P95 - P5)."""
    retnorm_low: float = 5.0
    """Lower return percentile."""
    retnorm_high: float = 95.0
    """Upper return percentile."""
    train_ratio: float = 32.0
    """Replayed steps per environment step: updates/step = train_ratio / (B * T)."""
    batch_size: int = 16
    """Sequences per training batch (B)."""
    batch_length: int = 64
    """Trained steps per sequence (T); one more context step is replayed in front."""
    loss_scales: LossScales = field(default_factory=LossScales)
    opt: OptimizerConfig = field(default_factory=OptimizerConfig)
    compute_dtype: str = "auto"
    """float32, bfloat16, or auto (bfloat16 on GPU, float32 on CPU). Parameters stay float32."""


@dataclass(frozen=True)
class ReplayConfig:
    """Replay buffer."""

    capacity: int = 5_000_000
    """Environment steps kept (oldest dropped first)."""
    online: bool = True
    """Put every fresh window into the next batches before uniform samples."""


@dataclass(frozen=True)
class RunConfig:
    """How long and how a training run goes."""

    steps: int = 1_000_000
    """Agent steps (environment steps after action repeat) in total."""
    envs: int = 1
    """Environments stepped in parallel."""
    parallel_envs: bool = False
    """Step environments in worker processes rather than in the trainer's process."""
    train_start: int = 1024
    """Agent steps collected with the (untrained) policy before the first update."""
    save_every: int = 10_000
    """Agent steps between checkpoints."""
    log_every: float = 30.0
    """Seconds between training-metric records."""
    progress: bool = True
    """Show a progress bar on stderr."""
    compile_cache: str = "~/.cache/dreamerbench/jax"
    """Persistent XLA compilation cache directory ('' to disable)."""


@dataclass(frozen=True)
class Config:
    """A whole run: what to train on, the agent, replay and the run schedule."""

    suite: str = "dmc_proprio"
    """Suite name (see `dreamerbench suites`)."""
    task: str = "cartpole_balance"
    """Task within the suite."""
    seed: int = 0
    """Seeds parameters, policy sampling, replay sampling and environments."""
    env: Mapping[str, Any] = field(default_factory=dict)
    """Overrides of the suite's protocol (validated by the suite)."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @property
    def dims(self) -> ModelDims:
        return model_dims(self.agent)


def model_dims(agent: AgentConfig) -> ModelDims:
    if agent.size not in SIZES:
        raise ConfigError(
            f"agent.size={agent.size!r} is not a size preset; allowed: {', '.join(SIZES)}"
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
    """{'a': {'b': 1}} -> {'a.b': 1}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def from_dict(tree: Mapping[str, Any]) -> Config:
    """Inverse of :func:`to_dict`, validating every key and type."""
    return apply_overrides(Config(), flatten(tree))


def parse_override(text: str) -> tuple[str, Any]:
    """'agent.train_ratio=64' -> ('agent.train_ratio', 64); the value is YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def apply_overrides(config: Config, overrides: Mapping[str, Any] | Sequence[str]) -> Config:
    """Return a copy of `config` with dotted keys replaced.

    `overrides` is a mapping {'agent.train_ratio': 64} or a list of
    'key=value' strings. Keys under `env` are free-form here; the suite
    validates them against its protocol.
    """
    if not isinstance(overrides, Mapping):
        overrides = dict(parse_override(text) for text in overrides)
    for key, value in overrides.items():
        config = _replace_path(config, key.split("."), value, key)
    return config


def _replace_path(node: Any, path: list[str], value: Any, full_key: str) -> Any:
    name, rest = path[0], path[1:]
    fields = {f.name: f for f in dataclasses.fields(node)}
    if name not in fields:
        where = full_key[: len(full_key) - len(".".join(path))].rstrip(".") or "the top level"
        raise ConfigError(
            f"unknown config key {full_key!r}; allowed keys at {where}: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(type(node))
    current = getattr(node, name)
    if name == "env" and isinstance(node, Config):
        env = dict(current)
        if rest:
            env[".".join(rest)] = value
        elif isinstance(value, Mapping):
            env.update(value)
        else:
            raise ConfigError(f"{full_key}={value!r}: expected a mapping of protocol overrides")
        return dataclasses.replace(node, env=env)
    if rest:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"config key {full_key!r}: {name!r} has no sub-keys")
        return dataclasses.replace(node, **{name: _replace_path(current, rest, value, full_key)})
    if dataclasses.is_dataclass(current):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{full_key}={value!r}: expected a mapping of {name} fields")
        return dataclasses.replace(
            node, **{name: apply_overrides_to(current, value, full_key)}
        )
    return dataclasses.replace(node, **{name: _coerce(value, hints[name], full_key)})


def apply_overrides_to(node: Any, values: Mapping[str, Any], prefix: str) -> Any:
    for key, value in values.items():
        node = _replace_path(node, key.split("."), value, f"{prefix}.{key}")
    return node


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)  # YAML reads 1e6 as a float.
        if isinstance(value, str):
            try:
                as_float = float(value)
            except ValueError:
                pass
            else:
                if as_float.is_integer():
                    return int(as_float)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. agent.size=12m is a str, but size=1e3 is not.
    elif origin is tuple:
        item = typing.get_args(hint)[0]
        if isinstance(value, (list, tuple)):
            return tuple(_coerce(v, item, key) for v in value)
    elif origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
    else:
        return value
    allowed = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{key}={value!r} has the wrong type; expected {allowed}")


def validate(config: Config) -> Config:
    """Check cross-field constraints that types alone do not express."""
    dims = model_dims(config.agent)
    agent = config.agent
    checks = [
        (dims.deter % agent.blocks == 0, f"agent.blocks={agent.blocks} must divide deter={dims.deter}"),
        (agent.batch_size >= 1, f"agent.batch_size={agent.batch_size} must be >= 1"),
        (agent.batch_length >= 2, f"agent.batch_length={agent.batch_length} must be >= 2"),
        (agent.train_ratio > 0, f"agent.train_ratio={agent.train_ratio} must be > 0"),
        (agent.compute_dtype in ("auto", "float32", "bfloat16"),
         f"agent.compute_dtype={agent.compute_dtype!r}; allowed: auto, float32, bfloat16"),
        (config.run.envs >= 1, f"run.envs={config.run.envs} must be >= 1"),
        (config.run.steps >= 1, f"run.steps={config.run.steps} must be >= 1"),
        (config.replay.capacity >= agent.batch_length + 1,
         f"replay.capacity={config.replay.capacity} must hold at least one window "
         f"of batch_length + 1 = {agent.batch_length + 1} steps"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    return config
