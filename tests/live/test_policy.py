"""The checkpoint policy acts as its network does: traced or not, after in-place weight changes."""

from __future__ import annotations

import torch

from kpremia.live.loop.policy import CheckpointPolicy
from kpremia.live.loop.types import Bar


def _obs(policy, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [policy.module.spec.sample(1, generator=g) for _ in range(n)]


def test_traced_policy_acts_like_the_network_and_follows_weight_updates(checkpoint):
    policy = CheckpointPolicy(checkpoint)
    bar = Bar(time=None, open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0, fx=1.0, premium=0.0)
    batch = _obs(policy, 64)
    eager = [int(policy.net.act(o, deterministic=True)[0]) for o in batch]
    assert [policy.act(o, bar) for o in batch] == eager
    assert policy._traced not in (None, False), "gru_attn must be traceable"
    assert len(set(eager)) > 1, "the test network should not act constantly"
    # an online update or a rollback loads weights in place: the trace acts with them at once
    with torch.no_grad():
        new = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
               for k, v in policy.net.state_dict().items()}
    policy.net.load_state_dict(new)
    assert [policy.act(o, bar) for o in batch] == [int(policy.net.act(o, deterministic=True)[0]) for o in batch]


def test_untraceable_network_falls_back_to_eager(checkpoint, monkeypatch):
    policy = CheckpointPolicy(checkpoint)

    def refuse(*args, **kwargs):
        raise RuntimeError("not traceable")

    monkeypatch.setattr(torch.jit, "trace", refuse)
    bar = Bar(time=None, open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0, fx=1.0, premium=0.0)
    batch = _obs(policy, 16, seed=1)
    assert [policy.act(o, bar) for o in batch] == [int(policy.net.act(o, deterministic=True)[0]) for o in batch]
    assert policy._traced is False


def test_sampling_uses_its_own_seeded_generator(checkpoint):
    a, b = CheckpointPolicy(checkpoint, deterministic=False, seed=3), CheckpointPolicy(checkpoint, deterministic=False,
                                                                                       seed=3)
    bar = Bar(time=None, open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0, fx=1.0, premium=0.0)
    batch = _obs(a, 32, seed=2)
    first = [a.act(o, bar) for o in batch[:16]]
    b.load_state_dict(CheckpointPolicy(checkpoint, deterministic=False, seed=3).state_dict())
    assert [b.act(o, bar) for o in batch[:16]] == first
    state = a.state_dict()  # resume mid-stream: the same samples as without a restart
    rest = [a.act(o, bar) for o in batch[16:]]
    b.load_state_dict(state)
    assert [b.act(o, bar) for o in batch[16:]] == rest
