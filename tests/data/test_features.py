"""Features and daily windows: causal, and batch == bar-by-bar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kpremia.data.daily import DailyHistory, daily_windows
from kpremia.data.feature_formulas import FEATURE_NAMES
from kpremia.data.feature_table import (
    IncrementalFeatures,
    compute_features,
    feature_bars,
    feature_lookback,
    feature_matrix,
)
from kpremia.data.repair import validate_frame

LOOKBACK = feature_lookback()  # at the default 15m bars


def perturb_after(frame: pd.DataFrame, t: int, seed: int = 0) -> pd.DataFrame:
    """A copy of ``frame`` with every bar after row t changed (prices, fx, volume)."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    n = len(frame) - t - 1
    if n <= 0:
        return out
    scale = np.exp(rng.normal(0, 0.05, n))
    for col in ("open", "high", "low", "close"):
        out.iloc[t + 1:, out.columns.get_loc(col)] = frame[col].to_numpy()[t + 1:] * scale
    out.iloc[t + 1:, out.columns.get_loc("fx")] = frame["fx"].to_numpy()[t + 1:] * np.exp(rng.normal(0, 0.02, n))
    out.iloc[t + 1:, out.columns.get_loc("volume")] = rng.lognormal(10, 2, n)
    out["premium"] = out["close"] / out["fx"] - 1
    return out


def probe_rows(frame: pd.DataFrame) -> list[int]:
    """Rows to probe: around two UTC midnights (23:30, 23:45, 00:00, 00:15) and a few others."""
    rows = []
    for day in (12, 17):
        midnight = frame.index.get_loc(frame.index[0].normalize() + pd.Timedelta(days=day))
        rows += [midnight - 2, midnight - 1, midnight, midnight + 1]
    return rows + [LOOKBACK - 1, LOOKBACK + 500, len(frame) - 2]


def test_names_and_lookback():
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) >= 16
    assert LOOKBACK <= 700
    assert {"premium_pct", "premium_z_96", "rsi_14", "hour_sin", "hour_cos", "volume_z_96"} <= set(FEATURE_NAMES)


def test_warm_up_is_nan_then_finite(short_frame):
    feats = compute_features(short_frame)
    assert list(feats.columns) == list(FEATURE_NAMES) and feats.index.equals(short_frame.index)
    assert feats.iloc[:LOOKBACK - 1].isna().all().all()
    assert np.isfinite(feats.iloc[LOOKBACK - 1:].to_numpy()).all()


def test_features_do_not_look_ahead(short_frame):
    base = feature_matrix(short_frame).numpy()
    for t in probe_rows(short_frame):
        moved = feature_matrix(perturb_after(short_frame, t, seed=t)).numpy()
        np.testing.assert_array_equal(moved[:t + 1], base[:t + 1], err_msg=f"row {t}")
        assert not np.allclose(moved[t + 1], base[t + 1], equal_nan=True)  # the perturbation is visible


def test_daily_windows_do_not_look_ahead(short_frame):
    base = daily_windows(short_frame, 5, 7)
    for t in probe_rows(short_frame):
        moved = daily_windows(perturb_after(short_frame, t, seed=t), 5, 7)
        for b, m in zip(base, moved, strict=True):
            np.testing.assert_array_equal(m[:t + 1], b[:t + 1], err_msg=f"row {t}")


def test_daily_window_day_becomes_visible_at_its_last_bar(short_frame):
    closes, premiums = daily_windows(short_frame, 3, 2)
    idx = short_frame.index
    day_end = idx.get_loc(pd.Timestamp("2024-01-03 23:45", tz="UTC"))
    # at 23:30 the day of Jan 3 is not complete: the last window value is Jan 2's close
    assert closes[day_end - 1, -1] == short_frame["close"].iloc[day_end - 96]
    # at 23:45 (the bar closing at 00:00) it is
    assert closes[day_end, -1] == short_frame["close"].iloc[day_end]
    assert premiums[day_end, -1] == short_frame["premium"].iloc[day_end]
    assert closes[day_end + 1, -1] == short_frame["close"].iloc[day_end]
    np.testing.assert_array_equal(closes[day_end, :2], short_frame["close"].iloc[[day_end - 192, day_end - 96]])
    # before 3 days have completed the window is NaN-padded in front
    first_end = idx.get_loc(pd.Timestamp("2024-01-01 23:45", tz="UTC"))
    assert np.isnan(closes[:first_end]).all()
    assert np.isnan(closes[first_end, :2]).all() and closes[first_end, 2] == short_frame["close"].iloc[first_end]


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{"time": ts, **row._asdict()} for ts, row in zip(frame.index, frame.itertuples(index=False))]


