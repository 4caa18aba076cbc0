"""Our train step is the reference's: one recorded update of danijar/dreamerv3 (e3f0224) replayed.

`tests/data/reference_{vector,image}.npz` hold one train step of the reference
agent at our `debug` size (recorded by `tools/reference_equivalence.py`, whose
docstring says how and what): its inputs (batch, whole state before the step,
sampling noise) and its outputs (every loss term, gradients, the optimiser's
update, slow critic, return normaliser, imagined returns and policy outputs,
fresh replay latents). Here our `Dreamer` gets the same state through
`tools.reference_map`, runs its real jitted `train_step` (float32) with
the same fixed-noise samplers, and every stored term must agree.

Values inside our step (gradients, the update, imagination outputs, returns)
are read with `jax.debug.callback` from wrappers that this test puts around the
optimiser and `behavior.imagination_loss`, `behavior.replay_value_loss` and
`behavior.lambda_return`; the agent itself has no test hooks.

Regenerate the data with the reference's venv (tools/README.md):
    PYTHONPATH=../reference ../refenv/bin/python \
        -m tools.reference_equivalence --out tests/data
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dreamerbench.agent import behavior
from dreamerbench.agent import distributions as dist
from dreamerbench.agent.config import SIZES, AgentConfig, Config, LossScales, apply_overrides
from dreamerbench.agent.dreamer import Dreamer, TrainState
from dreamerbench.suites.base import Space
from tools import reference_map
from tools.fixed_noise import FixedNoise

DATA = pathlib.Path(__file__).parent / "data"
KINDS = ("vector", "image")
LOSS_TERMS = tuple(
    f.name for f in dataclasses.fields(LossScales)
)  # rec, rew, con, dyn, rep, policy, value, repval


def load(kind: str) -> dict[str, np.ndarray]:
    with np.load(DATA / f"reference_{kind}.npz") as data:
        return {k: data[k] for k in data.files}


def meta(data) -> dict:
    return json.loads(str(data["meta"]))


def ref_config(data) -> dict:
    return json.loads(str(data["config"]))


def spaces(data):
    info = meta(data)
    obs = {
        k: Space(np.dtype(dtype), tuple(shape))
        for k, (dtype, shape) in info["obs_space"].items()
        if k not in ("reward", "is_first", "is_last", "is_terminal")
    }
    ((dtype, shape, high),) = info["act_space"].values()
    act = (
        Space(np.dtype(dtype), tuple(shape), 0, high)
        if high is not None
        else Space(np.dtype(dtype), tuple(shape), -1.0, 1.0)
    )
    return obs, act


def layout(agent: Dreamer) -> reference_map.Layout:
    return reference_map.Layout(
        agent.vector_keys, len(agent.cfg.cnn_mults) if agent.image_keys else 0
    )


def make_agent(data) -> Dreamer:
    cfg = ref_config(data)
    overrides = {
        "agent.size": "debug",
        "agent.imag_length": cfg["agent.imag_length"],
        "agent.opt.warmup": cfg["agent.opt.warmup"],
        "agent.batch_size": cfg["batch_size"],
        "agent.batch_length": cfg["batch_length"],
        "agent.compute_dtype": "float32",
    }
    obs, act = spaces(data)
    return Dreamer(apply_overrides(Config(), overrides), obs, act)


def our_state(agent: Dreamer, data) -> TrainState:
    init = {k[len("init/") :]: v for k, v in data.items() if k.startswith("init/")}
    lay = layout(agent)
    trees = reference_map.to_ours(init, lay)
    params = jax.tree_util.tree_map(jnp.asarray, trees["params"])
    names = reference_map.OPT_STATE
    # Our chain (agent/optimizer.py): AGC (no state), RMS, momentum, learning-rate schedule.
    opt = list(agent.optimizer.init(params))
    assert isinstance(opt[0], optax.EmptyState) and len(opt) == 4, opt
    rms = reference_map.to_ours(init, lay, names["rms"])["params"]
    mom = reference_map.to_ours(init, lay, names["momentum"])["params"]
    opt[1] = opt[1]._replace(
        count=jnp.int32(init[names["rms_count"]]), moment=jax.tree_util.tree_map(jnp.asarray, rms)
    )
    opt[2] = opt[2]._replace(
        count=jnp.int32(init[names["momentum_count"]]),
        moment=jax.tree_util.tree_map(jnp.asarray, mom),
    )
    opt[3] = opt[3]._replace(count=jnp.int32(init[names["schedule_count"]]))
    norm = behavior.ReturnNorm(
        jnp.float32(init[reference_map.RETURN_NORM["low"]]),
        jnp.float32(init[reference_map.RETURN_NORM["high"]]),
    )
    return TrainState(
        params=params,
        slow_critic=jax.tree_util.tree_map(jnp.asarray, trees["slow_critic"]),
        opt_state=tuple(opt),
        return_norm=norm,
        updates=jnp.int32(init["opt/step/value"]),
    )


def our_batch(agent: Dreamer, data) -> dict[str, np.ndarray]:
    batch = {k[len("batch/") :]: v for k, v in data.items() if k.startswith("batch/")}
    out = {
        k: batch[k]
        for k in (*agent.obs_space, "action", "reward", "is_first", "is_last", "is_terminal")
    }
    out["deter"] = batch["dyn/deter"].astype(
        np.float16
    )  # exactly representable: our replay's dtype
    out["stoch"] = batch["dyn/stoch"].argmax(-1).astype(np.uint8)
    return out


class Captured(dict):
    """Values sent out of the compiled step by `jax.debug.callback`, by name."""

    def put(self, name: str, tree) -> None:
        def store(values):
            values = jax.tree_util.tree_map(np.asarray, values)
            if isinstance(values, dict) and isinstance(self.get(name), dict):
                self[name].update(values)
            else:
                self[name] = values

        jax.debug.callback(store, tree)


class Step(NamedTuple):
    data: dict
    agent: Dreamer
    new_state: TrainState
    metrics: dict
    deter: np.ndarray
    stoch: np.ndarray
    captured: Captured


def run_ours(kind: str) -> Step:
    """Our jitted `train_step` on the recorded state and batch, with the recorded noise."""
    data = load(kind)
    agent = make_agent(data)
    state, batch = our_state(agent, data), our_batch(agent, data)
    captured = Captured()
    optimizer = agent.optimizer
    imagination_loss, replay_value_loss = behavior.imagination_loss, behavior.replay_value_loss
    lambda_return = behavior.lambda_return

    def update(grads, opt_state, params=None):
        captured.put("grads", grads)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        captured.put("updates", updates)
        return updates, opt_state

    def imagination(actor_dist, actions, reward, cont, value_logits, slow_value, bins, norm, cfg):
        losses, new_norm, returns, metrics = imagination_loss(
            actor_dist, actions, reward, cont, value_logits, slow_value, bins, norm, cfg
        )
        policy = (
            {"logp": actor_dist.logp_all}
            if agent.discrete
            else {"mean": actor_dist.mean, "std": actor_dist.std}
        )
        captured.put(
            "imag",
            {
                "action": actions,
                "rew": reward,
                "con": cont,
                "value": dist.TwoHot(value_logits, bins).mean(),
                "slowvalue": slow_value,
                "ret": returns,
                "policy": policy,
                "losses": losses,
            },
        )
        return losses, new_norm, returns, metrics

    def replay(*args):
        loss = replay_value_loss(*args)
        captured.put("repval", loss)
        return loss

    def returns(*args):  # lambda-returns by shape: imagined [N, H], replayed [B, T - 1]
        ret = lambda_return(*args)
        captured.put("lambda_return", {ret.shape: ret})
        return ret

    noise = FixedNoise({k: v for k, v in data.items() if k.startswith("noise/")})
    with pytest.MonkeyPatch.context() as patch, noise.patched(jax.random):
        patch.setattr(agent, "optimizer", optax.GradientTransformation(optimizer.init, update))
        patch.setattr(behavior, "imagination_loss", imagination)
        patch.setattr(behavior, "replay_value_loss", replay)
        patch.setattr(behavior, "lambda_return", returns)
        new_state, out = jax.jit(agent.train_step)(state, batch, jax.random.PRNGKey(0))
        jax.block_until_ready((new_state, out))
        jax.effects_barrier()
    assert sorted(noise.used) == sorted(k for k in data if k.startswith("noise/")), noise.used
    return Step(
        data,
        agent,
        new_state,
        jax.device_get(out.metrics),
        np.asarray(out.deter),
        np.asarray(out.stoch),
        captured,
    )


@pytest.fixture(scope="module", params=KINDS)
def step(request) -> Step:
    return run_ours(request.param)


def scaled_error(ours, ref) -> float:
    """max |ours - ref| / max |ref|: the deviation relative to the array's own scale, so that
    elements near zero (where float32 rounding is all there is) do not dominate."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    scale = np.abs(ref).max()
    return float(np.abs(ours - ref).max() / scale) if scale else float(np.abs(ours).max())


