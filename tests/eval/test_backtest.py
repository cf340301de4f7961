"""Backtests through BatchedEnv: trace layout, replay equivalence, several seeds, ruin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kpremia.envs.config import EnvConfig
from kpremia.eval.backtest import (
    TRACE_COLUMNS,
    run_backtest,
    run_baseline_backtest,
    run_baseline_backtests,
    run_policy_backtest,
    trace_metrics,
)
from kpremia.eval.baselines import make_baselines
from kpremia.envs.action_schemes import BUY
from kpremia.eval.oracle import hindsight_oracle

from .conftest import build_market

RULES = dict(fee_rate=0.001, slippage_bps=2.0, spread_krw=0.0, action_scheme="hold_buy_sell")


def test_trace_layout(market) -> None:
    trace = run_backtest(market, torch.zeros(market.n_bars, dtype=torch.long), RULES)
    assert tuple(trace.columns) == TRACE_COLUMNS
    assert len(trace) == market.n_bars - market.valid_from
    assert trace["bar"].iloc[0] == market.valid_from and trace["bar"].iloc[-1] == market.n_bars - 1
    assert isinstance(trace["time"].dtype, pd.DatetimeTZDtype)
    assert trace["time"].iloc[0] == pd.Timestamp(market.times[market.valid_from], tz="UTC")
    first, last = trace.iloc[0], trace.iloc[-1]
    assert first["portfolio_value_krw"] == 1_000_000.0 and first["position"] == 0.0 and first["reward"] == 0.0
    assert pd.isna(last["action"]) and not trace["action"].iloc[:-1].isna().any()
    np.testing.assert_array_equal(trace["price"], market.close[market.valid_from:].numpy())


def test_buy_and_hold_by_hand() -> None:
    close = np.array([1400.0, 1410.0, 1405.0, 1420.0, 1430.0])
    open_ = np.array([1400.0, 1402.0, 1408.0, 1401.0, 1425.0])
    market = build_market(close, open_, valid_from=1)
    actions = torch.tensor([0, BUY, 0, 0, 0])
    trace = run_backtest(market, actions, dict(fee_rate=0.001, spread_krw=0.0, action_scheme="hold_buy_sell"))
    usdt = 1_000_000.0 * 0.999 / 1408.0  # decided at the close of bar 1, filled at the open of bar 2
    np.testing.assert_allclose(trace["portfolio_value_krw"], [1e6, usdt * 1405, usdt * 1420, usdt * 1430])
    assert trace["fill_price"].iloc[1] == 1408.0 and trace["traded"].tolist() == [False, True, False, False]
    assert trace["fee_krw"].iloc[1] == pytest.approx(1000.0)
    assert trace["action"].iloc[0] == BUY and trace["position"].iloc[-1] == 1.0
    np.testing.assert_allclose(trace["reward"].iloc[1:], np.diff(np.log(trace["portfolio_value_krw"])), rtol=1e-6)


def test_callable_and_sequence_give_the_same_trace(market) -> None:
    actions = torch.randint(0, 3, (market.n_bars,), generator=torch.Generator().manual_seed(0))
    seen = []

    def act(obs, info):
        seen.append(info)
        t = int(obs["price_bars"][0, 0])  # the conftest's obs tables hold the bar index
        return actions[t:t + 1]

    a = run_backtest(market, act, RULES)
    b = run_backtest(market, actions, RULES)
    pd.testing.assert_frame_equal(a, b)
    assert seen[0] == {} and "portfolio_value_krw" in seen[1]


def test_oracle_trace_metrics_match_the_oracle(market) -> None:
    oracle = hindsight_oracle(market, EnvConfig.of(RULES).execution)
    trace = run_backtest(market, oracle.actions, RULES)
    got = trace_metrics(trace)
    assert got["return"] == pytest.approx(oracle.total_return, rel=1e-10)
    assert got["n_trades"] == int((oracle.actions != 0).sum())
    assert got["hit_rate"] == 1.0  # hindsight never closes a losing round trip


def test_policy_backtest_one_trace_per_env(market) -> None:
    gen = torch.Generator().manual_seed(0)
    calls = []

    def policy(obs):
        calls.append(torch.is_inference_mode_enabled())
        return torch.randint(0, 3, (obs["account"].shape[0],), generator=gen)

    traces = run_policy_backtest(policy, market, RULES, n_envs=3)
    assert len(traces) == 3 and all(calls)
    assert all(len(t) == market.n_bars - market.valid_from for t in traces)
    assert traces[0]["portfolio_value_krw"].iloc[-1] != traces[1]["portfolio_value_krw"].iloc[-1]
    # each env is an independent account: replaying env 1's actions alone gives env 1's trace
    actions = torch.zeros(market.n_bars, dtype=torch.long)
    actions[market.valid_from:-1] = torch.as_tensor(traces[1]["action"].iloc[:-1].to_numpy(dtype=np.int64))
    pd.testing.assert_frame_equal(run_backtest(market, actions, RULES), traces[1])


def test_ruin_is_flagged_and_the_trace_covers_the_whole_split() -> None:
    # All in at 1400, then the price collapses: value 1,000,000 -> 714,286 -> 428,571 (< 500,000 = ruin) ...
    close = np.array([1400.0, 1400.0, 1000.0, 600.0, 500.0, 450.0, 700.0])
    market = build_market(close, valid_from=0)
    actions = torch.tensor([BUY, 0, 0, 0, 0, 0, 0])
    trace = run_backtest(market, actions, dict(fee_rate=0.0, spread_krw=0.0, action_scheme="hold_buy_sell", ruin_fraction=0.5))
    assert len(trace) == market.n_bars  # not cut at the ruin: every row of a table covers the same period
    units = 1_000_000.0 / 1400.0
    np.testing.assert_allclose(trace["portfolio_value_krw"].to_numpy()[1:], units * close[1:])
    assert trace["ruined"].tolist() == [False, False, False, True, True, True, True]  # from the first close < 500k on
    metrics = trace_metrics(trace)
    assert metrics["ruined"] == 1.0
    assert metrics["max_drawdown"] == pytest.approx(1.0 - 450.0 / 1400.0)  # the low, though it recovered after
    assert metrics["return"] == pytest.approx(700.0 / 1400.0 - 1.0)


def test_a_ruined_policy_trace_runs_to_the_end(market) -> None:
    # A policy that churns with a 5 % fee is ruined early; its trace still has every bar.
    rules = dict(fee_rate=0.05, spread_krw=0.0, action_scheme="hold_buy_sell", ruin_fraction=0.5)
    flip = {"k": 0}

    def act(obs):
        flip["k"] += 1
        return torch.full((obs["account"].shape[0],), 1 + flip["k"] % 2, dtype=torch.long)

    traces = run_policy_backtest(act, market, rules, n_envs=2)
    for trace in traces:
        assert len(trace) == market.n_bars - market.valid_from
        assert trace["ruined"].iloc[-1] and trace_metrics(trace)["ruined"] == 1.0
        assert trace["traded"].iloc[-1]  # still trading on the last bar


def test_sequence_length_is_checked(market) -> None:
    with pytest.raises(ValueError, match="one action per bar"):
        run_backtest(market, torch.zeros(3, dtype=torch.long), RULES)


def test_baselines_played_together_equal_one_by_one(market) -> None:
    rules = EnvConfig.from_dict(dict(fee_rate=0.001, slippage_bps=2.0, min_order_krw=5000.0, action_scheme="signal"))
    baselines = make_baselines(["cash", "buy_and_hold", "random", "oracle"], rules, seed=1)
    together = run_baseline_backtests(baselines, market, rules)
    assert list(together) == list(baselines)
    for name, baseline in baselines.items():
        pd.testing.assert_frame_equal(together[name], run_baseline_backtest(baseline, market, rules))
