"""Learning levers of the simulator: decision interval, fx-hedged reward, no-trade band.

``decision_every=k`` must be exactly the bar-by-bar env with the action held for
k bars (rewards summed, one transition per decision, so a learner discounts
once per decision); the fx-hedged reward must strip the USD/KRW move and
nothing else; the target-weight band must stop rebalancing trades.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kpremia.algos.gae import compute_gae
from kpremia.core.errors import UserError
from kpremia.envs.batched import BatchedEnv
from kpremia.envs.clock import DecisionClock
from kpremia.envs.execution import ExecutionRules
from kpremia.envs.reward import RewardRule

from .conftest import build_market, random_walk_close

BUY, SELL = 1, 2  # hold_buy_sell
RULES = dict(rules=ExecutionRules(fee_rate=0.001, spread_krw=0.5), action_scheme="hold_buy_sell")


def acts(*values: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)


def test_decision_every_is_the_bar_env_holding_the_action() -> None:
    market = build_market(random_walk_close(200, seed=3), valid_from=0)
    k = 4
    coarse = BatchedEnv(market, 3, **RULES, clock=DecisionClock(decision_every=k), max_steps=None, random_start=False)
    fine = BatchedEnv(market, 3, max_steps=None, random_start=False, **RULES)
    coarse.reset(), fine.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        a = torch.randint(0, 3, (3,), generator=gen)
        obs_c, r_c, term_c, trunc_c, info_c = coarse.step(a)
        total = torch.zeros(3)
        fees = torch.zeros(3, dtype=torch.float64)
        for j in range(k):  # the action, then "no order" (-1) for the rest of the decision
            obs_f, r_f, _, _, info_f = fine.step(a if j == 0 else torch.full((3,), -1))
            total += r_f
            fees += info_f["fee_krw"]
        torch.testing.assert_close(r_c, total, rtol=1e-5, atol=1e-7)  # rewards of the k bars summed
        for key in obs_c:
            torch.testing.assert_close(obs_c[key], obs_f[key])
        torch.testing.assert_close(info_c["portfolio_value_krw"], info_f["portfolio_value_krw"], rtol=0, atol=0)
        torch.testing.assert_close(info_c["fee_krw"], fees)
        assert torch.equal(coarse.t, fine.t)
    assert int(coarse.t[0]) == 40  # 10 decisions of 4 bars


def test_log_return_reward_over_a_decision_is_the_log_value_change() -> None:
    close = random_walk_close(60, seed=1)
    market = build_market(close, valid_from=0)
    env = BatchedEnv(market, 1, **RULES, clock=DecisionClock(decision_every=8), max_steps=None, random_start=False)
    env.reset()
    _, r, _, _, info = env.step(acts(BUY))
    assert float(r) == pytest.approx(math.log(float(info["portfolio_value_krw"]) / 1_000_000.0), rel=1e-5)
    assert int(env.t) == 8


def test_an_episode_ending_inside_a_decision_ends_there() -> None:
    market = build_market(random_walk_close(100, seed=2), valid_from=0)
    env = BatchedEnv(market, 2, **RULES, clock=DecisionClock(decision_every=4), max_steps=6, random_start=False)
    ref = BatchedEnv(market, 2, max_steps=6, random_start=False, **RULES)
    env.reset(), ref.reset()
    env.step(acts(BUY, 0))
    _, r, term, trunc, info = env.step(acts(0, BUY))  # bars 5 and 6, then max_steps = 6
    assert trunc.all() and not term.any()
    assert info["episode_length"].tolist() == [6, 6]
    total = torch.zeros(2)
    for j in range(6):
        _, r_ref, _, trunc_ref, info_ref = ref.step(acts(BUY, 0) if j == 0 else acts(0, BUY) if j == 4 else
                                                    torch.full((2,), -1))
        if j >= 4:
            total += r_ref
    assert trunc_ref.all()
    torch.testing.assert_close(r, total, rtol=1e-5, atol=1e-7)  # only the 2 bars that happened
    torch.testing.assert_close(info["portfolio_value_krw"], info_ref["portfolio_value_krw"], rtol=0, atol=0)
    assert int(env.t[0]) == 0  # auto-reset to the start (random_start=False)


def test_gamma_discounts_once_per_decision() -> None:
    """GAE over a decision env's transitions: the return is sum_d gamma^d R_d, R_d the k-bar sums."""
    market = build_market(random_walk_close(300, seed=4), valid_from=0)
    k, n_dec, gamma = 5, 12, 0.9
    env = BatchedEnv(market, 1, **RULES, clock=DecisionClock(decision_every=k), max_steps=None, random_start=False)
    env.reset()
    rewards = []
    for d in range(n_dec):
        rewards.append(env.step(acts(BUY if d % 3 == 0 else SELL if d % 3 == 2 else 0))[1])
    rewards = torch.stack(rewards)  # [n_dec, 1]
    zeros = torch.zeros_like(rewards)
    flags = torch.zeros_like(rewards, dtype=torch.bool)
    _, returns = compute_gae(rewards, zeros, zeros, flags, flags, gamma=gamma, gae_lambda=1.0)
    by_hand = sum(gamma ** d * float(rewards[d]) for d in range(n_dec))
    assert float(returns[0]) == pytest.approx(by_hand, rel=1e-5)
    # ... and not gamma per bar, which would discount the last decision by gamma^(k * 11)
    per_bar = sum(gamma ** (k * d) * float(rewards[d]) for d in range(n_dec))
    assert abs(by_hand - per_bar) > 1e-6