def test_incremental_features_equal_batch(short_frame):
    frame = short_frame.iloc[:LOOKBACK + 1200]
    batch = feature_matrix(frame).numpy()
    inc = IncrementalFeatures()
    rows = np.array([inc.update(r) for r in _records(frame)])
    assert inc.ready
    np.testing.assert_allclose(rows, batch, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_incremental_daily_history_equals_batch(short_frame):
    frame = short_frame.iloc[:3000]
    closes, premiums = daily_windows(frame, 6, 4)
    hist = DailyHistory(6, 4)
    for i, r in enumerate(_records(frame)):
        hist.update(r["time"], r["close"], r["premium"])
        np.testing.assert_array_equal(hist.closes(), closes[i])
        np.testing.assert_array_equal(hist.premiums(), premiums[i])


def test_incremental_fills_gaps_like_validate_frame(short_frame):
    frame = short_frame.iloc[:LOOKBACK + 400]
    holes = frame.drop(index=frame.index[[700, 701, 702, 850, 95]])  # 95 is a day's last bar
    repaired, report = validate_frame(holes)
    assert report.gap_bars_inserted == 5
    batch = feature_matrix(repaired).numpy()
    closes, premiums = daily_windows(repaired, 4, 4)
    inc, hist = IncrementalFeatures(), DailyHistory(4, 4)
    for r in _records(holes):
        out = inc.update(r)
        hist.update(r["time"], r["close"], r["premium"])
        i = repaired.index.get_loc(r["time"])
        np.testing.assert_allclose(out, batch[i], rtol=1e-9, atol=1e-12, equal_nan=True)
        np.testing.assert_array_equal(hist.closes(), closes[i])
        np.testing.assert_array_equal(hist.premiums(), premiums[i])


def test_incremental_refuses_out_of_order_and_restores_state(short_frame):
    recs = _records(short_frame.iloc[:LOOKBACK + 20])
    inc = IncrementalFeatures()
    for r in recs[:-10]:
        inc.update(r)
    with pytest.raises(ValueError, match="not after"):
        inc.update(recs[5])
    clone = IncrementalFeatures()
    clone.load_state_dict(inc.state_dict())
    for r in recs[-10:]:
        np.testing.assert_array_equal(clone.update(r), inc.update(r))


# ----------------------------------------------------------------------------- look-backs in time

def reference_features(frame: pd.DataFrame, n: dict[str, int]) -> pd.DataFrame:
    """A few features with pandas, from the bar counts ``n`` (independent of the feature code)."""
    c, p = frame["close"], frame["premium"]
    out = {f"ret_{k}": np.log(c / c.shift(n[f"ret_{k}"])) for k in (1, 4, 16, 96)}
    out["mom_672"] = np.log(c / c.shift(n["mom_672"]))
    for k in (16, 96):
        out[f"sma_ratio_{k}"] = np.log(c / c.rolling(n[f"sma_ratio_{k}"]).mean())
    r = np.log(c).diff()
    out["rvol_96"] = np.sqrt((r ** 2).rolling(n["rvol_96"]).mean())
    z = p.rolling(n["premium_z_96"])
    out["premium_z_96"] = (p - z.mean()) / z.std(ddof=0)
    out["premium_chg_96"] = (p - p.shift(n["premium_chg_96"])) * 100
    out["fx_ret_96"] = np.log(frame["fx"] / frame["fx"].shift(n["fx_ret_96"]))
    return pd.DataFrame(out)


def test_at_15m_every_feature_uses_the_bar_count_in_its_name(short_frame):
    """The default bar size keeps every feature what it was: ret_96 is 96 bars, mom_672 is 672, ..."""
    assert feature_bars() == {"ret_1": 1, "ret_4": 4, "ret_16": 16, "ret_96": 96, "mom_672": 672,
                              "sma_ratio_16": 16, "sma_ratio_96": 96, "rvol_96": 96, "hl_range_16": 16,
                              "rsi_14": 14, "premium_pct": 1, "premium_z_96": 96, "premium_z_672": 672,
                              "premium_chg_4": 4, "premium_chg_96": 96, "premium_rvol_16": 16, "premium_rvol_96": 96,
                              "premium_rvol_672": 672, "premium_vol_ratio": 672, "premium_jump_96": 96,
                              "premium_mean_672": 672, "fx_ret_96": 96, "volume_z_96": 96, "hour_sin": 1,
                              "hour_cos": 1, "weekend_kst": 1}
    assert LOOKBACK == 673
    ref = reference_features(short_frame, feature_bars())
    got = compute_features(short_frame)
    rows = slice(LOOKBACK - 1, None)
    for name in ref.columns:
        np.testing.assert_allclose(got[name].iloc[rows], ref[name].iloc[rows], rtol=1e-9, atol=1e-12, err_msg=name)


def test_at_1h_and_1d_look_backs_are_the_same_time(short_frame):
    hour, day = pd.Timedelta("1h"), pd.Timedelta("1D")
    assert feature_bars(hour)["ret_96"] == 24 and feature_bars(hour)["mom_672"] == 168
    assert feature_bars(hour)["ret_1"] == 1 and feature_bars(hour)["rsi_14"] == 4  # 3.5 h: halves round up
    assert feature_bars(day)["ret_96"] == 1 and feature_bars(day)["mom_672"] == 7 and feature_bars(day)["premium_z_96"] == 2
    assert feature_lookback(hour) == 169 and feature_lookback(day) == 8
    hourly = short_frame.resample("1h").agg({"open": "first", "high": "max", "low": "min", "close": "last",
                                               "volume": "sum", "fx": "last", "premium": "last"})
    ref = reference_features(hourly, feature_bars(hour))
    got = compute_features(hourly)
    assert got.iloc[:feature_lookback(hour) - 1].isna().all().all()
    rows = slice(feature_lookback(hour) - 1, None)
    for name in ref.columns:
        np.testing.assert_allclose(got[name].iloc[rows], ref[name].iloc[rows], rtol=1e-9, atol=1e-12, err_msg=name)
    # the 1h one-day return is the 15m one-day return at the same instant
    same = hourly.index[200]
    fine = compute_features(short_frame)
    assert got.loc[same, "ret_96"] == pytest.approx(fine.loc[same + pd.Timedelta("45min"), "ret_96"], rel=1e-12)


def test_a_new_feature_declares_its_look_back_as_time():
    from kpremia.data import feature_formulas as F

    try:
        @F.feature("test_range_6h", "6h", min_bars=2)
        def _range(w, n):
            return w.close[:, -n:].amax(dim=1) - w.close[:, -n:].amin(dim=1)

        assert F.FEATURE_REGISTRY["test_range_6h"].bars(pd.Timedelta("15min")) == 24
        assert F.FEATURE_REGISTRY["test_range_6h"].bars(pd.Timedelta("1h")) == 6
        assert F.FEATURE_REGISTRY["test_range_6h"].bars(pd.Timedelta("1D")) == 2
        with pytest.raises(ValueError, match="registered twice"):
            F.feature("test_range_6h", "1h")(_range)
    finally:
        F.FEATURE_REGISTRY.pop("test_range_6h", None)


@pytest.mark.parametrize("bar", ["1h", "1D"])
def test_incremental_features_and_daily_history_equal_batch_at_coarser_bars(short_frame, bar):
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum", "fx": "last",
           "premium": "last"}
    frame = short_frame.resample(bar).agg(agg)
    td = pd.Timedelta(bar)
    batch = feature_matrix(frame, bar=td).numpy()
    closes, premiums = daily_windows(frame, 3, 2, td)
    inc, hist = IncrementalFeatures(td), DailyHistory(3, 2, td)
    for i, r in enumerate(_records(frame)):
        np.testing.assert_allclose(inc.update(r), batch[i], rtol=1e-9, atol=1e-12, equal_nan=True)
        hist.update(r["time"], r["close"], r["premium"])
        np.testing.assert_array_equal(hist.closes(), closes[i])
        np.testing.assert_array_equal(hist.premiums(), premiums[i])


