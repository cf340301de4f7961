"""The model-based trader: its filter against simulated hidden states, its plan against a closed form,
its fills against an independent computation, and no look-ahead."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from kpremia.core.registry import BASELINES
from kpremia.data.synthetic import SyntheticParams, generate_with_states
from kpremia.envs.config import EnvConfig
from kpremia.eval.backtest import run_baseline_backtest
from kpremia.eval.baselines import make_baselines
from kpremia.eval.model_based import ModelBased, model_options
from kpremia.eval.model_dp import Grid, plan
from kpremia.envs.action_schemes import BUY, HOLD, SELL
from kpremia.eval.premium_model import PremiumModel, sample_hours_kst
from kpremia.eval.regime_filter import run_filter

from .conftest import build_market

PARAMS = SyntheticParams(days=150)
SMALL_GRID = {"n_slow": 13, "n_fast": 9, "n_jump": 10}


@pytest.fixture(scope="module")
def draw():
    """A 150-day synthetic draw with calm and stress spells, its hidden parts, and the filter's output."""
    frame, states = generate_with_states(PARAMS, seed=3)
    times = frame.index.tz_convert(None).to_numpy()
    model = PremiumModel.from_synthetic(PARAMS)
    out = run_filter(model, frame["premium"].to_numpy(), sample_hours_kst(times, 15.0))
    return frame, states, model, out


def synthetic_market(frame, start: int, end: int, name: str):
    part = frame.iloc[start:end]
    return build_market(part["close"].to_numpy(), part["open"].to_numpy(), part["fx"].to_numpy(), name=name,
                        start=str(part.index[0].tz_convert(None)))


def test_filter_tracks_the_hidden_state(draw) -> None:
    _, states, _, out = draw
    stress = states["stress"]
    assert 0.05 < stress.mean() < 0.5  # both regimes occur in this draw
    said = out.p_stress[:, 0] > 0.5
    balanced = 0.5 * (said[stress].mean() + (~said[~stress]).mean())  # chance is 0.5 whatever the mix
    assert balanced > 0.85
    estimate = {"slow": out.mean_of("slow"), "fast": out.mean_of("fast"),
                "jumps": out.mean_of("jump") + out.mean_of("rise")}  # a jump: its settled level and its rise
    corr = {part: np.corrcoef(estimate[part][:, 0], states[part])[0, 1] for part in estimate}
    assert corr["slow"] > 0.9 and corr["jumps"] > 0.8
    assert corr["fast"] > 0.35  # the fast part is the hardest to separate bar by bar (~0.5 at best here)
    fast_err = out.mean_of("fast")[:, 0] - states["fast"]
    assert np.sqrt(np.mean(fast_err**2)) < states["fast"].std()  # better than guessing zero


def test_filter_is_causal(draw) -> None:
    frame, _, model, base = draw
    premium = frame["premium"].to_numpy()
    hours = sample_hours_kst(frame.index.tz_convert(None).to_numpy(), 15.0)
    rng = np.random.default_rng(0)
    for t in (100, 5_000):
        moved = premium.copy()
        moved[t + 1:] += rng.normal(0, 0.01, len(moved) - t - 1)
        out = run_filter(model, moved[: t + 200], hours[: t + 200])
        for part in ("p_regime", "slow", "fast", "jump", "rise"):
            np.testing.assert_array_equal(getattr(out, part)[: t + 1], getattr(base, part)[: t + 1])
        assert not np.allclose(out.slow[t + 1: t + 200], base.slow[t + 1: t + 200])


def test_decisions_do_not_look_ahead(draw) -> None:
    frame, _, model, _ = draw
    trader = ModelBased(EnvConfig(decision_every=16).execution, clock=EnvConfig(decision_every=16).clock,
                        synthetic=dataclasses.asdict(PARAMS), grid=SMALL_GRID)
    market = synthetic_market(frame, 0, 3_000, "test")
    trader.fit(dataclasses.replace(market, name="train"))
    base = trader.signals(market)
    assert {BUY, SELL} <= set(base.tolist())  # it trades, so the check below can fail
    rng = np.random.default_rng(1)
    for t in (700, 2_000):
        close = market.close.clone()
        close[t + 1:] *= torch.as_tensor(np.exp(rng.normal(0, 0.01, len(close) - t - 1)))
        moved = dataclasses.replace(market, close=close, open=close.clone(), premium=close / market.fx - 1)
        got = trader.signals(moved)
        assert torch.equal(got[: t + 1], base[: t + 1])
        assert not torch.equal(got[t + 1:], base[t + 1:])


