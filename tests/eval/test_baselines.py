"""Baselines: registry, action format, and the threshold fit seeing the train split only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kpremia.core.registry import BASELINES
from kpremia.envs.clock import DecisionClock
from kpremia.envs.config import EnvConfig
from kpremia.envs.execution import ExecutionRules
from kpremia.eval.backtest import run_baseline_backtest, trace_metrics
from kpremia.eval.baselines import PremiumThreshold, PremiumZScore, make_baselines, rolling_zscore
from kpremia.envs.action_schemes import BUY, HOLD, SELL
from kpremia.eval.oracle import hindsight_oracle

from .conftest import premium_market

ENV = EnvConfig.from_dict(dict(fee_rate=0.0005, slippage_bps=1.0, tick_size_krw=0.5, spread_krw=0.0))
RULES = ENV.execution


def test_registry_has_every_baseline() -> None:
    assert {"cash", "buy_and_hold", "random", "premium_threshold", "oracle"} <= set(BASELINES.names())


def test_actions_are_hold_buy_sell_per_bar(market) -> None:
    train = premium_market(800, 5, name="train")
    for name, baseline in make_baselines(BASELINES.names(), ENV, seed=3).items():
        baseline.fit(train)
        actions = baseline.actions(market)
        assert actions.dtype == torch.long and actions.shape == (market.n_bars,), name
        assert set(actions.unique().tolist()) <= {HOLD, BUY, SELL}, name


def test_cash_and_buy_and_hold(market) -> None:
    train = premium_market(300, 1, name="train")
    cash, bah = BASELINES.get("cash")(), BASELINES.get("buy_and_hold")()
    cash.fit(train)
    bah.fit(train)
    assert (cash.actions(market) == HOLD).all()
    acts = bah.actions(market)
    assert acts[market.valid_from] == BUY and int((acts != HOLD).sum()) == 1
    assert trace_metrics(run_baseline_backtest(cash, market, ENV))["return"] == 0.0
    bah_trace = run_baseline_backtest(bah, market, ENV)
    assert bah_trace["traded"].sum() == 1 and bah_trace["position"].iloc[-1] == 1.0


def test_random_is_seeded(market) -> None:
    a = BASELINES.get("random")(seed=1).actions(market)
    assert torch.equal(a, BASELINES.get("random")(seed=1).actions(market))
    assert not torch.equal(a, BASELINES.get("random")(seed=2).actions(market))
    assert (BASELINES.get("random")(seed=1, trade_prob=0.0).actions(market) == HOLD).all()


def test_oracle_baseline_reaches_the_oracle_value(market) -> None:
    oracle = BASELINES.get("oracle")(RULES)
    trace = run_baseline_backtest(oracle, market, ENV)
    want = hindsight_oracle(market, RULES)
    assert trace["portfolio_value_krw"].iloc[-1] == pytest.approx(want.final_value_krw, rel=1e-10)


@pytest.mark.parametrize("name", ["cash", "buy_and_hold", "random", "premium_threshold", "premium_zscore", "model_based",
                                  "oracle"])
def test_fit_refuses_any_split_but_train(name: str) -> None:
    baseline = BASELINES.get(name)()
    for split in ("val", "test", ""):
        with pytest.raises(ValueError, match="train split only"):
            baseline.fit(premium_market(200, 0, name=split))


@pytest.mark.parametrize("method", ["grid", "quantile"])
def test_threshold_fit_depends_on_train_only(method: str) -> None:
    """Thresholds are plain numbers fit on train; whatever val/test hold cannot change them."""
    train = premium_market(1500, 7, name="train")
    fitted = []
    for seed in (1, 2):  # two different futures
        baseline = PremiumThreshold(RULES, method=method)
        baseline.fit(train)
        test = premium_market(400, seed, name="test")
        acts = baseline.actions(test)
        fitted.append((baseline.buy_threshold, baseline.sell_threshold))
        # acting on test does not refit
        assert (baseline.buy_threshold, baseline.sell_threshold) == fitted[-1]
        # actions are causal: bar t's action uses the premium at the close of t only
        cut = 200
        perturbed = premium_market(400, seed, name="test")
        perturbed.premium[cut + 1:] += 0.05
        assert torch.equal(baseline.actions(perturbed)[: cut + 1], acts[: cut + 1])
    assert fitted[0] == fitted[1]
    buy, sell = fitted[0]
    lo, hi = float(train.premium.min()), float(train.premium.max())
    assert lo <= buy < sell <= hi


def test_threshold_train_return_matches_the_env_backtest() -> None:
    """The grid's fast evaluation agrees with BatchedEnv on the train split (no minimum order)."""
    train = premium_market(1500, 7, name="train")
    baseline = PremiumThreshold(RULES)
    baseline.fit(train)
    assert baseline.train_return > 0
    trace = run_baseline_backtest(baseline, train, ENV)
    assert trace_metrics(trace)["return"] == pytest.approx(baseline.train_return, rel=1e-9)
    assert trace["traded"].sum() >= 2


