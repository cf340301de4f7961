"""GAE against an independent, straightforward per-env loop (episode ends and truncations)."""

from __future__ import annotations

import pytest
import torch

from kpremia.algos.gae import compute_gae


def reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Per env, per episode: delta_t = r_t + gamma * V(next) * (1 - term) - V_t; A_t = sum (gamma lam)^k delta."""
    T, N = rewards.shape
    adv = torch.zeros(T, N, dtype=torch.float64)
    for n in range(N):
        for t in range(T):
            total, discount = 0.0, 1.0
            for k in range(t, T):
                nv = 0.0 if terminated[k, n] else float(next_values[k, n])
                delta = float(rewards[k, n]) + gamma * nv - float(values[k, n])
                total += discount * delta
                if terminated[k, n] or truncated[k, n]:
                    break
                discount *= gamma * lam
            adv[t, n] = total
    return adv


@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 1.0), (1.0, 0.0), (0.5, 0.7)])
def test_gae_matches_reference_loop(gamma, lam):
    g = torch.Generator().manual_seed(0)
    T, N = 23, 5
    rewards = torch.randn(T, N, generator=g, dtype=torch.float64)
    values = torch.randn(T, N, generator=g, dtype=torch.float64)
    next_values = torch.randn(T, N, generator=g, dtype=torch.float64)
    terminated = torch.rand(T, N, generator=g) < 0.08
    truncated = (torch.rand(T, N, generator=g) < 0.08) & ~terminated
    adv, ret = compute_gae(rewards, values, next_values, terminated, truncated, gamma=gamma, gae_lambda=lam)
    expected = reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + values)


def test_truncation_bootstraps_but_termination_does_not():
    # One env, two steps; step 0 ends the episode.
    rewards = torch.tensor([[1.0], [0.0]])
    values = torch.tensor([[0.5], [2.0]])
    next_values = torch.tensor([[10.0], [0.0]])  # V(final obs of episode) = 10
    trunc = torch.tensor([[True], [False]])
    none = torch.tensor([[False], [False]])
    adv_trunc, _ = compute_gae(rewards, values, next_values, none, trunc, gamma=0.9, gae_lambda=0.95)
    adv_term, _ = compute_gae(rewards, values, next_values, trunc, none, gamma=0.9, gae_lambda=0.95)
    assert adv_trunc[0, 0].item() == pytest.approx(1.0 + 0.9 * 10.0 - 0.5)  # bootstrapped from V(final)
    assert adv_term[0, 0].item() == pytest.approx(1.0 - 0.5)  # no future after ruin
    # Neither chains into the next episode's advantage.
    assert adv_trunc[1, 0].item() == pytest.approx(-2.0)