def assert_all_close(pairs: dict[str, tuple], tol: float) -> None:
    errors = {name: scaled_error(ours, ref) for name, (ours, ref) in pairs.items()}
    bad = {name: err for name, err in errors.items() if not err <= tol}
    assert not bad, f"scaled errors above {tol}: {bad}"


def reference_names(data, prefix: str) -> list[str]:
    return [k[len(prefix) :] for k in data if k.startswith(prefix)]


def lr_now(step: Step) -> float:
    """The learning rate of the recorded update (linear warm-up, optax's schedule on both sides)."""
    opt = step.agent.cfg.opt
    count = int(step.data[f"init/{reference_map.OPT_STATE['schedule_count']}"])
    return opt.lr * min(1.0, count / opt.warmup) if opt.warmup else opt.lr


# ---------------------------------------------------------------- no compile


@pytest.mark.parametrize("kind", KINDS)
def test_reference_parameters_map_one_to_one_onto_ours(kind):
    data = load(kind)
    agent = make_agent(data)
    shapes = jax.eval_shape(agent.init, jax.random.PRNGKey(0))
    ours = {"params": shapes.params, "slow_critic": shapes.slow_critic}
    names = [n for n in reference_names(data, "init/") if reference_map.is_parameter(n)]
    covered: dict[tuple, list[str]] = {}
    for name in names:
        where = reference_map.target(name, layout(agent))
        leaf = reference_map.get_leaf(
            ours[where.tree], where.path
        )  # KeyError: maps to nothing of ours
        assert data["init/" + name].shape == leaf.shape, (name, where, leaf.shape)
        covered.setdefault((where.tree, where.path), []).append(name)
    twice = {path: refs for path, refs in covered.items() if len(refs) > 1}
    assert not twice, f"mapped more than once: {twice}"
    all_ours = {(tree, path) for tree in ours for path in reference_map.leaf_paths(ours[tree])}
    assert set(covered) == all_ours, {"not mapped": sorted(all_ours - set(covered))}
    # Both directions of the map agree.
    init = {n: data["init/" + n] for n in names}
    back = reference_map.to_reference(
        reference_map.to_ours(init, layout(agent)), names, layout(agent)
    )
    assert all(np.array_equal(back[n], init[n]) for n in names)


