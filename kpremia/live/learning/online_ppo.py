"""Online PPO: small clipped-surrogate updates on live transitions, anchored to the loaded weights.

The math is the offline PPO's own (:func:`kpremia.algos.gae.compute_gae`,
:func:`kpremia.algos.ppo_loss.ppo_loss` summed by :meth:`PPOLossTerms.total`,
:meth:`ActorCritic.evaluate_actions`); only the schedule differs.  A transition
is one *decision* of the policy, with the reward the simulator pays for it
(:class:`~kpremia.envs.reward.RewardRule` over the bars the decision spans), so
``gamma`` is per decision as in ``fit``.  The live
settings of the reference design are the defaults: lr 1e-4, clip 0.1, entropy
0.02, value 0.4, one epoch on the last 16 transitions every 3 new ones.

Why an anchor: a live stream is one path through one regime; a few hundred
small updates on it can walk a policy far from what was validated offline
("forgetting").  Two guards keep it near the loaded weights ``theta_0``:

* an L2 pull ``anchor / 2 * ||theta - theta_0||^2`` added to the loss (soft), and
* a hard radius: after every optimiser step the weights are projected back onto
  the ball ``||theta - theta_0|| <= max_distance`` (so the bound holds whatever
  the learning rate does).

The old log-probabilities are the *behaviour* policy's (recorded when the action
was taken), so with overlapping windows the ratio corrects for the policy having
moved since; the values for GAE are recomputed at update time with the current
critic (no gradient).  The network runs in eval mode in the update, as offline
PPO does (see :mod:`kpremia.algos.ppo`).

Everything an update depends on (weights, anchor, Adam moments, the transition
window, counters, hyperparameters) is in :meth:`OnlinePPO.state_dict`, so a
restart from a saved state gives bit-for-bit the weights of an uninterrupted run
(CPU).  This class is synchronous and deterministic; running it off the
decision path is the job of the ``model`` callback
(:class:`kpremia.live.learning.learning.ModelCallback`), which starts each update on a
background thread and publishes it at the next bar.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from dataclasses import replace
from typing import Any, NamedTuple

import torch
from torch import nn

from kpremia.algos.gae import compute_gae
from kpremia.algos.networks import ActorCritic
from kpremia.algos.ppo_loss import ppo_loss
from kpremia.core.errors import UserError
from kpremia.run.live_config import RUNTIME_HPARAMS, OnlineLearnConfig


class Transition(NamedTuple):
    """One live step: the observation acted on, the action, its behaviour log-prob, what followed."""

    obs: dict[str, torch.Tensor]  # each [1, ...]
    action: int
    logprob: float  # log pi_behaviour(action | obs)
    reward: float
    next_obs: dict[str, torch.Tensor]
    terminated: bool = False
    truncated: bool = False


class UpdateResult(NamedTuple):
    update: int
    transitions_seen: int
    loss: float
    policy_loss: float
    value_loss: float
    entropy: float
    approx_kl: float
    clip_fraction: float
    anchor_distance: float
    projected: bool  # the hard radius acted
    kept: bool = True  # False: the loss or the new weights were not finite, and the learner was set back


class OnlinePPO:
    """Owns a copy of an actor-critic, its anchor, an Adam optimiser and the transition window."""

    def __init__(self, net: nn.Module, config: OnlineLearnConfig | None = None):
        if not isinstance(net, ActorCritic):
            raise UserError(f"online learning supports PPO checkpoints only (an actor-critic network), not "
                            f"{type(net).__name__}; set live.learn.enabled=false for this checkpoint")
        self.config = config or OnlineLearnConfig()
        self.net = copy.deepcopy(net).float()
        self.net.eval()
        self.anchor = [p.detach().clone() for p in self.net.parameters()]
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.lr, eps=1e-5)
        self.window: deque[Transition] = deque(maxlen=self.config.batch_size)
        self.transitions_seen = 0
        self.since_update = 0
        self.updates = 0
        self.lineage = 0  # +1 on every restart_from (a load or rollback): tells a stale update apart

    # ----------------------------------------------------------------- feeding
    def add(self, transition: Transition) -> bool:
        """Record a transition (checked: finite in the learner's float32); ``True`` when an update is due now."""
        check_transition(transition)
        self.window.append(_to_cpu_transition(transition))
        self.transitions_seen += 1
        self.since_update += 1
        return self.update_due()

    def update_due(self) -> bool:
        return len(self.window) >= self.config.batch_size and self.since_update >= self.config.every

    # ----------------------------------------------------------------- the update
    def update(self) -> UpdateResult:
        """One PPO update (``update_epochs`` full-batch steps) on the current window."""
        cfg = self.config
        batch = list(self.window)
        obs = _stack([t.obs for t in batch])
        next_obs = _stack([t.next_obs for t in batch])
        actions = torch.tensor([t.action for t in batch], dtype=torch.long)
        old_logprob = torch.tensor([t.logprob for t in batch], dtype=torch.float32)
        rewards = torch.tensor([t.reward for t in batch], dtype=torch.float32) * cfg.reward_scale
        terminated = torch.tensor([t.terminated for t in batch], dtype=torch.bool)
        truncated = torch.tensor([t.truncated for t in batch], dtype=torch.bool)

        self.net.eval()
        with torch.no_grad():
            _, values = self.net(obs)
            _, next_values = self.net(next_obs)
        adv, returns = compute_gae(rewards[:, None], values[:, None], next_values[:, None], terminated[:, None],
                                   truncated[:, None], gamma=cfg.gamma, gae_lambda=cfg.gae_lambda)
        adv, returns = adv[:, 0], returns[:, 0]
        if cfg.normalize_advantages:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)

        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr
        before = (copy.deepcopy(self.net.state_dict()), copy.deepcopy(self.optimizer.state_dict()))
        projected = False
        for _ in range(cfg.update_epochs):
            new_logprob, entropy, new_value = self.net.evaluate_actions(obs, actions)
            terms = ppo_loss(new_logprob, old_logprob, adv, new_value, values, returns, entropy,
                             clip_epsilon=cfg.clip_epsilon)
            pull = sum(((p - a) ** 2).sum() for p, a in zip(self.net.parameters(), self.anchor, strict=True))
            loss = (terms.total(value_coef=cfg.value_coef, entropy_coef=cfg.entropy_coef)
                    + 0.5 * cfg.anchor * pull)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.net.parameters(), cfg.max_grad_norm)
            self.optimizer.step()
            projected |= self._project()
        self.since_update = 0
        loss = loss.detach()
        kept = bool(torch.isfinite(loss)) and all(bool(torch.isfinite(p).all()) for p in self.net.parameters())
        if kept:
            self.updates += 1
        else:  # never keep a non-finite update: the learner's network and optimiser go back to before it
            self.net.load_state_dict(before[0])
            self.optimizer.load_state_dict(before[1])
        return UpdateResult(self.updates, self.transitions_seen, float(loss), float(terms.loss_objective.detach()),
                            float(terms.loss_critic.detach()), float(terms.entropy.detach()), float(terms.approx_kl),
                            float(terms.clip_fraction), self.anchor_distance(), projected, kept)

    @torch.no_grad()
    def _project(self) -> bool:
        """Pull the weights back onto the ball of radius ``max_distance`` around the anchor."""
        distance = self.anchor_distance()
        if distance <= self.config.max_distance:
            return False
        scale = self.config.max_distance / distance
        for p, a in zip(self.net.parameters(), self.anchor, strict=True):
            p.copy_(a + (p - a) * scale)
        return True

    @torch.no_grad()
    def anchor_distance(self) -> float:
        """``||theta - theta_0||``, L2 over all parameters (float64 sum: order-stable)."""
        total = sum(((p.double() - a.double()) ** 2).sum() for p, a in zip(self.net.parameters(), self.anchor,
                                                                              strict=True))
        return float(torch.as_tensor(total).sqrt())

    # ----------------------------------------------------------------- run-time settings
    def set_hparams(self, **changes: float) -> OnlineLearnConfig:
        """Change ``lr``, ``clip_epsilon``, ... between updates; validated, all or nothing."""
        unknown = set(changes) - set(RUNTIME_HPARAMS)
        if unknown:
            raise UserError(f"cannot change {sorted(unknown)} at run time; allowed: {list(RUNTIME_HPARAMS)}")
        new = replace(self.config, **{k: float(v) for k, v in changes.items()})  # checked when made
        self.config = new
        return new

    def restart_from(self, weights: dict[str, torch.Tensor]) -> None:
        """Continue from ``weights`` (a rollback): they become the anchor; Adam starts afresh."""
        self.net.load_state_dict(weights)
        self.anchor = [p.detach().clone() for p in self.net.parameters()]
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.lr, eps=1e-5)
        self.since_update = 0
        self.lineage += 1

    def weights(self) -> dict[str, torch.Tensor]:
        """A detached copy of the current network weights (to publish to an acting copy)."""
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    # ----------------------------------------------------------------- exact resume
    def state_dict(self) -> dict[str, Any]:
        """Everything an update depends on.

        Saved with every bar by the live runner, so it is kept small and cheap: the
        window as a few stacked tensors (not one tensor per transition and key), and
        the optimiser state by reference (serialise it before the next update runs).
        """
        return {
            "config": self.config.to_dict(),
            "net": self.weights(),
            "anchor": [a.clone() for a in self.anchor],
            "optimizer": self.optimizer.state_dict(),
            "window": _pack(list(self.window)),
            "transitions_seen": self.transitions_seen,
            "since_update": self.since_update,
            "updates": self.updates,
            "lineage": self.lineage,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.config = OnlineLearnConfig(**state["config"])
        self.net.load_state_dict(state["net"])
        with torch.no_grad():
            for a, saved in zip(self.anchor, state["anchor"], strict=True):
                a.copy_(saved)
        self.optimizer.load_state_dict(state["optimizer"])
        self.window = deque(_unpack(state["window"]), maxlen=self.config.batch_size)
        self.transitions_seen = int(state["transitions_seen"])
        self.since_update = int(state["since_update"])
        self.updates = int(state["updates"])
        self.lineage = int(state.get("lineage", 0))


_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def check_transition(t: Transition) -> None:
    """A UserError naming the field when a transition cannot be learned from: its reward and log-prob must be
    finite numbers in float32 (the learner's dtype: ``1e308`` is finite in float64 and infinite there), its
    observations finite."""
    for name, value in (("reward", t.reward), ("logprob", t.logprob)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)) \
                or abs(float(value)) > _FLOAT32_MAX:
            raise UserError(f"{name}={value!r:.40} is not a finite float32 number (|x| <= {_FLOAT32_MAX:.4g}); "
                            "the transition was not learned from")
    if float(t.logprob) > 0:
        raise UserError(f"logprob={t.logprob!r:.40} is a log-probability and must be <= 0")
    for part, obs in (("obs", t.obs), ("next_obs", t.next_obs)):
        for key, value in obs.items():
            if not bool(torch.isfinite(value.float()).all()):
                raise UserError(f"{part}.{key} holds a value that is not finite in float32; the transition was not "
                                "learned from")


