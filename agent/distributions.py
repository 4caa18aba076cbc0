"""Output distributions and the small numeric transforms DreamerV3 relies on.

Each distribution is a tiny immutable pytree-free object over arrays, computed
in float32 whatever the network's compute dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

f32 = jnp.float32
sg = jax.lax.stop_gradient


def symlog(x):
    """sign(x) * ln(1 + |x|): compresses large magnitudes (paper eq. 1)."""
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def symexp(x):
    """sign(x) * (exp(|x|) - 1): the inverse of symlog."""
    return jnp.sign(x) * jnp.expm1(jnp.abs(x))


def symexp_bins(num_bins: int) -> jnp.ndarray:
    """symexp(linspace(-20, 20, num_bins)), built from one half and mirrored.

    Mirroring makes the bins exactly symmetric, so a uniform distribution
    predicts exactly 0 (a plain linspace leaves rounding noise).
    """
    if num_bins % 2 == 1:
        half = symexp(jnp.linspace(-20.0, 0.0, (num_bins - 1) // 2 + 1, dtype=f32))
        return jnp.concatenate([half, -half[:-1][::-1]])
    half = symexp(jnp.linspace(-20.0, 0.0, num_bins // 2, dtype=f32))
    return jnp.concatenate([half, -half[::-1]])


def twohot_weights(x, bins):
    """The two bins around each scalar `x[...]` and their weights: (below, above, w_below, w_above).

    The weights are linear in the distance to the other bin, sum to 1 and
    decode back to x; values outside the bin range go to the edge bin.
    """
    x = f32(x)
    n = bins.shape[0]
    count = jnp.searchsorted(bins, x, side="right", method="scan")  # bins <= x
    below = jnp.clip(count - 1, 0, n - 1)
    above = jnp.clip(count, 0, n - 1)
    equal = below == above
    dist_below = jnp.where(equal, 1.0, jnp.abs(bins[below] - x))
    dist_above = jnp.where(equal, 1.0, jnp.abs(bins[above] - x))
    total = dist_below + dist_above
    return below, above, dist_above / total, dist_below / total


def twohot(x, bins):
    """Encode scalars `x[...]` as weights `[..., len(bins)]` on the two nearest bins."""
    below, above, w_below, w_above = twohot_weights(x, bins)
    n = bins.shape[0]
    return (
        jax.nn.one_hot(below, n) * w_below[..., None]
        + jax.nn.one_hot(above, n) * w_above[..., None]
    )


class TwoHot:
    """Categorical over fixed bins; predicts the expected bin value."""

    def __init__(self, logits, bins):
        self.logits = f32(logits)
        self.bins = bins

    def mean(self):
        """Expected bin value, shape `logits.shape[:-1]`; `bins` must be symmetric about 0.

        Each positive bin is weighed by the difference of its probability and
        that of its mirror (the negative bin of equal magnitude, symexp_bins),
        so equal probabilities give exactly 0 in every term and so in the sum,
        whatever order XLA reduces in. A sum of mirrored products (the
        reference's, outs.py TwoHot.pred) is reassociated by XLA when compiled
        on its own and gave 0.168 for uniform logits.
        """
        probs = jax.nn.softmax(self.logits, -1)
        n = self.bins.shape[0]
        positive = self.bins[(n + 1) // 2 :]
        mirrored = probs[..., : n // 2][..., ::-1]
        # An odd count has a middle bin of value 0, which adds nothing.
        return ((probs[..., (n + 1) // 2 :] - mirrored) * positive).sum(-1)

    def loss(self, target):
        """Cross-entropy against the two-hot encoding of `target` (read at its two bins only)."""
        below, above, w_below, w_above = twohot_weights(sg(f32(target)), self.bins)
        logp = jax.nn.log_softmax(self.logits, -1)
        at = lambda index: jnp.take_along_axis(logp, index[..., None], -1)[..., 0]
        return -(w_below * at(below) + w_above * at(above))


def mix_uniform(logits, unimix: float):
    """Log-probabilities of (1 - unimix) * softmax(logits) + unimix * uniform."""
    logits = f32(logits)
    if not unimix:
        return jax.nn.log_softmax(logits, -1)
    probs = jax.nn.softmax(logits, -1)
    probs = (1 - unimix) * probs + unimix / logits.shape[-1]
    return jnp.log(probs)


def categorical_kl(logp, logq):
    """KL[p || q] over the last axis, from log-probabilities."""
    return (jnp.exp(logp) * (logp - logq)).sum(-1)


def categorical_entropy(logp):
    return -(jnp.exp(logp) * logp).sum(-1)


def sample_onehot(key, logp):
    """One-hot sample with straight-through gradients through the probabilities."""
    index = jax.random.categorical(key, logp, -1)
    onehot = jax.nn.one_hot(index, logp.shape[-1], dtype=f32)
    probs = jnp.exp(logp)
    return sg(onehot) + probs - sg(probs)


def binary_logp(logit, target):
    """Bernoulli log-likelihood of a (soft) target in [0, 1]."""
    logit = f32(logit)
    return target * jax.nn.log_sigmoid(logit) + (1 - target) * jax.nn.log_sigmoid(-logit)


class BoundedNormal:
    """Normal with tanh-squashed mean and std in [min_std, max_std] (not a tanh-transformed
    normal)."""

    def __init__(self, mean_raw, std_raw, min_std: float, max_std: float):
        self.mean = jnp.tanh(f32(mean_raw))
        self.std = (max_std - min_std) * jax.nn.sigmoid(f32(std_raw) + 2.0) + min_std

    def sample(self, key):
        return self.mean + self.std * jax.random.normal(key, self.mean.shape, f32)

    def mode(self):
        return self.mean

    def logp(self, action):
        """Summed over action dimensions."""
        z = (f32(action) - self.mean) / self.std
        return (-0.5 * z**2 - jnp.log(self.std) - 0.5 * jnp.log(2 * jnp.pi)).sum(-1)

    def entropy(self):
        return (0.5 * jnp.log(2 * jnp.pi * jnp.e * self.std**2)).sum(-1)


class Categorical:
    """Discrete policy; `unimix` > 0 mixes that share of the uniform distribution into it."""

    def __init__(self, logits, unimix: float):
        self.logp_all = mix_uniform(logits, unimix)

    def sample(self, key):
        return jax.random.categorical(key, self.logp_all, -1)

    def mode(self):
        return jnp.argmax(self.logp_all, -1)

    def logp(self, action):
        return jnp.take_along_axis(self.logp_all, action[..., None].astype(jnp.int32), -1)[..., 0]

    def entropy(self):
        return categorical_entropy(self.logp_all)