def test_daily_windows_at_1d_bars_and_at_daily_bars_opening_00_kst(short_frame):
    daily = short_frame.resample("1D").agg({"close": "last", "premium": "last"})
    closes, _ = daily_windows(daily, 2, 2, pd.Timedelta("1D"))
    # a 1d bar opening at 00:00 UTC closes at the next midnight: its own day is complete at its close
    np.testing.assert_array_equal(closes[5], daily["close"].iloc[4:6])
    kst = daily.set_axis(daily.index + pd.Timedelta("15h"))  # daily bars opening 00:00 KST = 15:00 UTC
    closes, _ = daily_windows(kst, 2, 2, pd.Timedelta("1D"))
    # at bar t (closing 15:00 UTC of the next day) the last UTC midnight passed is 15 h earlier: the day's
    # value is the last bar closed by then, bar t - 1
    np.testing.assert_array_equal(closes[5], kst["close"].iloc[3:5])
    hist = DailyHistory(2, 2, pd.Timedelta("1D"))
    for ts, row in kst.iloc[:6].iterrows():
        hist.update(ts, row["close"], row["premium"])
    np.testing.assert_array_equal(hist.closes(), closes[5])


def test_daily_windows_count_every_day_of_a_two_year_frame(synthetic_frame):
    """Every UTC midnight counts (an np.arange over epoch nanoseconds in float64 once lost the last day)."""
    closes, _ = daily_windows(synthetic_frame, 1, 1)
    close_time = synthetic_frame.index + pd.Timedelta(minutes=15)
    ends = np.flatnonzero((close_time.hour == 0) & (close_time.minute == 0))  # bars closing at 00:00 UTC
    assert len(ends) == 730
    np.testing.assert_array_equal(closes[ends, 0], synthetic_frame["close"].to_numpy()[ends])


