"""The world model: encoder, recurrent state-space model (RSSM), decoder and reward/continue heads.

Latent state: `deter` [..., D] (block GRU) and `stoch` [..., S, C] one-hot
samples of S categoricals with C classes each. Features handed to heads and
the actor-critic are concat(deter, flat(stoch)).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dreamerbench.agent import distributions as dist
from dreamerbench.agent.networks import (
    MLP,
    BlockLinear,
    Decoder,
    Dense,
    Encoder,
    Linear,
    RMSNorm,
    SharedBlockLinear,
    TwoInputLinear,
    token_size,
)

f32 = jnp.float32
sg = jax.lax.stop_gradient


class Latent(NamedTuple):
    deter: jnp.ndarray  # [..., D]
    stoch: jnp.ndarray  # [..., S, C] one-hot


def features(latent: Latent) -> jnp.ndarray:
    stoch = latent.stoch.reshape(*latent.stoch.shape[:-2], -1)
    return jnp.concatenate([latent.deter, stoch.astype(latent.deter.dtype)], -1)


class WorldModel(nn.Module):
    """All world-model parameters; each method is one piece, composed by `observe`/`imagine`."""

    action_size: int
    image_keys: Sequence[str]
    vector_keys: Sequence[str]
    image_shape: tuple[int, ...] | None
    vector_sizes: tuple[int, ...]
    deter: int
    hidden: int
    stoch: int
    classes: int
    units: int
    depth: int
    blocks: int
    mults: Sequence[int]
    kernel: int
    mlp_layers: int
    head_layers: int
    decoder_blocks: int
    bins: int
    unimix: float
    eps: float
    dtype: jnp.dtype = f32

    def setup(self):
        cnn = dict(depth=self.depth, mults=tuple(self.mults), kernel=self.kernel)
        self.encoder = Encoder(
            tuple(self.image_keys),
            tuple(self.vector_keys),
            units=self.units,
            layers=self.mlp_layers,
            eps=self.eps,
            dtype=self.dtype,
            **cnn,
        )
        self.decoder = Decoder(
            self.image_shape,
            tuple(self.vector_sizes),
            units=self.units,
            layers=self.mlp_layers,
            blocks=self.decoder_blocks,
            eps=self.eps,
            dtype=self.dtype,
            **cnn,
        )
        dense = lambda units: Dense(units, self.eps, self.dtype)
        self.dyn_in_deter = dense(self.hidden)
        self.dyn_in_stoch = dense(self.hidden)
        self.dyn_in_action = dense(self.hidden)
        self.dyn_hidden = SharedBlockLinear(self.deter, self.blocks, self.dtype)
        self.dyn_hidden_norm = RMSNorm(self.eps, self.dtype)
        self.dyn_gates = BlockLinear(3 * self.deter, self.blocks, self.dtype)
        self.prior_mlp = MLP(2, self.hidden, self.eps, self.dtype)
        self.prior_out = Linear(self.stoch * self.classes, self.dtype)
        tokens = token_size(self.image_shape, self.vector_keys, self.depth, self.mults, self.units)
        self.post_in = TwoInputLinear(self.hidden, self.deter, tokens, self.dtype)
        self.post_norm = RMSNorm(self.eps, self.dtype)
        self.post_out = Linear(self.stoch * self.classes, self.dtype)
        self.reward_mlp = MLP(self.head_layers, self.units, self.eps, self.dtype)
        self.reward_out = Linear(self.bins, self.dtype, outscale=0.0)
        self.cont_mlp = MLP(self.head_layers, self.units, self.eps, self.dtype)
        self.cont_out = Linear(1, self.dtype)

    def encode(self, obs):
        return self.encoder(obs)

    def core(self, deter, stoch, action):
        """One block-GRU step: deter_{t-1}, stoch_{t-1}, action_{t-1} -> deter_t."""
        g = self.blocks
        stoch = stoch.reshape(*stoch.shape[:-2], -1).astype(self.dtype)
        # Scale large continuous actions down without changing their direction.
        action = action / sg(jnp.maximum(1.0, jnp.abs(action)))
        shared = jnp.concatenate(
            [self.dyn_in_deter(deter), self.dyn_in_stoch(stoch), self.dyn_in_action(action)], -1
        )
        # Every block sees the shared inputs plus its own slice of deter.
        grouped = deter.reshape(*deter.shape[:-1], g, -1)
        x = jax.nn.silu(self.dyn_hidden_norm(self.dyn_hidden(grouped, shared)))
        # Gate per block in the blocks-first layout of the matmul: [g, N, deter / g].
        reset, cand, update = map(f32, self.dyn_gates(x, blocks_first_parts=3))
        reset = jax.nn.sigmoid(reset)
        cand = jnp.tanh(reset * cand)
        update = jax.nn.sigmoid(update - 1.0)
        lead = deter.shape[:-1]
        old = f32(deter).reshape(-1, g, self.deter // g).transpose(1, 0, 2)
        new = update * cand + (1 - update) * old
        return new.transpose(1, 0, 2).reshape(*lead, self.deter).astype(self.dtype)

    def prior_logits(self, deter):
        x = self.prior_out(self.prior_mlp(deter))
        return f32(x).reshape(*x.shape[:-1], self.stoch, self.classes)

    def project_tokens(self, tokens):
        """The tokens' share of the posterior's first layer; computed for all steps before the
        scan."""
        return self.post_in.project_b(tokens)

    def post_logits(self, deter, token_proj):
        x = jax.nn.silu(self.post_norm(self.post_in(deter, token_proj)))
        x = self.post_out(x)
        return f32(x).reshape(*x.shape[:-1], self.stoch, self.classes)

    def decode(self, latent: Latent):
        stoch = latent.stoch.reshape(*latent.stoch.shape[:-2], -1).astype(self.dtype)
        return self.decoder(latent.deter, stoch)

    def reward_logits(self, feat):
        return f32(self.reward_out(self.reward_mlp(feat)))

    def cont_logit(self, feat):
        return f32(self.cont_out(self.cont_mlp(feat)))[..., 0]

    def init_all(self, obs, action):
        """Touch every parameter once (used only by `init`). Shapes: obs [B, ...], action [B, A]."""
        batch = action.shape[0]
        deter = jnp.zeros((batch, self.deter), self.dtype)
        stoch = jnp.zeros((batch, self.stoch, self.classes), self.dtype)
        tokens = self.encode(obs)
        deter = self.core(deter, stoch, action)
        latent = Latent(deter, stoch)
        feat = features(latent)
        return (
            self.post_logits(deter, self.project_tokens(tokens)),
            self.prior_logits(deter),
            self.decode(latent),
            self.reward_logits(feat),
            self.cont_logit(feat),
        )


def latent_dist(logits, unimix):
    """Log-probabilities of the 1%-uniform-mixed latent categoricals."""
    return dist.mix_uniform(logits, unimix)


def observe_step(
    model: WorldModel, params, latent: Latent, action, token_proj, is_first, key, unimix
):
    """Posterior step. Episode starts zero the previous state and action.

    Shapes: latent [N, ...], action [N, A], token_proj [N, hidden] (from
    `WorldModel.project_tokens`), is_first [N].
    Returns the new posterior latent and its log-probabilities [N, S, C].
    """
    keep = (~is_first).astype(latent.deter.dtype)[:, None]
    deter = latent.deter * keep
    stoch = latent.stoch * keep[..., None].astype(latent.stoch.dtype)
    action = action * keep.astype(action.dtype)
    deter = model.apply(params, deter, stoch, action, method=WorldModel.core)
    logp = latent_dist(
        model.apply(params, deter, token_proj, method=WorldModel.post_logits), unimix
    )
    stoch = dist.sample_onehot(key, logp).astype(deter.dtype)
    return Latent(deter, stoch), logp


def observe(model, params, start: Latent, actions, tokens, is_first, key, unimix):
    """Scan `observe_step` over time. Inputs [B, T, ...]; returns latents and posterior
    log-probs [B, T, ...]."""
    keys = jax.random.split(key, tokens.shape[1])
    token_proj = model.apply(params, tokens, method=WorldModel.project_tokens)

    def step(latent, inputs):
        action, token, first, step_key = inputs
        latent, logp = observe_step(model, params, latent, action, token, first, step_key, unimix)
        return latent, (latent, logp)

    time_major = lambda x: jnp.swapaxes(x, 0, 1)
    _, (latents, logp) = jax.lax.scan(
        step, start, (time_major(actions), time_major(token_proj), time_major(is_first), keys)
    )
    return jax.tree_util.tree_map(time_major, latents), time_major(logp)


def imagine(model, params, policy_fn, start: Latent, horizon: int, key, unimix):
    """Roll the prior forward `horizon` steps from `start` [N, ...] with actions from `policy_fn`.

    `policy_fn(latent, key)` returns (action, encoded action, policy output).
    Returns the features of the latents [N, horizon + 1, F] (the start
    included; features rather than latents, so the rollout's result is copied
    once) and, for the first `horizon` of them, the actions taken and the
    policy outputs they were sampled from, [N, horizon, ...] (no action is
    taken in the last one).
    """

    def step(latent, step_key):
        act_key, stoch_key = jax.random.split(step_key)
        action, action_input, policy_out = policy_fn(latent, act_key)
        deter = model.apply(
            params, latent.deter, latent.stoch, action_input, method=WorldModel.core
        )
        logp = latent_dist(model.apply(params, deter, method=WorldModel.prior_logits), unimix)
        stoch = dist.sample_onehot(stoch_key, logp).astype(deter.dtype)
        return Latent(deter, stoch), (features(latent), action, policy_out)

    last, (feats, actions, policy_outs) = jax.lax.scan(step, start, jax.random.split(key, horizon))
    batch_major = lambda x: jnp.swapaxes(x, 0, 1)
    feats = jnp.concatenate([batch_major(feats), features(last)[:, None]], 1)
    return feats, batch_major(actions), jax.tree_util.tree_map(batch_major, policy_outs)