def test_each_vector_key_has_the_reference_decoder_head_and_the_image_projection_follows():
    """Names for two vector keys and an image (e.g. Minecraft): per-key heads in sorted order,
    then sp2."""
    agent = Dreamer(
        apply_overrides(Config(), {"agent.size": "debug"}),
        {
            "velocity": Space(np.float32, (2,)),
            "joints": Space(np.float32, (3,)),
            "image": Space(np.uint8, (64, 64, 3)),
        },
        Space(np.float32, (2,), -1.0, 1.0),
    )
    params = jax.eval_shape(agent.init, jax.random.PRNGKey(0)).params
    shape = lambda name: (
        reference_map.get_leaf(params, reference_map.target(name, layout(agent)).path).shape
    )
    assert shape("dec/vec/joints/pred/kernel") == (32, 3)  # decoder/Linear_0
    assert shape("dec/vec/velocity/pred/kernel") == (32, 2)  # decoder/Linear_1
    assert shape("dec/sp2/kernel") == (64, 4 * 4 * 16)  # decoder/Linear_2


def test_our_defaults_are_the_reference_config():
    """configs.yaml (e3f0224) as stored with the recording; the tool changed only size, warm-up
    and B x T."""
    cfg, ours, size = ref_config(load("vector")), AgentConfig(), SIZES["debug"]
    pairs = {
        "agent.dyn.rssm.deter": size.deter,
        "agent.dyn.rssm.hidden": size.hidden,
        "agent.dyn.rssm.classes": size.classes,
        "agent.enc.simple.units": size.units,
        "agent.enc.simple.depth": size.depth,
        "agent.dec.simple.depth": size.depth,
        "agent.dyn.rssm.stoch": ours.stoch,
        "agent.dyn.rssm.blocks": ours.blocks,
        "agent.dyn.rssm.unimix": ours.unimix,
        "agent.dyn.rssm.free_nats": ours.free_nats,
        "agent.dyn.rssm.imglayers": 2,
        "agent.dyn.rssm.obslayers": 1,
        "agent.dyn.rssm.dynlayers": 1,
        "agent.dyn.rssm.outscale": 1.0,
        "agent.dyn.rssm.absolute": False,
        "agent.enc.simple.layers": ours.mlp_layers,
        "agent.dec.simple.layers": ours.mlp_layers,
        "agent.policy.layers": ours.mlp_layers,
        "agent.value.layers": ours.mlp_layers,
        "agent.rewhead.layers": ours.head_layers,
        "agent.conhead.layers": ours.head_layers,
        "agent.enc.simple.mults": list(ours.cnn_mults),
        "agent.dec.simple.mults": list(ours.cnn_mults),
        "agent.enc.simple.kernel": ours.cnn_kernel,
        "agent.dec.simple.kernel": ours.cnn_kernel,
        "agent.dec.simple.bspace": ours.decoder_blocks,
        "agent.enc.simple.symlog": True,
        "agent.rewhead.bins": ours.bins,
        "agent.value.bins": ours.bins,
        "agent.rewhead.outscale": 0.0,
        "agent.value.outscale": 0.0,
        "agent.conhead.outscale": 1.0,
        "agent.dec.simple.outscale": 1.0,
        "agent.policy.outscale": ours.policy_outscale,
        "agent.policy.minstd": ours.min_std,
        "agent.policy.maxstd": ours.max_std,
        "agent.imag_length": ours.imag_length,
        "agent.horizon": ours.horizon,
        "agent.contdisc": True,
        "agent.imag_loss.lam": ours.lam,
        "agent.repl_loss.lam": ours.lam,
        "agent.imag_loss.actent": ours.actent,
        "agent.imag_loss.slowreg": ours.slowreg,
        "agent.repl_loss.slowreg": ours.slowreg,
        "agent.imag_loss.slowtar": False,
        "agent.repl_loss.slowtar": False,
        "agent.slowvalue.rate": ours.slow_critic_rate,
        "agent.slowvalue.every": 1,
        "agent.retnorm.impl": "perc",
        "agent.retnorm.rate": ours.retnorm_rate,
        "agent.retnorm.limit": ours.retnorm_limit,
        "agent.retnorm.perclo": ours.retnorm_low,
        "agent.retnorm.perchi": ours.retnorm_high,
        "agent.retnorm.debias": False,
        "agent.valnorm.impl": "none",
        "agent.advnorm.impl": "none",
        "agent.reward_grad": True,
        "agent.repval_loss": True,
        "agent.repval_grad": True,
        "agent.ac_grads": False,
        "agent.imag_last": 0,
        "replay_context": 1,
        "run.train_ratio": ours.train_ratio,
        "agent.opt.lr": ours.opt.lr,
        "agent.opt.agc": ours.opt.agc,
        "agent.opt.eps": ours.opt.eps,
        "agent.opt.beta1": ours.opt.beta1,
        "agent.opt.beta2": ours.opt.beta2,
        "agent.opt.wd": 0.0,
        "agent.opt.schedule": "const",
        "agent.opt.momentum": True,
        "agent.policy_dist_disc": "categorical",
        "agent.policy_dist_cont": "bounded_normal",
        **{f"agent.loss_scales.{k}": getattr(ours.loss_scales, k) for k in LOSS_TERMS},
    }
    wrong = {k: (cfg[k], v) for k, v in pairs.items() if cfg[k] != v}
    assert not wrong, f"reference config vs ours: {wrong}"
    # Our warm-up default is the reference's (the recording set 4); the discrete policy has no
    # uniform mix in the reference's code although configs.yaml lists policy.unimix 0.01.
    assert (
        ours.opt.warmup == 1000 and cfg["agent.policy.unimix"] == 0.01 and ours.policy_unimix == 0.0
    )