def test_regime_features_match_a_pandas_reference(short_frame):
    """Realised premium volatility, the volatility ratio, the jump detector, the weekly level and the
    weekend flag, recomputed independently with pandas rolling windows."""
    feats = compute_features(short_frame)
    prem = short_frame["premium"] * 100.0
    d2 = prem.diff() ** 2
    rows = slice(LOOKBACK - 1, None)
    rvol = {n: np.sqrt(d2.rolling(n).mean()) for n in (16, 96, 672)}
    for n in (16, 96, 672):
        np.testing.assert_allclose(feats[f"premium_rvol_{n}"][rows], rvol[n][rows], rtol=1e-9, atol=1e-12)
    ratio = np.log((rvol[96] + 1e-4) / (rvol[672] + 1e-4))
    np.testing.assert_allclose(feats["premium_vol_ratio"][rows], ratio[rows], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(feats["premium_mean_672"][rows], prem.rolling(672).mean()[rows], rtol=1e-9)
    move = prem.diff(4)
    biggest = move.abs().rolling(96).apply(np.argmax, raw=True)
    jump = [move.iloc[i - 95 + int(biggest.iloc[i])] for i in range(len(prem))[rows]]
    np.testing.assert_allclose(feats["premium_jump_96"][rows], jump, rtol=1e-9, atol=1e-12)
    kst = short_frame.index.tz_convert("Asia/Seoul")
    np.testing.assert_array_equal(feats["weekend_kst"][rows], (kst.day_of_week >= 5).astype(float)[rows])


def test_the_jump_detector_sees_a_step_for_one_day():
    """A +2 pp premium step is reported as +2 for exactly the 96 bars whose last day holds it."""
    from kpremia.data.synthetic import SyntheticParams, generate

    frame = generate(SyntheticParams(days=10), seed=0)
    flat = frame.copy()
    fx = flat["fx"].to_numpy()
    step_at = 800
    premium = np.where(np.arange(len(flat)) >= step_at, 0.03, 0.01)
    for col in ("open", "high", "low", "close"):
        flat[col] = fx * (1 + premium)
    flat["premium"] = premium
    jump = compute_features(flat)["premium_jump_96"].to_numpy()
    assert np.allclose(jump[step_at:step_at + 96], 2.0)
    assert np.allclose(jump[step_at + 99:], 0.0) and np.allclose(jump[LOOKBACK - 1:step_at], 0.0)
