"""Actor and critic: networks, lambda-returns, return normalisation and their losses."""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dreamerbench.agent import distributions as dist
from dreamerbench.agent.networks import MLP, Linear

f32 = jnp.float32
sg = jax.lax.stop_gradient


class Actor(nn.Module):
    """Features -> policy: categorical (discrete; `unimix` mixes in a uniform share) or bounded
    normal (continuous)."""

    action_size: int
    discrete: bool
    layers: int
    units: int
    outscale: float
    unimix: float
    min_std: float
    max_std: float
    eps: float = 1e-4
    dtype: jnp.dtype = f32

    @nn.compact
    def __call__(self, feat):
        x = MLP(self.layers, self.units, self.eps, self.dtype)(feat)
        if self.discrete:
            return Linear(self.action_size, self.dtype, self.outscale)(x)
        mean = Linear(self.action_size, self.dtype, self.outscale, name="mean")(x)
        std = Linear(self.action_size, self.dtype, self.outscale, name="std")(x)
        return jnp.stack([mean, std], -2)

    def distribution(self, out):
        if self.discrete:
            return dist.Categorical(out, self.unimix)
        return dist.BoundedNormal(out[..., 0, :], out[..., 1, :], self.min_std, self.max_std)


class Critic(nn.Module):
    """Features -> logits of a symexp two-hot distribution over returns (output layer zero-init)."""

    layers: int
    units: int
    bins: int
    eps: float = 1e-4
    dtype: jnp.dtype = f32

    @nn.compact
    def __call__(self, feat):
        x = MLP(self.layers, self.units, self.eps, self.dtype)(feat)
        return f32(Linear(self.bins, self.dtype, outscale=0.0)(x))


def lambda_return(is_last, is_terminal, reward, bootstrap, discount, lam):
    """TD(lambda) targets for steps 0..T-2 of trajectories [N, T].

    R_t = r_{t+1} + gamma c_{t+1} ((1 - lambda l_{t+1}) v_{t+1} + lambda l_{t+1} R_{t+1}),
    R_{T-1} = v_{T-1}, with c = 1 - terminal, l = 1 - last, v = bootstrap. The reward
    at index t is the one received on arriving in state t.
    """
    live = (1.0 - f32(is_terminal))[:, 1:] * discount
    cont = (1.0 - f32(is_last))[:, 1:] * lam
    interm = reward[:, 1:] + (1.0 - cont) * live * bootstrap[:, 1:]

    def step(ret, inputs):
        interm_t, live_t, cont_t = inputs
        ret = interm_t + live_t * cont_t * ret
        return ret, ret

    _, rets = jax.lax.scan(step, bootstrap[:, -1], (interm.T, live.T, cont.T), reverse=True)
    return rets.T


class ReturnNorm(NamedTuple):
    """EMA of the 5th and 95th return percentiles."""

    low: jnp.ndarray
    high: jnp.ndarray

    @classmethod
    def initial(cls) -> ReturnNorm:
        return cls(jnp.zeros((), f32), jnp.zeros((), f32))


def update_return_norm(norm: ReturnNorm, returns, rate, low_pct, high_pct) -> ReturnNorm:
    low, high = jnp.percentile(f32(returns), jnp.array([low_pct, high_pct]))
    return ReturnNorm(
        (1 - rate) * norm.low + rate * sg(low), (1 - rate) * norm.high + rate * sg(high)
    )


def return_scale(norm: ReturnNorm, limit) -> jnp.ndarray:
    """S = max(limit, P95 - P5): returns are divided by S, so small returns are not scaled up."""
    return jnp.maximum(limit, norm.high - norm.low)


