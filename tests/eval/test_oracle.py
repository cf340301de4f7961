"""The hindsight oracle against brute force over every action sequence, through the env."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kpremia.envs.batched import BatchedEnv
from kpremia.envs.execution import ExecutionRules
from kpremia.envs.action_schemes import BUY, SELL
from kpremia.eval.oracle import hindsight_oracle

from .conftest import build_market, premium_market


def brute_force_best(market, n_steps: int, rules: ExecutionRules, initial_krw: float = 1e6) -> float:
    """Best final value over all 2^n_steps buy/sell sequences, each simulated by BatchedEnv.

    Env ``i`` buys at step ``k`` when bit ``k`` of ``i`` is set and sells otherwise;
    a buy when all-in or a sell when all-out is no trade, so this covers every
    reachable path (holding is the same as re-asking for the current position).
    """
    n = 2 ** n_steps
    env = BatchedEnv(market, n, rules=rules, initial_krw=initial_krw, max_steps=None, random_start=False,
                     action_scheme="hold_buy_sell", ruin_fraction=0.0)
    env.reset()
    idx = torch.arange(n)
    final = None
    for k in range(n_steps):
        actions = torch.where((idx >> k) & 1 == 1, torch.tensor(BUY), torch.tensor(SELL))
        _obs, _r, _term, trunc, info = env.step(actions)
        final = info["portfolio_value_krw"]
    assert bool(trunc.all())  # the whole split was played
    return float(final.max())


def replay(market, actions: torch.Tensor, rules: ExecutionRules, initial_krw: float = 1e6) -> np.ndarray:
    """Values at each close when the oracle's actions are played through the env."""
    env = BatchedEnv(market, 1, rules=rules, initial_krw=initial_krw, max_steps=None, random_start=False,
                     action_scheme="hold_buy_sell", ruin_fraction=0.0)
    env.reset()
    values = [env.initial_krw]
    for t in range(market.valid_from, market.n_bars - 1):
        _obs, _r, _term, _trunc, info = env.step(actions[t:t + 1])
        values.append(float(info["portfolio_value_krw"][0]))
    return np.array(values)


RULES = [  # (execution rules, initial cash)
    (ExecutionRules(fee_rate=0.0, spread_krw=0.0), 1e6),
    (ExecutionRules(fee_rate=0.001, slippage_bps=5.0, spread_krw=0.0), 1e6),
    (ExecutionRules(fee_rate=0.0005, slippage_bps=3.0, tick_size_krw=0.5), 1e6),
    (ExecutionRules(fee_rate=0.003, slippage_bps=10.0, spread_krw=2.0), 1e6),
    # a minimum order that binds: losses take the account under it
    (ExecutionRules(fee_rate=0.001, slippage_bps=20.0, min_order_krw=5000.0), 5100.0),
]


@pytest.mark.parametrize("rules, initial_krw", RULES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oracle_equals_brute_force_over_all_sequences(rules: ExecutionRules, initial_krw: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_steps = 8
    close = 1400 * np.exp(np.cumsum(rng.normal(0, 0.01, n_steps + 1)))
    open_ = np.concatenate([[close[0]], close[:-1]]) * np.exp(rng.normal(0, 0.004, n_steps + 1))
    market = build_market(close, open_, valid_from=0)
    oracle = hindsight_oracle(market, rules, initial_krw=initial_krw)
    best = brute_force_best(market, n_steps, rules, initial_krw)
    assert oracle.final_value_krw == pytest.approx(best, rel=1e-12)
    # The oracle's own action sequence reaches that value through the env, bar by bar.
    np.testing.assert_allclose(replay(market, oracle.actions, rules, initial_krw), oracle.values_krw.numpy(),
                               rtol=1e-12)


def test_oracle_starts_at_valid_from_and_beats_cash_and_buy_and_hold() -> None:
    rules = ExecutionRules(fee_rate=0.001, slippage_bps=2.0, tick_size_krw=0.5)
    for seed in range(3):
        market = premium_market(400, seed, valid_from=7)
        oracle = hindsight_oracle(market, rules)
        assert torch.isnan(oracle.values_krw[:7]).all() and oracle.values_krw[7] == 1_000_000.0
        buy_hold = np.zeros(market.n_bars, dtype=np.int64)
        buy_hold[7] = BUY
        bh_final = replay(market, torch.as_tensor(buy_hold), rules)[-1]
        assert oracle.final_value_krw >= 1_000_000.0  # cash
        assert oracle.final_value_krw >= bh_final
        assert oracle.total_return > 0.05  # a noisy premium leaves a lot on the table
        values = replay(market, oracle.actions, rules)
        np.testing.assert_allclose(values, oracle.values_krw[7:].numpy(), rtol=1e-10)


def test_oracle_never_trades_when_fees_eat_every_move() -> None:
    close = np.array([1400.0, 1401.0, 1399.0, 1400.5, 1400.0])
    oracle = hindsight_oracle(build_market(close), ExecutionRules(fee_rate=0.01))
    assert oracle.final_value_krw == 1_000_000.0
    assert (oracle.actions == 0).all() and (oracle.positions == 0).all()


def test_oracle_takes_the_env_configs_execution_rules() -> None:
    """The oracle prices fills with the rules object the env config hands every part (no loose keywords)."""
    from kpremia.envs.config import EnvConfig

    market = build_market(np.array([1400.0, 1410.0, 1420.0, 1390.0, 1450.0]))
    env = EnvConfig.from_dict({"fee_rate": 0.0005, "spread_krw": 1.0, "turnover_penalty": 0.1})
    assert hindsight_oracle(market, env.execution).final_value_krw == hindsight_oracle(
        market, ExecutionRules(fee_rate=0.0005, spread_krw=1.0)).final_value_krw
    with pytest.raises(TypeError):
        hindsight_oracle(market, fee_rate=0.001)  # the keywords of before: refused