def test_threshold_holds_cash_when_nothing_beats_it() -> None:
    train = premium_market(400, 3, name="train")
    baseline = PremiumThreshold(ExecutionRules(fee_rate=0.09))  # fees eat every reversion
    baseline.fit(train)
    assert baseline.buy_threshold == -math.inf and baseline.sell_threshold == math.inf
    assert (baseline.actions(train) == HOLD).all()


def test_threshold_actions_before_fit_is_an_error(market) -> None:
    with pytest.raises(RuntimeError, match="before fit"):
        PremiumThreshold().actions(market)


def test_threshold_fit_through_the_data_pipeline_ignores_val_and_test() -> None:
    """End to end: rewrite everything after the train split; the fitted thresholds do not move."""
    from kpremia.data.market import build_market
    from kpremia.data.synthetic import SyntheticSource

    frame, _ = SyntheticSource(seed=4, days=40).load()
    split = {"train_frac": 0.6, "val_frac": 0.2}
    cut = int(len(frame) * 0.6)
    other = frame.copy()
    shock = 1.0 + 0.05 * np.sin(np.arange(len(frame) - cut) / 7.0)  # a different val/test future
    other.iloc[cut:, other.columns.get_indexer(["open", "high", "low", "close"])] *= shock[:, None]
    other["premium"] = other["close"] / other["fx"] - 1
    fitted = []
    for f in (frame, other):
        data = build_market(f, split, splits=("train", "val", "test"))
        assert data.tensors["train"].n_bars <= cut
        baseline = PremiumThreshold(RULES)
        baseline.fit(data.tensors["train"])
        fitted.append((baseline.buy_threshold, baseline.sell_threshold))
        with pytest.raises(ValueError, match="train split only"):
            baseline.fit(data.tensors["test"])
    assert fitted[0] == fitted[1]


ZENV = EnvConfig.from_dict(dict(fee_rate=0.001, slippage_bps=2.0, spread_krw=0.5))
ZRULES = ZENV.execution


def test_zscore_fit_depends_on_train_only_and_acts_causally() -> None:
    """Window and z levels are fit on train; val/test cannot move them; bar t's action uses bars <= t."""
    train = premium_market(3000, 7, name="train")
    fitted = []
    for seed in (1, 2):
        baseline = PremiumZScore(ZRULES, windows=(48, 96, 192))
        baseline.fit(train)
        test = premium_market(600, seed, name="test")
        acts = baseline.actions(test)
        fitted.append(baseline.params())
        assert baseline.params() == fitted[-1]  # acting does not refit
        assert (acts[: baseline.window - 1] == HOLD).all()  # no order until the window is full
        cut = 300
        perturbed = premium_market(600, seed, name="test")
        perturbed.premium[cut + 1:] += 0.05
        assert torch.equal(baseline.actions(perturbed)[: cut + 1], acts[: cut + 1])
    assert fitted[0] == fitted[1]
    assert fitted[0]["window_bars"] in (48, 96, 192) and fitted[0]["train_return"] > 0