@pytest.mark.parametrize("kind", KINDS)
def test_recorded_step_exercises_both_sides_of_every_threshold(kind):
    """Free bits clip some KL terms and not others; adaptive clipping cuts some gradients and not
    others."""
    data = load(kind)
    kl = data["loss/dyn"]
    assert 0.05 < (kl <= 1.0).mean() < 0.95
    ratios = []
    for name in reference_names(data, "grad/"):
        upper = 0.3 * max(1e-3, np.linalg.norm(data["init/" + name]))
        ratios.append(np.linalg.norm(data["grad/" + name]) / upper)
    assert 0.1 < np.mean(np.array(ratios) > 1) < 0.9
    assert (
        float(data["init/retnorm/hi/value"] - data["init/retnorm/lo/value"]) > 1.0
    )  # the scale is not the limit
    assert (
        data["batch/is_terminal"].any()
        and (data["batch/is_last"] & ~data["batch/is_terminal"]).any()
    )


# ------------------------------------------------------------- the train step


def loss_pairs(step: Step) -> dict[str, tuple]:
    """Our loss means and per-element terms next to the reference's."""
    data, m, cap = step.data, step.metrics, step.captured
    B, T = data["batch/is_first"].shape[0], data["batch/is_first"].shape[1] - 1
    reference = {k: data[f"loss/{k}"].mean() for k in LOSS_TERMS if k != "rec"}
    reference["rec"] = sum(
        data[f"loss/{k}"].mean() for k in step.agent.obs_space
    )  # a term per key there
    pairs = {f"loss/{k}": (m[f"loss/{k}"], value) for k, value in reference.items()}
    scales = step.agent.cfg.loss_scales
    pairs["loss/total"] = (
        m["loss/total"],
        sum(getattr(scales, k) * value for k, value in reference.items()),
    )
    for k in ("policy", "value"):
        pairs[f"{k} [B, T]"] = (cap["imag"]["losses"][k].mean(1).reshape(B, T), data[f"loss/{k}"])
    pairs["repval [B, T - 1]"] = (cap["repval"], data["loss/repval"])
    return pairs


