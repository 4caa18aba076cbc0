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
    """DreamerV3 for one observation and action space: world model, actor, critic, optimizer.

    Holds no arrays: the parameters live in :class:`TrainState` (see the module doc).
    """

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
        self.vector_sizes = tuple(int(np.prod(obs_space[k].shape)) for k in self.vector_keys)
        self.dtype = compute_dtype(cfg.compute_dtype)
        self.world_model = self._make_world_model()
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
            self.dtype,
        )
        self.critic = behavior.Critic(
            cfg.mlp_layers, dims.units, cfg.bins, cfg.norm_eps, self.dtype
        )
        self.optimizer = make_optimizer(cfg.opt)
        self.bins = dist.symexp_bins(cfg.bins)
        self.latent_shape = (dims.deter, cfg.stoch, dims.classes)

    def _make_world_model(self) -> rssm.WorldModel:
        """The RSSM world model for these spaces and ``agent`` config; image keys are stacked on
        the channel axis, so they must share height and width."""
        cfg, dims = self.cfg, model_dims(self.cfg)
        image_shape = None
        if self.image_keys:
            first = self.obs_space[self.image_keys[0]].shape
            channels = sum(self.obs_space[k].shape[-1] for k in self.image_keys)
            image_shape = (*first[:2], channels)
        return rssm.WorldModel(
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
            dtype=self.dtype,
        )

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
        last = jax.tree_util.tree_map(lambda x: x[:, -1], post)
        imagined = self._predict(wm_params, last, actions[:, context:], imag_key)
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

    def _predict(self, wm_params, start: rssm.Latent, actions, key) -> rssm.Latent:
        """The prior's latents [B, K, ...] after `start` [B, ...] under the encoded `actions`
        [B, K, A] (the open loop of :meth:`openloop`), one sampled stochastic state per step."""
        wm = self.world_model

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

        keys = jax.random.split(key, actions.shape[1])
        _, latents = jax.lax.scan(step, start, (jnp.swapaxes(actions, 0, 1), keys))
        return jax.tree_util.tree_map(lambda x: jnp.swapaxes(x, 0, 1), latents)

    # ------------------------------------------------------------- learning

    def train_step(self, state: TrainState, batch, key):
        """One gradient update on a replayed batch.

        Pure: (state, batch, key) -> (state, TrainOutput).
        """
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
        """The loss that :meth:`train_step` differentiates, with (metrics, return norm, latents).

        The loss is the sum over the terms of ``agent.loss_scales`` times each term's mean:
        the world model's (:meth:`_world_model_loss`), the actor's and the critic's on imagined
        trajectories (:meth:`_imagination_loss`) and the critic's on the replayed ones
        (:meth:`_replay_critic_loss`). `batch` holds replay windows [B, T + 1, ...] (see the
        module doc); the latents are the posterior's ``deter`` [B, T, D] and ``stoch``
        [B, T, S, classes].
        """
        obs_key, imag_key = jax.random.split(key)
        data = {k: v[:, 1:] for k, v in batch.items() if k not in ("deter", "stoch", "action")}
        B, T = data["is_first"].shape
        losses, post, metrics = self._world_model_loss(params["world_model"], batch, data, obs_key)
        imag_losses, return_norm, imag_returns, imag_metrics = self._imagination_loss(
            params, state, post, imag_key
        )
        losses.update({k: v.mean(1).reshape(B, T) for k, v in imag_losses.items()})
        bootstrap = imag_returns[:, 0].reshape(B, T)
        losses["repval"] = self._replay_critic_loss(params, state, data, post, bootstrap)
        scales = self.cfg.loss_scales
        loss = sum(getattr(scales, k) * v.mean() for k, v in losses.items())
        metrics = {
            **imag_metrics,
            **{f"loss/{k}": v.mean() for k, v in losses.items()},
            "loss/total": loss,
            **metrics,
        }
        return loss, (metrics, return_norm, (post.deter, post.stoch))

    def _world_model_loss(self, wm_params, batch, data, key):
        """The world model's loss terms [B, T], the posterior latents and entropy metrics.

        Hafner et al. 2023 (arXiv 2301.04104), "World model learning":

            L(phi) = sum_t (beta_pred L_pred + beta_dyn L_dyn + beta_rep L_rep)
            L_pred = -ln p(x_t | z_t, h_t) - ln p(r_t | z_t, h_t) - ln p(c_t | z_t, h_t)
            L_dyn = max(1, KL[sg(q(z_t | h_t, x_t)) || p(z_t | h_t)])
            L_rep = max(1, KL[q(z_t | h_t, x_t) || sg(p(z_t | h_t))])

        L_pred's terms are ``rec`` (:meth:`_reconstruction_loss`), ``rew`` and ``con`` (target
        (1 - terminal)(1 - 1 / horizon)); the free nats 1 are ``agent.free_nats``, the betas
        ``agent.loss_scales`` (applied by :meth:`_loss`). `batch`: replay windows [B, T + 1, ...]
        (step 0's stored latent starts the RSSM); `data`: their steps 1..T, [B, T, ...]. Returns
        ({dyn, rep, rec, rew, con} each [B, T], posterior latents [B, T, ...], entropy metrics).
        """
        cfg, wm = self.cfg, self.world_model
        prev_action = self.encode_action(batch["action"][:, :-1])
        start = self.stored_latent(batch["deter"][:, 0], batch["stoch"][:, 0])
        obs = {k: data[k] for k in self.obs_space}
        tokens = wm.apply(wm_params, obs, method=rssm.WorldModel.encode)
        post, post_logp = rssm.observe(
            wm, wm_params, start, prev_action, tokens, data["is_first"], key, cfg.unimix
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
        losses["rec"] = self._reconstruction_loss(recon, data)
        feat = rssm.features(post)
        reward_logits = wm.apply(wm_params, feat, method=rssm.WorldModel.reward_logits)
        losses["rew"] = dist.TwoHot(reward_logits, self.bins).loss(data["reward"])
        cont_target = (1.0 - f32(data["is_terminal"])) * (1.0 - 1.0 / cfg.horizon)
        cont_logit = wm.apply(wm_params, feat, method=rssm.WorldModel.cont_logit)
        losses["con"] = -dist.binary_logp(cont_logit, cont_target)
        metrics = {
            "wm/prior_entropy": dist.categorical_entropy(prior_logp).sum(-1).mean(),
            "wm/post_entropy": dist.categorical_entropy(post_logp).sum(-1).mean(),
        }
        return losses, post, metrics

    def _reconstruction_loss(self, recon, data):
        """-ln p(x_t | z_t, h_t) up to constants [B, T]: the squared error of the decoded images
        `recon["image"]` [B, T, H, W, C] against the observed ones scaled to [0, 1], plus that of
        the decoded vectors `recon["vector"]` [B, T, V] against the observed ones in symlog space.
        """
        B, T = data["is_first"].shape
        rec = jnp.zeros((B, T), f32)
        if self.image_keys:
            target = jnp.concatenate([data[k] for k in self.image_keys], -1).astype(f32) / 255.0
            rec += jnp.square(recon["image"] - target).sum((-3, -2, -1))
        if self.vector_keys:
            target = jnp.concatenate([f32(data[k]).reshape(B, T, -1) for k in self.vector_keys], -1)
            rec += jnp.square(recon["vector"] - dist.symlog(target)).sum(-1)
        return rec

    def _imagination_loss(self, params, state: TrainState, post: rssm.Latent, key):
        """Actor and critic losses on trajectories imagined from every posterior latent.

        Rolls the prior ``agent.imag_length`` = H steps from each of the B x T posterior latents
        `post` [B, T, ...] with the actor's actions, then takes the actor's loss
        (:func:`dreamerbench.agent.behavior.actor_loss`) and the critic's
        (:func:`dreamerbench.agent.behavior.critic_loss`) through
        :func:`dreamerbench.agent.behavior.imagination_loss`. Returns ({policy, value} each
        [B x T, H], the updated return norm, lambda-returns [B x T, H], metrics).

        Gradients reach only the actor (through log-probabilities) and the critic (through its
        loss), so the world model runs on stopped parameters and the actions are stopped: the
        backward pass goes through the rollout for the actor alone, whose outputs there are the
        ones its loss reads (no second forward pass).
        """
        cfg, wm = self.cfg, self.world_model
        frozen = sg(params)
        starts = jax.tree_util.tree_map(lambda x: sg(x).reshape(-1, *x.shape[2:]), post)

        def policy_fn(latent, act_key):
            out = self.actor.apply(params["actor"], rssm.features(latent))
            action = self.actor.distribution(sg(out)).sample(act_key)
            return action, self.encode_action(action), out

        imag_feat, imag_actions, policy_out = rssm.imagine(
            wm, frozen["world_model"], policy_fn, starts, cfg.imag_length, key, cfg.unimix
        )
        imag_reward = dist.TwoHot(
            wm.apply(frozen["world_model"], imag_feat, method=rssm.WorldModel.reward_logits),
            self.bins,
        ).mean()
        imag_cont = jax.nn.sigmoid(
            wm.apply(frozen["world_model"], imag_feat, method=rssm.WorldModel.cont_logit)
        )
        slow_value = dist.TwoHot(self.critic.apply(state.slow_critic, imag_feat), self.bins).mean()
        return behavior.imagination_loss(
            self.actor.distribution(policy_out),
            imag_actions,
            imag_reward,
            imag_cont,
            self.critic.apply(params["critic"], imag_feat),
            slow_value,
            self.bins,
            state.return_norm,
            cfg,
        )

    def _replay_critic_loss(self, params, state: TrainState, data, post: rssm.Latent, bootstrap):
        """The critic's loss [B, T - 1] on the replayed steps `data` [B, T, ...] with posterior
        latents `post`, its lambda-returns bootstrapped from the imagined returns `bootstrap`
        [B, T] (:func:`dreamerbench.agent.behavior.replay_value_loss`). Its gradient also shapes
        the representation, as in the reference.
        """
        feat = rssm.features(post)
        slow_value = dist.TwoHot(self.critic.apply(state.slow_critic, feat), self.bins).mean()
        return behavior.replay_value_loss(
            data["is_last"],
            data["is_terminal"],
            data["reward"],
            bootstrap,
            self.critic.apply(params["critic"], feat),
            slow_value,
            self.bins,
            self.cfg,
        )


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
