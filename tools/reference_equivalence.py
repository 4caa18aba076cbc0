"""Record the reference DreamerV3 for `tests/test_reference_equivalence.py` and `..._run.py`.

`--records step` (below) writes one train step to ``reference_<kind>.npz``;
`--records run` writes ``reference_<kind>_run.npz`` from the same starting
parameters: 50 updates from a fresh optimiser, a policy rollout with episode
starts inside and the initial parameter statistics (see `record_run`).

The reference is danijar/dreamerv3 at commit e3f0224. This tool imports it at
run time (nothing of it is copied into this repository) and runs in the
reference's own environment (see `tools/README.md` for its set-up):

    cd <repository root>
    PYTHONPATH=../reference ../refenv/bin/python \
        -m tools.reference_equivalence --out tests/data

It builds the reference agent twice at our `debug` size (deter 64, hidden 32,
classes 4, units 32, CNN depth 4, 32 latents, 8 blocks), float32 on the CPU:

- ``vector``: a 5-dim float observation ``vector`` and a 2-dim continuous action;
- ``image``: a 64x64x3 uint8 observation ``image`` and 6 discrete actions;

feeds each one batch of B = 2 sequences of T + 1 = 9 steps (step 0 is the replay
context whose stored latent starts the RSSM; the batch has an episode end by
termination, one by truncation, episode starts and actions with |a| > 1), runs
its compiled train function (`agent._train`, what `Agent.train()` calls) once,
and writes ``reference_<kind>.npz`` with:

- ``config``: the reference config (JSON), ``meta``: shapes and spaces (JSON);
- ``batch/<key>``: the batch exactly as fed (reference layout: one-hot ``dyn/stoch``);
- ``init/<name>``: the whole state before the step (parameters, optimiser state,
  slow critic, return normaliser), flat under the reference's names;
- ``grad/<name>``, ``update/<name>``: the gradient of every parameter and the
  optimiser's update (new parameter = init + update, as `optax.apply_updates`);
  ``gradnorm/<module>``: gradient norms per top-level module and ``gradnorm/all``;
- ``after/<name>``: the state after the step that is not parameter + update
  (slow critic, return normaliser, counters);
- ``loss/<term>`` [B, T]: every loss term per element; ``metric/<name>``: the
  reference's scalar metrics (loss means among them);
- ``imag/*``: over the B * T imagined trajectories [N, H + 1, ...]: actions,
  reward and continue predictions, critic and slow-critic means, the policy's
  distribution parameters, the prior logits, and ``imag/ret`` [N, H] (lambda-returns);
  ``repl/ret`` [B, T - 1]: the replay value loss's returns;
- ``post/logit`` [B, T, S, C]: posterior logits; ``replay/deter``, ``replay/stoch``:
  the fresh latents returned for replay;
- ``noise/<kind>/<shape>``: the sampling noise (below); ``margin/<sampler>``: the
  smallest top-two gap of each categorical sampler's scores.

The state before the step is not the bare initialisation, which would leave
most of the step trivial (zero reward and value heads, unit norm scales, zero
biases, a fresh optimiser whose first step is lr * sign(grad)). It is the
reference's initialisation (seed 0) changed deterministically: biases get
N(0, 0.1) noise and norm scales 1 + N(0, 0.1); the zero-initialised reward and
critic output layers get small random kernels and biases that put the
two-hot mass near moderate values (symexp(0.3) and symexp(1)); the slow critic
differs from the critic; the continue head starts near p = 0.92; the policy
output layer is 30x larger; the latent logit layers are 0.4x (vector) or 0.27x
(image) smaller, so that some KL terms fall below the free bits; the return
normaliser's EMAs start at (0.2, 1.9); and the optimiser is in the middle of
warm-up (warmup 4, all counts 2, so lr/2) with, per parameter tensor, a
constant squared-gradient average (0.16 x that tensor's RMS gradient after
adaptive clipping, from a dry run, times a log-uniform factor in [0.5, 2],
squared) and a constant momentum of +-0.05. Per-tensor constants keep the file
small; they still make the update a smooth function of the gradient, with the
gradient's share of order one.
The images are random colours in 4x4-pixel blocks (they compress in the npz).

Randomness. The reference draws noise in its scans from ninjax seeds; ours from
keys split per step, so keys cannot be aligned. While `_train` is traced,
`jax.random.categorical` and `jax.random.normal` are replaced on both sides by
`tools.fixed_noise.FixedNoise`: noise is a fixed function of the sample's shape
(categorical = argmax(logits + G(shape)), normal = N(shape)), drawn once with
NumPy and stored in the npz; our test replays the stored tables. The B * T
imagination starts are batch-major on both sides ([b * T + t]). The tool
checks that no categorical sample is within `--min-margin` (default 1e-4) of a
tie (posterior, prior and discrete policy scores, computed from the recorded
logits) and otherwise retries with the next noise seed.

Values inside the step are read with `jax.debug.callback` from wrappers put
around the reference's `Agent.loss`, `imag_loss`, `repl_loss`,
`RSSM.imagine` and its optimiser chain while this tool runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import pathlib
import sys
import tempfile

import numpy as np

from tools import reference_map
from tools.fixed_noise import FixedNoise, min_margin

KINDS = ("vector", "image")
B, T = 2, 8
SIZE = {"deter": 64, "hidden": 32, "classes": 4, "units": 32, "depth": 4}
"""Our `debug` size preset (agent/config.py SIZES['debug'])."""
WARMUP, COUNT = 4, 2
RETNORM_INIT = (0.2, 1.9)
LOGIT_SCALE = {"vector": 0.4, "image": 0.27}
"""Scales the latent logit layers so that part of the KL terms fall below the free bits."""


def _import_reference():
    try:
        import dreamerv3.agent  # noqa: F401
        import elements  # noqa: F401
    except ImportError as error:
        print(
            f"cannot import the reference ({error}); run with "
            "PYTHONPATH=<dreamerv3 e3f0224 checkout> and its venv's python, see tools/README.md",
            file=sys.stderr,
        )
        raise SystemExit(2)


def reference_config(logdir: str, updates: dict | None = None):
    """configs.yaml defaults, float32 on the CPU, then `updates` (default: our debug size,
    B x T, warm-up `WARMUP`).

    `updates` may use the keys of a configs.yaml block, regular expressions
    included (e.g. its `size12m` block).
    """
    import dreamerv3
    import elements
    import ruamel.yaml as yaml

    path = pathlib.Path(dreamerv3.__file__).parent / "configs.yaml"
    config = elements.Config(yaml.YAML(typ="safe").load(path.read_text())["defaults"])
    config = config.update(
        {"jax.platform": "cpu", "jax.compute_dtype": "float32", "logdir": logdir, "seed": 0}
    )
    if updates is None:
        units = {
            f"agent.{m}.units": SIZE["units"] for m in ("rewhead", "conhead", "policy", "value")
        }
        updates = {
            "agent.dyn.rssm.deter": SIZE["deter"],
            "agent.dyn.rssm.hidden": SIZE["hidden"],
            "agent.dyn.rssm.classes": SIZE["classes"],
            "agent.enc.simple.depth": SIZE["depth"],
            "agent.dec.simple.depth": SIZE["depth"],
            "agent.enc.simple.units": SIZE["units"],
            "agent.dec.simple.units": SIZE["units"],
            **units,
            "agent.opt.warmup": WARMUP,
            "batch_size": B,
            "batch_length": T,
        }
    return config.update(updates)


def spaces(kind: str):
    import elements

    flags = {k: elements.Space(bool) for k in ("is_first", "is_last", "is_terminal")}
    if kind == "vector":
        obs = {"vector": elements.Space(np.float32, (5,))}
        act = {"action": elements.Space(np.float32, (2,), -1, 1)}
    else:
        obs = {"image": elements.Space(np.uint8, (64, 64, 3))}
        act = {"action": elements.Space(np.int32, (), 0, 6)}
    return {**obs, "reward": elements.Space(np.float32), **flags}, act


def make_batch(kind: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One reference batch [B, T + 1, ...]; stored latents are float16-exact (our replay
    stores float16)."""
    L = T + 1
    S, C, D = 32, SIZE["classes"], SIZE["deter"]
    batch = {}
    if kind == "vector":
        batch["vector"] = (2.0 * rng.standard_normal((B, L, 5))).astype(np.float32)
        batch["action"] = (1.5 * rng.standard_normal((B, L, 2))).astype(np.float32)
    else:
        # Random colours in 4x4 pixel blocks: varied inputs that compress well in the npz.
        blocks = rng.integers(0, 256, (B, L, 16, 16, 3), dtype=np.uint8)
        batch["image"] = blocks.repeat(4, axis=2).repeat(4, axis=3)
        batch["action"] = rng.integers(0, 6, (B, L), dtype=np.int32)
    batch["reward"] = rng.standard_normal((B, L)).astype(np.float32)
    first, last, terminal = (np.zeros((B, L), bool) for _ in range(3))
    last[0, 3] = terminal[0, 3] = True  # sequence 0: the episode terminates at step 3 ...
    first[0, 4] = True  # ... and the next one starts at step 4
    last[1, 5] = True  # sequence 1: truncated (time limit) at step 5
    first[1, 6] = True
    first[1, 0] = True
    batch.update(is_first=first, is_last=last, is_terminal=terminal)
    batch["consec"] = np.zeros((B, L), np.int32)  # 0: every window starts from its stored latent
    batch["stepid"] = np.zeros((B, L, 20), np.uint8)
    batch["dyn/deter"] = rng.uniform(-1, 1, (B, L, D)).astype(np.float16).astype(np.float32)
    batch["dyn/stoch"] = np.eye(C, dtype=np.float32)[rng.integers(0, C, (B, L, S))]
    return batch


