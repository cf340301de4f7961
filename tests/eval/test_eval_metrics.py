"""Each metric against an independent NumPy reference on random paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kpremia.eval import formulas
from kpremia.eval.metrics import (
    FeesPaid,
    HitRate,
    MaxDrawdown,
    NumTrades,
    PortfolioMetrics,
    SharpeRatio,
    SortinoRatio,
    TotalReturn,
    Turnover,
    compute_metrics,
)

BAR_MINUTES = 15


def random_path(rng: np.random.Generator, t_len: int = 400) -> dict[str, np.ndarray]:
    """A random all-in/all-out trading path: weights in {0, 1}, fills where they change."""
    weight = (rng.random(t_len) < 0.5).astype(float)
    weight = np.repeat(weight[: t_len // 5], 5)[:t_len]  # hold positions a few bars
    weight[0] = 0.0
    traded = np.zeros(t_len, dtype=bool)
    traded[1:] = weight[1:] != weight[:-1]
    log_ret = rng.normal(0, 0.01, t_len) * (0.2 + weight)
    log_ret[0] = 0.0
    values = 1e6 * np.exp(np.cumsum(log_ret))
    fees = np.where(traded, 0.001 * values, 0.0)
    return {"values_krw": values, "usdt_weight": weight, "traded": traded, "fees_krw": fees}


def reference(p: dict[str, np.ndarray], bar_minutes: float = BAR_MINUTES) -> dict[str, float]:
    """Plain NumPy, loops where the definition is a loop."""
    v, w, tr, fee = p["values_krw"], p["usdt_weight"], p["traded"], p["fees_krw"]
    ppy = 365 * 24 * 60 / bar_minutes
    r = v[1:] / v[:-1] - 1
    sd = np.std(r, ddof=1)
    down = math.sqrt(np.mean(np.minimum(r, 0) ** 2))
    peak, mdd = -np.inf, 0.0
    for x in v:
        peak = max(peak, x)
        mdd = max(mdd, 1 - x / peak)
    wins = trips = 0
    entry = None
    for t in range(1, len(v)):
        if w[t] > 1e-6 and w[t - 1] <= 1e-6:
            entry = v[t - 1]
        elif w[t] <= 1e-6 and w[t - 1] > 1e-6 and entry is not None:
            trips += 1
            wins += v[t] > entry
            entry = None
    return {
        "return": v[-1] / v[0] - 1,
        "sharpe": np.mean(r) / sd * math.sqrt(ppy) if sd > 0 else 0.0,
        "sortino": np.mean(r) / down * math.sqrt(ppy) if down > 0 else 0.0,
        "max_drawdown": mdd,
        "turnover": float(sum(abs(w[t] - w[t - 1]) for t in range(1, len(v)) if tr[t])),
        "hit_rate": wins / trips if trips else 0.0,
        "n_trades": float(tr[1:].sum()),
        "fees_krw": float(fee[1:].sum()),
        "round_trips": float(trips),
    }


def as_torch(p: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.asarray(v)) for k, v in p.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compute_metrics_matches_numpy(seed: int) -> None:
    p = random_path(np.random.default_rng(seed))
    got = compute_metrics(**as_torch(p), bar_minutes=BAR_MINUTES)
    want = reference(p)
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key
    assert want["round_trips"] > 0  # the hit rate was really exercised


def test_single_metric_classes_match_numpy() -> None:
    rng = np.random.default_rng(7)
    paths = [random_path(rng) for _ in range(3)]
    classes = {"return": TotalReturn, "sharpe": SharpeRatio, "sortino": SortinoRatio,
               "max_drawdown": MaxDrawdown, "turnover": Turnover, "n_trades": NumTrades, "fees_krw": FeesPaid}
    refs = [reference(p) for p in paths]
    for key, cls in classes.items():
        metric = cls(bar_minutes=BAR_MINUTES)
        for p in paths:
            metric.update(**as_torch(p))
        assert float(metric.compute()) == pytest.approx(np.mean([r[key] for r in refs]), rel=1e-9), key
    hit = HitRate()
    for p in paths:
        hit.update(**as_torch(p))
    wins = sum(r["hit_rate"] * r["round_trips"] for r in refs)
    assert float(hit.compute()) == pytest.approx(wins / sum(r["round_trips"] for r in refs), rel=1e-9)


def test_batched_update_equals_one_path_at_a_time() -> None:
    rng = np.random.default_rng(3)
    paths = [random_path(rng) for _ in range(4)]
    batched = PortfolioMetrics()
    batched.update(**{k: torch.stack([as_torch(p)[k] for p in paths]) for k in paths[0]})
    one_by_one = PortfolioMetrics()
    for p in paths:
        one_by_one.update(**as_torch(p))
    a, b = batched.compute(), one_by_one.compute()
    for key in a:
        assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-12), key
    assert float(a["sharpe"]) == pytest.approx(np.mean([reference(p)["sharpe"] for p in paths]), rel=1e-9)


def test_annualisation_follows_bar_size() -> None:
    assert formulas.periods_per_year(15) == 365 * 24 * 4
    assert formulas.periods_per_year(60 * 24) == 365
    p = as_torch(random_path(np.random.default_rng(0)))
    s15 = compute_metrics(**p, bar_minutes=15)["sharpe"]
    s60 = compute_metrics(**p, bar_minutes=60)["sharpe"]
    assert s15 == pytest.approx(2 * s60)


def test_flat_cash_path_has_zero_ratios_not_nan() -> None:
    t_len = 50
    got = compute_metrics(torch.full((t_len,), 1e6), usdt_weight=torch.zeros(t_len), traded=torch.zeros(t_len),
                          fees_krw=torch.zeros(t_len))
    assert got == {"return": 0.0, "sharpe": 0.0, "sortino": 0.0, "max_drawdown": 0.0, "turnover": 0.0,
                   "hit_rate": 0.0, "n_trades": 0.0, "fees_krw": 0.0, "round_trips": 0.0}


def test_missing_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="needs usdt_weight"):
        Turnover().update(values_krw=torch.ones(5), traded=torch.zeros(5))


def test_reported_metrics_come_from_the_torchmetrics_class(monkeypatch) -> None:
    """What validation, `test` and the baselines report is computed by PortfolioMetrics (a torchmetrics Metric)."""
    import pandas as pd
    from torchmetrics import Metric

    from kpremia.eval.backtest import trace_metrics

    computed: list[Metric] = []
    original = PortfolioMetrics.compute

    def spy(self):
        computed.append(self)
        return original(self)

    monkeypatch.setattr(PortfolioMetrics, "compute", spy)
    p = random_path(np.random.default_rng(3))
    trace = pd.DataFrame({"portfolio_value_krw": p["values_krw"], "position": p["usdt_weight"],
                          "traded": p["traded"], "fee_krw": p["fees_krw"]})
    got = trace_metrics(trace, bar_minutes=BAR_MINUTES)
    assert len(computed) == 1 and isinstance(computed[0], Metric)
    assert got["sharpe"] == pytest.approx(reference(p)["sharpe"], rel=1e-9)


def test_sharpe_and_sortino_are_annualised_from_the_bar_size() -> None:
    """A backtest's trace carries its bar size: the same path is 365 bars a year at 1d, 35,040 at 15m."""
    import pandas as pd

    from kpremia.eval.backtest import trace_bar_minutes, trace_metrics

    p = random_path(np.random.default_rng(11))
    n = len(p["values_krw"])
    r = np.diff(p["values_krw"]) / p["values_krw"][:-1]
    per_bar_sharpe = r.mean() / r.std(ddof=1)
    for freq, periods in (("15min", 365 * 96), ("1h", 365 * 24), ("1D", 365)):
        trace = pd.DataFrame({"time": pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC"),
                              "portfolio_value_krw": p["values_krw"], "position": p["usdt_weight"],
                              "traded": p["traded"], "fee_krw": p["fees_krw"]})
        assert trace_bar_minutes(trace) == pd.Timedelta(freq).total_seconds() / 60  # from its time step
        got = trace_metrics(trace)
        assert got["sharpe"] == pytest.approx(per_bar_sharpe * np.sqrt(periods), rel=1e-9)
        downside = np.sqrt(np.mean(np.minimum(r, 0) ** 2))
        assert got["sortino"] == pytest.approx(r.mean() / downside * np.sqrt(periods), rel=1e-9)
        trace.attrs["bar_minutes"] = 1440.0  # what the backtest records wins over the time column
        assert trace_metrics(trace)["sharpe"] == pytest.approx(per_bar_sharpe * np.sqrt(365), rel=1e-9)


def test_a_backtest_trace_records_its_market_bar_size() -> None:
    import dataclasses

    from kpremia.eval.backtest import run_backtest, trace_metrics
    from kpremia.envs.action_schemes import BUY

    from .conftest import premium_market

    market = dataclasses.replace(premium_market(60), bar_minutes=1440.0)  # its times say 15m: the market wins
    actions = torch.zeros(market.n_bars, dtype=torch.long)
    actions[market.valid_from] = BUY
    trace = run_backtest(market, actions, {"action_scheme": "hold_buy_sell"})
    assert trace.attrs["bar_minutes"] == 1440.0
    values = trace["portfolio_value_krw"].to_numpy()
    r = values[1:] / values[:-1] - 1
    assert trace_metrics(trace)["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(365), rel=1e-9)
