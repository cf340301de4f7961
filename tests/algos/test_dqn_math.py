"""DQN math against hand-computed numbers: TD targets, n-step windows, epsilon, target updates."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kpremia.algos.dqn_math import linear_epsilon, n_step_returns, polyak_update, target_update_due, td_target

T, F = True, False


def test_td_target_plain_and_double_by_hand():
    returns = torch.tensor([1.0, 0.5, -1.0])
    discounts = torch.tensor([0.9, 0.9, 0.9])
    terminated = torch.tensor([F, F, T])
    next_q_target = torch.tensor([[2.0, 5.0], [4.0, 1.0], [10.0, 20.0]])
    next_q_online = torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 9.0]])
    # plain: max over the target net -> 5, 4; the terminated row has no bootstrap
    plain = td_target(returns, discounts, terminated, next_q_target)
    torch.testing.assert_close(plain, torch.tensor([1.0 + 0.9 * 5.0, 0.5 + 0.9 * 4.0, -1.0]))
    # double: the online net picks (a*=0, a*=1), the target net values it -> 2, 1
    double = td_target(returns, discounts, terminated, next_q_target, next_q_online)
    torch.testing.assert_close(double, torch.tensor([1.0 + 0.9 * 2.0, 0.5 + 0.9 * 1.0, -1.0]))


def test_one_step_window_is_the_plain_transition():
    out = n_step_returns(torch.tensor([[0.3], [0.7]]), torch.tensor([[F], [T]]), torch.tensor([[F], [F]]), gamma=0.9)
    torch.testing.assert_close(out.returns, torch.tensor([0.3, 0.7]))
    torch.testing.assert_close(out.discounts, torch.tensor([0.9, 0.9]))
    assert out.last.tolist() == [0, 0]
    assert out.terminated.tolist() == [False, True]


def test_n_step_returns_by_hand_with_termination_and_truncation():
    g = 0.5
    rewards = torch.tensor([
        [1.0, 2.0, 4.0],  # no episode end: full window
        [1.0, 2.0, 4.0],  # terminated at step 1: stop, no bootstrap
        [1.0, 2.0, 4.0],  # truncated at step 0: stop, bootstrap from step 0's final obs
        [1.0, 2.0, 4.0],  # truncated at step 1, then (next episode) terminated at 2: ignored
        [1.0, 2.0, 4.0],  # terminated at the last step
    ])
    terminated = torch.tensor([[F, F, F], [F, T, F], [F, F, F], [F, F, T], [F, F, T]])
    truncated = torch.tensor([[F, F, F], [F, F, F], [T, F, F], [F, T, F], [F, F, F]])
    out = n_step_returns(rewards, terminated, truncated, gamma=g)
    torch.testing.assert_close(out.returns, torch.tensor([
        1 + 0.5 * 2 + 0.25 * 4,  # 3.0
        1 + 0.5 * 2,  # 2.0
        1.0,
        1 + 0.5 * 2,  # the terminated step 2 belongs to the next episode
        3.0,
    ]))
    torch.testing.assert_close(out.discounts, torch.tensor([g**3, g**2, g**1, g**2, g**3]))
    assert out.last.tolist() == [2, 1, 0, 1, 2]
    assert out.terminated.tolist() == [False, True, False, False, True]
    # ...and through the TD target: bootstrap where truncated, not where terminated
    next_q = torch.full((5, 2), 8.0)
    target = td_target(out.returns, out.discounts, out.terminated, next_q)
    torch.testing.assert_close(target, torch.tensor([3.0 + 1.0, 2.0, 1.0 + 4.0, 2.0 + 2.0, 3.0]))


@pytest.mark.parametrize(("env_steps", "expected"), [
    (0, 1.0), (50, 0.525), (100, 0.05), (1000, 0.05), (25, 0.7625),
])
def test_linear_epsilon_schedule(env_steps, expected):
    # decays over 0.1 * 1000 = 100 env steps
    eps = linear_epsilon(env_steps, 1000, start=1.0, end=0.05, decay_fraction=0.1)
    assert eps == pytest.approx(expected)


def test_epsilon_without_decay_is_the_end_value():
    assert linear_epsilon(0, 1000, start=1.0, end=0.1, decay_fraction=0.0) == 0.1


def test_target_update_due_every_k_updates():
    due = [u for u in range(0, 13) if target_update_due(u, 4)]
    assert due == [4, 8, 12]


def _pair() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    target = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    online[1].running_mean.fill_(0.3)
    return online, target


def test_polyak_update_formula_and_buffers_copied():
    online, target = _pair()
    before = [p.detach().clone() for p in target.parameters()]
    polyak_update(online, target, tau=0.1)
    for p_online, p_before, p_after in zip(online.parameters(), before, target.parameters()):
        torch.testing.assert_close(p_after, 0.1 * p_online + 0.9 * p_before)
    torch.testing.assert_close(target[1].running_mean, online[1].running_mean)


def test_hard_update_is_an_exact_copy():
    online, target = _pair()
    polyak_update(online, target, tau=1.0)
    for a, b in zip(online.state_dict().values(), target.state_dict().values()):
        assert torch.equal(a, b)