def per_parameter(step: Step, ours: dict, key: str) -> dict[str, tuple]:
    """Our params-shaped tree next to the recorded `<key>/<name>` of every reference parameter."""
    names = reference_names(step.data, key + "/")
    ours = reference_map.to_reference({"params": ours}, names, layout(step.agent))
    return {n: (ours[n], step.data[f"{key}/{n}"]) for n in names}


def grad_pairs(step: Step) -> dict[str, tuple]:
    return per_parameter(step, step.captured["grads"], "grad")


def norm_pairs(step: Step) -> dict[str, tuple]:
    pairs = grad_pairs(step)
    norms = {"all": (step.metrics["opt/grad_norm"], step.data["gradnorm/all"])}
    for module in {n.split("/", 1)[0] for n in pairs}:
        ours = np.sqrt(
            sum(
                np.sum(np.square(o, dtype=np.float64))
                for n, (o, _) in pairs.items()
                if n.startswith(module + "/")
            )
        )
        norms[module] = (ours, step.data[f"gradnorm/{module}"])
    return norms


def update_pairs(step: Step) -> dict[str, tuple]:
    return per_parameter(step, step.captured["updates"], "update")


def new_param_pairs(step: Step) -> dict[str, tuple]:
    """New parameters against init + update computed as optax.apply_updates does (float32 add)."""
    pairs = per_parameter(step, step.new_state.params, "update")
    return {n: (ours, step.data["init/" + n] + update) for n, (ours, update) in pairs.items()}


def imagination_pairs(step: Step) -> dict[str, tuple]:
    data, im = step.data, step.captured["imag"]
    H = step.agent.cfg.imag_length
    pairs = {
        f"imag/{k}": (im[k], data[f"imag/{k}"]) for k in ("ret", "rew", "con", "value", "slowvalue")
    }
    pairs["imag/action"] = (
        im["action"],
        data["imag/action"][:, :H],
    )  # the reference samples one more, unused
    if step.agent.discrete:
        logits = data["imag/policy/logits"][:, :H]
        pairs["imag/policy/logp"] = (im["policy"]["logp"], jax.nn.log_softmax(logits, -1))
    else:
        pairs["imag/policy/mean"] = (im["policy"]["mean"], data["imag/policy/mean"][:, :H])
        pairs["imag/policy/std"] = (im["policy"]["std"], data["imag/policy/stddev"][:, :H])
    returns = step.captured["lambda_return"]
    B, T = data["batch/is_first"].shape[0], data["batch/is_first"].shape[1] - 1
    pairs["repl/ret"] = (returns[(B, T - 1)], data["repl/ret"])
    return pairs


