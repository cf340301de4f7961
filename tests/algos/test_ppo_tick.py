"""The tick arithmetic of a PPO rollout and the policy's evaluate_actions, against hand-written answers."""

from __future__ import annotations

import torch
from torch import nn

from kpremia.algos.networks import ActorCritic
from kpremia.algos.ppo import Tick, rollout_tick


def test_ticks_of_two_rollouts_of_two_epochs_of_three_minibatches() -> None:
    ticks = [rollout_tick(i, update_epochs=2, n_minibatches=3) for i in range(12)]
    expected_one = [
        Tick(0, 0, True, False, False), Tick(0, 1, False, False, False), Tick(0, 2, False, True, False),
        Tick(1, 0, False, False, False), Tick(1, 1, False, False, False), Tick(1, 2, False, True, True),
    ]
    assert ticks == expected_one + expected_one


def test_one_minibatch_one_epoch_is_first_epoch_end_and_last_at_once() -> None:
    assert rollout_tick(5, update_epochs=1, n_minibatches=1) == Tick(0, 0, True, True, True)


class _Flat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.out_dim = 3

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return obs["x"]


def test_evaluate_actions_is_log_prob_entropy_and_value() -> None:
    torch.manual_seed(0)
    net = ActorCritic(_Flat(), n_actions=4, head_hidden=8)
    obs = {"x": torch.randn(5, 3)}
    actions = torch.tensor([0, 3, 1, 2, 3])
    log_prob, entropy, value = net.evaluate_actions(obs, actions)
    probs = torch.softmax(net.policy_head(obs["x"]), dim=-1)
    assert torch.allclose(log_prob, probs[torch.arange(5), actions].log(), atol=1e-6)
    assert torch.allclose(entropy, -(probs * probs.log()).sum(-1), atol=1e-6)
    assert torch.equal(value, net.value_head(obs["x"]).squeeze(-1))
