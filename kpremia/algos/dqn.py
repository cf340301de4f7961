"""DQN as a LightningModule (registered ``dqn``): the off-policy baseline.

Replay buffer (:mod:`kpremia.algos.replay`), target network, epsilon-greedy
exploration, Huber loss, double-DQN and n-step options; the math lives in
:mod:`kpremia.algos.dqn_math`.  Lightning owns the loop (see
:mod:`kpremia.algos.base`): one ``training_step`` is one gradient update, and a
tick that starts a *collect round* first steps every env ``collect_steps``
times under ``no_grad``, so a round is ``collect_steps * n_envs`` transitions
per rank followed by ``gradient_steps`` updates.  Before ``learning_starts``
env steps a round only collects.

Choices worth knowing:

* **Eval mode everywhere** (acting, the online forward of the update, the
  target's forward), as in PPO: dropout layers of an encoder are inactive under
  DQN.  Dropout draws from the global RNG, which a checkpoint does not carry, so
  it would break exact resume, and it would make the TD target noisy.
* **Target network** = a deep copy of the online network, a submodule kept out
  of the optimizer (``requires_grad=False``) and therefore saved in the
  checkpoint's ``state_dict``.  Every ``target_update_interval`` updates it
  moves to ``tau * online + (1 - tau) * target``: ``tau = 1`` is the classic
  hard copy, a small ``tau`` with interval 1 is Polyak averaging.
* **Reward scale**: rewards are per-bar log returns (~1e-3), so true Q-values
  (~1e-2) and the gaps between actions (~1e-3) sit below the Q head's initial
  output noise; ``reward_scale`` (default 100) multiplies the returns in the TD
  target, so Q-values and ``train/q_mean`` are in scaled units.  Measured on the
  mean-reverting market: validation return -0.21 to -0.48 without it (random
  -0.35), +0.25 to +0.27 with it.
* **Epsilon** follows ``env_steps`` (the module's own counter, summed over
  ranks), as a host float: exploration costs no device sync per step.
* **DDP**: each rank collects from its own seeded envs into its own buffer and
  samples its own batch (``batch_size`` is per rank); gradients are averaged by
  Lightning's DDP.  Every branch (learn or not, sync the target or not) depends
  on counters that are equal on all ranks, so ranks stay in lockstep.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kpremia.algos.base import EpisodeTally, RLModule
from kpremia.algos.config import DQNConfig
from kpremia.algos.dqn_math import linear_epsilon, polyak_update, target_update_due, td_target
from kpremia.algos.networks import QNetwork
from kpremia.algos.replay import ReplayBuffer
from kpremia.core.registry import ALGOS
from kpremia.core.spec import ObsSpec
from kpremia.data.market import MarketData

log = logging.getLogger(__name__)


def effective_learning_starts(learning_starts: int, total_env_steps: int) -> int:
    """``learning_starts``, or half the budget when the run would end before the first update.

    A short run (``debug=fast``: 2,048 env steps against the default 10,000) would
    otherwise only collect and exit without a single update; the warning says so.
    """
    if learning_starts <= total_env_steps:  # the last collect round reaches total_env_steps and updates
        return learning_starts
    half = total_env_steps // 2
    log.warning("algo.learning_starts=%d is above the budget algo.total_env_steps=%d, so DQN would never "
                "update; updates start after %d env steps instead (set algo.learning_starts lower to choose)",
                learning_starts, total_env_steps, half)
    return half


@ALGOS.register("dqn")
class DQN(RLModule):
    """Deep Q-learning over the batched simulator (double-DQN and n-step options)."""

    config_class = DQNConfig
    algo_cfg: DQNConfig

    def __init__(self, cfg: dict, spec: ObsSpec, market: MarketData | None = None):
        super().__init__(cfg, spec, market)
        self.target_net = copy.deepcopy(self.net).requires_grad_(False)
        self.replay: ReplayBuffer | None = None

    def build_network(self, encoder: nn.Module) -> nn.Module:
        return QNetwork(encoder, self.n_actions, head_hidden=self.algo_cfg.head_hidden)

    # ----------------------------------------------------------------- sizes
    @property
    def n_envs(self) -> int:
        return self.env_cfg.n_envs

    @property
    def collect_steps(self) -> int:
        return self.algo_cfg.collect_steps

    @property
    def gradient_steps(self) -> int:
        return self.algo_cfg.gradient_steps

    def ticks_per_epoch(self) -> int:
        return self.algo_cfg.rollouts_per_epoch * self.gradient_steps

    def env_steps_per_round(self, world_size: int | None = None) -> int:
        return self.collect_steps * self.n_envs * (world_size or self.world_size)

    def env_steps_per_epoch(self, world_size: int | None = None) -> int:
        return self.algo_cfg.rollouts_per_epoch * self.env_steps_per_round(world_size)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # Only the online network: the target network moves by polyak_update alone.
        return torch.optim.Adam(self.net.parameters(), lr=self.algo_cfg.lr)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit":
            self.learning_starts = effective_learning_starts(self.algo_cfg.learning_starts,
                                                             self.algo_cfg.total_env_steps)
            self.replay = ReplayBuffer(
                self.spec, self.algo_cfg.buffer_size, self.n_envs, self.trainer.strategy.root_device,
                n_step=self.algo_cfg.n_step, gamma=self.algo_cfg.gamma,
                seed=int(self.cfg["seed"]) + 104_729 * (self.rank + 1),
            )

    # ----------------------------------------------------------------- exact resume
    def extra_state(self) -> dict[str, Any]:
        # The target network is a submodule: it is in the checkpoint's state_dict already.
        return {"replay": self.replay.state_dict()} if self.replay is not None else {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.replay is not None and "replay" in state:
            self.replay.load_state_dict(state["replay"])

    # ----------------------------------------------------------------- collection
    def epsilon(self, env_steps: int | None = None) -> float:
        a = self.algo_cfg
        return linear_epsilon(self.env_steps if env_steps is None else env_steps, a.total_env_steps,
                              start=a.epsilon_start, end=a.epsilon_end,
                              decay_fraction=a.epsilon_decay_fraction)

    @torch.no_grad()
    def collect(self) -> dict[str, torch.Tensor]:
        """Step every env ``collect_steps`` times epsilon-greedily into the replay buffer.

        Epsilon is recomputed per env step from ``env_steps``; the random actions
        and the explore mask come from the module's generator.  Returns the
        round's statistics as tensors (no host sync here).
        """
        env, replay, gen = self.train_env, self.replay, self.generator
        obs = self.current_obs
        device = replay.rewards.device
        self.net.eval()
        episodes = EpisodeTally(device)
        reward_sum = torch.zeros((), device=device)
        action_counts = torch.zeros(self.n_actions, device=device)
        per_step = self.n_envs * self.world_size
        for step in range(self.collect_steps):
            eps = self.epsilon(self.env_steps + step * per_step)
            random_actions = torch.randint(0, self.n_actions, (self.n_envs,), generator=gen, device=device)
            explore = torch.rand(self.n_envs, generator=gen, device=device) < eps
            if eps >= 1.0:  # all random: skip the forward (the generator draws stay the same)
                actions = random_actions
            else:
                actions = torch.where(explore, random_actions, self.net(obs).argmax(dim=1))
            next_obs, reward, terminated, truncated, info = env.step(actions)
            replay.add(obs, actions, reward, info["final_obs"], terminated, truncated)
            episodes.add(terminated, truncated, info["episode_return"])
            reward_sum += reward.sum()
            action_counts += torch.bincount(actions, minlength=self.n_actions)
            obs = next_obs
        self.current_obs = obs
        self.env_steps += self.env_steps_per_round()
        return {
            **episodes.stats(),
            "reward_mean": reward_sum / (self.collect_steps * self.n_envs),
            "max_action_share": action_counts.max() / action_counts.sum(),
        }

    # ----------------------------------------------------------------- update
    def training_step(self, batch: int, batch_idx: int) -> None:
        tick = batch_idx % self.gradient_steps
        if tick == 0:
            self._start_round()
        if self._learning:
            with self.update_backend():
                self._update()
        if tick == self.gradient_steps - 1:
            self._finish_round()

    def _update(self) -> None:
        """One gradient step on a sampled batch; then the target update when it is due."""
        a = self.algo_cfg
        sample = self.replay.sample(a.batch_size)
        self.net.eval()  # see module docstring
        self.target_net.eval()
        with torch.no_grad():
            next_q_target = self.target_net(sample.next_obs)
            next_q_online = self.net(sample.next_obs) if a.double_dqn else None
            returns = sample.returns * a.reward_scale
            target = td_target(returns, sample.discounts, sample.terminated, next_q_target, next_q_online)
        q = self.net(sample.obs).gather(1, sample.actions[:, None]).squeeze(1)
        loss = F.smooth_l1_loss(q, target)  # Huber, delta = 1

        self.gradient_step(loss, a.max_grad_norm)
        if target_update_due(self.updates, a.target_update_interval):
            polyak_update(self.net, self.target_net, a.tau)
        self._stats_sum += torch.stack([loss.detach(), q.detach().mean(), target.mean()])
        self._stats_n += 1

    def _start_round(self) -> None:
        t0 = time.perf_counter()
        self._round_stats = self.collect()
        self._round_t0 = t0
        # Decided on counters equal on every rank (no all-reduce needed).
        self._learning = (self.env_steps >= self.learning_starts) and self.replay.can_sample()
        self._stats_sum = torch.zeros(3, device=self.replay.rewards.device)
        self._stats_n = 0

    def _finish_round(self) -> None:
        """Log once per collect round, straight to the loggers at x = env_steps (one host sync per round)."""
        rs = self._round_stats
        seconds = time.perf_counter() - self._round_t0
        metrics: dict[str, torch.Tensor | float] = {
            "train/epsilon": self.epsilon(),
            "perf/env_steps_per_s": self.env_steps_per_round() / max(seconds, 1e-9),
        }
        if self._stats_n:  # no update during warm-up: no train/td_loss row
            stats = self._stats_sum / self._stats_n
            metrics.update({"train/td_loss": stats[0], "train/q_mean": stats[1], "train/target_mean": stats[2]})
        self.log_round(rs, rs["max_action_share"], metrics)
