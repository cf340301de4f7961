"""validate_frame: every bad-input case is repaired with a report or refused in one line."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from kpremia.core.errors import UserError
from kpremia.data.frame import COLUMNS
from kpremia.data.repair import RepairReport, validate_frame


def test_clean_frame_passes_unchanged(bars):
    df = bars(10)
    frame, report = validate_frame(df, repair=False)
    assert list(frame.columns) == list(COLUMNS)
    assert (frame.dtypes == np.float64).all()
    assert str(frame.index.tz) == "UTC" and frame.index.name == "time"
    np.testing.assert_allclose(frame["premium"], df["close"] / df["fx"] - 1)
    assert not report.repaired and "no repairs needed" in report.summary()
    assert report.rows_in == report.rows_out == 10
    d = report.to_dict()
    assert d["repaired"] is False and d["first_bar"].startswith("2024-01-01T00:00")


def test_premium_column_is_recomputed(bars):
    df = bars(4).assign(premium=0.5)
    frame, _ = validate_frame(df)
    np.testing.assert_allclose(frame["premium"], df["close"] / df["fx"] - 1)


def test_missing_columns_refused_with_mapping_hint(bars):
    with pytest.raises(UserError, match=r"missing columns volume.*columns=\{yours: ours\}"):
        validate_frame(bars(4).drop(columns=["volume"]))


def test_missing_fx_mentions_fx_path(bars):
    with pytest.raises(UserError, match="fx_path"):
        validate_frame(bars(4).drop(columns=["fx"]))


def test_unparseable_index_refused(bars):
    df = bars(3)
    df.index = ["2024-01-01 00:00", "not a time", "2024-01-01 00:30"]
    with pytest.raises(UserError, match="not parseable as times|unparseable"):
        validate_frame(df)


def test_nat_index_refused(bars):
    df = bars(3)
    df.index = pd.DatetimeIndex([df.index[0], pd.NaT, df.index[2]])
    with pytest.raises(UserError, match="unparseable/missing times"):
        validate_frame(df)


def test_non_numeric_values_refused(bars):
    df = bars(3).astype({"close": object})
    df.iloc[1, df.columns.get_loc("close")] = "abc"
    with pytest.raises(UserError, match="non-numeric.*'abc'.*column mapping"):
        validate_frame(df)


def test_naive_and_other_timezones_become_utc(bars):
    df = bars(4)
    naive = df.copy()
    naive.index = naive.index.tz_localize(None)
    assert validate_frame(naive)[0].index.equals(df.index)
    kst = df.copy()
    kst.index = kst.index.tz_convert("Asia/Seoul")
    assert validate_frame(kst)[0].index.equals(df.index)


def test_identical_duplicates_dropped_and_conflicting_ones_refused(bars, caplog):
    df = bars(6)
    with caplog.at_level(logging.WARNING, logger="kpremia.data.repair"):
        frame, report = validate_frame(pd.concat([df.iloc[:3], df.iloc[[2]], df.iloc[3:]]))
    assert len(frame) == 6 and frame["close"].iloc[2] == df["close"].iloc[2]
    assert report.duplicates_dropped == 1 and report.unsorted_rows == 0 and "duplicate" in report.summary()
    assert any("repaired" in r.message for r in caplog.records)
    with pytest.raises(UserError, match="duplicate.*repair=true"):
        validate_frame(pd.concat([df.iloc[:3], df.iloc[[2]], df.iloc[3:]]), repair=False)
    conflicting = df.iloc[[2]].assign(close=1500.0, high=1501.0)  # which of the two is the bar? not ours to guess
    with pytest.raises(UserError, match="1 bar times given twice with different values.*2024-01-01T00:30"):
        validate_frame(pd.concat([df.iloc[:3], conflicting, df.iloc[3:]]))


def test_unsorted_rows_sorted_and_reported(bars):
    df = bars(6)
    shuffled = df.iloc[[0, 3, 1, 2, 5, 4]]
    frame, report = validate_frame(shuffled)
    assert frame.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(frame, validate_frame(df)[0])
    assert report.unsorted_rows > 0
    with pytest.raises(UserError, match="not sorted"):
        validate_frame(shuffled, repair=False)


def test_short_nan_close_run_is_a_no_trade_bar(bars):
    df = bars(8)
    df.iloc[3:5, df.columns.get_loc("close")] = np.nan
    df.iloc[3, df.columns.get_loc("volume")] = np.nan
    frame, report = validate_frame(df)
    prev = df["close"].iloc[2]
    for i in (3, 4):
        assert (frame.iloc[i][["open", "high", "low", "close"]] == prev).all()
    assert frame["volume"].iloc[3] == 0.0
    assert report.nan_price_rows_filled == 2
    with pytest.raises(UserError, match="NaN close"):
        validate_frame(df, repair=False)


def test_long_nan_close_run_refused_with_time(bars):
    df = bars(12)
    df.iloc[2:9, df.columns.get_loc("close")] = np.nan
    with pytest.raises(UserError, match=r"7 consecutive bars with NaN close from 2024-01-01T00:30"):
        validate_frame(df, max_nan_bars=4)


def test_nan_open_high_low_and_volume_filled(bars):
    df = bars(5)
    df.iloc[2, df.columns.get_loc("open")] = np.nan
    df.iloc[3, df.columns.get_loc("high")] = np.nan
    df.iloc[4, df.columns.get_loc("volume")] = np.nan
    frame, report = validate_frame(df)
    assert frame["open"].iloc[2] == df["close"].iloc[1]
    assert frame["high"].iloc[3] == max(df["open"].iloc[3], df["close"].iloc[3])
    assert frame["volume"].iloc[4] == 0.0
    assert report.nan_price_rows_filled == 2 and report.nan_volume_filled == 1


def test_nan_fx_forward_filled_and_leading_rows_dropped(bars):
    df = bars(6)
    df["fx"] = [np.nan, 1380.0, np.nan, np.nan, 1381.0, np.nan]
    frame, report = validate_frame(df)
    assert len(frame) == 5 and frame.index[0] == df.index[1]
    assert list(frame["fx"]) == [1380.0, 1380.0, 1380.0, 1381.0, 1381.0]
    assert report.leading_rows_dropped == 1 and report.nan_fx_filled == 3
    with pytest.raises(UserError, match="max_fx_fill_bars"):
        validate_frame(df, max_fx_fill_bars=1)


def test_non_positive_price_refused_naming_the_row(bars):
    df = bars(5)
    df.iloc[3, df.columns.get_loc("low")] = 0.0
    with pytest.raises(UserError, match=r"non-positive low 0.0 at 2024-01-01T00:45"):
        validate_frame(df)
    df = bars(5)
    df.iloc[1, df.columns.get_loc("fx")] = -1.0
    with pytest.raises(UserError, match="non-positive fx"):
        validate_frame(df)


def test_negative_volume_refused(bars):
    df = bars(5)
    df.iloc[2, df.columns.get_loc("volume")] = -3.0
    with pytest.raises(UserError, match="negative volume at 2024-01-01T00:30"):
        validate_frame(df)


def test_ohlc_inconsistency_clamped(bars):
    df = bars(5)
    df.iloc[1, df.columns.get_loc("high")] = df["close"].iloc[1] - 0.25  # high below close (above low)
    df.iloc[2, df.columns.get_loc("low")] = df["open"].iloc[2] + 0.25  # low above open (below high)
    frame, report = validate_frame(df)
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert frame["close"].equals(df["close"]) and frame["open"].equals(df["open"])
    assert report.ohlc_clamped == 2
    with pytest.raises(UserError, match="high/low not containing open/close"):
        validate_frame(df, repair=False)


def test_high_below_low_refused_not_clamped(bars):
    df = bars(5)
    df.iloc[3, df.columns.get_loc("high")] = df["low"].iloc[3] - 2.0
    with pytest.raises(UserError, match=r"high 1400.0 is below low 1402.0 at 2024-01-01T00:45.*swapped or corrupt"):
        validate_frame(df)


def test_gaps_inserted_as_no_trade_bars(bars):
    df = bars(10).drop(index=bars(10).index[[3, 4, 7]])
    frame, report = validate_frame(df)
    assert len(frame) == 10
    assert frame.index.equals(bars(10).index)
    prev = df["close"].loc[bars(10).index[2]]
    for i in (3, 4):
        row = frame.iloc[i]
        assert row["open"] == row["high"] == row["low"] == row["close"] == prev
        assert row["volume"] == 0.0 and row["fx"] == 1380.0
    assert report.gap_bars_inserted == 3 and report.gaps == 2 and report.longest_gap_bars == 2
    with pytest.raises(UserError, match="missing 15m bars"):
        validate_frame(df, repair=False)


def test_long_gap_refused(bars):
    df = bars(200).iloc[list(range(5)) + list(range(150, 200))]
    with pytest.raises(UserError, match=r"gap of 145 missing 15m bars from 2024-01-01T01:15.*max_gap_bars"):
        validate_frame(df, max_gap_bars=96)
    frame, report = validate_frame(df, max_gap_bars=200)
    assert report.longest_gap_bars == 145 and len(frame) == 200


def test_off_grid_times_refused(bars):
    df = bars(4)
    df.index = df.index + pd.Timedelta(minutes=5)
    with pytest.raises(UserError, match="not on the 15m grid"):
        validate_frame(df)


def test_report_summary_lists_every_repair():
    r = RepairReport(rows_in=10, rows_out=12, duplicates_dropped=1, gap_bars_inserted=3, gaps=1,
                     longest_gap_bars=3, ohlc_clamped=2)
    s = r.summary()
    assert r.repaired and "1 duplicate" in s and "3 missing no-trade 15m bars" in s and "2 bars with high/low" in s
    assert "\n" not in s
