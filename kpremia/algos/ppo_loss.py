"""The PPO clipped-surrogate loss as a pure function returning named terms.

As in TorchRL's ``ClipPPOLoss``, the loss returns its terms (objective, critic,
entropy) and diagnostics separately; the caller sums them with its coefficients:
``loss = loss_objective + value_coef * loss_critic - entropy_coef * entropy``
(CleanRL's ``pg_loss - ent_coef * entropy + vf_coef * v_loss``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class PPOLossTerms(NamedTuple):
    loss_objective: torch.Tensor  # clipped surrogate, to minimise
    loss_critic: torch.Tensor  # 0.5 * (V - R)^2 (optionally clipped)
    entropy: torch.Tensor  # mean policy entropy (a bonus: subtract it)
    approx_kl: torch.Tensor  # ((ratio - 1) - log ratio).mean(), Schulman's k3 estimator
    clip_fraction: torch.Tensor  # fraction of samples whose ratio left [1-eps, 1+eps]
    ratio_mean: torch.Tensor

    def total(self, *, value_coef: float, entropy_coef: float) -> torch.Tensor:
        """The loss to minimise: ``loss_objective + value_coef * loss_critic - entropy_coef * entropy``.

        The one place the terms are summed: offline PPO and the online learner (which adds
        its anchor pull to it) both call it.
        """
        return self.loss_objective + value_coef * self.loss_critic - entropy_coef * self.entropy


def ppo_loss(
    new_logprob: torch.Tensor,
    old_logprob: torch.Tensor,
    advantages: torch.Tensor,
    new_value: torch.Tensor,
    old_value: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    *,
    clip_epsilon: float,
    value_clip: float | None = None,
) -> PPOLossTerms:
    """Clipped surrogate (Schulman et al. 2017, eq. 7), value loss and entropy on a minibatch."""
    logratio = new_logprob - old_logprob
    ratio = logratio.exp()
    surrogate = advantages * ratio
    surrogate_clipped = advantages * ratio.clamp(1.0 - clip_epsilon, 1.0 + clip_epsilon)
    loss_objective = -torch.min(surrogate, surrogate_clipped).mean()

    if value_clip is None:
        loss_critic = 0.5 * (new_value - returns).pow(2).mean()
    else:
        v_clipped = old_value + (new_value - old_value).clamp(-value_clip, value_clip)
        loss_critic = 0.5 * torch.max((new_value - returns).pow(2), (v_clipped - returns).pow(2)).mean()

    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - logratio).mean()
        clip_fraction = ((ratio - 1.0).abs() > clip_epsilon).float().mean()
    return PPOLossTerms(loss_objective, loss_critic, entropy.mean(), approx_kl, clip_fraction, ratio.mean().detach())


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - Var(target - predicted) / Var(target); NaN when the target has no variance."""
    var_target = target.var()
    return 1.0 - (target - predicted).var() / var_target