def test_fx_hedged_reward_strips_the_fx_move() -> None:
    # premium constant at 1 %, FX moves: holding USDT gains or loses only through FX
    fx = 1400.0 * np.exp(np.cumsum(np.r_[0.0, np.random.default_rng(0).normal(0, 0.003, 39)]))
    close = fx * 1.01
    market = build_market(close, valid_from=0)
    market.fx = torch.as_tensor(fx)
    market.premium = market.close / market.fx - 1
    rules = dict(rules=ExecutionRules(fee_rate=0.0, spread_krw=0.0), action_scheme="hold_buy_sell")
    hedged = BatchedEnv(market, 1, **rules, reward=RewardRule(reward="fx_hedged"), max_steps=None,
                        random_start=False)
    plain = BatchedEnv(market, 1, max_steps=None, random_start=False, **rules)
    hedged.reset(), plain.reset()
    hedged.step(acts(BUY)), plain.step(acts(BUY))  # all in from the open of bar 1
    for _ in range(20):
        _, r_h, _, _, _ = hedged.step(acts(0))
        _, r_p, _, _, info = plain.step(acts(0))
        assert abs(float(r_p)) > 1e-4  # the plain reward moves with FX
        assert float(r_h) == pytest.approx(0.0, abs=1e-6)  # the hedged one does not


def test_rebalance_band_stops_tiny_rebalancing_trades() -> None:
    close = random_walk_close(80, seed=5, sd=0.004)
    market = build_market(close, valid_from=0)
    for band in (0.0, 0.1):
        scheme = {"name": "target_weight", "weights": (0.0, 0.5, 1.0), "rebalance_band": band}
        env = BatchedEnv(market, 1, rules=ExecutionRules(fee_rate=0.001), max_steps=None, random_start=False,
                         action_scheme=scheme)
        env.reset()
        n = 0
        for _ in range(78):
            n += int(env.step(acts(1))[4]["traded"])  # "stay at 0.5" every bar
        assert n >= 40 if band == 0.0 else n == 1  # without a band the drift is traded every bar


def test_bad_lever_values_are_one_line_errors() -> None:
    market = build_market(random_walk_close(50), valid_from=0)
    with pytest.raises(UserError, match="env.decision_every"):
        DecisionClock(decision_every=0)
    with pytest.raises(UserError, match="env.reward"):
        RewardRule(reward="sharpe")
    with pytest.raises(UserError, match="takes a DecisionClock"):
        BatchedEnv(market, 1, clock=4)


def test_ruin_inside_a_decision_terminates_there() -> None:
    close = np.array([1400.0, 1400.0, 1200.0, 600.0, 500.0, 400.0, 300.0, 300.0, 300.0, 300.0])
    market = build_market(close, valid_from=0)
    rules = dict(rules=ExecutionRules(fee_rate=0.0, spread_krw=0.0), action_scheme="hold_buy_sell", ruin_fraction=0.5)
    env = BatchedEnv(market, 1, **rules, clock=DecisionClock(decision_every=4), max_steps=None, random_start=False)
    env.reset()
    _, r, term, trunc, info = env.step(acts(BUY))  # fill at bar 1, then bars 2, 3 (600: ruin) -> ends at bar 3
    assert term.item() and not trunc.item() and info["ruined"].item()
    assert info["episode_length"].item() == 3 and info["portfolio_value_krw"].item() == pytest.approx(1e6 * 600 / 1400)
    assert r.item() == pytest.approx(math.log(600 / 1400), rel=1e-6)