def perturb(
    kind: str, state: dict[str, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The deterministic changes to the initial state described in the module docstring."""
    import jax.numpy as jnp
    from embodied.jax import nets

    bins = np.asarray(nets.symexp(jnp.linspace(-20, 20, 255)))
    peaked = lambda centre, width: (
        -0.5 * ((np.sign(bins) * np.log1p(np.abs(bins)) - centre) / width) ** 2
    )
    state = dict(state)
    for name, value in list(state.items()):
        if not reference_map.is_parameter(name) or name.startswith("slowval/"):
            continue
        leaf = name.rsplit("/", 1)[1]
        if leaf == "bias":
            value = value + 0.1 * rng.standard_normal(value.shape)
        elif leaf == "scale":
            value = value + 0.1 * rng.standard_normal(value.shape)
        if name.startswith(("rew/head/logits/", "val/head/logits/")) and leaf == "kernel":
            value = 0.3 / math.sqrt(value.shape[0]) * rng.standard_normal(value.shape)
        if name == "rew/head/logits/bias":
            value = peaked(0.3, 1.0) + 0.05 * rng.standard_normal(value.shape)
        if name == "val/head/logits/bias":
            value = peaked(1.0, 1.5) + 0.05 * rng.standard_normal(value.shape)
        if name == "con/head/logit/bias":
            value = value + 2.5
        if name.startswith("pol/head/") and leaf == "kernel":
            value = 30 * value
        if name in ("dyn/obslogit/kernel", "dyn/priorlogit/kernel"):
            value = LOGIT_SCALE[kind] * value
        state[name] = np.asarray(value, np.float32)
    for name in list(state):
        if name.startswith("slowval/"):
            source = state["val/" + name[len("slowval/") :]]
            state[name] = (source + 0.02 * rng.standard_normal(source.shape)).astype(np.float32)
    state[reference_map.RETURN_NORM["low"]] = np.float32(RETNORM_INIT[0])
    state[reference_map.RETURN_NORM["high"]] = np.float32(RETNORM_INIT[1])
    return state


def warm_optimizer(
    state: dict[str, np.ndarray], grads: dict[str, np.ndarray], rng
) -> dict[str, np.ndarray]:
    """Per-tensor constant moments and counts `COUNT` (see the module docstring).

    The squared-gradient average is sized by the gradient after adaptive clipping
    (0.3 * max(1e-3, |param|) bounds its norm, configs.yaml agent.opt.agc), so that the
    RMS-scaled update is of order one in every tensor, clipped or not.
    """
    names = reference_map.OPT_STATE
    state = dict(state)
    for name, grad in grads.items():
        grad = np.asarray(grad, np.float64)
        upper = 0.3 * max(1e-3, float(np.linalg.norm(state[name])))
        grad = grad / max(1.0, float(np.linalg.norm(grad)) / upper)
        rms = float(np.sqrt(np.mean(np.square(grad))))
        scale = max(0.16 * rms, 1e-8) * float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        state[names["rms"] + name] = np.full(grad.shape, scale**2, np.float32)
        state[names["momentum"] + name] = np.full(grad.shape, rng.choice([-0.05, 0.05]), np.float32)
    for key in ("rms_count", "momentum_count", "schedule_count"):
        state[names[key]] = np.int32(COUNT)
    state["opt/step/value"] = np.int32(COUNT)
    return state


class Recorder:
    """Collects values sent out of the compiled step by `jax.debug.callback` (outside scans
    only)."""

    def __init__(self):
        self.values: dict[str, np.ndarray] = {}
        self.active = False

    def put(self, name: str, tree) -> None:
        if not self.active:
            return
        import jax

        flat = {f"{name}/{k}" if k else name: v for k, v in _flatten(tree).items()}

        def store(values):
            self.values.update({k: np.asarray(v) for k, v in values.items()})

        jax.debug.callback(store, flat)


def _flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}/{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


@contextlib.contextmanager
def instrumented(recorder: Recorder):
    """Wrap the reference's loss pieces and optimiser so that `recorder` sees their values."""
    import dreamerv3.agent as ref_agent
    import dreamerv3.rssm as ref_rssm
    import optax

    saved = {
        (ref_agent.Agent, "loss"): ref_agent.Agent.loss,
        (ref_agent.Agent, "_make_opt"): ref_agent.Agent._make_opt,
        (ref_rssm.RSSM, "imagine"): ref_rssm.RSSM.imagine,
        (ref_agent, "imag_loss"): ref_agent.imag_loss,
        (ref_agent, "repl_loss"): ref_agent.repl_loss,
    }
    orig = {key[1]: value for key, value in saved.items()}

    def loss(self, *args, **kwargs):
        result = orig["loss"](self, *args, **kwargs)
        _, (_, _, outs, _) = result
        recorder.put("loss", outs["losses"])
        recorder.put("post/logit", outs["repfeat"]["logit"])
        return result

    def make_opt(self, *args, **kwargs):
        chain = orig["_make_opt"](self, *args, **kwargs)

        def update(grads, state, params=None):
            recorder.put("grad", grads)
            updates, state = chain.update(grads, state, params)
            recorder.put("update", updates)
            return updates, state

        return optax.GradientTransformation(chain.init, update)

    def imagine(self, carry, policy, length, training, single=False):
        result = orig["imagine"](self, carry, policy, length, training, single)
        if not single:
            recorder.put("imag/prior_logit", result[1]["logit"])
        return result

    def imag_loss(act, rew, con, policy, value, slowvalue, *args, **kwargs):
        losses, outs, metrics = orig["imag_loss"](
            act, rew, con, policy, value, slowvalue, *args, **kwargs
        )
        ((key, dist),) = policy.items()
        inner = dist.output if hasattr(dist, "output") else dist
        params = (
            {"logits": inner.logits}
            if hasattr(inner, "logits")
            else {"mean": inner.mean, "stddev": inner.stddev}
        )
        recorder.put(
            "imag",
            {
                "action": act[key],
                "rew": rew,
                "con": con,
                "value": value.pred(),
                "slowvalue": slowvalue.pred(),
                "ret": outs["ret"],
                "policy": params,
            },
        )
        return losses, outs, metrics

    def repl_loss(*args, **kwargs):
        losses, outs, metrics = orig["repl_loss"](*args, **kwargs)
        recorder.put("repl/ret", outs["ret"])
        return losses, outs, metrics

    ref_agent.Agent.loss, ref_agent.Agent._make_opt = loss, make_opt
    ref_rssm.RSSM.imagine = imagine
    ref_agent.imag_loss, ref_agent.repl_loss = imag_loss, repl_loss
    try:
        yield
    finally:
        for (owner, attr), value in saved.items():
            setattr(owner, attr, value)


def build_agent(config, obs_space, act_space):
    """The reference `Agent` for `config` (from `reference_config`), its train function not
    yet compiled."""
    import elements
    from dreamerv3.agent import Agent

    jaxcfg = dict(config.jax, precompile=False, transfer_guard=False)
    agent_config = elements.Config(
        **config.agent,
        logdir=config.logdir,
        seed=config.seed,
        jax=jaxcfg,
        batch_size=config.batch_size,
        batch_length=config.batch_length,
        replay_context=config.replay_context,
        report_length=config.report_length,
        replica=0,
        replicas=1,
    )
    return Agent(obs_space, act_space, agent_config)


def train_once(agent, state: dict[str, np.ndarray], batch: dict[str, np.ndarray]):
    """One call of the compiled train function from `state`; returns (new state, outs,
    metrics) as NumPy."""
    import jax
    from embodied.jax import internal

    params = {k: jax.device_put(state[k], agent.params[k].sharding) for k in agent.params}
    allo = {k: v for k, v in params.items() if k in agent.policy_keys}
    dona = {k: v for k, v in params.items() if k not in agent.policy_keys}
    data = internal.device_put(batch, agent.train_sharded)
    carry = agent.init_train(B)
    seed = agent._seeds(0, agent.train_mirrored)
    new, _, outs, mets = agent._train(dona, allo, seed, carry, data)
    agent.params = new
    return jax.device_get((new, outs, mets))


def mixed_logp(logits: np.ndarray, unimix: float = 0.01) -> np.ndarray:
    logits = np.asarray(logits, np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    return np.log((1 - unimix) * probs + unimix / logits.shape[-1])


def margins(rec: dict[str, np.ndarray], noise: FixedNoise, kind: str) -> dict[str, float]:
    """Top-two gaps of every categorical sample's scores (logits + the Gumbel noise it used)."""
    post = mixed_logp(rec["post/logit"])  # [B, T, S, C], noise [B, S, C] at every step
    prior = mixed_logp(rec["imag/prior_logit"])  # [N, H, S, C], noise [N, S, C] at every step
    out = {
        "posterior": min_margin(
            post + noise.get("gumbel", (post.shape[0], *post.shape[2:]))[:, None]
        ),
        "prior": min_margin(
            prior + noise.get("gumbel", (prior.shape[0], *prior.shape[2:]))[:, None]
        ),
    }
    if kind == "image":
        logits = rec["imag/policy/logits"][:, :-1]  # the last one is never used
        out["policy"] = min_margin(
            logits + noise.get("gumbel", (logits.shape[0], logits.shape[-1]))[:, None]
        )
    return out


def record(kind: str, noise_seed: int, min_gap: float) -> dict[str, np.ndarray] | None:
    """Everything stored for `kind`, or None if a categorical sample came within `min_gap` of
    a tie."""
    import jax

    rng = np.random.default_rng([7, KINDS.index(kind)])
    recorder = Recorder()
    noise = FixedNoise(seed=noise_seed, record=True)
    with tempfile.TemporaryDirectory() as logdir, instrumented(recorder):
        config = reference_config(logdir)
        agent = build_agent(config, *spaces(kind))
        init = jax.device_get(dict(agent.params))
        batch = make_batch(kind, rng)
        state = perturb(kind, init, rng)
        with noise.patched(jax.random):
            recorder.active = True
            train_once(agent, state, batch)  # dry run: traces, compiles, gives the gradient scales
            recorder.active = False
        dry_grads = {
            k[len("grad/") :]: v for k, v in recorder.values.items() if k.startswith("grad/")
        }
        if sorted(dry_grads) != sorted(
            k for k in state if reference_map.is_parameter(k) and not k.startswith("slowval/")
        ):
            raise RuntimeError(
                f"recorded gradients do not cover the optimised parameters: {sorted(dry_grads)}"
            )
        state = warm_optimizer(state, dry_grads, rng)
        recorder.values.clear()
        after, outs, metrics = train_once(agent, state, batch)
    rec = recorder.values
    gaps = margins(rec, noise, kind)
    print(f"{kind} noise seed {noise_seed}: smallest top-two gaps {gaps}")
    if min(gaps.values()) < min_gap:
        return None

    data: dict[str, np.ndarray] = {}
    data["config"] = np.array(json.dumps(dict(config.flat), default=str))
    obs_space, act_space = spaces(kind)
    data["meta"] = np.array(
        json.dumps(
            {
                "kind": kind,
                "B": B,
                "T": T,
                "imag_length": int(config.agent.imag_length),
                "obs_space": {k: [str(v.dtype), list(v.shape)] for k, v in obs_space.items()},
                "act_space": {
                    k: [str(v.dtype), list(v.shape), int(v.high) if v.discrete else None]
                    for k, v in act_space.items()
                },
                "size": SIZE,
                "warmup": WARMUP,
                "noise_seed": noise_seed,
                "margins": gaps,
            }
        )
    )
    data.update({f"batch/{k}": v for k, v in batch.items()})
    data.update({f"init/{k}": np.asarray(state[k]) for k in sorted(state)})
    for key in ("grad", "update"):
        data.update({k: v for k, v in rec.items() if k.startswith(key + "/")})
    grads = {k[len("grad/") :]: v for k, v in rec.items() if k.startswith("grad/")}
    for module in sorted({k.split("/", 1)[0] for k in grads}):
        data[f"gradnorm/{module}"] = np.float32(
            math.sqrt(
                sum(
                    float(np.sum(np.square(v, dtype=np.float64)))
                    for k, v in grads.items()
                    if k.startswith(module + "/")
                )
            )
        )
    data["gradnorm/all"] = np.float32(
        math.sqrt(sum(float(np.sum(np.square(v, dtype=np.float64))) for v in grads.values()))
    )
    data.update({f"after/{k}": np.asarray(v) for k, v in after.items() if _kept_after(k)})
    data.update(
        {k: v for k, v in rec.items() if k.startswith(("loss/", "imag/", "repl/", "post/"))}
    )
    data.update({f"metric/{k}": np.asarray(v) for k, v in metrics.items() if np.ndim(v) == 0})
    data["replay/deter"] = np.asarray(outs["replay"]["dyn/deter"])
    data["replay/stoch"] = np.asarray(outs["replay"]["dyn/stoch"])
    data.update({name: noise.tables[name] for name in noise.used})
    data.update({f"margin/{k}": np.float64(v) for k, v in gaps.items()})
    return data


def _kept_after(name: str) -> bool:
    """State after the step that is stored as such: not the optimised parameters (stored as
    init + update) and not the optimiser's moments (their effect is the update)."""
    moments = (reference_map.OPT_STATE["rms"], reference_map.OPT_STATE["momentum"])
    optimised = reference_map.is_parameter(name) and not name.startswith("slowval/")
    return not optimised and not name.startswith(moments)


# ------------------------------------------------- many updates, the policy, the initialisation

UPDATES = 50
CHECKPOINTS = (1, 10, 25, 50)
"""Updates after which the parameters' distance from the start is recorded per tensor."""
WINDOWS = 4
"""The replay holds B rows of WINDOWS * T + 1 steps; update i trains on window i % WINDOWS."""
POLICY_STEPS = 12
POLICY_FIRST = ((0, 5), (0, 8))
"""Steps at which env 0 and env 1 of the policy rollout start an episode (is_first)."""


def make_replay(kind: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A small replay [B, WINDOWS * T + 1, ...] in the reference's layout (see `make_batch`).

    Window w is steps [w T, (w + 1) T]: its step 0, the context whose stored latent
    starts the RSSM, is the last step of window w - 1, so the latents each update
    writes back start the next window's rollout.
    """
    L = WINDOWS * T + 1
    S, C, D = 32, SIZE["classes"], SIZE["deter"]
    replay = {}
    if kind == "vector":
        replay["vector"] = (2.0 * rng.standard_normal((B, L, 5))).astype(np.float32)
        replay["action"] = np.clip(rng.standard_normal((B, L, 2)), -1, 1).astype(np.float32)
    else:
        blocks = rng.integers(0, 256, (B, L, 16, 16, 3), dtype=np.uint8)
        replay["image"] = blocks.repeat(4, axis=2).repeat(4, axis=3)
        replay["action"] = rng.integers(0, 6, (B, L), dtype=np.int32)
    replay["reward"] = rng.standard_normal((B, L)).astype(np.float32)
    first, last, terminal = (np.zeros((B, L), bool) for _ in range(3))
    first[:, 0] = True
    last[0, 11] = terminal[0, 11] = True  # row 0: termination, new episode at step 12
    first[0, 12] = True
    last[1, 21] = True  # row 1: truncation, new episode at step 22
    first[1, 22] = True
    replay.update(is_first=first, is_last=last, is_terminal=terminal)
    replay["dyn/deter"] = rng.uniform(-1, 1, (B, L, D)).astype(np.float16).astype(np.float32)
    replay["dyn/stoch"] = np.eye(C, dtype=np.float32)[rng.integers(0, C, (B, L, S))]
    return replay


def window(replay: dict[str, np.ndarray], update: int) -> slice:
    """The replay steps that update `update` (0-based) trains on: T + 1 steps."""
    start = (update % WINDOWS) * T
    return slice(start, start + T + 1)


def parameter_state(fresh: dict, recorded: dict[str, np.ndarray]) -> dict:
    """The reference agent's fresh state (optimiser, return normaliser, counters) with the
    parameters (and slow critic) of the recorded single step's starting state."""
    state = dict(fresh)
    state.update({k: v for k, v in recorded.items() if reference_map.is_parameter(k)})
    return state


def record_training(kind: str, agent, recorded: dict, rng) -> dict[str, np.ndarray]:
    """`UPDATES` updates from a fresh optimiser on `make_replay`, latents written back.

    Stores the replay as it starts (``train/replay/<key>``), per update the scalar
    metrics (``train/metric/<name>`` [U]), the return normaliser (``train/retnorm/lo``,
    ``hi`` [U]) and the fresh posterior classes (``train/stoch`` [U, B, T, S] uint8),
    and at the `CHECKPOINTS` the distance moved per parameter tensor
    (``train/moved/<name>`` [len(CHECKPOINTS)]: ||p_u - p_0||) and its sum
    (``train/drift/<name>``: sum(p_u - p_0)).
    """
    import jax

    fresh = jax.device_get(dict(agent.params))
    state = parameter_state(fresh, recorded)
    replay = make_replay(kind, rng)
    data = {f"train/replay/{k}": v.copy() for k, v in replay.items()}
    data["train/fresh/retnorm"] = np.array(
        [fresh[reference_map.RETURN_NORM[k]] for k in ("low", "high")], np.float32
    )
    names = sorted(k for k in state if reference_map.is_parameter(k))
    start = {k: np.asarray(state[k], np.float64) for k in names}
    metrics, stoch, moved, drift = {}, [], {k: [] for k in names}, {k: [] for k in names}
    lo, hi = [], []
    for update in range(UPDATES):
        where = window(replay, update)
        batch = {k: v[:, where] for k, v in replay.items()}
        batch["consec"] = np.zeros((B, T + 1), np.int32)
        batch["stepid"] = np.zeros((B, T + 1, 20), np.uint8)
        state, outs, mets = train_once(agent, state, batch)
        for name, value in mets.items():
            if np.ndim(value) == 0:
                metrics.setdefault(name, []).append(float(value))
        fresh_deter = np.asarray(outs["replay"]["dyn/deter"], np.float32)
        fresh_stoch = np.asarray(outs["replay"]["dyn/stoch"], np.float32)
        inner = slice(where.start + 1, where.stop)
        replay["dyn/deter"][:, inner] = fresh_deter.astype(np.float16).astype(np.float32)
        replay["dyn/stoch"][:, inner] = fresh_stoch
        stoch.append(fresh_stoch.argmax(-1).astype(np.uint8))
        lo.append(float(state[reference_map.RETURN_NORM["low"]]))
        hi.append(float(state[reference_map.RETURN_NORM["high"]]))
        if update + 1 in CHECKPOINTS:
            for k in names:
                delta = np.asarray(state[k], np.float64) - start[k]
                moved[k].append(np.linalg.norm(delta))
                drift[k].append(delta.sum())
    data.update({f"train/metric/{k}": np.array(v, np.float32) for k, v in metrics.items()})
    data["train/stoch"] = np.stack(stoch)
    data["train/retnorm/lo"] = np.array(lo, np.float32)
    data["train/retnorm/hi"] = np.array(hi, np.float32)
    data.update({f"train/moved/{k}": np.array(v) for k, v in moved.items()})
    data.update({f"train/drift/{k}": np.array(v) for k, v in drift.items()})
    return data


def policy_inputs(kind: str, rng) -> dict[str, np.ndarray]:
    """Observations [K, N = 2, ...] for `POLICY_STEPS` steps, episodes starting mid-rollout."""
    K, N = POLICY_STEPS, 2
    obs = {}
    if kind == "vector":
        obs["vector"] = (2.0 * rng.standard_normal((K, N, 5))).astype(np.float32)
    else:
        blocks = rng.integers(0, 256, (K, N, 16, 16, 3), dtype=np.uint8)
        obs["image"] = blocks.repeat(4, axis=2).repeat(4, axis=3)
    obs["reward"] = rng.standard_normal((K, N)).astype(np.float32)
    first, last = np.zeros((K, N), bool), np.zeros((K, N), bool)
    for env, steps in enumerate(POLICY_FIRST):
        for step in steps:
            first[step, env] = True
            if step:
                last[step - 1, env] = True
    obs.update(is_first=first, is_last=last, is_terminal=last.copy())
    return obs


def record_policy(agent, recorded: dict, inputs: dict) -> dict[str, np.ndarray]:
    """The reference's policy (mode 'train', sampling) over `inputs` from `init_policy`, with the
    recorded parameters: ``policy/action`` [K, N, ...], ``policy/deter`` [K, N, D] and
    ``policy/stoch`` [K, N, S] (class indices), the latents it returns for replay."""
    import jax

    agent.policy_params = {
        k: jax.device_put(recorded[k], agent.policy_params_sharding[k]) for k in agent.policy_keys
    }
    carry = agent.init_policy(2)
    actions, deter, stoch = [], [], []
    for step in range(POLICY_STEPS):
        carry, acts, outs = agent.policy(carry, {k: v[step] for k, v in inputs.items()})
        actions.append(np.asarray(acts["action"]))
        deter.append(np.asarray(outs["dyn/deter"], np.float32))
        stoch.append(np.asarray(outs["dyn/stoch"]).argmax(-1).astype(np.uint8))
    data = {f"policy/input/{k}": v for k, v in inputs.items()}
    data["policy/action"] = np.stack(actions)
    data["policy/deter"] = np.stack(deter)
    data["policy/stoch"] = np.stack(stoch)
    return data


def init_statistics(params: dict) -> dict[str, np.ndarray]:
    """``initstat/<name>`` = (mean, std) of every parameter tensor of a fresh reference agent."""
    return {
        f"initstat/{k}": np.array([np.mean(v, dtype=np.float64), np.std(v, dtype=np.float64)])
        for k, v in params.items()
        if reference_map.is_parameter(k)
    }


def record_run(kind: str, noise_seed: int, step_file: pathlib.Path) -> dict[str, np.ndarray]:
    """Everything in ``reference_<kind>_run.npz``: the reference's initial parameter statistics
    (seed 0), a policy rollout and `UPDATES` train updates, both from the parameters of the
    single recorded step (`step_file`), with the fixed noise of `noise_seed`."""
    import jax

    with np.load(step_file) as stored:
        recorded = {k[len("init/") :]: stored[k] for k in stored.files if k.startswith("init/")}
    rng = np.random.default_rng([11, KINDS.index(kind)])
    noise = FixedNoise(seed=noise_seed, record=True)
    with tempfile.TemporaryDirectory() as logdir:
        config = reference_config(logdir)
        agent = build_agent(config, *spaces(kind))
        data = init_statistics(jax.device_get(dict(agent.params)))
        with noise.patched(jax.random):
            policy = record_policy(agent, recorded, policy_inputs(kind, rng))
            data.update(policy)
        data.update(noise_group("policy", noise))
        noise = FixedNoise(seed=noise_seed, record=True)
        with noise.patched(jax.random):
            data.update(record_training(kind, agent, recorded, rng))
        data.update(noise_group("train", noise))
    data["meta"] = np.array(
        json.dumps(
            {
                "kind": kind,
                "noise_seed": noise_seed,
                "updates": UPDATES,
                "checkpoints": CHECKPOINTS,
                "windows": WINDOWS,
                "policy_first": POLICY_FIRST,
            }
        )
    )
    return data


def noise_group(group: str, noise: FixedNoise) -> dict[str, np.ndarray]:
    """The noise tables `noise` used, stored as ``<group>/noise/<kind>/<shape>``."""
    return {f"{group}/{name}": noise.tables[name] for name in noise.used}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="tests/data", help="directory for reference_<kind>.npz")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help="comma-separated subset of vector,image"
    )
    parser.add_argument("--noise-seed", type=int, default=0, help="first noise seed to try")
    parser.add_argument(
        "--min-margin", type=float, default=1e-4, help="smallest allowed top-two gap"
    )
    parser.add_argument("--tries", type=int, default=10, help="noise seeds to try per kind")
    parser.add_argument(
        "--records",
        default="step,run",
        help="comma-separated subset of step (reference_<kind>.npz: one update) and run "
        "(reference_<kind>_run.npz: many updates, a policy rollout, initial statistics; it "
        "starts from the parameters in reference_<kind>.npz)",
    )
    args = parser.parse_args(argv)
    records = {r for r in args.records.split(",") if r}
    if not records or records - {"step", "run"}:
        parser.exit(2, f"--records={args.records!r}: allowed are step,run\n")
    kinds = [k for k in args.kinds.split(",") if k]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        parser.exit(2, f"--kinds={args.kinds!r}: allowed are {', '.join(KINDS)}\n")
    _import_reference()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        if "step" in records:
            write_step(kind, out, args)
        if "run" in records:
            data = record_run(kind, args.noise_seed, out / f"reference_{kind}.npz")
            save(out / f"reference_{kind}_run.npz", data)


def save(path: pathlib.Path, data: dict[str, np.ndarray]) -> None:
    np.savez_compressed(path, **data)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {len(data)} arrays)")


def write_step(kind: str, out: pathlib.Path, args) -> None:
    """reference_<kind>.npz: the first noise seed without a near-tie (see `record`)."""
    for seed in range(args.noise_seed, args.noise_seed + args.tries):
        data = record(kind, seed, args.min_margin)
        if data is not None:
            break
    else:
        raise SystemExit(f"{kind}: every noise seed gave a near-tie below {args.min_margin}")
    save(out / f"reference_{kind}.npz", data)


if __name__ == "__main__":
    main()
