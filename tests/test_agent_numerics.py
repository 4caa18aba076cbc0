"""Hand-checkable numerics of the agent: transforms, two-hot, KL, returns, normaliser, optimizer."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dreamerbench.agent import behavior
from dreamerbench.agent import distributions as dist
from dreamerbench.agent.config import AgentConfig, OptimizerConfig
from dreamerbench.agent.optimizer import clip_by_agc, make_optimizer


def test_symlog_symexp_are_inverses():
    x = jnp.array([-1e6, -100.0, -1.5, -1e-3, 0.0, 1e-3, 2.0, 50.0, 1e6])
    np.testing.assert_allclose(dist.symexp(dist.symlog(x)), x, rtol=1e-5)
    np.testing.assert_allclose(
        dist.symlog(jnp.array([np.e - 1, -(np.e - 1)])), [1.0, -1.0], rtol=1e-6
    )


def test_symexp_bins_are_symmetric_and_span_20_in_symlog_space():
    bins = dist.symexp_bins(255)
    assert bins.shape == (255,)
    np.testing.assert_array_equal(bins, -bins[::-1])
    assert bins[127] == 0.0
    np.testing.assert_allclose(dist.symlog(bins), np.linspace(-20, 20, 255), atol=1e-4)


@pytest.mark.parametrize("value", [0.0, 0.37, -2.5, 13.0, 1234.5, -98765.0])
def test_twohot_weights_sit_on_neighbouring_bins_and_decode(value):
    bins = dist.symexp_bins(255)
    weights = np.asarray(dist.twohot(jnp.array(value), bins))
    assert weights.sum() == pytest.approx(1.0, abs=1e-6)
    nonzero = np.flatnonzero(weights)
    assert len(nonzero) <= 2
    if len(nonzero) == 2:
        assert nonzero[1] - nonzero[0] == 1
        assert bins[nonzero[0]] <= value <= bins[nonzero[1]]
    assert float(weights @ np.asarray(bins)) == pytest.approx(value, rel=1e-5, abs=1e-6)


def test_twohot_mean_of_uniform_logits_is_exactly_zero_and_loss_prefers_target():
    bins = dist.symexp_bins(255)
    assert float(dist.TwoHot(jnp.zeros(255), bins).mean()) == 0.0
    target = jnp.array(5.0)
    logits = jnp.log(dist.twohot(target, bins) + 1e-12)  # all mass on the two bins around 5
    assert float(dist.TwoHot(logits, bins).mean()) == pytest.approx(5.0, rel=1e-3)
    assert dist.TwoHot(logits, bins).loss(target) < dist.TwoHot(jnp.zeros(255), bins).loss(target)


def test_kl_with_free_bits_matches_hand_computation():
    p = jnp.log(jnp.array([[0.5, 0.5], [0.9, 0.1]]))
    q = jnp.log(jnp.array([[0.25, 0.75], [0.5, 0.5]]))
    expected = [
        0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75),
        0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5),
    ]
    kl = dist.categorical_kl(p, q)
    np.testing.assert_allclose(kl, expected, rtol=1e-6)
    # Free bits act on the sum over latents: 0.1438 + 0.3681 < 1 nat -> clipped to 1.
    assert float(jnp.maximum(kl.sum(), 1.0)) == 1.0
    assert float(jnp.maximum(3 * kl.sum(), 1.0)) == pytest.approx(3 * sum(expected), rel=1e-6)


def test_unimix_puts_one_percent_on_uniform():
    logp = dist.mix_uniform(jnp.array([100.0, -100.0, -100.0, -100.0]), 0.01)
    np.testing.assert_allclose(jnp.exp(logp), [0.99 + 0.0025, 0.0025, 0.0025, 0.0025], rtol=1e-5)


def test_straight_through_sample_is_onehot_with_probability_gradients():
    logits = jnp.array([0.3, -0.2, 1.0])
    sample = dist.sample_onehot(jax.random.PRNGKey(0), jax.nn.log_softmax(logits))
    assert sorted(np.asarray(sample).tolist()) == [0.0, 0.0, 1.0]
    grad = jax.grad(
        lambda logit_row: (
            dist.sample_onehot(jax.random.PRNGKey(0), jax.nn.log_softmax(logit_row))
            * jnp.arange(3.0)
        ).sum()
    )(logits)
    probs = jax.nn.softmax(logits)
    expected = probs * (jnp.arange(3.0) - (probs * jnp.arange(3.0)).sum())
    np.testing.assert_allclose(grad, expected, rtol=1e-5)


def python_lambda_return(last, term, reward, boot, disc, lam):
    n, t = reward.shape
    out = np.zeros((n, t - 1))
    for i in range(n):
        ret = boot[i, -1]
        for j in reversed(range(t - 1)):
            live = (1 - term[i, j + 1]) * disc
            cont = (1 - last[i, j + 1]) * lam
            ret = reward[i, j + 1] + live * ((1 - cont) * boot[i, j + 1] + cont * ret)
            out[i, j] = ret
    return out


def test_lambda_return_equals_plain_python_loop():
    rng = np.random.default_rng(0)
    shape = (3, 9)
    last = rng.random(shape) < 0.15
    term = last & (rng.random(shape) < 0.5)
    reward, boot = rng.normal(size=shape), rng.normal(size=shape)
    got = behavior.lambda_return(last, term, jnp.array(reward), jnp.array(boot), 0.997, 0.95)
    np.testing.assert_allclose(
        got, python_lambda_return(last, term, reward, boot, 0.997, 0.95), rtol=1e-5, atol=1e-6
    )


def test_return_normaliser_tracks_percentiles_and_never_scales_up():
    cfg = AgentConfig()
    norm = behavior.ReturnNorm.initial()
    returns = jnp.arange(101.0)  # P5 = 5, P95 = 95
    norm = behavior.update_return_norm(norm, returns, cfg.retnorm_rate, 5.0, 95.0)
    assert float(norm.low) == pytest.approx(0.01 * 5) and float(norm.high) == pytest.approx(
        0.01 * 95
    )
    assert float(behavior.return_scale(norm, 1.0)) == 1.0  # 0.9 < limit 1
    for _ in range(2000):
        norm = behavior.update_return_norm(norm, returns, cfg.retnorm_rate, 5.0, 95.0)
    assert float(behavior.return_scale(norm, 1.0)) == pytest.approx(90.0, rel=1e-4)


def test_agc_clips_update_relative_to_parameter_norm():
    params = {"a": jnp.array([3.0, 4.0]), "tiny": jnp.zeros(2)}  # norms 5 and 0
    grads = {"a": jnp.array([30.0, 40.0]), "tiny": jnp.array([1.0, 0.0])}
    clipped, _ = clip_by_agc(0.3, 1e-3).update(grads, optax.EmptyState(), params)
    assert float(jnp.linalg.norm(clipped["a"])) == pytest.approx(0.3 * 5.0, rel=1e-6)
    assert float(jnp.linalg.norm(clipped["tiny"])) == pytest.approx(0.3 * 1e-3, rel=1e-6)
    small = {"a": jnp.array([0.03, 0.04]), "tiny": jnp.array([1e-5, 0.0])}
    unclipped, _ = clip_by_agc(0.3, 1e-3).update(small, optax.EmptyState(), params)
    np.testing.assert_allclose(unclipped["a"], small["a"])


def test_optimizer_first_step_is_sign_times_warmup_lr():
    cfg = OptimizerConfig(lr=1e-3, warmup=10)
    opt = make_optimizer(cfg)
    params = {"w": jnp.full(3, 100.0)}
    grads = {"w": jnp.array([2.0, -0.5, 1e-3])}
    updates, _ = opt.update(grads, opt.init(params), params)
    # Debiased RMS of one gradient is |g|, so the first update is -lr_t * sign(g); lr_0 = 0 in
    # warm-up.
    np.testing.assert_allclose(updates["w"], 0.0)
    state = opt.init(params)
    for _ in range(5):
        updates, state = opt.update(grads, state, params)
    np.testing.assert_allclose(updates["w"], -1e-3 * 4 / 10 * np.sign(grads["w"]), rtol=1e-4)


def test_twohot_loss_is_cross_entropy_against_the_two_hot_encoding():
    bins = dist.symexp_bins(255)
    logits = jax.random.normal(jax.random.PRNGKey(0), (6, 255))
    targets = jnp.array([-3e5, -7.5, 0.0, 0.2, 41.0, 3e9])  # includes both edges
    expected = -(dist.twohot(targets, bins) * jax.nn.log_softmax(logits, -1)).sum(-1)
    np.testing.assert_allclose(dist.TwoHot(logits, bins).loss(targets), expected, rtol=1e-6)


# Compiles the two-hot mean alone and inside a bigger jitted function, for 255 and 256
# bins and several batch shapes, and prints the largest |mean| of uniform logits.
_UNIFORM_TWOHOT_SCRIPT = """
import jax, jax.numpy as jnp
from dreamerbench.agent import distributions as dist
worst = 0.0
for n in (255, 256):
    bins = dist.symexp_bins(n)
    alone = jax.jit(lambda logits: dist.TwoHot(logits, bins).mean())
    def bigger(x, w):
        logits = jnp.tanh(x @ w) * 0.0  # zero logits, computed inside the graph
        mean = dist.TwoHot(logits, bins).mean()
        return mean, (mean * 2.0 + 1.0).sum()
    bigger = jax.jit(bigger)
    for shape in ((), (16,), (4, 64)):
        worst = max(worst, float(jnp.abs(alone(jnp.zeros((*shape, n)))).max()))
        x = jnp.ones((*shape, 8))
        worst = max(worst, float(jnp.abs(bigger(x, jnp.ones((8, n)))[0]).max()))
print(repr(worst))
"""


@pytest.mark.parametrize("xla_flags", ["", "--xla_backend_optimization_level=0"])
def test_twohot_mean_of_uniform_logits_is_exactly_zero_under_jit(xla_flags):
    # XLA's full optimisation reassociated a sum of mirrored products (0.168 for 255 bins
    # compiled alone); tests/conftest.py lowers the level for speed, so each level runs in a
    # fresh process where XLA reads its flags.
    import os
    import subprocess
    import sys

    env = {**os.environ, "XLA_FLAGS": xla_flags, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", _UNIFORM_TWOHOT_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(result.stdout.strip().splitlines()[-1]) == 0.0


def test_twohot_mean_is_the_expected_bin_value():
    bins = dist.symexp_bins(255)
    logits = jax.random.normal(jax.random.PRNGKey(0), (32, 255)) * 3.0
    expected = (jax.nn.softmax(logits, -1) * bins).sum(-1)
    got = jax.jit(lambda x: dist.TwoHot(x, bins).mean())(logits)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