def _to_cpu_transition(t: Transition) -> Transition:
    return t._replace(obs={k: v.detach().cpu().clone() for k, v in t.obs.items()},
                      next_obs={k: v.detach().cpu().clone() for k, v in t.next_obs.items()},
                      action=int(t.action), logprob=float(t.logprob), reward=float(t.reward),
                      terminated=bool(t.terminated), truncated=bool(t.truncated))


def _pack(window: list[Transition]) -> dict[str, Any]:
    if not window:
        return {"n": 0}
    return {"n": len(window), "obs": _stack([t.obs for t in window]), "next_obs": _stack([t.next_obs for t in window]),
            "action": [t.action for t in window], "logprob": [t.logprob for t in window],
            "reward": [t.reward for t in window], "terminated": [t.terminated for t in window],
            "truncated": [t.truncated for t in window]}


def _unpack(packed: dict[str, Any]) -> list[Transition]:
    out = []
    for i in range(int(packed["n"])):
        out.append(Transition({k: v[i:i + 1].clone() for k, v in packed["obs"].items()}, packed["action"][i],
                              packed["logprob"][i], packed["reward"][i],
                              {k: v[i:i + 1].clone() for k, v in packed["next_obs"].items()},
                              packed["terminated"][i], packed["truncated"][i]))
    return out


def _stack(obs_list: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([o[k] for o in obs_list], dim=0) for k in obs_list[0]}


@torch.no_grad()
def behaviour_logprob(net: nn.Module, obs: dict[str, torch.Tensor], action: int) -> float:
    """``log pi(action | obs)`` of the acting network (recorded with the transition)."""
    logp, _ = net(obs)
    return float(logp[0, int(action)])