def test_zscore_is_the_rolling_zscore_by_hand() -> None:
    premium = torch.tensor([0.01, 0.02, 0.03, 0.0, 0.05], dtype=torch.float64)
    z = rolling_zscore(premium, 3)
    window = np.array([0.03, 0.0, 0.05])
    assert np.isnan(z[:2]).all()
    assert z[4] == pytest.approx((0.05 - window.mean()) / window.std())


def test_zscore_train_return_matches_the_env_backtest() -> None:
    train = premium_market(3000, 7, name="train")
    baseline = PremiumZScore(ZRULES, windows=(48, 96))
    baseline.fit(train)
    trace = run_baseline_backtest(baseline, train, ZENV)
    assert trace_metrics(trace)["return"] == pytest.approx(baseline.train_return, rel=1e-9)
    assert trace["traded"].sum() >= 2


@pytest.mark.parametrize("cls", [PremiumThreshold, PremiumZScore])
def test_band_rules_fit_through_the_data_pipeline_ignore_val_and_test(cls) -> None:
    """End to end through the data layer: rewrite val/test; the chosen levels do not move."""
    from kpremia.data.market import build_market
    from kpremia.data.synthetic import SyntheticSource

    frame, _ = SyntheticSource(seed=4, days=40).load()
    split = {"train_frac": 0.6, "val_frac": 0.2}
    cut = int(len(frame) * 0.6)
    other = frame.copy()
    shock = 1.0 + 0.05 * np.sin(np.arange(len(frame) - cut) / 7.0)
    other.iloc[cut:, other.columns.get_indexer(["open", "high", "low", "close"])] *= shock[:, None]
    other["premium"] = other["close"] / other["fx"] - 1
    chosen = []
    for f in (frame, other):
        data = build_market(f, split, splits=("train", "val", "test"))
        baseline = cls(ZRULES)
        baseline.fit(data.tensors["train"])
        chosen.append(baseline.params())
        with pytest.raises(ValueError, match="train split only"):
            baseline.fit(data.tensors["val"])
    assert chosen[0] == chosen[1]


@pytest.mark.parametrize("cadence", [4, 16])
def test_band_rules_at_a_cadence_match_the_env_backtest(cadence) -> None:
    """A rule deciding every c bars: its fast train evaluation equals the env's backtest of its actions,
    which trade only on the decision bars a policy with env.decision_every=c acts on."""
    train = premium_market(3000, 7, name="train")
    clock = DecisionClock(decision_every=cadence)
    for baseline in (PremiumThreshold(RULES, clock=clock, cadences=[cadence]),
                     PremiumZScore(ZRULES, clock=clock, windows=(48, 96), cadences=[cadence])):
        baseline.fit(train)
        assert baseline.params()["decision_every_bars"] == cadence
        actions = baseline.actions(train)
        off = (torch.arange(train.n_bars) - train.valid_from) % cadence != 0
        assert (actions[off] == HOLD).all() and (actions[~off] != HOLD).any()
        env = ENV if isinstance(baseline, PremiumThreshold) else ZENV
        trace = run_baseline_backtest(baseline, train, env)
        assert trace_metrics(trace)["return"] == pytest.approx(baseline.train_return, rel=1e-9)
        assert trace["traded"].sum() >= 2


def test_band_rules_tune_their_cadence_on_train() -> None:
    """By default a rule tries every bar and the run's decision interval, and keeps the better on train."""
    train = premium_market(3000, 7, name="train")
    tuned = PremiumThreshold(RULES, clock=DecisionClock(decision_every=16))
    assert tuned.cadences == (1, 16)
    tuned.fit(train)
    alone = {}
    for c in (1, 16):
        b = PremiumThreshold(RULES, clock=DecisionClock(decision_every=c), cadences=[c])
        b.fit(train)
        alone[c] = b.train_return
    assert tuned.train_return == pytest.approx(max(alone.values()), rel=1e-12)
    assert tuned.cadence == max(alone, key=alone.get)
    # The run's env config carries its decision clock into every baseline.
    built = make_baselines(["premium_threshold", "premium_zscore"], EnvConfig.from_dict({**ENV.to_dict(),
                                                                                          "decision_every": 16}))
    assert all(b.cadences == (1, 16) for b in built.values())
