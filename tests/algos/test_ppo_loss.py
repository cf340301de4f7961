"""The clipped PPO loss on a hand-computed example."""

from __future__ import annotations

import math

import pytest
import torch

from kpremia.algos.ppo_loss import explained_variance, ppo_loss


def test_clipped_surrogate_hand_computed():
    # ratios: e^0.5 = 1.6487 (clipped to 1.2 for A>0), e^-0.5 = 0.6065 (clipped to 0.8 for A<0 -> min picks 0.8*-1)
    old = torch.tensor([0.0, 0.0, 0.0, 0.0])
    new = torch.tensor([0.5, -0.5, 0.1, 0.5])
    adv = torch.tensor([1.0, -1.0, 2.0, -1.0])
    r = [math.exp(x) for x in (0.5, -0.5, 0.1, 0.5)]
    # min(r*A, clip(r)*A) per sample:
    s0 = min(r[0] * 1.0, 1.2 * 1.0)  # 1.2
    s1 = min(r[1] * -1.0, 0.8 * -1.0)  # -0.8
    s2 = min(r[2] * 2.0, r[2] * 2.0)  # inside the clip range
    s3 = min(r[3] * -1.0, 1.2 * -1.0)  # -1.6487 (unclipped: pessimistic)
    expected = -(s0 + s1 + s2 + s3) / 4
    value = torch.tensor([1.0, 2.0, 3.0, 4.0])
    returns = torch.tensor([1.5, 2.0, 2.0, 4.0])
    entropy = torch.tensor([0.5, 0.6, 0.7, 0.8])
    terms = ppo_loss(new, old, adv, value, value, returns, entropy, clip_epsilon=0.2)
    assert terms.loss_objective.item() == pytest.approx(expected, rel=1e-6)
    assert terms.loss_critic.item() == pytest.approx(0.5 * (0.25 + 0 + 1 + 0) / 4)
    assert terms.entropy.item() == pytest.approx(0.65)
    assert terms.clip_fraction.item() == pytest.approx(3 / 4)  # |r-1| > 0.2 for 0.5, -0.5, 0.5
    kl = sum((ri - 1) - math.log(ri) for ri in r) / 4
    assert terms.approx_kl.item() == pytest.approx(kl, rel=1e-5)


def test_value_clipping_takes_the_pessimistic_loss():
    old_v = torch.tensor([0.0])
    new_v = torch.tensor([1.0])
    ret = torch.tensor([1.0])
    z = torch.zeros(1)
    terms = ppo_loss(z, z, z, new_v, old_v, ret, z, clip_epsilon=0.2, value_clip=0.2)
    # unclipped error 0, clipped value 0.2 -> error 0.64; max -> 0.5 * 0.64
    assert terms.loss_critic.item() == pytest.approx(0.32)


def test_explained_variance():
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(y, y).item() == pytest.approx(1.0)
    assert explained_variance(torch.full_like(y, y.mean()), y).item() == pytest.approx(0.0)