def actor_loss(actor_dist, actions, returns, value_mean, weight, scale, actent):
    """Policy-gradient loss [N, H] of the actor on imagined trajectories.

    Hafner et al. 2023 (arXiv 2301.04104), "Actor learning":

        L(theta) = -sum_t sg(w_t) (sg((R_t - v(s_t)) / max(1, S)) ln pi(a_t | s_t)
                                   + eta H[pi(. | s_t)])

    with the lambda-returns `returns` R [N, H], the critic's means `value_mean` v [N, H + 1],
    the return scale `scale` (the paper's max(1, S): :func:`return_scale`), the entropy
    weight `actent` eta and the weights `weight` w [N, H + 1] (cumulative continue
    probabilities). `actions` [N, H, ...] were sampled from `actor_dist` (batch [N, H]).
    Returns (loss, advantages, entropies), each [N, H].
    """
    advantage = sg((returns - value_mean[:, :-1]) / scale)
    logp = actor_dist.logp(sg(actions))
    entropy = actor_dist.entropy()
    loss = -weight[:, :-1] * (logp * advantage + actent * entropy)
    return loss, advantage, entropy


def critic_loss(value_logits, returns, slow_value_mean, weight, bins, slowreg):
    """Critic loss [N, T - 1]: two-hot log-loss of lambda-returns, regularised to the slow critic.

    Hafner et al. 2023 (arXiv 2301.04104), "Critic learning":

        L(psi) = -sum_t w_t (ln p_psi(sg(R_t) | s_t) + slowreg ln p_psi(sg(v_slow(s_t)) | s_t))

    with the critic's logits `value_logits` [N, T, bins] (the last step only bootstraps),
    the lambda-returns `returns` R [N, T - 1], the slow critic's means `slow_value_mean`
    [N, T] and the weights `weight` w [N, T - 1].
    """
    value_dist = dist.TwoHot(value_logits[:, :-1], bins)
    regulariser = value_dist.loss(sg(slow_value_mean[:, :-1]))
    return weight * (value_dist.loss(sg(returns)) + slowreg * regulariser)


def imagination_loss(
    actor_dist, actions, reward, cont, value_logits, slow_value_mean, bins, norm, cfg
):
    """Actor and critic losses on imagined trajectories [N, H + 1]; the policy and actions cover
    the first H steps.

    `cont` already includes the discount (continue targets are
    (1 - terminal)(1 - 1/horizon)), so returns use gamma = 1 here.
    Returns (losses [N, H] per name: ``policy`` (:func:`actor_loss`) and ``value``
    (:func:`critic_loss`), updated return norm, lambda-returns [N, H], metrics).
    """
    value_mean = dist.TwoHot(value_logits, bins).mean()
    weight = sg(jnp.cumprod(cont, 1))
    returns = lambda_return(jnp.zeros_like(cont), 1.0 - cont, reward, sg(value_mean), 1.0, cfg.lam)
    norm = update_return_norm(norm, returns, cfg.retnorm_rate, cfg.retnorm_low, cfg.retnorm_high)
    scale = return_scale(norm, cfg.retnorm_limit)
    policy, advantage, entropy = actor_loss(
        actor_dist, actions, returns, value_mean, weight, scale, cfg.actent
    )
    value = critic_loss(value_logits, returns, slow_value_mean, weight[:, :-1], bins, cfg.slowreg)
    metrics = {
        "imag/return": returns.mean(),
        "imag/advantage_mag": jnp.abs(advantage).mean(),
        "imag/entropy": entropy.mean(),
        "imag/return_scale": scale,
        "imag/value": value_mean.mean(),
        "imag/weight": weight.mean(),
    }
    return {"policy": policy, "value": value}, norm, returns, metrics


def replay_value_loss(
    is_last, is_terminal, reward, bootstrap, value_logits, slow_value_mean, bins, cfg
):
    """Critic loss [B, T - 1] (:func:`critic_loss`) on replayed trajectories [B, T], bootstrapped
    from the imagined returns `bootstrap` [B, T]; steps that end an episode weigh 0."""
    discount = 1.0 - 1.0 / cfg.horizon
    returns = lambda_return(is_last, is_terminal, reward, sg(bootstrap), discount, cfg.lam)
    weight = 1.0 - f32(is_last)[:, :-1]
    return critic_loss(value_logits, returns, slow_value_mean, weight, bins, cfg.slowreg)
