"""Generalised Advantage Estimation as a pure tensor function.

Kept apart from the LightningModule (STYLE: math apart from wiring) so it can be
tested against an independent loop.  ``terminated`` and ``truncated`` stay
separate: a terminated step has no future (the bootstrap value is zero); a
truncated step was cut by a time limit or the end of the data, so the caller
passes the value of the real final observation in ``bootstrap_values`` and the
recursion still stops there (the next row belongs to a new episode).
"""

from __future__ import annotations

import torch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns for a ``[T, N]`` rollout.

    Args:
        rewards: ``r_t`` for each step, ``[T, N]``.
        values: ``V(s_t)`` of the observation the action was taken in, ``[T, N]``.
        next_values: ``V(s_{t+1})`` of the observation the step *ended* in, ``[T, N]``:
            for a truncated step the value of the episode's final observation, for
            the last row the value of the observation after the rollout, otherwise
            ``values[t + 1]``.  Ignored where ``terminated``.
        terminated: episode ended by ruin at step t (no bootstrap), bool ``[T, N]``.
        truncated: episode cut at step t (bootstrap, but do not chain), bool ``[T, N]``.

    Returns:
        ``(advantages, returns)``, both ``[T, N]``, with ``returns = advantages + values``.
    """
    n_steps = rewards.shape[0]
    not_terminated = (~terminated).to(rewards.dtype)
    # The recursion continues into row t+1 only if the episode goes on after step t.
    continues = (~(terminated | truncated)).to(rewards.dtype)
    deltas = rewards + gamma * next_values * not_terminated - values
    advantages = torch.zeros_like(rewards)
    last_gae = torch.zeros_like(rewards[0])
    for t in reversed(range(n_steps)):
        last_gae = deltas[t] + gamma * gae_lambda * continues[t] * last_gae
        advantages[t] = last_gae
    return advantages, advantages + values
