"""DQN's math as pure tensor functions: TD targets, n-step returns, epsilon, target updates.

Kept apart from the LightningModule (STYLE: math apart from wiring) so each
piece is tested against hand-computed numbers.  Two rules run through it:

* **Terminated is not truncated.**  A terminated step (ruin) has no future: its
  target is the reward alone.  A truncated step (``max_steps`` or the end of the
  data) was cut from outside, so the target still bootstraps from the value of
  the observation the episode ended in (stored as the transition's next
  observation, before the env's auto-reset).  Either way an n-step window stops
  at the episode's end and never reads rewards of the next episode.
* **Discounts travel with the sample.**  An n-step window that stops early after
  ``k`` steps bootstraps with ``gamma ** k``, not ``gamma ** n``; the functions
  return that discount so the TD target needs no knowledge of windows.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class NStepReturns(NamedTuple):
    """An n-step window summarised for the TD target (all ``[B]``).

    ``returns``: ``sum_{j<k} gamma^j r_j`` over the ``k`` steps used;
    ``discounts``: ``gamma^k`` (the bootstrap's discount, before masking by
    ``terminated``); ``last``: index ``k - 1`` of the step whose next observation
    is bootstrapped from; ``terminated``: the window ended in a termination (no
    bootstrap).
    """

    returns: torch.Tensor
    discounts: torch.Tensor
    last: torch.Tensor
    terminated: torch.Tensor


def n_step_returns(rewards: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor, *,
                   gamma: float) -> NStepReturns:
    """Summarise windows of ``n`` consecutive steps of one env each, ``[B, n]``.

    Row ``b`` holds the steps ``t, t+1, ..., t+n-1`` of the same env, starting at
    the sampled transition.  The window stops at its first episode end (either
    flag): steps after it belong to the next episode and are ignored.

    Args:
        rewards: float ``[B, n]``.
        terminated: bool ``[B, n]``, step ended by ruin.
        truncated: bool ``[B, n]``, step ended by a time limit or the end of the data.
        gamma: discount per step.

    Returns:
        :class:`NStepReturns`.  With ``n == 1`` it is the one-step case:
        ``returns = r``, ``discounts = gamma``, ``last = 0``.
    """
    n = rewards.shape[1]
    done = terminated | truncated
    # alive[:, j]: step j is inside the window (no episode end strictly before it).
    ended_before = torch.cumsum(done.long(), dim=1) - done.long()
    alive = ended_before == 0
    powers = gamma ** torch.arange(n, device=rewards.device, dtype=rewards.dtype)
    returns = (rewards * powers * alive).sum(dim=1)
    steps_used = alive.sum(dim=1)  # k in 1..n (step 0 is always alive)
    last = steps_used - 1
    ended_by_termination = terminated.gather(1, last[:, None]).squeeze(1)
    discounts = torch.pow(torch.full_like(returns, gamma), steps_used.to(returns.dtype))
    return NStepReturns(returns=returns, discounts=discounts, last=last, terminated=ended_by_termination)


def td_target(returns: torch.Tensor, discounts: torch.Tensor, terminated: torch.Tensor,
              next_q_target: torch.Tensor, next_q_online: torch.Tensor | None = None) -> torch.Tensor:
    """The (double-)DQN target ``G + discount * (1 - terminated) * Q_target(s', a*)``, ``[B]``.

    Args:
        returns: discounted reward sum of the window (the reward for one-step), ``[B]``.
        discounts: ``gamma ** k`` for a window of ``k`` steps, ``[B]`` (or a float broadcast).
        terminated: bool ``[B]``; where true the target is ``returns`` alone.
        next_q_target: target network's Q-values of the bootstrap observation, ``[B, A]``.
        next_q_online: online network's Q-values of the same observation, ``[B, A]``.
            Given: double DQN (van Hasselt et al., 2016) -- the online net picks
            ``a*``, the target net values it, which removes max's upward bias.
            ``None``: plain DQN, ``a* = argmax Q_target``.
    """
    if next_q_online is None:
        next_value = next_q_target.max(dim=1).values
    else:
        best = next_q_online.argmax(dim=1, keepdim=True)
        next_value = next_q_target.gather(1, best).squeeze(1)
    return returns + discounts * (~terminated).to(returns.dtype) * next_value


def linear_epsilon(env_steps: int, total_env_steps: int, *, start: float, end: float,
                   decay_fraction: float) -> float:
    """Epsilon of epsilon-greedy: linear from ``start`` to ``end`` over the first
    ``decay_fraction * total_env_steps`` env steps, then ``end``.

    A plain float (the schedule is driven by the host-side ``env_steps`` counter),
    so applying it costs no device sync.
    """
    horizon = decay_fraction * total_env_steps
    if horizon <= 0:
        return float(end)
    progress = min(1.0, max(0.0, env_steps / horizon))
    return float(start + progress * (end - start))


def target_update_due(updates: int, interval: int) -> bool:
    """True after every ``interval``-th gradient update (``updates`` counted after the step)."""
    return updates > 0 and updates % interval == 0


@torch.no_grad()
def polyak_update(online: nn.Module, target: nn.Module, tau: float) -> None:
    """``target <- tau * online + (1 - tau) * target`` for parameters; buffers are copied.

    ``tau = 1`` is the hard update (an exact copy).  Buffers (e.g. running
    statistics) are not averaged: a blend of two running statistics is not a
    statistic of anything, so they follow the online net, as in SB3.
    """
    online_params, target_params = list(online.parameters()), list(target.parameters())
    if len(online_params) != len(target_params):
        raise ValueError("online and target networks have different parameter lists")
    for o, t in zip(online_params, target_params):
        if tau >= 1.0:
            t.copy_(o)
        else:
            t.lerp_(o, tau)  # t + tau * (o - t)
    for o, t in zip(online.buffers(), target.buffers()):
        t.copy_(o)