# Tolerances. Each array is compared by its scaled error, max |ours - ref| / max |ref|, so that
# elements at float32 rounding level do not dominate. Measured on the recorded steps (both
# kinds; 2026-11-30, this repository's CI-class 2-core machine, XLA -O0 as in conftest.py),
# each tolerance is about 10x the largest measured deviation; a real difference in a formula,
# a stop-gradient or a layer moves these terms by far more.
LOSS_TOL = 5e-6  # every loss term, mean or per element, and the total; measured 3.4e-7
OPT_LOSS_TOL = 5e-5  # our total against the one the reference's optimiser reports, measured
#                      6.0e-6 (image): inside its graph XLA sums the 12288 squared pixel errors
#                      per step in another order than for the per-element terms
GRAD_TOL = (
    1e-4  # measured 7.2e-6 (reward head: our two-hot loss reads two bins, the reference sums 255)
)
NORM_TOL = 1e-5  # gradient norms per reference module and in all; measured 1.1e-6
VALUE_TOL = 5e-6  # imagined returns, values, rewards, continues, actions, policy outputs, replay
#                   returns, fresh latents, return normaliser; measured 4.4e-7
UPDATE_TOL = 2e-4  # |update difference| / learning rate; measured 1.3e-5. The recorded optimiser
#                    state is warm (tools/reference_equivalence.py), so the update is a smooth
#                    function of the gradient, not lr * sign(grad) as in a first step.


def test_loss_terms_match_the_reference(step):
    assert_all_close(loss_pairs(step), LOSS_TOL)
    assert_all_close(
        {"opt/loss": (step.metrics["loss/total"], step.data["metric/opt/loss"])}, OPT_LOSS_TOL
    )


def test_gradients_match_the_reference(step):
    assert_all_close(grad_pairs(step), GRAD_TOL)
    assert_all_close(norm_pairs(step), NORM_TOL)


def test_update_and_new_state_match_the_reference(step):
    data, new, lr = step.data, step.new_state, lr_now(step)
    for name, (ours, ref) in update_pairs(step).items():
        err = np.abs(np.asarray(ours, np.float64) - ref).max() / lr
        assert err <= UPDATE_TOL, (name, err)
    for name, (ours, ref) in new_param_pairs(step).items():
        # init + update rounds to float32: allow one unit in the last place besides the
        # update's error.
        limit = UPDATE_TOL * lr + np.spacing(np.abs(ref).astype(np.float32))
        assert (np.abs(np.asarray(ours, np.float64) - ref) <= limit).all(), name
    # Slow critic s' = (1 - r) s + r p', with the updated critic p': within two float32 ulps of
    # its inputs (measured: one) besides r x the update's error. Mixing in the critic before the
    # update instead would be off by r x update, tens of ulps for most kernel entries.
    rate = step.agent.cfg.slow_critic_rate
    slow_names = ["slowval/" + n for n in reference_names(data, "after/slowval/")]
    slow = reference_map.to_reference(
        {"slow_critic": new.slow_critic}, slow_names, layout(step.agent)
    )
    for name in slow_names:
        critic = name[len("slow") :]  # val/...
        inputs = np.maximum(np.abs(data["init/" + name]), np.abs(data["init/" + critic]))
        limit = 2 * np.spacing(inputs.astype(np.float32)) + rate * UPDATE_TOL * lr
        assert (
            np.abs(np.asarray(slow[name], np.float64) - data["after/" + name]) <= limit
        ).all(), name
    norm = {"low": new.return_norm.low, "high": new.return_norm.high}
    assert_all_close(
        {k: (norm[k], data["after/" + name]) for k, name in reference_map.RETURN_NORM.items()},
        VALUE_TOL,
    )
    names = reference_map.OPT_STATE
    counts = (new.opt_state[1].count, new.opt_state[2].count, new.opt_state[3].count, new.updates)
    expected = [
        data["after/" + names[k]] for k in ("rms_count", "momentum_count", "schedule_count")
    ]
    assert [int(c) for c in counts] == [int(e) for e in expected] + [
        int(data["after/opt/step/value"])
    ]


def test_imagination_matches_the_reference(step):
    assert_all_close(imagination_pairs(step), VALUE_TOL)


def test_fresh_replay_latents_match_the_reference(step):
    assert_all_close({"deter": (step.deter, step.data["replay/deter"])}, VALUE_TOL)
    np.testing.assert_array_equal(step.stoch, step.data["replay/stoch"].argmax(-1))
