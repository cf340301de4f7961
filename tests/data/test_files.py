"""csv / parquet sources: mapping, times, fx merge, resampling, and every bad-input case."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kpremia.core.errors import UserError
from kpremia.data.files import CsvSource, ParquetSource, merge_fx


def write_csv(tmp_path, df: pd.DataFrame, name: str = "bars.csv") -> str:
    path = tmp_path / name
    df.to_csv(path, index=False)
    return str(path)


def user_bars(bars, n: int = 12, **kw) -> pd.DataFrame:
    """Bars as a user would export them: a time column and capitalised names."""
    df = bars(n, **kw).reset_index()
    return df.rename(columns={"time": "Date", "open": "Open", "high": "High", "low": "Low", "close": "Close",
                              "volume": "Volume", "fx": "usdkrw"})


def test_csv_with_mapping_and_manifest(tmp_path, bars, data_sources):
    path = write_csv(tmp_path, user_bars(bars))
    src = data_sources.build({"name": "csv", "path": path, "time_column": "Date", "columns": {"usdkrw": "fx"}})
    frame, manifest = src.load()
    pd.testing.assert_frame_equal(frame.drop(columns="premium"), bars(12), check_freq=False, check_index_type=False)
    assert frame.index.equals(bars(12).index)
    assert manifest["source"] == "csv" and manifest["rows"] == 12
    assert manifest["sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert manifest["first_bar"] == "2024-01-01T00:00:00+00:00"
    assert manifest["repair"]["repaired"] is False


def test_naive_times_in_a_timezone(tmp_path, bars):
    df = user_bars(bars)
    df["Date"] = (pd.to_datetime(df["Date"]).dt.tz_convert("Asia/Seoul").dt.tz_localize(None)).astype(str)
    frame, _ = CsvSource(write_csv(tmp_path, df), columns={"usdkrw": "fx"}, timezone="Asia/Seoul").load()
    assert frame.index[0] == pd.Timestamp("2024-01-01", tz="UTC")


@pytest.mark.parametrize("unit, factor", [("s", 1), ("ms", 1000)])
def test_epoch_times(tmp_path, bars, unit, factor):
    df = user_bars(bars)
    df["Date"] = (pd.to_datetime(df["Date"]) - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta("1s") * factor
    frame, _ = CsvSource(write_csv(tmp_path, df), columns={"usdkrw": "fx"}).load()  # unit guessed
    assert frame.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    frame2, _ = CsvSource(write_csv(tmp_path, df), columns={"usdkrw": "fx"}, time_unit=unit).load()
    assert frame2.index.equals(frame.index)


def test_close_time_stamps(tmp_path, bars):
    df = user_bars(bars)
    df["Date"] = pd.to_datetime(df["Date"]) + pd.Timedelta(minutes=15)
    frame, _ = CsvSource(write_csv(tmp_path, df), columns={"usdkrw": "fx"}, time_is_close=True).load()
    assert frame.index[0] == pd.Timestamp("2024-01-01", tz="UTC")


def test_missing_file_names_path_and_fix(tmp_path):
    with pytest.raises(UserError, match=r"data file not found: .*nope\.csv.*set data\.path"):
        CsvSource(str(tmp_path / "nope.csv")).load()
    with pytest.raises(UserError, match="needs a file"):
        CsvSource("")


def test_missing_columns_refused(tmp_path, bars):
    df = user_bars(bars).drop(columns=["Open"])  # high/low without open: not a close-only file either
    with pytest.raises(UserError, match=r"has high, low but no open .*an OHLC file needs open, high, low and close"):
        CsvSource(write_csv(tmp_path, df), columns={"usdkrw": "fx"}).load()
    with pytest.raises(UserError, match="columns mapping names Px"):
        CsvSource(write_csv(tmp_path, df), columns={"Px": "close"}).load()


def test_unparseable_and_missing_time_column(tmp_path, bars):
    df = user_bars(bars)
    df["Date"] = df["Date"].astype(str)
    df.loc[4, "Date"] = "yesterday"
    with pytest.raises(UserError, match=r"unparseable time 'yesterday' in row 4"):
        CsvSource(write_csv(tmp_path, df), columns={"usdkrw": "fx"}).load()
    with pytest.raises(UserError, match="no time column found"):
        CsvSource(write_csv(tmp_path, df.rename(columns={"Date": "when"})), columns={"usdkrw": "fx"}).load()
    with pytest.raises(UserError, match="time column 'ts' not in the file"):
        CsvSource(write_csv(tmp_path, df), time_column="ts").load()


def test_messy_file_repaired_with_report(tmp_path, bars):
    df = user_bars(bars, 12)
    messy = pd.concat([df.iloc[[0, 2, 1]], df.iloc[[3, 3]], df.iloc[6:]])  # unsorted, duplicate, gap of 2
    path = write_csv(tmp_path, messy)
    frame, manifest = CsvSource(path, columns={"usdkrw": "fx"}).load()
    assert len(frame) == 12 and frame.index.is_monotonic_increasing
    assert manifest["row_order"] == {"order": "unsorted", "rows_moved": 2, "identical_duplicates_dropped": 1}
    rep = manifest["repair"]
    assert rep["gap_bars_inserted"] == 2 and manifest["inserted_bars"] == 2
    with pytest.raises(UserError, match="repair=true"):
        CsvSource(path, columns={"usdkrw": "fx"}, repair=False).load()


def test_long_gap_refused_with_limit(tmp_path, bars):
    df = user_bars(bars, 40).drop(index=range(5, 30))
    with pytest.raises(UserError, match="gap of 25 missing 15m bars"):
        CsvSource(write_csv(tmp_path, df), columns={"usdkrw": "fx"}, max_gap_bars=10).load()


def test_parquet_with_time_index(tmp_path, bars):
    path = tmp_path / "bars.parquet"
    bars(10).to_parquet(path)
    frame, manifest = ParquetSource(str(path)).load()
    assert len(frame) == 10 and manifest["source"] == "parquet"
    np.testing.assert_allclose(frame["close"], bars(10)["close"])


def test_parquet_garbage_file_refused(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_text("not parquet")
    with pytest.raises(UserError, match="cannot read parquet file"):
        ParquetSource(str(path)).load()


def test_fx_file_merged_causally(tmp_path, bars):
    df = user_bars(bars, 4 * 96, start="2024-01-02").drop(columns=["usdkrw"])
    fx = pd.DataFrame({"date": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
                       "rate": [1300.0, 1310.0, 1320.0, 1330.0]})
    fx_path = write_csv(tmp_path, fx, "usdkrw.csv")
    frame, manifest = CsvSource(write_csv(tmp_path, df), fx_path=fx_path).load()
    # a daily rate for date D is usable from D + 1 day: on Jan 2 bars see Jan 1's rate
    by_day = frame["fx"].groupby(frame.index.date).agg(["first", "last"])
    assert list(by_day["first"]) == [1300.0, 1310.0, 1320.0, 1330.0]
    # the bar closing exactly at midnight (23:45) may already use the next rate
    assert frame["fx"].iloc[95] == 1310.0 and frame["fx"].iloc[94] == 1300.0
    assert manifest["fx_daily"] is True and manifest["fx_available_after"] == "1 days 00:00:00"
    assert len(manifest["fx_sha256"]) == 64


def test_fx_intraday_with_explicit_lag():
    bars_idx = pd.date_range("2024-01-01", periods=4, freq="15min", tz="UTC")
    fx_times = pd.DatetimeIndex(["2024-01-01 00:10", "2024-01-01 00:20"], tz="UTC")
    got = merge_fx(bars_idx, fx_times, np.array([1.0, 2.0]), pd.Timedelta(0))
    # bar 00:00 closes 00:15 -> sees 00:10; bar 00:15 closes 00:30 -> sees 00:20
    np.testing.assert_array_equal(got, [1.0, 2.0, 2.0, 2.0])
    # with a 10 min publication lag the rates are usable from 00:20 and 00:30
    got = merge_fx(bars_idx, fx_times, np.array([1.0, 2.0]), pd.Timedelta("10min"))
    np.testing.assert_array_equal(got, [np.nan, 2.0, 2.0, 2.0])
    got = merge_fx(bars_idx, fx_times, np.array([1.0, 2.0]), pd.Timedelta("11min"))
    np.testing.assert_array_equal(got, [np.nan, 1.0, 2.0, 2.0])


def test_fx_file_without_rate_column_refused(tmp_path, bars):
    df = user_bars(bars).drop(columns=["usdkrw"])
    fx = pd.DataFrame({"date": ["2023-12-31"], "a": [1.0], "b": [2.0]})
    with pytest.raises(UserError, match="fx_columns"):
        CsvSource(write_csv(tmp_path, df), fx_path=write_csv(tmp_path, fx, "fx.csv")).load()
    with pytest.raises(UserError, match="data.fx_path"):
        CsvSource(write_csv(tmp_path, df), fx_path=str(tmp_path / "missing.csv")).load()


def test_one_minute_bars_aggregated_on_request(tmp_path):
    idx = pd.date_range("2024-01-01", periods=60, freq="1min", tz="UTC")
    close = 1400 + np.arange(60.0)
    df = pd.DataFrame({"time": idx, "open": close - 0.5, "high": close + 1, "low": close - 1, "close": close,
                       "volume": 1.0, "fx": 1380.0})
    own, manifest = CsvSource(write_csv(tmp_path, df)).load()  # the file's own bars
    assert len(own) == 60 and manifest["timeframe"] == "1m" and manifest["resampled_from"] is None
    frame, manifest = CsvSource(write_csv(tmp_path, df), timeframe="15m").load()
    assert len(frame) == 4 and manifest["resampled_from"] == "1m" and manifest["timeframe"] == "15m"
    first = frame.iloc[0]
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"]) == \
        (1399.5, 1415.0, 1399.0, 1414.0, 15.0)


def test_a_finer_timeframe_than_the_file_is_refused(tmp_path):
    idx = pd.date_range("2024-01-01", periods=10, freq="1h", tz="UTC")
    df = pd.DataFrame({"time": idx, "open": 1400.0, "high": 1401.0, "low": 1399.0, "close": 1400.0, "volume": 1.0,
                       "fx": 1380.0})
    with pytest.raises(UserError, match=r"holds 1h bars; data.timeframe=15m would need bars the file does not "
                                         r"have - use data.timeframe=1h"):
        CsvSource(write_csv(tmp_path, df), timeframe="15m").load()
    frame, manifest = CsvSource(write_csv(tmp_path, df)).load()
    assert len(frame) == 10 and manifest["timeframe"] == "1h" and manifest["inserted_bars"] == 0


def test_start_end_range(tmp_path, bars):
    path = write_csv(tmp_path, user_bars(bars, 20))
    frame, _ = CsvSource(path, columns={"usdkrw": "fx"}, start="2024-01-01 01:00", end="2024-01-01 02:00").load()
    assert len(frame) == 4 and frame.index[0] == pd.Timestamp("2024-01-01 01:00", tz="UTC")
    with pytest.raises(UserError, match="widen the range"):
        CsvSource(path, columns={"usdkrw": "fx"}, start="2030-01-01").load()


def test_mixed_offsets_parsed_exactly():
    from kpremia.data.files import parse_times

    idx = parse_times(pd.Series(["2024-01-01T09:00+09:00", "2024-01-01T00:15Z", "2024-01-01T09:30+09:00"]))
    assert list(idx) == list(pd.date_range("2024-01-01", periods=3, freq="15min", tz="UTC"))


def test_every_data_error_names_its_file_and_column(tmp_path, bars):
    """With a data file and an fx file in play, the user must see which one (and which column) is wrong."""
    df = user_bars(bars).drop(columns=["usdkrw"])
    fx = pd.DataFrame({"date": ["2023-12-31", "not-a-date"], "rate": [1300.0, 1301.0]})
    data_path = write_csv(tmp_path, df)
    fx_path = write_csv(tmp_path, fx, "usdkrw.csv")
    with pytest.raises(UserError) as caught:
        CsvSource(data_path, fx_path=fx_path).load()
    message = str(caught.value)
    assert message.startswith(f"fx file {fx_path}: ") and "'not-a-date' in row 1 of column 'date'" in message
    assert data_path not in message

    bad = user_bars(bars)
    bad["Date"] = bad["Date"].astype(str)
    bad.loc[0, "Date"] = "not-a-time"
    with pytest.raises(UserError) as caught:
        CsvSource(write_csv(tmp_path, bad, "bad.csv"), columns={"usdkrw": "fx"}).load()
    assert str(caught.value).startswith(f"data file {tmp_path / 'bad.csv'}: unparseable time 'not-a-time' in row 0 "
                                        "of column 'Date'")

    nonpos = user_bars(bars)
    nonpos.loc[3, "Close"] = 0.0
    with pytest.raises(UserError, match=r"^data file .*nonpos\.csv: non-positive close"):
        CsvSource(write_csv(tmp_path, nonpos, "nonpos.csv"), columns={"usdkrw": "fx"}).load()
    text = user_bars(bars)
    text["Volume"] = text["Volume"].astype(object)
    text.loc[2, "Volume"] = "n/a?"
    with pytest.raises(UserError, match=r"^data file .*text\.csv: column 'volume' has non-numeric values"):
        CsvSource(write_csv(tmp_path, text, "text.csv"), columns={"usdkrw": "fx"}).load()


def test_a_split_error_names_the_data_file(tmp_path, bars, compose_cfg):
    from kpremia.envs.experiment import load_market

    path = write_csv(tmp_path, user_bars(bars, 200))
    cfg = compose_cfg("data=csv", f"data.path={path}", "data.time_column=Date", "data.columns={usdkrw: fx}")
    with pytest.raises(UserError, match=rf"^data file {path}: .*warm-up"):
        load_market(cfg)


def test_premium_basis_btc_keeps_the_files_premium_and_usdt_refuses_it(tmp_path, bars):
    """A MarketFrame written by ``data fetch --premium-basis btc --out`` keeps its premium end to end."""
    frame = bars(12)
    frame["premium"] = frame["close"] / frame["fx"] - 1.0 + 0.015  # a BTC premium 1.5 pp above the USDT one
    path = tmp_path / "frame.parquet"
    frame.to_parquet(path)
    loaded, manifest = ParquetSource(str(path), premium_basis="btc").load()
    np.testing.assert_allclose(loaded["premium"], frame["premium"])
    assert manifest["premium_basis"] == "btc"
    with pytest.raises(UserError, match=r"^data file .*frame\.parquet: its 'premium' column is not close / fx - 1 "
                                        r"\(mean difference 1\.50 pp.*data\.premium_basis=btc"):
        ParquetSource(str(path)).load()
    usdt = bars(12)
    usdt["premium"] = (usdt["close"] / usdt["fx"] - 1.0).round(6)  # its own USDT premium, rounded: accepted
    usdt.to_parquet(tmp_path / "usdt.parquet")
    assert ParquetSource(str(tmp_path / "usdt.parquet")).load()[1]["premium_basis"] == "usdt"
    bars(12).to_parquet(tmp_path / "plain.parquet")
    with pytest.raises(UserError, match="premium_basis=btc takes the premium from the file's 'premium' column"):
        ParquetSource(str(tmp_path / "plain.parquet"), premium_basis="btc").load()
    with pytest.raises(UserError, match="unknown data.premium_basis 'eth'"):
        ParquetSource(str(path), premium_basis="eth")


def test_premium_basis_reaches_the_run_manifest_and_the_tensors(tmp_path, compose_cfg):
    from kpremia.data.synthetic import SyntheticParams, generate
    from kpremia.envs.experiment import load_market

    frame = generate(SyntheticParams(days=30), seed=3)
    frame["premium"] = frame["premium"] + 0.01
    frame.to_parquet(tmp_path / "btc.parquet")
    cfg = compose_cfg("data=parquet", f"data.path={tmp_path / 'btc.parquet'}", "data.premium_basis=btc")
    market = load_market(cfg)
    assert market.manifest["premium_basis"] == "btc"
    train = market.tensors["train"]
    np.testing.assert_allclose(train.premium.cpu().numpy(), frame["premium"].to_numpy()[:train.premium.shape[0]],
                               atol=1e-6)
    assert load_market(compose_cfg("data.days=30")).manifest["premium_basis"] == "usdt"


def test_the_documented_column_mapping_override(tmp_path, compose_cfg):
    """docs/data.md's `data.columns={...}` (no `+`) composes and maps an Upbit candle export, fx from an ECB file."""
    import sys

    from kpremia.data.synthetic import SyntheticParams, generate
    from kpremia.envs.experiment import load_market

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "real_formats"))
    import formats

    frame = generate(SyntheticParams(days=30), seed=4)
    upbit = pd.DataFrame({
        "candle_date_time_utc": frame.index.strftime("%Y-%m-%dT%H:%M:%S"), "opening_price": frame["open"],
        "high_price": frame["high"], "low_price": frame["low"], "trade_price": frame["close"],
        "candle_acc_trade_volume": frame["volume"]})
    path = write_csv(tmp_path, upbit.iloc[::-1], "upbit_krw_usdt.csv")  # newest first, as the API gives it
    ecb = tmp_path / "eurofxref-hist.csv"
    formats.ecb_eurofxref(ecb, frame["fx"])
    mapping = ("data.columns={opening_price: open, high_price: high, low_price: low, trade_price: close, "
               "candle_acc_trade_volume: volume}")
    assert mapping in (Path(__file__).resolve().parents[2] / "docs" / "data.md").read_text()
    cfg = compose_cfg("data=csv", f"data.path={path}", "data.time_column=candle_date_time_utc", mapping,
                      f"data.fx_path={ecb}")
    market = load_market(cfg)
    assert market.manifest["columns"]["trade_price"] == "close" and market.manifest["fx_source"] == "ecb"
    train = market.tensors["train"]
    first = pd.Timestamp(train.times[0], tz="UTC")
    expected = frame["close"].loc[first:].to_numpy()[:train.close.shape[0]]
    np.testing.assert_allclose(train.close.cpu().numpy(), expected)


