"""DreamerV3: the training state, the pure train step and the policy step.

`Dreamer` only holds static structure (module definitions, spaces, config);
every method is a pure function of its array arguments, meant to be jitted by
the caller:

    state = agent.init(key)
    state, out = jax.jit(agent.train_step)(state, batch, key)
    carry, action, latent = jax.jit(agent.policy_step)(state.params, carry, obs, key)

Batch layout (from `dreamerbench.agent.replay`), all [B, T + 1, ...]: observation keys,
`action`, `reward`, `is_first`, `is_last`, `is_terminal`, and the stored
posterior latents `deter` [.., D] and `stoch` [.., S] (class indices). Step 0
is context: its stored latent starts the RSSM, and the loss covers steps 1..T.
The action at index t is the one taken after observing step t.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dreamerbench.agent import behavior, rssm
from dreamerbench.agent import distributions as dist
from dreamerbench.agent.config import Config, model_dims
from dreamerbench.agent.optimizer import make_optimizer
from dreamerbench.suites.base import Space

f32 = jnp.float32
sg = jax.lax.stop_gradient


@flax.struct.dataclass
class TrainState:
    """Everything an update changes; a pytree, so it can be jitted, vmapped and checkpointed."""

    params: dict  # {'world_model', 'actor', 'critic'}, each a flax variables dict
    slow_critic: dict
    opt_state: Any
    return_norm: behavior.ReturnNorm
    updates: jnp.ndarray  # number of updates applied


class PolicyCarry(NamedTuple):
    latent: rssm.Latent  # [N, ...]
    prev_action: jnp.ndarray  # [N, A] encoded (one-hot for discrete)


class TrainOutput(NamedTuple):
    metrics: dict[str, jnp.ndarray]
    deter: jnp.ndarray  # [B, T, D] fresh posterior latents for replay
    stoch: jnp.ndarray  # [B, T, S] class indices


def compute_dtype(name: str):
    if name == "auto":
        return jnp.bfloat16 if jax.default_backend() == "gpu" else f32
    return {"float32": f32, "bfloat16": jnp.bfloat16}[name]


class Dreamer:
    def __init__(self, config: Config, obs_space: Mapping[str, Space], act_space: Space):
        cfg = config.agent
        dims = model_dims(cfg)
        self.config = config
        self.cfg = cfg
        self.obs_space = dict(obs_space)
        self.act_space = act_space
        self.discrete = act_space.discrete
        self.action_size = act_space.num_actions if self.discrete else int(np.prod(act_space.shape))
        self.image_keys = tuple(sorted(k for k, s in obs_space.items() if s.is_image))
        self.vector_keys = tuple(sorted(k for k, s in obs_space.items() if not s.is_image))
        image_shape = None
        if self.image_keys:
            first = obs_space[self.image_keys[0]].shape
            image_shape = (*first[:2], sum(obs_space[k].shape[-1] for k in self.image_keys))
        self.vector_sizes = tuple(int(np.prod(obs_space[k].shape)) for k in self.vector_keys)
        dtype = compute_dtype(cfg.compute_dtype)
        self.dtype = dtype
        self.world_model = rssm.WorldModel(
            action_size=self.action_size,
            image_keys=self.image_keys,
            vector_keys=self.vector_keys,
            image_shape=image_shape,
            vector_sizes=self.vector_sizes,
            deter=dims.deter,
            hidden=dims.hidden,
            stoch=cfg.stoch,
            classes=dims.classes,
            units=dims.units,
            depth=dims.depth,
            blocks=cfg.blocks,
            mults=cfg.cnn_mults,
            kernel=cfg.cnn_kernel,
            mlp_layers=cfg.mlp_layers,
            head_layers=cfg.head_layers,
            decoder_blocks=cfg.decoder_blocks,
            bins=cfg.bins,
            unimix=cfg.unimix,
            eps=cfg.norm_eps,
            dtype=dtype,
        )
        self.actor = behavior.Actor(
            self.action_size,
            self.discrete,
            cfg.mlp_layers,
            dims.units,
            cfg.policy_outscale,
            cfg.policy_unimix,
            cfg.min_std,
            cfg.max_std,
            cfg.norm_eps,
            dtype,
        )
        self.critic = behavior.Critic(cfg.mlp_layers, dims.units, cfg.bins, cfg.norm_eps, dtype)
        self.optimizer = make_optimizer(cfg.opt)
        self.bins = dist.symexp_bins(cfg.bins)
        self.latent_shape = (dims.deter, cfg.stoch, dims.classes)

    # ----------------------------------------------------------------- init

    def init(self, key) -> TrainState:
        wm_key, actor_key, critic_key = jax.random.split(key, 3)
        obs = {k: jnp.zeros((1, *s.shape), s.dtype) for k, s in self.obs_space.items()}
        action = jnp.zeros((1, self.action_size), self.dtype)
        feat = jnp.zeros((1, self.feature_size), self.dtype)
        params = {
            "world_model": self.world_model.init(
                wm_key, obs, action, method=rssm.WorldModel.init_all
            ),
            "actor": self.actor.init(actor_key, feat),
            "critic": self.critic.init(critic_key, feat),
        }
        return TrainState(
            params=params,
            slow_critic=jax.tree_util.tree_map(jnp.copy, params["critic"]),
            opt_state=self.optimizer.init(params),
            return_norm=behavior.ReturnNorm.initial(),
            updates=jnp.zeros((), jnp.int32),
        )

    @property
    def feature_size(self) -> int:
        deter, stoch, classes = self.latent_shape
        return deter + stoch * classes

    def initial_carry(self, num: int) -> PolicyCarry:
        deter, stoch, classes = self.latent_shape
        return PolicyCarry(
            rssm.Latent(
                jnp.zeros((num, deter), self.dtype), jnp.zeros((num, stoch, classes), self.dtype)
            ),
            jnp.zeros((num, self.action_size), self.dtype),
        )

    def encode_action(self, action):
        if self.discrete:
            return jax.nn.one_hot(action, self.action_size, dtype=self.dtype)
        return action.reshape(*action.shape[: action.ndim - len(self.act_space.shape)], -1).astype(
            self.dtype
        )

    def stored_latent(self, deter, stoch_index) -> rssm.Latent:
        classes = self.latent_shape[2]
        return rssm.Latent(
            deter.astype(self.dtype), jax.nn.one_hot(stoch_index, classes, dtype=self.dtype)
        )

    # --------------------------------------------------------------- acting

    def policy_step(self, params, carry: PolicyCarry, obs, key, explore: bool = True):
        """One environment step for N envs: observe obs [N, ...], then act.

        Returns the new carry, the action [N, ...] and the posterior latent
        (deter [N, D], stoch indices [N, S]) to store with this step in replay.
        """
        obs_key, act_key = jax.random.split(key)
        wm_params = params["world_model"]
        tokens = self.world_model.apply(wm_params, obs, method=rssm.WorldModel.encode)
        token_proj = self.world_model.apply(
            wm_params, tokens, method=rssm.WorldModel.project_tokens
        )
        latent, _ = rssm.observe_step(
            self.world_model,
            wm_params,
            carry.latent,
            carry.prev_action,
            token_proj,
            obs["is_first"],
            obs_key,
            self.cfg.unimix,
        )
        policy = self.actor.distribution(self.actor.apply(params["actor"], rssm.features(latent)))
        action = policy.sample(act_key) if explore else policy.mode()
        stoch_index = jnp.argmax(latent.stoch, -1).astype(jnp.uint8)
        return (
            PolicyCarry(latent, self.encode_action(action)),
            action,
            (f32(latent.deter), stoch_index),
        )

    def openloop(self, params, batch, key):
        """Open-loop prediction of replayed windows: observe the first half, then predict the rest.

        `batch`: a replay window, arrays [B, T + 1, ...] (step 0 is context: its stored
        latent starts the RSSM, as in training). Steps 1..C (C = T // 2) are observed
        (posterior reconstructions); steps C+1..T are rolled forward by the prior with
        the replayed actions and decoded (after danijar/dreamerv3 ``agent.py`` ``report``).
        Returns {"image": (true, pred)} images [B, T, H, W, channels] uint8 of the concatenated
        image keys, and/or {"vector": (true, pred)} [B, T, sum of vector sizes] float32 of the
        concatenated vector keys (predictions mapped back from symlog space).
        """
        wm, wm_params = self.world_model, params["world_model"]
        obs_key, imag_key = jax.random.split(key)
        T = batch["is_first"].shape[1] - 1
        context = T // 2
        obs = {k: batch[k][:, 1 : context + 1] for k in self.obs_space}
        actions = self.encode_action(batch["action"][:, :-1])  # action t-1 leads to step t
        start = self.stored_latent(batch["deter"][:, 0], batch["stoch"][:, 0])
        tokens = wm.apply(wm_params, obs, method=rssm.WorldModel.encode)
        post, _ = rssm.observe(
            wm,
            wm_params,
            start,
            actions[:, :context],
            tokens,
            batch["is_first"][:, 1 : context + 1],
            obs_key,
            self.cfg.unimix,
        )

        def step(latent, inputs):
            action, step_key = inputs
            deter = wm.apply(
                wm_params, latent.deter, latent.stoch, action, method=rssm.WorldModel.core
            )
            logp = rssm.latent_dist(
                wm.apply(wm_params, deter, method=rssm.WorldModel.prior_logits), self.cfg.unimix
            )
            latent = rssm.Latent(deter, dist.sample_onehot(step_key, logp).astype(deter.dtype))
            return latent, latent

        last = jax.tree_util.tree_map(lambda x: x[:, -1], post)
        _, imagined = jax.lax.scan(
            step,
            last,
            (jnp.swapaxes(actions[:, context:], 0, 1), jax.random.split(imag_key, T - context)),
        )
        imagined = jax.tree_util.tree_map(lambda x: jnp.swapaxes(x, 0, 1), imagined)
        latents = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b], 1), post, imagined)
        recon = wm.apply(wm_params, latents, method=rssm.WorldModel.decode)
        out = {}
        if self.image_keys:
            true = jnp.concatenate([batch[k][:, 1:] for k in self.image_keys], -1)
            out["image"] = (true, jnp.clip(f32(recon["image"]) * 255, 0, 255).astype(jnp.uint8))
        if self.vector_keys:
            B = batch["is_first"].shape[0]
            true = jnp.concatenate(
                [f32(batch[k][:, 1:]).reshape(B, T, -1) for k in self.vector_keys], -1
            )
            out["vector"] = (true, dist.symexp(f32(recon["vector"])))
        return out

    # ------------------------------------------------------------- learning

    def train_step(self, state: TrainState, batch, key):
        """One gradient update on a replayed batch. Pure: (state, batch, key) -> (state, TrainOutput)."""
        grad_fn = jax.value_and_grad(self._loss, has_aux=True)
        (_, (metrics, return_norm, latents)), grads = grad_fn(state.params, state, batch, key)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        rate = self.cfg.slow_critic_rate
        slow = jax.tree_util.tree_map(
            lambda s, p: (1 - rate) * s + rate * p, state.slow_critic, params["critic"]
        )
        metrics["opt/grad_norm"] = optax.tree.norm(grads)
        metrics["opt/update_norm"] = optax.tree.norm(updates)
        new_state = TrainState(params, slow, opt_state, return_norm, state.updates + 1)
        deter, stoch = latents
        return new_state, TrainOutput(metrics, f32(deter), jnp.argmax(stoch, -1).astype(jnp.uint8))

    def _loss(self, params, state: TrainState, batch, key):
        cfg = self.cfg
        wm, wm_params = self.world_model, params["world_model"]
        obs_key, imag_key = jax.random.split(key)
        data = {k: v[:, 1:] for k, v in batch.items() if k not in ("deter", "stoch", "action")}
        prev_action = self.encode_action(batch["action"][:, :-1])
        start = self.stored_latent(batch["deter"][:, 0], batch["stoch"][:, 0])
        B, T = data["is_first"].shape

        # World model: posterior rollout over the replayed sequence.
        obs = {k: data[k] for k in self.obs_space}
        tokens = wm.apply(wm_params, obs, method=rssm.WorldModel.encode)
        post, post_logp = rssm.observe(
            wm, wm_params, start, prev_action, tokens, data["is_first"], obs_key, cfg.unimix
        )
        prior_logp = rssm.latent_dist(
            wm.apply(wm_params, post.deter, method=rssm.WorldModel.prior_logits), cfg.unimix
        )
        losses = {
            "dyn": jnp.maximum(
                dist.categorical_kl(sg(post_logp), prior_logp).sum(-1), cfg.free_nats
            ),
            "rep": jnp.maximum(
                dist.categorical_kl(post_logp, sg(prior_logp)).sum(-1), cfg.free_nats
            ),
        }
        recon = wm.apply(wm_params, post, method=rssm.WorldModel.decode)
        rec = jnp.zeros((B, T), f32)
        if self.image_keys:
            target = jnp.concatenate([data[k] for k in self.image_keys], -1).astype(f32) / 255.0
            rec += jnp.square(recon["image"] - target).sum((-3, -2, -1))
        if self.vector_keys:
            target = jnp.concatenate([f32(data[k]).reshape(B, T, -1) for k in self.vector_keys], -1)
            rec += jnp.square(recon["vector"] - dist.symlog(target)).sum(-1)
        losses["rec"] = rec
        feat = rssm.features(post)
        reward_logits = wm.apply(wm_params, feat, method=rssm.WorldModel.reward_logits)
        losses["rew"] = dist.TwoHot(reward_logits, self.bins).loss(data["reward"])
        cont_target = (1.0 - f32(data["is_terminal"])) * (1.0 - 1.0 / cfg.horizon)
        cont_logit = wm.apply(wm_params, feat, method=rssm.WorldModel.cont_logit)
        losses["con"] = -dist.binary_logp(cont_logit, cont_target)

        # Imagination from every posterior state. Gradients reach only the actor
        # (through log-probabilities) and the critic (through its loss), so the
        # world model runs on stopped parameters and the actions are stopped:
        # the backward pass goes through the rollout for the actor alone, whose
        # outputs there are the ones its loss reads (no second forward pass).
        frozen = sg(params)
        starts = jax.tree_util.tree_map(lambda x: sg(x).reshape(B * T, *x.shape[2:]), post)

        def policy_fn(latent, act_key):
            out = self.actor.apply(params["actor"], rssm.features(latent))
            action = self.actor.distribution(sg(out)).sample(act_key)
            return action, self.encode_action(action), out

        imag_feat, imag_actions, policy_out = rssm.imagine(
            wm, frozen["world_model"], policy_fn, starts, cfg.imag_length, imag_key, cfg.unimix
        )
        imag_reward = dist.TwoHot(
            wm.apply(frozen["world_model"], imag_feat, method=rssm.WorldModel.reward_logits),
            self.bins,
        ).mean()
        imag_cont = jax.nn.sigmoid(
            wm.apply(frozen["world_model"], imag_feat, method=rssm.WorldModel.cont_logit)
        )
        actor_dist = self.actor.distribution(policy_out)
        value_logits = self.critic.apply(params["critic"], imag_feat)
        slow_value = dist.TwoHot(self.critic.apply(state.slow_critic, imag_feat), self.bins).mean()
        imag_losses, return_norm, imag_returns, metrics = behavior.imagination_loss(
            actor_dist,
            imag_actions,
            imag_reward,
            imag_cont,
            value_logits,
            slow_value,
            self.bins,
            state.return_norm,
            cfg,
        )
        losses.update({k: v.mean(1).reshape(B, T) for k, v in imag_losses.items()})

        # Critic on the replayed trajectory, bootstrapped from imagined returns.
        # Its gradient also shapes the representation (as in the reference).
        replay_value_logits = self.critic.apply(params["critic"], feat)
        replay_slow_value = dist.TwoHot(
            self.critic.apply(state.slow_critic, feat), self.bins
        ).mean()
        losses["repval"] = behavior.replay_value_loss(
            data["is_last"],
            data["is_terminal"],
            data["reward"],
            imag_returns[:, 0].reshape(B, T),
            replay_value_logits,
            replay_slow_value,
            self.bins,
            cfg,
        )

        scales = cfg.loss_scales
        loss = sum(getattr(scales, k) * v.mean() for k, v in losses.items())
        metrics.update({f"loss/{k}": v.mean() for k, v in losses.items()})
        metrics["loss/total"] = loss
        metrics["wm/prior_entropy"] = dist.categorical_entropy(prior_logp).sum(-1).mean()
        metrics["wm/post_entropy"] = dist.categorical_entropy(post_logp).sum(-1).mean()
        return loss, (metrics, return_norm, (post.deter, post.stoch))


def over_runs(fn, runs: int):
    """`fn` applied to `runs` runs stacked on a leading axis of every argument and result.

    Several runs (seeds of one task) share one compiled step through `vmap`. A
    single run only drops and restores the axis, so it compiles to the same
    program as `fn` itself.
    """
    if runs > 1:
        return jax.vmap(fn)

    def single(*args):
        unstacked = jax.tree_util.tree_map(lambda x: x[0], args)
        return jax.tree_util.tree_map(lambda x: x[None], fn(*unstacked))

    return single
