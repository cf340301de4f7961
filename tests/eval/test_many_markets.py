"""Many markets in one simulator: the traces equal those of each market played alone.

Validation over several market draws and ``test`` over many unseen markets stack the markets
(:func:`kpremia.data.tensors.concat_markets`) and start one env per market at its own rows
(``BatchedEnv(starts=...)``); a wrong offset, a row read from the neighbouring market or a
trace built from the wrong market's bars shows here as a frame that differs.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from kpremia.core.errors import UserError
from kpremia.data.tensors import concat_markets
from kpremia.envs.batched import BatchedEnv
from kpremia.envs.config import EnvConfig
from kpremia.eval.backtest import (
    run_baseline_backtests,
    run_baseline_backtests_on_markets,
    run_policy_backtest,
    run_policy_backtests,
)
from kpremia.eval.baselines import make_baselines

from .conftest import build_market, premium_market

RULES = dict(fee_rate=0.001, slippage_bps=2.0, spread_krw=0.5, action_scheme="hold_buy_sell")


def row_policy(obs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Buy, sell or hold from the row's own observation (its bar index) and account: one row, one decision."""
    bar = obs["price_bars"][:, -1].round().long()
    holding = obs["account"][:, 1] > 0.5
    return torch.where(bar % 7 < 3, torch.ones_like(bar), torch.where(holding, 2, 0))


def markets() -> list:
    # different prices, starts (valid_from) and dates; the last one is longer (its own group)
    return [premium_market(400, seed=1, valid_from=5, name="a"),
            premium_market(400, seed=2, valid_from=9, name="b", start="2025-01-01T00:00"),
            premium_market(404, seed=3, valid_from=5, name="c"),
            premium_market(530, seed=4, valid_from=3, name="d")]


@pytest.mark.parametrize("decision_every", [1, 4])
def test_policy_traces_side_by_side_equal_one_market_at_a_time(decision_every: int) -> None:
    env = {**RULES, "decision_every": decision_every}
    played = markets()
    together = run_policy_backtests(row_policy, played, env)
    assert len(together) == len(played)
    for market, trace in zip(played, together, strict=True):
        alone = run_policy_backtest(row_policy, market, env)[0]
        pd.testing.assert_frame_equal(trace, alone)
        assert trace["traded"].sum() > 3  # the policy trades: fills are part of what is compared


def test_baseline_traces_side_by_side_equal_one_market_at_a_time() -> None:
    played = markets()
    rules = EnvConfig.from_dict(RULES)
    shared = make_baselines(["buy_and_hold", "premium_threshold", "random"], rules, seed=2)
    for baseline in shared.values():
        baseline.fit(premium_market(600, seed=9, name="train"))
    own = []  # each market's rules fit on its own train split (as `test` fits each draw's)
    for i, _ in enumerate(played):
        fitted = make_baselines(["premium_threshold", "oracle"], rules, seed=3)
        for baseline in fitted.values():
            baseline.fit(premium_market(600, seed=10 + i, name="train"))
        own.append(fitted)
    for baselines, together in ((shared, run_baseline_backtests_on_markets(shared, played, rules)),
                                (own, run_baseline_backtests_on_markets(own, played, rules))):
        for i, market in enumerate(played):
            expected = run_baseline_backtests(baselines if isinstance(baselines, dict) else baselines[i], market,
                                              rules)
            assert list(together[i]) == list(expected)
            for name in expected:
                pd.testing.assert_frame_equal(together[i][name], expected[name])


def test_one_set_of_baselines_per_market_is_checked() -> None:
    with pytest.raises(ValueError, match="2 sets of baselines for 4 markets"):
        run_baseline_backtests_on_markets([{}, {}], markets(), RULES)


def test_concat_markets_keeps_each_market_at_its_offset() -> None:
    played = markets()
    stacked, offsets = concat_markets(played)
    assert offsets == [0, 400, 800, 1204] and stacked.n_bars == 1734
    for market, offset in zip(played, offsets, strict=True):
        rows = slice(offset, offset + market.n_bars)
        assert torch.equal(stacked.close[rows], market.close)
        assert torch.equal(stacked.obs["features"][rows], market.obs["features"])
        assert (stacked.times[rows] == market.times).all()


def test_concat_markets_refuses_different_layouts() -> None:
    a = build_market([1400.0] * 50)
    b = build_market([1400.0] * 50)
    b.obs["features"] = b.obs["features"][:, :2]
    with pytest.raises(ValueError, match="same env windows and features"):
        concat_markets([a, b])
    with pytest.raises(ValueError, match="at least one market"):
        concat_markets([])


def test_starts_are_for_sequential_envs_and_must_be_in_range() -> None:
    market = premium_market(100)
    with pytest.raises(UserError, match="random_start=False"):
        BatchedEnv(market, 2, starts=[5, 6])
    with pytest.raises(UserError, match=r"needs 2 bars in \[0, 98\]"):
        BatchedEnv(market, 2, random_start=False, starts=[5, 99])
    env = BatchedEnv(market, 2, random_start=False, starts=[5, 40], max_steps=None)
    obs = env.reset()
    assert env.t.tolist() == [5, 40]
    assert obs["price_bars"][:, 0].tolist() == [5.0, 40.0]  # the obs tables hold the bar index