@pytest.mark.parametrize("option", ["csv", "parquet", "ccxt"])
def test_debug_fast_works_with_every_data_source(tmp_path, compose_cfg, data_sources, option):
    """`fit data=csv debug=fast` used to die with a TypeError: debug=fast sets data.days for any source."""
    from kpremia.data.synthetic import SyntheticParams, generate

    frame = generate(SyntheticParams(days=120), seed=5)
    path = tmp_path / f"bars.{option}"
    if option == "parquet":
        frame.drop(columns="premium").to_parquet(path)
    else:
        frame.drop(columns="premium").reset_index().to_csv(path, index=False)
    cfg = compose_cfg(f"data={option}", f"data.path={path}", "debug=fast") if option != "ccxt" else \
        compose_cfg("data=ccxt", "debug=fast", "data.start=2024-06-01", "data.end=2025-10-31")
    data_cfg = {k: v for k, v in cfg["data"].items() if k != "split"}
    assert data_cfg["days"] == 90
    source = data_sources.build(data_cfg)
    if option == "ccxt":  # no network here: the period it would fetch is what days cuts
        assert source.end_ms - source.start_ms == 90 * 86_400_000
        return
    loaded, _ = source.load()
    assert loaded.index[0] == frame.index[0] and loaded.index[-1] == frame.index[0] + pd.Timedelta(days=90, minutes=-15)
