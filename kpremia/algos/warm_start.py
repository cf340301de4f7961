"""Warm start from a rule: behaviour cloning of a train-fit baseline before PPO, and a teacher for PPO.

Why: PPO from a uniform policy on this market learns "hold" before it learns
*when* to trade.  Under the initial policy every trade's advantage is below
hold's (fees are paid at once, the premium's reversion pays days later against
bar noise), so a state-independent preference for "hold" grows faster than the
state-dependent part, and the policy collapses to cash (docs/results.md has
the measurements).  A supervised start on the actions of a rule that already
trades -- the band rule fit on the train split -- puts the policy where the
advantages are informative: PPO then has to improve *when* it trades, not
discover trading.

What it does (``algo.warm_start``, :class:`WarmStartConfig`):

1. fit the teacher (any registered baseline, default ``premium_threshold``; the
   model-based trader ``model_based`` with ``algo/warm_start=model_based``) on
   the train split only, with the run's execution rules;
2. collect demonstrations in a fresh train-split simulator with the run's env
   settings: each decision's label is the teacher's action *given the
   position* (buy only from cash, sell only when holding, else hold -- the
   rule's actions are stateless all-in/all-out signals), mapped onto the run's
   action scheme; the behaviour takes the label, or a uniformly random action
   with probability ``explore`` so both positions are visited in every premium
   state;
3. ``steps`` Adam steps of cross-entropy (with label smoothing) on minibatches
   of those states, with its own optimizer (PPO's Adam state starts fresh);
4. optionally keep a decaying cross-entropy-to-teacher term in PPO's loss
   (``kl_coef``, to 0 at ``kl_decay_fraction`` of the budget), so PPO improves
   on the rule instead of eroding it early.  With a one-hot (smoothed) teacher
   this is KL(teacher || policy) up to a constant.

Everything is seeded from the run's seed with its own generators, happens once
at the start of a fit (a resumed fit does not repeat it: its weights are in the
checkpoint) and is logged as ``warmstart/*``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kpremia.algos.config import WarmStartConfig
from kpremia.core.errors import UserError
from kpremia.data.tensors import MarketTensors
from kpremia.envs.action_schemes import BUY, SELL
from kpremia.envs.config import EnvConfig

log = logging.getLogger(__name__)


class Teacher:
    """A fitted rule's position-aware actions in the run's action scheme, on one split.

    ``labels(t, weight)`` is the action the rule would take at the close of bar
    ``t`` holding USDT weight ``weight``, for every env at once (no host sync).
    """

    def __init__(self, rule_actions: Tensor, scheme: Any) -> None:
        self.rule_actions = rule_actions  # [T] hold_buy_sell, stateless
        self.scheme = scheme
        self.n_actions = int(scheme.n_actions)

    @classmethod
    def fit(cls, rule: str, train: MarketTensors, env: EnvConfig, scheme: Any, seed: int = 0,
            manifest: Mapping[str, Any] | None = None) -> "Teacher":
        """Fit the baseline ``rule`` on ``train`` (the train split only) with the run's execution rules.

        ``manifest``: the data's manifest; on the synthetic market the model-based trader
        (``rule=model_based``) then plans with the generator's parameters, elsewhere it fits
        its model on ``train``.
        """
        from kpremia.core.registry import BASELINES
        from kpremia.eval.baselines import make_baselines
        from kpremia.eval.model_based import model_options

        if rule not in BASELINES.names():
            raise UserError(f"algo.warm_start.rule={rule!r} is not a registered baseline; use one of: "
                            f"{', '.join(BASELINES.names())}")
        if rule == "oracle":
            raise UserError("algo.warm_start.rule=oracle would clone hindsight (it sees the future); "
                            "use a causal rule such as premium_threshold")
        baseline = make_baselines([rule], env, seed=seed, options=model_options(manifest))[rule]
        baseline.fit(train)
        # The rule's action at every bar: the training envs start at random bars, so their
        # decisions do not fall on the rule's own cadence grid (a rule that decides every k
        # bars says "hold" off its grid, which is not what it would do at that state).
        signals = getattr(baseline, "signals", baseline.actions)
        return cls(signals(train).to(train.device), scheme)

    def labels(self, t: Tensor, weight: Tensor) -> Tensor:
        """Scheme actions ``[N]`` the rule takes at bars ``t`` holding USDT weights ``weight``."""
        signal = self.rule_actions.index_select(0, t)
        holding = weight > 0.5
        wanted = torch.full_like(weight, float("nan"))  # NaN: keep the position (no order)
        wanted = torch.where((signal == BUY) & ~holding, torch.ones_like(weight), wanted)
        wanted = torch.where((signal == SELL) & holding, torch.zeros_like(weight), wanted)
        return scheme_actions_for(self.scheme, wanted, weight)


def scheme_actions_for(scheme: Any, wanted: Tensor, weight: Tensor) -> Tensor:
    """The scheme action whose target is nearest ``wanted`` (NaN = keep the current weight).

    Every action's target weight is looked up for every env (``[A, N]``); an action
    that sends no order keeps the current weight.  Ties go to the action that sends
    no order, so "keep" maps to hold rather than to re-ordering the same weight.
    """
    n = weight.shape[0]
    targets = torch.stack([scheme.target_weight(torch.full((n,), a, dtype=torch.long, device=weight.device), weight)
                           for a in range(int(scheme.n_actions))])  # [A, N]
    no_order = torch.isnan(targets)
    effective = torch.where(no_order, weight.expand_as(targets), targets)
    want = torch.where(torch.isnan(wanted), weight, wanted)
    cost = (effective - want).abs() + 1e-6 * (~no_order)
    return cost.argmin(dim=0)


@torch.no_grad()
def collect_demonstrations(env: Any, teacher: Teacher, steps: int, explore: float,
                           generator: torch.Generator) -> tuple[dict[str, Tensor], Tensor]:
    """``steps`` decisions of every env of ``env`` under the teacher with ``explore`` random actions.

    Returns the observations ``{key: [steps * N, ...]}`` and the teacher's labels ``[steps * N]``.
    """
    obs = env.reset()
    n = env.n_envs
    seen: dict[str, list[Tensor]] = {k: [] for k in obs}
    labels = []
    for _ in range(steps):
        label = teacher.labels(env.t, env.weight.to(torch.float64))
        random_action = torch.randint(0, teacher.n_actions, (n,), generator=generator, device=env.device)
        take_random = torch.rand(n, generator=generator, device=env.device) < explore
        for k, v in obs.items():
            seen[k].append(v.clone())
        labels.append(label)
        obs, *_ = env.step(torch.where(take_random, random_action, label))
    return {k: torch.cat(v) for k, v in seen.items()}, torch.cat(labels)


def behaviour_clone(net: nn.Module, obs: dict[str, Tensor], labels: Tensor, cfg: WarmStartConfig,
                    generator: torch.Generator) -> dict[str, float]:
    """``cfg.steps`` Adam steps of smoothed cross-entropy of ``net.log_probs`` on (obs, labels).

    The last ``cfg.holdout`` share of the demonstrations (the latest decisions) is kept
    out and scored: accuracy and loss there are what ``warmstart/*`` reports.  The
    network stays in eval mode, as PPO uses it (dropout inactive).
    """
    m = labels.shape[0]
    n_hold = int(m * cfg.holdout)
    n_fit = m - n_hold
    if n_fit < 1:
        raise UserError(f"algo.warm_start collected {m} demonstrations, too few to fit; raise "
                        "algo.warm_start.collect_steps")
    fit_obs = {k: v[:n_fit] for k, v in obs.items()}
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    net.eval()
    loss = torch.zeros(())
    for _ in range(cfg.steps):
        idx = torch.randint(0, n_fit, (min(cfg.batch_size, n_fit),), generator=generator, device=labels.device)
        logp = net.log_probs({k: v[idx] for k, v in fit_obs.items()})
        loss = F.cross_entropy(logp, labels[idx], label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    stats = {"loss": float(loss.detach()), "demonstrations": float(m)}
    score_obs, score_labels = ({k: v[n_fit:] for k, v in obs.items()}, labels[n_fit:]) if n_hold else (fit_obs, labels)
    with torch.no_grad():
        logp = net.log_probs(score_obs)
        stats["holdout_loss"] = float(F.cross_entropy(logp, score_labels, label_smoothing=cfg.label_smoothing))
        pred = logp.argmax(dim=-1)
        stats["accuracy"] = float((pred == score_labels).float().mean())
        trades = score_labels != pred.new_tensor(int(_hold_action(net, score_labels)))
        stats["trade_recall"] = float((pred[trades] == score_labels[trades]).float().mean()) if trades.any() else 1.0
        stats["label_trade_share"] = float(trades.float().mean())
    return stats


def _hold_action(net: nn.Module, labels: Tensor) -> int:
    """The most common label (the teacher's "keep the position" action), for the trade recall."""
    return int(torch.bincount(labels, minlength=int(getattr(net, "n_actions", 1))).argmax())


def teacher_cross_entropy(logp: Tensor, labels: Tensor, label_smoothing: float) -> Tensor:
    """PPO's teacher term: smoothed cross-entropy of the policy against the teacher's actions."""
    return F.cross_entropy(logp, labels, label_smoothing=label_smoothing)