def test_plan_without_costs_is_the_expected_premium_move() -> None:
    """With free fills the position after a step does not matter, so the advantage of holding USDT
    is the expected premium change over one step: a closed form per part."""
    model = PremiumModel.from_synthetic(SyntheticParams())
    grid = Grid.for_model(model, n_slow=11, n_fast=7, n_jump=8)
    got = plan(model, 16, 0.0, 0.0, grid=grid)
    n = 16
    s, f, j = np.meshgrid(grid.slow, grid.fast, grid.jump, indexing="ij")
    season = model.season(np.arange(24.0))
    for r in range(2):
        mu = model.mean[r]
        slow = (mu + model.phi_slow**n * (s - mu)) - s
        fast = (model.phi_fast**n - 1.0) * f
        arrive = 1.0 - (1.0 - model.jump_rate[r]) ** n
        drift = arrive * model.jump_mean[r] * (2 * model.jump_up_prob - 1) * model.jump_a_slow ** (n / 2)
        jump = (model.jump_a_slow**n - 1.0) * j + drift
        for h in (0, 6, 13):
            want = slow + fast + jump + season[(h + 4) % 24] - season[h]
            inner = (slice(1, -1),) * 3  # the grid's edges clamp the spread of a move
            np.testing.assert_allclose(got.advantage[h, r][inner], want[inner], atol=2e-5)


def test_plan_prefers_usdt_when_the_premium_is_low() -> None:
    model = PremiumModel.from_synthetic(SyntheticParams())
    got = plan(model, 16, 0.0012, 0.0012, grid=Grid.for_model(model, **SMALL_GRID))
    adv = got.advantage[:, 0]
    assert np.all(np.diff(adv, axis=1) < 0)  # higher slow level: less reason to hold USDT
    assert np.all(np.diff(adv, axis=2) < 0)  # higher fast part: the same


def test_fills_match_an_independent_computation(draw) -> None:
    """Its trades run through the env's execution rules: the value path is recomputed by hand."""
    frame, _, _, _ = draw
    env = EnvConfig(decision_every=16, fee_rate=0.001, spread_krw=0.5)
    trader = make_baselines(["model_based"], env, options={"model_based": {"synthetic": dataclasses.asdict(PARAMS),
                                                                            "grid": SMALL_GRID}})["model_based"]
    market = synthetic_market(frame, 2_000, 5_000, "test")
    trader.fit(dataclasses.replace(market, name="train"))
    actions = trader.actions(market).numpy()
    trace = run_baseline_backtest(trader, market, env)
    assert trace["traded"].sum() >= 4
    opens, closes = market.open.numpy(), market.close.numpy()
    krw, usdt, values = env.initial_krw, 0.0, []
    for t in range(market.n_bars - 1):  # the decision at close t fills at the open of t + 1
        if actions[t] == BUY and krw > 0:
            usdt, krw = krw * (1 - 0.001) / (opens[t + 1] + 0.25), 0.0
        elif actions[t] == SELL and usdt > 0:
            krw, usdt = usdt * (opens[t + 1] - 0.25) * (1 - 0.001), 0.0
        values.append(krw + usdt * closes[t + 1])
    assert trace["portfolio_value_krw"].iloc[-1] == pytest.approx(values[-1], rel=1e-9)
    assert (actions[np.arange(len(actions)) % 16 != 0] == HOLD).all()  # it decides on the run's clock


def test_fit_on_a_train_split_recovers_the_visible_parts() -> None:
    frame, _ = generate_with_states(SyntheticParams(days=120), seed=5)
    times = frame.index.tz_convert(None).to_numpy()
    fitted = PremiumModel.fit(frame["premium"].to_numpy(), times, 15.0)
    true = PremiumModel.from_synthetic(SyntheticParams())
    assert fitted.season_amp == pytest.approx(true.season_amp, rel=0.35)
    assert abs(fitted.season_peak_hour_kst - true.season_peak_hour_kst) < 1.5
    half_life = math.log(0.5) / math.log(fitted.phi_fast)
    assert 4 < half_life < 16  # the generator's is 8 bars
    assert fitted.fast_sd == pytest.approx(true.fast_sd, rel=0.5)


def test_registered_and_configured_from_the_manifest() -> None:
    assert "model_based" in BASELINES.names()
    assert model_options({"source": "synthetic", "params": {"days": 10}}) == {"model_based": {"synthetic": {"days": 10}}}
    assert model_options({"source": "csv"}) == {}
    with pytest.raises(ValueError, match="model_based model="):
        ModelBased(model="bogus")
    fitted = ModelBased(grid=SMALL_GRID)
    with pytest.raises(ValueError, match="train split"):
        fitted.fit(build_market(np.full(800, 1414.0), name="test"))


def test_a_synthetic_backtest_report_has_the_ceiling_row_with_the_generators_model(compose_cfg, tmp_path) -> None:
    """The default baselines include it; on the synthetic market the data manifest's parameters reach it."""
    from kpremia.run.rules_backtest import run_rules_backtest

    cfg = compose_cfg("data.days=60", "eval.plots=false", "env.decision_every=16")
    summary = run_rules_backtest(cfg, tmp_path / "run")
    assert {"premium_threshold", "oracle", "model_based"} <= set(summary["baselines"])
    params = summary["baseline_params"]["model_based"]
    assert params["model"] == "synthetic" and params["decision_every_bars"] == 16
    assert params["premium_model"]["fast_sd"] == SyntheticParams().fast_sd
