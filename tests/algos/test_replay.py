"""Replay buffer: sampling covers what was stored, wraparound keeps the newest, n-step windows, resume."""

from __future__ import annotations

import pytest
import torch

from kpremia.algos.replay import ReplayBuffer
from kpremia.core.errors import UserError
from kpremia.core.spec import ObsSpec

SPEC = ObsSpec(shapes={"price_bars": (2,), "account": (3,)})
N_ENVS = 4


def _obs(ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """An observation that carries a transition id in every entry."""
    return {k: ids[:, None].float().expand(-1, s[0]).clone() for k, s in SPEC.shapes.items()}


def _fill(buf: ReplayBuffer, steps: int, *, terminated_at: dict | None = None,
          truncated_at: dict | None = None) -> None:
    """Store ``steps`` env steps; transition (step i, env e) has id ``i * N_ENVS + e`` and reward = id."""
    for i in range(steps):
        ids = torch.arange(N_ENVS) + i * N_ENVS
        term = torch.zeros(N_ENVS, dtype=torch.bool)
        trunc = torch.zeros(N_ENVS, dtype=torch.bool)
        for e in (terminated_at or {}).get(i, ()):
            term[e] = True
        for e in (truncated_at or {}).get(i, ()):
            trunc[e] = True
        buf.add(_obs(ids), ids % 3, ids.float(), _obs(ids + 1000), term, trunc)


def _sampled_ids(buf: ReplayBuffer, draws: int = 200, batch: int = 64) -> set[int]:
    ids: set[int] = set()
    for _ in range(draws):
        ids.update(buf.sample(batch).obs["account"][:, 0].long().tolist())
    return ids


def test_sampling_covers_every_stored_transition():
    buf = ReplayBuffer(SPEC, capacity=40, n_envs=N_ENVS, device="cpu", seed=0)
    _fill(buf, 7)
    assert buf.n_transitions == 28
    assert _sampled_ids(buf) == set(range(28))


def test_wraparound_keeps_the_newest():
    buf = ReplayBuffer(SPEC, capacity=20, n_envs=N_ENVS, device="cpu", seed=0)  # 5 steps
    _fill(buf, 13)
    assert buf.size == 5 and buf.n_transitions == 20
    newest = set(range(8 * N_ENVS, 13 * N_ENVS))  # steps 8..12
    assert _sampled_ids(buf) == newest


def test_sample_fields_match_the_stored_transition():
    buf = ReplayBuffer(SPEC, capacity=40, n_envs=N_ENVS, device="cpu", seed=1)
    _fill(buf, 9)  # wraps once (10 steps capacity -> not yet), then a 1-step sample
    s = buf.sample(128)
    ids = s.obs["account"][:, 0]
    torch.testing.assert_close(s.returns, ids)
    torch.testing.assert_close(s.next_obs["price_bars"][:, 0], ids + 1000)
    assert torch.equal(s.actions, ids.long() % 3)
    torch.testing.assert_close(s.discounts, torch.full_like(ids, 0.99))


def test_n_step_windows_stop_at_episode_ends_and_wait_for_their_steps():
    gamma = 0.5
    buf = ReplayBuffer(SPEC, capacity=4 * N_ENVS, n_envs=N_ENVS, device="cpu", n_step=3, gamma=gamma, seed=0)
    # steps 0..5 into 4 rows: rows hold steps 2..5; env 1 terminates at step 3, env 2 truncates at step 3
    _fill(buf, 6, terminated_at={3: [1]}, truncated_at={3: [2]})
    assert buf.sampleable_rows == 2  # windows starting at steps 2 and 3 (4 and 5 wait)
    seen = {}
    for _ in range(50):
        s = buf.sample(64)
        for i, r, d, t, nxt in zip(s.obs["account"][:, 0].tolist(), s.returns.tolist(), s.discounts.tolist(),
                                   s.terminated.tolist(), s.next_obs["account"][:, 0].tolist()):
            seen[int(i)] = (r, d, t, nxt)
    assert set(seen) == set(range(2 * N_ENVS, 4 * N_ENVS))

    def rid(step: int, env: int) -> float:
        return float(step * N_ENVS + env)

    # env 0, from step 2: a full window of steps 2, 3, 4
    assert seen[rid(2, 0)] == pytest.approx((rid(2, 0) + gamma * rid(3, 0) + gamma**2 * rid(4, 0), gamma**3,
                                             False, rid(4, 0) + 1000))
    # env 1, from step 2: terminated at step 3 -> two steps, no bootstrap
    assert seen[rid(2, 1)] == pytest.approx((rid(2, 1) + gamma * rid(3, 1), gamma**2, True, rid(3, 1) + 1000))
    # env 2, from step 2: truncated at step 3 -> two steps, bootstrap from step 3's final obs
    assert seen[rid(2, 2)] == pytest.approx((rid(2, 2) + gamma * rid(3, 2), gamma**2, False, rid(3, 2) + 1000))
    # env 1, from step 3: the window is the terminating step alone
    assert seen[rid(3, 1)] == pytest.approx((rid(3, 1), gamma, True, rid(3, 1) + 1000))


def test_state_dict_resumes_the_same_samples():
    a = ReplayBuffer(SPEC, capacity=24, n_envs=N_ENVS, device="cpu", n_step=2, seed=3)
    _fill(a, 4)
    a.sample(8)
    b = ReplayBuffer(SPEC, capacity=24, n_envs=N_ENVS, device="cpu", n_step=2, seed=99)
    b.load_state_dict(a.state_dict())
    for _ in range(3):  # both keep filling (and wrap) and sampling in step
        _fill(a, 2)
        _fill(b, 2)
        sa, sb = a.sample(16), b.sample(16)
        assert all(torch.equal(x, y) for x, y in zip(sa.obs.values(), sb.obs.values()))
        assert torch.equal(sa.returns, sb.returns) and torch.equal(sa.actions, sb.actions)


def test_state_dict_of_a_partly_filled_buffer_holds_only_the_filled_rows():
    buf = ReplayBuffer(SPEC, capacity=400, n_envs=N_ENVS, device="cpu")
    _fill(buf, 3)
    assert buf.state_dict()["rewards"].shape == (3, N_ENVS)


def test_mismatched_resume_and_tiny_buffer_are_user_errors():
    buf = ReplayBuffer(SPEC, capacity=24, n_envs=N_ENVS, device="cpu")
    other = ReplayBuffer(SPEC, capacity=48, n_envs=N_ENVS, device="cpu")
    with pytest.raises(UserError, match="algo.buffer_size"):
        other.load_state_dict(buf.state_dict())
    with pytest.raises(UserError, match="algo.n_step"):
        ReplayBuffer(SPEC, capacity=4, n_envs=N_ENVS, device="cpu", n_step=3)
