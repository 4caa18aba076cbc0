"""LaProp with adaptive gradient clipping, as an optax chain.

AGC (Brock et al. 2021) -> divide by the RMS of past gradients -> momentum
(the order of LaProp, Ziyin et al. 2020) -> learning rate with linear warm-up.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from dreamerbench.agent.config import OptimizerConfig

f32 = jnp.float32


def clip_by_agc(clip: float, pmin: float) -> optax.GradientTransformation:
    """Scale each tensor's update so that ||u|| <= clip * max(pmin, ||p||)."""

    def update(updates, state, params):
        def clip_one(u, p):
            upper = clip * jnp.maximum(pmin, jnp.linalg.norm(p.ravel()))
            return u / jnp.maximum(1.0, jnp.linalg.norm(u.ravel()) / upper)

        return jax.tree_util.tree_map(clip_one, updates, params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


class MomentState(NamedTuple):
    count: jnp.ndarray
    moment: optax.Params


def _debiased_ema(decay: float, transform) -> optax.GradientTransformation:
    """EMA m = decay m + (1 - decay) f(u), returned as (u, m / (1 - decay^t))."""

    def init(params):
        return MomentState(
            jnp.zeros((), jnp.int32),
            jax.tree_util.tree_map(lambda p: jnp.zeros_like(p, f32), params),
        )

    def update(updates, state, params=None):
        count = optax.safe_int32_increment(state.count)
        moment = jax.tree_util.tree_map(
            lambda m, u: decay * m + (1 - decay) * transform(u), state.moment, updates
        )
        correction = 1 - decay ** count.astype(f32)
        debiased = jax.tree_util.tree_map(lambda m: m / correction, moment)
        return debiased, MomentState(count, moment)

    return init, update


def scale_by_rms(decay: float, eps: float) -> optax.GradientTransformation:
    """u / (sqrt(debiased EMA of u^2) + eps)."""
    init, ema = _debiased_ema(decay, jnp.square)

    def update(updates, state, params=None):
        nu, state = ema(updates, state)
        return jax.tree_util.tree_map(lambda u, v: u / (jnp.sqrt(v) + eps), updates, nu), state

    return optax.GradientTransformation(init, update)


def scale_by_momentum(decay: float) -> optax.GradientTransformation:
    """Debiased EMA of the (already RMS-scaled) updates."""
    init, ema = _debiased_ema(decay, lambda u: u)
    return optax.GradientTransformation(init, ema)


def make_optimizer(cfg: OptimizerConfig) -> optax.GradientTransformation:
    schedule = (
        optax.join_schedules(
            [optax.linear_schedule(0.0, cfg.lr, cfg.warmup), optax.constant_schedule(cfg.lr)],
            [cfg.warmup],
        )
        if cfg.warmup
        else optax.constant_schedule(cfg.lr)
    )
    return optax.chain(
        clip_by_agc(cfg.agc, cfg.agc_pmin),
        scale_by_rms(cfg.beta2, cfg.eps),
        scale_by_momentum(cfg.beta1),
        optax.scale_by_learning_rate(schedule),
    )
