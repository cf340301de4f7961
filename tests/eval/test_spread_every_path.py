"""The bid/ask spread: every fill pays half of it, exactly once, on every path.

The policy (BatchedEnv), the baselines (played through the env), the band
rule's fast train evaluation and the hindsight oracle all price fills through
:mod:`kpremia.envs.execution`; these tests pin the cost of a known sequence of
fills on a flat market to the hand-computed number on each path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kpremia.envs.execution import ExecutionRules
from kpremia.eval.backtest import run_backtest, run_baseline_backtest, run_policy_backtest, trace_metrics
from kpremia.eval.baselines import PremiumThreshold, _signal_log_returns
from kpremia.envs.action_schemes import BUY, SELL
from kpremia.eval.oracle import fill_factors, hindsight_oracle

from .conftest import build_market

P, FEE, SPREAD = 1400.0, 0.001, 0.5
HALF = SPREAD / 2
RULES = dict(fee_rate=FEE, spread_krw=SPREAD, action_scheme="hold_buy_sell")
# One buy then one sell at a constant 1,400 KRW: the ask is 1,400.25, the bid 1,399.75.
ROUND_TRIP = 1_000_000.0 * (1 - FEE) / (P + HALF) * (P - HALF) * (1 - FEE)


def flat(n: int = 8, name: str = "test"):
    return build_market(np.full(n, P), valid_from=0, name=name)


def test_env_round_trip_pays_one_half_spread_per_fill() -> None:
    market = flat()
    actions = torch.tensor([BUY, 0, SELL, 0, 0, 0, 0, 0])
    trace = run_backtest(market, actions, RULES)
    assert trace["traded"].sum() == 2
    assert trace["fill_price"].dropna().tolist() == [P + HALF, P - HALF]
    # marked at the 1,400 mid while holding: the buy's cost shows at once
    assert trace["portfolio_value_krw"].iloc[1] == pytest.approx(1_000_000.0 * (1 - FEE) / (P + HALF) * P)
    assert trace["portfolio_value_krw"].iloc[-1] == pytest.approx(ROUND_TRIP, rel=1e-14)
    # repeated orders on the same side are no fills: no spread paid again
    again = run_backtest(market, torch.tensor([BUY, BUY, BUY, SELL, SELL, 0, 0, 0]), RULES)
    assert again["portfolio_value_krw"].iloc[-1] == pytest.approx(ROUND_TRIP, rel=1e-14)


def test_spread_in_bps_is_a_fraction_of_the_price() -> None:
    market = flat()
    trace = run_backtest(market, torch.tensor([BUY, 0, SELL, 0, 0, 0, 0, 0]),
                         dict(fee_rate=0.0, spread_krw=0.0, spread_bps=10.0, action_scheme="hold_buy_sell"))
    half = P * 5e-4
    assert trace["fill_price"].dropna().tolist() == pytest.approx([P + half, P - half])


def test_policy_backtest_pays_the_same_as_an_action_sequence() -> None:
    market = flat()
    plan = [BUY, 0, SELL, 0, 0, 0, 0]
    step = {"k": 0}

    def act(obs):
        a = plan[step["k"]]
        step["k"] += 1
        return torch.tensor([a])

    trace = run_policy_backtest(act, market, RULES)[0]
    assert trace["portfolio_value_krw"].iloc[-1] == pytest.approx(ROUND_TRIP, rel=1e-14)


def test_baseline_and_its_fast_train_evaluation_pay_the_spread() -> None:
    # premium 0 -> buy, premium high -> sell: a band rule with fixed levels fills twice.
    fx = np.full(8, P)
    close = np.full(8, P)
    close[3:] = P * 1.01  # premium +1 % from bar 3: the band rule sells at the open of bar 4
    market = build_market(close, fx=fx, valid_from=0, name="train")
    rule = PremiumThreshold(ExecutionRules(fee_rate=FEE, spread_krw=SPREAD))
    rule.buy_threshold, rule.sell_threshold, rule.train_return = 0.0, 0.005, None
    trace = run_baseline_backtest(rule, market, RULES)
    sell_px = P * 1.01 - HALF
    expected = 1_000_000.0 * (1 - FEE) / (P + HALF) * sell_px * (1 - FEE)
    assert trace["fill_price"].dropna().tolist() == pytest.approx([P + HALF, sell_px])
    assert trace["portfolio_value_krw"].iloc[-1] == pytest.approx(expected, rel=1e-12)
    premium = market.premium.numpy()[:-1]
    signal = np.where(premium <= 0.0, 1, np.where(premium >= 0.005, 0, -1))
    fast = _signal_log_returns(market, [signal], rule.rules)[0]
    assert np.expm1(fast) == pytest.approx(expected / 1_000_000.0 - 1.0, rel=1e-9)


def test_oracle_pays_the_spread_on_each_fill() -> None:
    buy, sell, sell_px = fill_factors(torch.full((3,), P, dtype=torch.float64), ExecutionRules(fee_rate=FEE, spread_krw=SPREAD))
    assert buy.tolist() == pytest.approx([(1 - FEE) / (P + HALF)] * 3, rel=1e-15)
    assert sell.tolist() == pytest.approx([(P - HALF) * (1 - FEE)] * 3, rel=1e-15)
    assert sell_px.tolist() == [P - HALF] * 3
    # one profitable move: the oracle buys once, sells once, and pays two half-spreads
    close = np.array([P, P, P, P * 1.02, P * 1.02, P * 1.02])
    market = build_market(close, valid_from=0)
    result = hindsight_oracle(market, ExecutionRules(fee_rate=FEE, spread_krw=SPREAD))
    trace = run_backtest(market, result.actions, RULES)
    assert trace["traded"].sum() == 1  # buys before the jump, holds to the end (selling would only cost)
    assert result.final_value_krw == pytest.approx(trace["portfolio_value_krw"].iloc[-1], rel=1e-12)
    assert result.final_value_krw == pytest.approx(1_000_000.0 * (1 - FEE) / (P + HALF) * P * 1.02, rel=1e-12)
    # without the spread the oracle would be worth more: the spread is not free anywhere
    assert hindsight_oracle(market, ExecutionRules(fee_rate=FEE, spread_krw=0.0)).final_value_krw > result.final_value_krw
    assert trace_metrics(trace)["n_trades"] == 1
