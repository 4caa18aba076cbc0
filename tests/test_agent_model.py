"""The model: size presets, parameter structure, learning on a fixed batch, determinism."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dreamerbench.agent.config import SIZES, Config, apply_overrides
from dreamerbench.agent.dreamer import Dreamer
from dreamerbench.agent.synthetic import random_batch
from dreamerbench.suites.base import Space

IMAGE_OBS = {"image": Space(np.uint8, (64, 64, 3))}
VECTOR_OBS = {"vector": Space(np.float32, (5,))}
DISCRETE = Space(np.int32, (), 0, 18)
CONTINUOUS = Space(np.float32, (2,), -1.0, 1.0)


def make_agent(size="debug", obs=VECTOR_OBS, act=CONTINUOUS, **overrides):
    config = apply_overrides(Config(), {"agent.size": size, **overrides})
    return Dreamer(config, obs, act)


def count(tree) -> int:
    return sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree))


@pytest.mark.parametrize("size", [s for s in SIZES if s != "debug"])
def test_size_presets_have_about_their_nominal_parameter_count(size):
    agent = make_agent(size, IMAGE_OBS, DISCRETE)
    shapes = jax.eval_shape(agent.init, jax.random.PRNGKey(0))  # builds, allocates nothing
    total = count(shapes.params)
    nominal = float(size[:-1]) * 1e6
    assert 0.6 * nominal <= total <= 1.1 * nominal, (size, total)
    assert count(shapes.slow_critic) == count(shapes.params["critic"])
    deter = SIZES[size].deter
    wm = shapes.params["world_model"]["params"]
    # Block GRU: 8 blocks, each mapping (deter/8 + 3 hidden) -> deter/8 and deter/8 -> 3 deter/8.
    assert wm["dyn_hidden"]["kernel"].shape == (8, deter // 8 + 3 * SIZES[size].hidden, deter // 8)
    assert wm["dyn_gates"]["kernel"].shape == (8, deter // 8, 3 * deter // 8)


def test_rssm_parameter_count_matches_the_design_formula():
    agent = make_agent("12m", VECTOR_OBS, DISCRETE)
    d, h, u = SIZES["12m"].deter, SIZES["12m"].hidden, SIZES["12m"].units
    sc, a, g = 32 * SIZES["12m"].classes, 18, 8
    dense = lambda i, o: i * o + o + o  # Linear + RMSNorm scale (no shift, as the reference)
    expected = (
        dense(d, h)
        + dense(sc, h)
        + dense(a, h)  # inputs of the core
        + g * (d // g + 3 * h) * (d // g)
        + d
        + d  # block hidden layer + norm
        + g * (d // g) * (3 * d // g)
        + 3 * d  # block gates
        + dense(d, h)
        + dense(h, h)
        + h * sc
        + sc  # prior: 2 layers + logits
        + dense(d + u, h)
        + h * sc
        + sc  # posterior on (deter, tokens): 1 layer + logits
    )
    wm = jax.eval_shape(agent.init, jax.random.PRNGKey(0)).params["world_model"]["params"]
    rssm_keys = [k for k in wm if k.startswith(("dyn_", "prior_", "post_"))]
    assert count({k: wm[k] for k in rssm_keys}) == expected


def test_heads_start_at_zero_and_policy_near_uniform():
    agent = make_agent("debug", VECTOR_OBS, DISCRETE)
    params = jax.jit(agent.init)(jax.random.PRNGKey(0)).params
    assert not np.any(params["critic"]["params"]["Linear_0"]["kernel"])
    assert not np.any(params["world_model"]["params"]["reward_out"]["kernel"])
    feat = jax.random.normal(jax.random.PRNGKey(1), (7, agent.feature_size))
    logits = agent.actor.apply(params["actor"], feat)
    probs = jax.nn.softmax(logits)
    np.testing.assert_allclose(probs, 1 / 18, atol=0.01)  # output scale 0.01


@pytest.fixture(scope="module")
def vector_agent():
    agent = make_agent(
        "debug", VECTOR_OBS, CONTINUOUS, **{"agent.opt.warmup": 0, "agent.opt.lr": 1e-3}
    )
    return agent, jax.jit(agent.train_step)


def run_updates(agent, train_step, batch, n, seed=0):
    state = jax.jit(agent.init)(jax.random.PRNGKey(seed))
    history = []
    for i in range(n):
        state, out = train_step(state, batch, jax.random.PRNGKey(100 + i))
        history.append({k: float(v) for k, v in out.metrics.items()})
    return state, out, history


def test_updates_on_a_fixed_batch_lower_the_world_model_loss(vector_agent):
    agent, train_step = vector_agent
    batch = random_batch(agent, 4, 16)
    state, out, history = run_updates(agent, train_step, batch, 30)
    wm_loss = lambda m: m["loss/rec"] + m["loss/rew"] + m["loss/con"]
    assert wm_loss(history[-1]) < 0.7 * wm_loss(history[0])
    assert all(np.isfinite(v) for v in history[-1].values())
    assert int(state.updates) == 30
    # Fresh latents for the replayed steps 1..T come back for the replay buffer.
    assert out.deter.shape == (4, 16, 64) and out.stoch.shape == (4, 16, 32)
    assert out.stoch.dtype == jnp.uint8 and int(out.stoch.max()) < 4


def test_same_seed_gives_bit_identical_parameters(vector_agent):
    agent, train_step = vector_agent
    batch = random_batch(agent, 4, 16)
    first, _, _ = run_updates(agent, train_step, batch, 3, seed=1)
    second, _, _ = run_updates(agent, train_step, batch, 3, seed=1)
    other, _, _ = run_updates(agent, train_step, batch, 3, seed=2)
    same = jax.tree_util.tree_map(
        lambda a, b: bool(jnp.array_equal(a, b)), first.params, second.params
    )
    assert all(jax.tree_util.tree_leaves(same))
    differ = jax.tree_util.tree_map(
        lambda a, b: bool(jnp.array_equal(a, b)), first.params, other.params
    )
    assert not all(jax.tree_util.tree_leaves(differ))


def test_image_discrete_agent_trains_and_acts():
    agent = make_agent("debug", IMAGE_OBS, DISCRETE, **{"agent.imag_length": 3})
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    batch = random_batch(agent, 2, 8)
    state, out = jax.jit(agent.train_step)(state, batch, jax.random.PRNGKey(1))
    assert np.isfinite(float(out.metrics["loss/total"]))
    carry = agent.initial_carry(3)
    obs = {"image": np.zeros((3, 64, 64, 3), np.uint8), "is_first": np.ones(3, bool)}
    policy_step = jax.jit(agent.policy_step, static_argnames="explore")
    carry, action, (deter, stoch) = policy_step(state.params, carry, obs, jax.random.PRNGKey(2))
    assert action.shape == (3,) and int(action.max()) < 18
    assert deter.shape == (3, 64) and stoch.shape == (3, 32)
    greedy = policy_step(state.params, carry, obs, jax.random.PRNGKey(2), explore=False)[1]
    assert greedy.shape == (3,)


def test_shared_block_linear_equals_block_linear_on_the_broadcast_concatenation():
    from dreamerbench.agent.networks import BlockLinear, SharedBlockLinear

    grouped = jax.random.normal(jax.random.PRNGKey(0), (5, 4, 6))  # [N, g, own]
    shared = jax.random.normal(jax.random.PRNGKey(1), (5, 9))
    layer = SharedBlockLinear(units=8, blocks=4)
    params = layer.init(jax.random.PRNGKey(2), grouped, shared)
    params["params"]["bias"] = jnp.arange(8.0)
    concat = jnp.concatenate([grouped, jnp.broadcast_to(shared[:, None], (5, 4, 9))], -1).reshape(
        5, -1
    )
    expected = BlockLinear(units=8, blocks=4).apply(params, concat)
    np.testing.assert_allclose(layer.apply(params, grouped, shared), expected, rtol=1e-5, atol=1e-6)


def test_block_linear_parts_are_the_slices_of_its_blocks_first_output():
    from dreamerbench.agent.networks import BlockLinear

    x = jax.random.normal(jax.random.PRNGKey(0), (5, 12))
    layer = BlockLinear(units=24, blocks=4)
    params = layer.init(jax.random.PRNGKey(1), x)
    params["params"]["bias"] = jnp.arange(24.0)
    blocks_first = layer.apply(params, x).reshape(5, 4, 6).transpose(1, 0, 2)  # [g, N, units / g]
    parts = layer.apply(params, x, blocks_first_parts=3)
    np.testing.assert_allclose(jnp.concatenate(parts, -1), blocks_first, rtol=1e-6, atol=1e-6)


def test_imagined_policy_outputs_are_the_actor_on_the_imagined_features():
    from dreamerbench.agent import rssm

    agent = make_agent("debug", **{"agent.imag_length": 4})
    params = jax.jit(agent.init)(jax.random.PRNGKey(0)).params
    deter, stoch, classes = agent.latent_shape
    start = agent.stored_latent(
        jax.random.normal(jax.random.PRNGKey(1), (6, deter)),
        jax.random.randint(jax.random.PRNGKey(2), (6, stoch), 0, classes),
    )

    def policy_fn(latent, key):
        out = agent.actor.apply(params["actor"], rssm.features(latent))
        action = agent.actor.distribution(out).sample(key)
        return action, agent.encode_action(action), out

    feats, actions, outs = rssm.imagine(
        agent.world_model,
        params["world_model"],
        policy_fn,
        start,
        4,
        jax.random.PRNGKey(3),
        agent.cfg.unimix,
    )
    assert feats.shape == (6, 5, agent.feature_size) and actions.shape == (6, 4, 2)
    np.testing.assert_allclose(
        outs, agent.actor.apply(params["actor"], feats[:, :4]), rtol=1e-5, atol=1e-6
    )


def test_bfloat16_compute_keeps_float32_parameters_and_finite_losses():
    agent = make_agent(
        "debug", IMAGE_OBS, DISCRETE, **{"agent.compute_dtype": "bfloat16", "agent.imag_length": 2}
    )
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    assert {x.dtype for x in jax.tree_util.tree_leaves(state.params)} == {jnp.dtype("float32")}
    state, out = jax.jit(agent.train_step)(state, random_batch(agent, 2, 4), jax.random.PRNGKey(1))
    assert all(np.isfinite(float(v)) for v in out.metrics.values())
    assert {x.dtype for x in jax.tree_util.tree_leaves(state.params)} == {jnp.dtype("float32")}
    assert out.deter.dtype == jnp.float32


def test_initial_weight_scales_match_the_reference():
    """std = outscale / sqrt(fan_in), fan_in over the whole input also for block-diagonal kernels.

    danijar/dreamerv3 e3f0224 `embodied/jax/nets.py`: `Initializer.compute_fans` counts g * i
    inputs for a kernel [g, i, o], and `_scaled_winit` multiplies the kernel by outscale.
    """
    agent = make_agent("1m", IMAGE_OBS, CONTINUOUS)
    params = jax.jit(agent.init)(jax.random.PRNGKey(0)).params
    wm, actor = params["world_model"]["params"], params["actor"]["params"]
    dims = SIZES["1m"]
    kernels = {
        "dyn_hidden": (wm["dyn_hidden"]["kernel"], 1 / math.sqrt(dims.deter + 8 * 3 * dims.hidden)),
        "dyn_gates": (wm["dyn_gates"]["kernel"], 1 / math.sqrt(dims.deter)),
        "decoder block projection": (
            wm["decoder"]["BlockLinear_0"]["kernel"],
            1 / math.sqrt(dims.deter),
        ),
        "policy mean": (actor["mean"]["kernel"], 0.01 / math.sqrt(dims.units)),
        "policy std": (actor["std"]["kernel"], 0.01 / math.sqrt(dims.units)),
    }
    for name, (kernel, std) in kernels.items():
        kernel = np.asarray(kernel)
        assert abs(kernel.std() / std - 1) < 0.05, (name, kernel.std(), std)
        # A normal cut at +-2 and rescaled by 1.1368 to unit variance: |w| <= 2.2736 std.
        assert np.abs(kernel).max() <= 2 * 1.1368 * std * 1.001, name


def test_rms_norms_have_a_scale_and_no_shift():
    agent = make_agent("debug", IMAGE_OBS, DISCRETE)
    params = jax.eval_shape(agent.init, jax.random.PRNGKey(0)).params
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(params)]
    assert any("RMSNorm" in p and "scale" in p for p in paths)
    assert not any("shift" in p for p in paths)


def test_discrete_policy_has_no_uniform_mix_unless_asked():
    logits = jnp.array([[4.0, 0.0, -4.0]])
    for unimix in (0.0, 0.1):
        agent = make_agent("debug", VECTOR_OBS, DISCRETE, **{"agent.policy_unimix": unimix})
        probs = np.exp(agent.actor.distribution(logits).logp_all)
        expected = (1 - unimix) * np.asarray(jax.nn.softmax(logits)) + unimix / 3
        np.testing.assert_allclose(probs, expected, rtol=1e-6)


def test_each_vector_key_has_its_own_decoder_output_layer_so_clipping_bounds_it_alone():
    """danijar/dreamerv3 e3f0224 `dreamerv3/rssm.py` L302-305: one output head per vector key
    after a shared MLP; adaptive gradient clipping (per tensor) then bounds each key's head
    alone."""
    from dreamerbench.agent.networks import MLP
    from dreamerbench.agent.optimizer import clip_by_agc
    from dreamerbench.agent.rssm import Latent, WorldModel

    obs = {"velocity": Space(np.float32, (2,)), "joints": Space(np.float32, (3,))}
    agent = make_agent("debug", obs, CONTINUOUS)
    params = jax.jit(agent.init)(jax.random.PRNGKey(0)).params
    decoder = params["world_model"]["params"]["decoder"]
    deter, stoch, classes = agent.latent_shape
    latent = Latent(
        jax.random.normal(jax.random.PRNGKey(1), (4, deter)),
        jax.nn.one_hot(jax.random.randint(jax.random.PRNGKey(2), (4, stoch), 0, classes), classes),
    )
    recon = agent.world_model.apply(params["world_model"], latent, method=WorldModel.decode)[
        "vector"
    ]
    hidden = MLP(3, 32).apply(
        {"params": decoder["MLP_0"]},
        jnp.concatenate([latent.stoch.reshape(4, -1), latent.deter], -1),
    )
    head = lambda name: hidden @ decoder[name]["kernel"] + decoder[name]["bias"]
    # Keys in sorted order, as the loss concatenates the targets: joints (3), then velocity (2).
    np.testing.assert_allclose(
        recon, jnp.concatenate([head("Linear_0"), head("Linear_1")], -1), rtol=1e-5, atol=1e-6
    )
    heads = {k: decoder[k] for k in ("Linear_0", "Linear_1")}
    # A gradient far above 0.3 |param| on one key's head, one far below on the other's.
    grads = jax.tree_util.tree_map(lambda p: 1e-3 * jnp.ones_like(p), heads)
    grads["Linear_0"] = jax.tree_util.tree_map(lambda g: 1e6 * g, grads["Linear_0"])
    clipped, _ = clip_by_agc(0.3, 1e-3).update(grads, None, heads)
    assert float(jnp.linalg.norm(clipped["Linear_0"]["kernel"])) < float(
        jnp.linalg.norm(grads["Linear_0"]["kernel"])
    )
    np.testing.assert_array_equal(clipped["Linear_1"]["kernel"], grads["Linear_1"]["kernel"])


@pytest.mark.parametrize("kernel", [1, 3, 5, 7])
@pytest.mark.parametrize("height,width", [(4, 4), (3, 5)])
def test_upsample_conv_equals_a_convolution_of_the_nearest_upsampled_input_and_its_gradients(
    kernel, height, width
):
    """The decoder convolves the 2x upsampled grid on the small grid, four phases at once
    (`upsample_conv`)."""
    from dreamerbench.agent.networks import upsample_conv

    x = jax.random.normal(jax.random.PRNGKey(0), (2, height, width, 3))
    w = jax.random.normal(jax.random.PRNGKey(1), (kernel, kernel, 3, 4))

    def upsampled(x, w):
        big = x.repeat(2, axis=-3).repeat(2, axis=-2)
        return jax.lax.conv_general_dilated(
            big, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    np.testing.assert_allclose(upsample_conv(x, w), upsampled(x, w), rtol=1e-5, atol=1e-5)
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))
    ours, direct = (
        jax.grad(loss(upsample_conv), (0, 1))(x, w),
        jax.grad(loss(upsampled), (0, 1))(x, w),
    )
    for a, b in zip(ours, direct):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
