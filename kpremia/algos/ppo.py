"""PPO as a LightningModule (registered ``ppo``).

The PPO math reads like CleanRL's ``ppo.py`` but is split the SB3 way:
``collect_rollout()`` fills a preallocated :class:`RolloutBuffer` on the env's
device, GAE is the pure :func:`compute_gae`, and the loss is the pure
:func:`ppo_loss`.  Lightning owns the loop: one ``training_step`` is one
minibatch update, and the first tick of every rollout collects the rollout
(``update_epochs * n_minibatches`` ticks per rollout, :func:`rollout_tick`).

Dropout and the PPO ratio: the network runs in **eval mode both when acting in
the rollout and in the update**.  The old log-probs come from the rollout
itself, so at the first minibatch of an update the ratio is exactly 1 (tested);
dropout layers of an encoder are therefore inactive under PPO — a noisy ratio
from two different dropout masks would make the clip act on noise, not on
policy change.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

import torch
from torch import nn

from kpremia.algos.base import EpisodeTally, RLModule
from kpremia.algos.config import PPOConfig
from kpremia.algos.gae import compute_gae
from kpremia.algos.networks import ActorCritic, action_stats, sample_categorical
from kpremia.algos.ppo_loss import explained_variance, ppo_loss
from kpremia.algos.rollout import RolloutBuffer, RolloutState
from kpremia.algos.warm_start import Teacher, behaviour_clone, collect_demonstrations, teacher_cross_entropy
from kpremia.core.registry import ALGOS, ENCODERS
from kpremia.envs.batched import BatchedEnv

log = logging.getLogger(__name__)


class Tick(NamedTuple):
    """Where one ``training_step`` sits in its rollout's update.

    It depends on ``batch_idx`` alone, so every DDP rank takes the same branch at
    the same step (collect, update, check the KL, log) and they stay in lockstep.
    """

    epoch: int  # update epoch over the rollout
    minibatch: int  # minibatch within that epoch
    first: bool  # the rollout's first tick: collect it before updating
    epoch_end: bool  # the epoch's last minibatch: where algo.target_kl is checked
    last: bool  # the rollout's last tick: log it


def rollout_tick(batch_idx: int, update_epochs: int, n_minibatches: int) -> Tick:
    """The :class:`Tick` of ``batch_idx`` when a rollout takes ``update_epochs * n_minibatches`` ticks."""
    per_rollout = update_epochs * n_minibatches
    tick = batch_idx % per_rollout
    epoch, minibatch = divmod(tick, n_minibatches)
    return Tick(epoch, minibatch, tick == 0, minibatch == n_minibatches - 1, tick == per_rollout - 1)


@ALGOS.register("ppo")
class PPO(RLModule):
    """Proximal Policy Optimisation with GAE(lambda) over the batched simulator."""

    config_class = PPOConfig
    algo_cfg: PPOConfig

    def build_network(self, encoder: nn.Module) -> nn.Module:
        critic = self.algo_cfg.critic
        critic_encoder = ENCODERS.build(dict(self.cfg["encoder"]), self.spec) if critic == "separate" else None
        return ActorCritic(encoder, self.n_actions, head_hidden=self.algo_cfg.head_hidden,
                           min_action_prob=self.algo_cfg.min_action_prob,
                           init_probs=self._init_probs(), critic=critic, critic_encoder=critic_encoder)

    def _init_probs(self) -> list[float] | None:
        """``algo.init_hold_prob``: the initial probability of the scheme's "hold" action.

        A trading policy that starts uniform flips its position every other bar and
        mostly learns that fees hurt; starting mostly flat explores trades one at a time.
        """
        hold = self.algo_cfg.init_hold_prob
        if hold is None:
            return None
        names = list(self.action_names)
        if "hold" not in names:
            log.warning("algo.init_hold_prob ignored: action scheme has no 'hold' action (%s)", names)
            return None
        rest = (1.0 - float(hold)) / (len(names) - 1)
        return [float(hold) if n == "hold" else rest for n in names]

    # ----------------------------------------------------------------- sizes
    @property
    def n_steps(self) -> int:
        return self.algo_cfg.n_steps

    @property
    def n_envs(self) -> int:
        return self.env_cfg.n_envs

    @property
    def ticks_per_rollout(self) -> int:
        return self.algo_cfg.update_epochs * self.algo_cfg.n_minibatches

    def ticks_per_epoch(self) -> int:
        return self.algo_cfg.rollouts_per_epoch * self.ticks_per_rollout

    def env_steps_per_rollout(self, world_size: int | None = None) -> int:
        return self.n_steps * self.n_envs * (world_size or self.world_size)

    def env_steps_per_epoch(self, world_size: int | None = None) -> int:
        return self.algo_cfg.rollouts_per_epoch * self.env_steps_per_rollout(world_size)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # One optimizer for actor and critic (shared encoder).
        return torch.optim.Adam(self.net.parameters(), lr=self.algo_cfg.lr,
                                eps=self.algo_cfg.adam_eps)

    @property
    def reward_scale(self) -> float:
        """Rewards are per-bar log returns (~1e-4); scaling them keeps the critic's targets O(1)."""
        return self.algo_cfg.reward_scale

    def setup(self, stage: str) -> None:
        super().setup(stage)
        self._collapse_warned_epoch = -1
        self.rollout: RolloutState | None = None
        self.warm_start_cfg = self.algo_cfg.warm_start_config()
        self.teacher: Teacher | None = None
        if stage == "fit":
            self.buffer = RolloutBuffer(self.spec, self.n_steps, self.n_envs, self.trainer.strategy.root_device)
            if self.warm_start_cfg is not None:
                self.teacher = Teacher.fit(self.warm_start_cfg.rule, self.market.tensors["train"].to(
                    self.trainer.strategy.root_device), self.env_cfg, self.train_env.scheme,
                    seed=int(self.cfg["seed"]), manifest=self.market.manifest if self.market is not None else None)

    def on_fit_start(self) -> None:
        fresh = self._pending_state is None and self.env_steps == 0
        super().on_fit_start()
        if fresh and self.warm_start_cfg is not None and self.warm_start_cfg.steps > 0:
            self.warm_start()

    def warm_start(self) -> dict[str, float]:
        """Behaviour cloning of the teacher before the first rollout (see :mod:`kpremia.algos.warm_start`).

        Demonstrations come from a fresh train-split simulator with the run's env
        settings and a generator of their own, so the training envs and the rollout
        generator start exactly as without a warm start.  Every rank computes the
        same clone (same seed, same data); rank 0's weights are broadcast anyway.
        """
        cfg, device = self.warm_start_cfg, self.trainer.strategy.root_device
        t0 = time.perf_counter()
        seed = int(self.cfg["seed"])
        gen = torch.Generator(device=device)
        gen.manual_seed(seed + 104_729)
        env = BatchedEnv.from_config(self.market.tensors["train"].to(device), self.env_cfg, seed=seed + 15_485_863)
        obs, labels = collect_demonstrations(env, self.teacher, cfg.collect_steps, cfg.explore, gen)
        stats = behaviour_clone(self.net, obs, labels, cfg, gen)
        if self.world_size > 1:
            for p in self.net.parameters():
                torch.distributed.broadcast(p.data, src=0)
        stats["seconds"] = time.perf_counter() - t0
        log.info("warm start from %s: %d steps on %d demonstrations, holdout accuracy %.3f (trades %.3f), "
                 "loss %.3f, %.1f s", cfg.rule, cfg.steps, int(stats["demonstrations"]), stats["accuracy"],
                 stats["trade_recall"], stats["holdout_loss"], stats["seconds"])
        self.log_to_loggers({f"warmstart/{k}": v for k, v in stats.items()})
        return stats

    # ----------------------------------------------------------------- rollout
    @torch.no_grad()
    def collect_rollout(self) -> dict[str, torch.Tensor]:
        """Fill the buffer with ``n_steps`` steps of all envs; return rollout statistics (tensors)."""
        env, buf = self.train_env, self.buffer
        obs = self.current_obs
        self.net.eval()
        episodes = EpisodeTally(buf.rewards.device)
        for step in range(self.n_steps):
            for k, v in obs.items():
                buf.obs[k][step].copy_(v)
            logp_all, value = self.net(obs)
            action = sample_categorical(logp_all, self.generator)
            if self.teacher is not None:
                buf.teacher[step] = self.teacher.labels(env.t, env.weight)
            next_obs, reward, terminated, truncated, info = env.step(action)
            buf.actions[step] = action
            buf.logprobs[step] = logp_all.gather(1, action[:, None]).squeeze(1)
            buf.values[step] = value
            buf.rewards[step] = reward * self.reward_scale
            buf.terminated[step] = terminated
            buf.truncated[step] = truncated
            for k, v in info["final_obs"].items():
                buf.final_obs[k][step].copy_(v)
            episodes.add(terminated, truncated, info["episode_return"])
            obs = next_obs
        self.current_obs = obs
        self._bootstrap_values(obs)
        adv, ret = compute_gae(buf.rewards, buf.values, buf.next_values, buf.terminated, buf.truncated,
                               gamma=self.algo_cfg.gamma, gae_lambda=self.algo_cfg.gae_lambda)
        buf.advantages.copy_(adv)
        buf.returns.copy_(ret)
        counts = torch.bincount(buf.actions.flatten(), minlength=self.n_actions).float()
        return {
            **episodes.stats(),
            "reward_mean": buf.rewards.mean(),
            "action_share": counts / counts.sum(),
        }

    @torch.no_grad()
    def _bootstrap_values(self, obs_after: dict[str, torch.Tensor]) -> None:
        """``next_values[t]``: the value of the observation step t ended in.

        Inside an episode that is ``values[t + 1]``; after the last step it is the
        value of the observation after the rollout; where an episode ended it is
        the value of the episode's final observation.  Episode ends are rare, so
        their values are computed in one batched forward after the rollout (one
        host sync per rollout, none per step).
        """
        buf = self.buffer
        buf.next_values[:-1] = buf.values[1:]
        buf.next_values[-1] = self.net(obs_after)[1]
        done_t, done_n = torch.nonzero(buf.terminated | buf.truncated, as_tuple=True)
        if done_t.numel() > 0:
            final = {k: v[done_t, done_n] for k, v in buf.final_obs.items()}
            buf.next_values[done_t, done_n] = self.net(final)[1]

    # ----------------------------------------------------------------- update
    def training_step(self, batch: int, batch_idx: int) -> None:
        """One tick: collect first if the rollout starts here, one minibatch update, log at its end."""
        tick = rollout_tick(batch_idx, self.algo_cfg.update_epochs, self.algo_cfg.n_minibatches)
        if tick.first:
            self.rollout = self._start_rollout()
        rollout = self.rollout
        if not rollout.stopped:
            with self.update_backend():
                self._update(rollout, rollout.perms[tick.epoch, tick.minibatch], tick)
        if tick.last:
            self._finish_rollout(rollout)
            self.rollout = None

    def _update(self, rollout: RolloutState, idx: torch.Tensor, tick: Tick) -> None:
        """One optimizer step of the clipped-surrogate objective on the minibatch ``idx`` of the rollout."""
        cfg = self.algo_cfg
        mb = RolloutBuffer.take(rollout.batch, idx)
        self.net.eval()  # see module docstring: rollout and update agree on the mode
        logp_all, new_value = self.net(mb.obs)
        new_logprob, entropy = action_stats(logp_all, mb.actions)
        advantages = mb.advantages
        if cfg.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        terms = ppo_loss(new_logprob, mb.logprobs, advantages, new_value, mb.values, mb.returns, entropy,
                         clip_epsilon=cfg.clip_epsilon, value_clip=cfg.value_clip)
        loss = terms.total(value_coef=cfg.value_coef, entropy_coef=cfg.entropy_coef)
        teacher_stats = {}
        if self.teacher is not None:
            # Cross-entropy to the rule's action (KL(teacher || policy) up to a constant), with a
            # weight decaying to 0; logged even at weight 0 to show how far PPO moved from the rule.
            teacher_ce = teacher_cross_entropy(logp_all, mb.teacher, self.warm_start_cfg.label_smoothing)
            weight = self.warm_start_cfg.kl_weight(self.env_steps, cfg.total_env_steps)
            if weight > 0.0:
                loss = loss + weight * teacher_ce
            teacher_stats = {"teacher_ce": teacher_ce.detach(),
                             "teacher_agreement": (logp_all.argmax(-1) == mb.teacher).float().mean()}

        self.gradient_step(loss, cfg.max_grad_norm)

        rollout.add_losses(policy_loss=terms.loss_objective, value_loss=terms.loss_critic, entropy=terms.entropy,
                           approx_kl=terms.approx_kl, clip_fraction=terms.clip_fraction, loss=loss, **teacher_stats)
        if tick.first:
            rollout.first_ratio = terms.ratio_mean
        if cfg.target_kl is not None and tick.epoch_end:
            # Decide on the all-reduced KL so every rank stops together (no DDP hang).
            kl = self.trainer.strategy.reduce(terms.approx_kl.detach(), reduce_op="mean")
            if float(kl) > float(cfg.target_kl):
                rollout.stopped = True

    def _start_rollout(self) -> RolloutState:
        """Anneal the learning rate, collect a rollout, draw its minibatch order."""
        cfg = self.algo_cfg
        if cfg.lr_anneal:
            frac = max(0.0, 1.0 - self.env_steps / cfg.total_env_steps)
            for group in self.optimizers().param_groups:
                group["lr"] = frac * cfg.lr
        t0 = time.perf_counter()
        collect_stats = self.collect_rollout()
        collect_seconds = time.perf_counter() - t0
        self.env_steps += self.env_steps_per_rollout()
        size, n_mb = self.buffer.size, cfg.n_minibatches
        perms = torch.stack([torch.randperm(size, generator=self.generator, device=self.buffer.actions.device)
                             for _ in range(cfg.update_epochs)])
        perms = perms[:, : (size // n_mb) * n_mb].reshape(perms.shape[0], n_mb, size // n_mb)
        return RolloutState(batch=self.buffer.flat(), perms=perms, collect_stats=collect_stats,
                            collect_seconds=collect_seconds, update_started=time.perf_counter())

    def _finish_rollout(self, rollout: RolloutState) -> None:
        """Log once per rollout (one host sync per rollout, none per env step)."""
        stats = rollout.mean_losses()
        ev = explained_variance(rollout.batch.values, rollout.batch.returns)
        update_seconds = time.perf_counter() - rollout.update_started
        rs = rollout.collect_stats
        steps = self.env_steps_per_rollout()
        share = rs["action_share"]
        self.log_round(rs, share.max(), {
            **{f"train/{name}": value for name, value in stats.items()},
            "train/first_ratio": rollout.first_ratio,
            "train/kl_stopped": torch.tensor(float(rollout.stopped)),
            "train/minibatches": torch.tensor(float(rollout.minibatches)),
            "train/explained_variance": ev,
            "train/lr": torch.tensor(self.optimizers().param_groups[0]["lr"]),
            "perf/rollout_steps_per_s": torch.tensor(steps / max(rollout.collect_seconds, 1e-9)),
            "perf/env_steps_per_s": torch.tensor(steps / max(rollout.collect_seconds + update_seconds, 1e-9)),
        })
        threshold = self.algo_cfg.collapse_threshold
        max_share = float(share.max())
        if max_share > threshold and self._collapse_warned_epoch != self.current_epoch:
            self._collapse_warned_epoch = self.current_epoch  # once per epoch, not every rollout
            log.warning("policy collapse: action %d took %.1f%% of the last rollout (entropy %.3f); "
                        "raise algo.entropy_coef or set algo.min_action_prob", int(share.argmax()),
                        100 * max_share, float(stats["entropy"]))
