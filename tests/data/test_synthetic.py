"""The synthetic market: seeded, well-formed, and calibrated to docs/market.md."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from kpremia.core.errors import UserError
from kpremia.data.frame import COLUMNS
from kpremia.data.repair import validate_frame
from kpremia.data.stats import market_stats
from kpremia.data.synthetic import PRESETS, SyntheticParams, SyntheticSource, fx_session_open, generate


def test_registered_and_manifest(data_sources):
    src = data_sources.build({"name": "synthetic", "days": 3, "seed": 7})
    frame, manifest = src.load()
    assert isinstance(src, SyntheticSource)
    assert manifest["source"] == "synthetic" and manifest["synthetic"] is True and manifest["seed"] == 7
    assert manifest["rows"] == len(frame) == 3 * 96
    assert manifest["first_bar"] == "2024-01-01T00:00:00+00:00"
    assert manifest["last_bar"] == frame.index[-1].isoformat()
    assert manifest["params"]["days"] == 3 and manifest["preset"] == "default"


def test_same_seed_same_frame_different_seed_different():
    a = generate(SyntheticParams(days=10), seed=3)
    b = generate(SyntheticParams(days=10), seed=3)
    c = generate(SyntheticParams(days=10), seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["close"], c["close"])


def test_schema_and_no_repairs_needed(synthetic_frame):
    f = synthetic_frame
    assert list(f.columns) == list(COLUMNS) and (f.dtypes == np.float64).all()
    assert str(f.index.tz) == "UTC" and f.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert 69_000 < len(f) < 71_000
    assert (np.diff(f.index.asi8) == 15 * 60 * 10**9).all()
    _, report = validate_frame(f, repair=False)
    assert not report.repaired


def test_ohlc_consistent_and_on_tick(synthetic_frame):
    f = synthetic_frame
    assert (f["low"] <= f[["open", "close"]].min(axis=1)).all()
    assert (f["high"] >= f[["open", "close"]].max(axis=1)).all()
    for col in ("open", "high", "low", "close"):
        assert np.allclose(f[col] / 0.5, np.round(f[col] / 0.5))
    # a bar opens part of the way from the previous close to its close (one more tick at most):
    # an order sent at the close the agent saw does not fill at that close
    prev = f["close"].shift(1).iloc[1:]
    open_, close = f["open"].iloc[1:], f["close"].iloc[1:]
    assert (open_ >= np.minimum(prev, close) - 0.5 - 1e-9).all()
    assert (open_ <= np.maximum(prev, close) + 0.5 + 1e-9).all()
    assert (open_ != prev).mean() > 0.3
    big = (close - prev).abs() >= 5.0  # on large moves the open has moved with the price
    assert ((open_ - prev)[big] * (close - prev)[big] > 0).mean() > 0.8
    assert (f["volume"] > 0).all()
    np.testing.assert_allclose(f["premium"], f["close"] / f["fx"] - 1)


def test_fx_flat_when_onshore_market_is_closed(synthetic_frame):
    f = synthetic_frame
    is_open = fx_session_open(f.index.asi8)
    dfx = f["fx"].diff().to_numpy()
    assert (dfx[1:][~is_open[1:]] == 0).all()
    assert (dfx[1:][is_open[1:]] != 0).mean() > 0.9
    kst = f.index.tz_convert("Asia/Seoul")
    weekend = ((kst.day_of_week == 5) & (kst.hour >= 2)) | (kst.day_of_week == 6) | \
              ((kst.day_of_week == 0) & (kst.hour < 9))
    assert weekend.sum() > 10_000 and (dfx[weekend] == 0).all()
    # Saturday 00:00-02:00 KST still belongs to Friday's session
    sat_early = (kst.day_of_week == 5) & (kst.hour < 2)
    assert is_open[sat_early & ~_holiday(kst)].all()


def _holiday(kst: pd.DatetimeIndex) -> np.ndarray:
    session = kst - pd.Timedelta(hours=2)
    md = session.month * 100 + session.day
    return np.isin(np.asarray(md), [101, 301, 505, 606, 815, 1003, 1009, 1225])


def test_calibration_matches_market_facts(synthetic_frame):
    s = market_stats(synthetic_frame)
    assert s["days"] == 730
    assert 0.8 <= s["premium_mean_pct"] <= 2.0
    assert 1.2 <= s["premium_sd_pct"] <= 2.6
    assert -2.5 <= s["premium_p5_pct"] <= -0.3
    assert 3.0 <= s["premium_p95_pct"] <= 6.5
    assert 0.10 <= s["negative_days_frac"] <= 0.30
    assert 0.85 <= s["premium_daily_ar1"] <= 0.96
    assert 0.5 <= s["premium_change_sd_pp"] <= 1.2
    assert 0.005 <= s["big_move_days_frac"] <= 0.06
    assert s["premium_max_intraday_pct"] > 6.0 and s["premium_min_intraday_pct"] < -2.0
    assert 1250 <= s["fx_min"] and s["fx_max"] <= 1550
    assert 0.4 <= s["fx_daily_logret_sd_pct"] <= 0.7


def test_generation_is_fast():
    t0 = time.perf_counter()
    generate(SyntheticParams(), seed=11)
    assert time.perf_counter() - t0 < 2.0


def test_mean_reverting_preset_oscillates_well_above_fees():
    frame, manifest = SyntheticSource(preset="mean_reverting", days=20, seed=0).load()
    assert manifest["preset"] == "mean_reverting"
    p = frame["premium"].to_numpy()
    period = int(PRESETS["mean_reverting"]["osc_period_bars"])
    # peak-to-trough within each period is many times a 0.1 % fee round trip (0.2 %)
    swings = [np.ptp(p[i:i + period]) for i in range(0, len(p) - period, period)]
    assert np.median(swings) > 5 * 0.002
    # strongly mean-reverting: half a period later the premium is on the other side
    x = p - p.mean()
    assert np.corrcoef(x[:-period // 2], x[period // 2:])[0, 1] < -0.5
    assert abs(p.mean() - 0.01) < 0.003
    assert frame["fx"].pct_change().abs().max() < 0.001


def test_explicit_params_override_preset():
    src = SyntheticSource(preset="mean_reverting", osc_amplitude=0.02, days=2)
    assert src.params.osc_amplitude == 0.02 and src.params.jump_rate_per_day == 0.0


@pytest.mark.parametrize("kwargs, match", [
    ({"preset": "nope"}, "unknown synthetic preset"),
    ({"dayz": 3}, "unknown synthetic data parameter"),
    ({"premium_daily_ar": 1.2}, "premium_daily_ar"),
    ({"days": 0}, "days must be > 0"),
    ({"fx_tail_df": 1.5}, "tail df"),
])
def test_bad_params_refused(kwargs, match):
    with pytest.raises(UserError, match=match):
        SyntheticSource(**kwargs)


def test_start_option_and_timezones():
    f = generate(SyntheticParams(start="2025-03-01T09:00+09:00", days=1), seed=0)
    assert f.index[0] == pd.Timestamp("2025-03-01T00:00", tz="UTC") and len(f) == 96


@pytest.mark.parametrize("timeframe, per_bar", [("1h", 4), ("1d", 96)])
def test_the_synthetic_market_at_1h_and_1d_is_its_15m_bars_aggregated(timeframe, per_bar):
    """Same seed, same market: each coarse bar is its 15m bars (open first, high max, low min, close last,
    volume summed, fx and premium at its close), computed here with NumPy reshapes."""
    fine, _ = SyntheticSource(seed=4, days=20).load()
    coarse, manifest = SyntheticSource(seed=4, days=20, timeframe=timeframe).load()
    assert manifest["timeframe"] == timeframe and manifest["generated_at"] == "15m"
    assert manifest["bar_minutes"] == 15 * per_bar and len(coarse) == len(fine) // per_bar
    blocks = {c: fine[c].to_numpy().reshape(-1, per_bar) for c in ("open", "high", "low", "close", "volume", "fx")}
    np.testing.assert_array_equal(coarse["open"], blocks["open"][:, 0])
    np.testing.assert_array_equal(coarse["high"], blocks["high"].max(axis=1))
    np.testing.assert_array_equal(coarse["low"], blocks["low"].min(axis=1))
    np.testing.assert_array_equal(coarse["close"], blocks["close"][:, -1])
    np.testing.assert_allclose(coarse["volume"], blocks["volume"].sum(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(coarse["fx"], blocks["fx"][:, -1])  # known at the coarse bar's close
    np.testing.assert_allclose(coarse["premium"], coarse["close"] / coarse["fx"] - 1)
    assert coarse.index.equals(fine.index[::per_bar])
    assert validate_frame(coarse, bar=pd.Timedelta(timeframe))[1].repaired is False


def test_the_synthetic_timeframe_must_be_a_multiple_of_15m():
    with pytest.raises(UserError, match="generated at 15m and can only be aggregated to a multiple of it"):
        SyntheticSource(timeframe="5m")
    with pytest.raises(UserError, match="not a bar size kpremia can use"):
        SyntheticSource(timeframe="1w")


def test_hidden_states_add_up_to_the_premium():
    """generate_with_states: the same frame as generate, and its parts sum to the premium up to the
    microstructure noise and the tick (what the model-based trader's filter is checked against)."""
    from kpremia.data.synthetic import SyntheticParams, generate, generate_with_states

    params = SyntheticParams(days=20)
    frame, states = generate_with_states(params, seed=4)
    pd.testing.assert_frame_equal(frame, generate(params, seed=4))
    parts = states["slow"] + states["fast"] + states["jumps"] + states["season"]
    residual = frame["premium"].to_numpy() - parts
    assert set(states) == {"stress", "slow", "fast", "jumps", "season"} and states["stress"].dtype == bool
    assert 0.8e-4 < residual.std() < 1.6e-4  # 1 bp of noise plus the 0.5 KRW tick's rounding
