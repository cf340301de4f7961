"""Files in the layouts of real public exports: what a new user brings, read without fabricating a bar.

The fixtures (``tests/fixtures/real_formats/formats.py``) are the layouts of a CryptoDataDownload
hourly export (banner line, newest first, two volume columns), the issue's daily researcher file
(close only, UTC and KST stamps, a BTC premium in percent), Upbit's day candles, the ECB's
eurofxref-hist.csv and FRED's DEXKOUS, filled with the synthetic market's numbers.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kpremia.core.errors import UserError
from kpremia.data.cli import inspect_main
from kpremia.data.files import CsvSource

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "real_formats"))
import formats  # noqa: E402

HOURLY = {"read_kwargs": {"skiprows": 1}, "columns": {"Volume USDT": "volume"}}  # the CDD layout's two quirks
DAILY = {"time_column": "date_utc", "columns": {"usdt_krw_close": "close", "usd_krw": "fx"}}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return formats.write_all(tmp_path_factory.mktemp("real_formats"))


def hourly_source(path: Path, fx: Path, **kw) -> CsvSource:
    return CsvSource(str(path), fx_path=str(fx), **{**HOURLY, **kw})


def oldest_first_copy(path: Path, out: Path, drop_hours: tuple[int, ...] = ()) -> Path:
    """The same CryptoDataDownload file with its rows oldest first (and some rows left out)."""
    banner, body = path.read_text().split("\n", 1)
    rows = body.splitlines()
    header, data = rows[0], rows[1:][::-1]
    data = [row for i, row in enumerate(data) if i not in drop_hours]
    out.write_text("\n".join([banner, header, *data]) + "\n")
    return out


def test_newest_first_hourly_file_gives_the_same_bars_as_oldest_first(files, tmp_path):
    newest = files["usdt_krw_1h_newest_first.csv"]
    oldest = oldest_first_copy(newest, tmp_path / "oldest_first.csv")
    frame_new, manifest_new = hourly_source(newest, files["DEXKOUS.csv"]).load()
    frame_old, manifest_old = hourly_source(oldest, files["DEXKOUS.csv"]).load()
    pd.testing.assert_frame_equal(frame_new, frame_old)
    assert manifest_new["timeframe"] == manifest_old["timeframe"] == "1h"  # the file's own bars, not 15m
    assert manifest_new["inserted_bars"] == manifest_old["inserted_bars"] == 0
    assert (np.diff(frame_new.index.asi8) == pd.Timedelta("1h").value).all()
    assert manifest_new["row_order"]["order"] == "newest-first" and manifest_old["row_order"]["order"] == "oldest-first"
    truth = formats.market(40, 5, bar="1h")  # the numbers the file was written from
    np.testing.assert_allclose(frame_new["close"], truth["close"].reindex(frame_new.index))


def test_an_hourly_file_with_one_missing_hour_inserts_exactly_one_bar_and_says_so(files, tmp_path, caplog):
    full, _ = hourly_source(files["usdt_krw_1h_newest_first.csv"], files["DEXKOUS.csv"]).load()
    missing_hour = 300  # a row well after the warm-up of the fx file
    gappy = oldest_first_copy(files["usdt_krw_1h_newest_first.csv"], tmp_path / "gap.csv", (missing_hour,))
    with caplog.at_level(logging.WARNING, logger="kpremia.data.repair"):
        frame, manifest = hourly_source(gappy, files["DEXKOUS.csv"]).load()
    assert manifest["inserted_bars"] == 1 and manifest["repair"]["gaps"] == 1
    assert "1 missing no-trade 1h bars inserted in 1 gaps" in caplog.text
    assert frame.index.equals(full.index)
    hole = formats.market(40, 5, bar="1h").index[missing_hour]
    row, before = frame.loc[hole], frame.loc[hole - pd.Timedelta("1h")]
    assert row["volume"] == 0.0 and row[["open", "high", "low", "close"]].tolist() == [before["close"]] * 4
    same = frame.index != hole
    pd.testing.assert_frame_equal(frame[same], full[same])


def test_a_btc_usd_file_passed_as_usdt_krw_is_refused_for_its_premium(files):
    source = hourly_source(files["btc_usd_1h.csv"], files["DEXKOUS.csv"], columns={"Volume BTC": "volume"})
    with pytest.raises(UserError, match=r"^data file .*btc_usd_1h.csv: premium \(close / fx - 1\) is \+4,\d{3}\.\d % "
                                         r"at .*not a USDT/KRW premium; check that close is the USDT/KRW price "
                                         r"\(a BTC/USD or BTC/KRW close is not\).*data.checks.max_abs_premium") as err:
        source.load()
    assert "\n" not in str(err.value)
    # an explicit override is possible, and the manifest says so
    frame, manifest = hourly_source(files["btc_usd_1h.csv"], files["DEXKOUS.csv"], columns={"Volume BTC": "volume"},
                                    checks={"max_abs_premium": 100}).load()
    assert manifest["checks"]["overridden"] == ["max_abs_premium"] and manifest["checks"]["max_abs_premium"] == 100


def test_fx_outside_usd_krw_is_refused(files, tmp_path):
    daily = pd.read_csv(files["researcher_daily.csv"])
    daily["usd_krw"] = daily["usd_krw"] / 1.08 / 1000  # a USD/EUR-ish column mapped onto fx by mistake
    path = tmp_path / "wrong_fx.csv"
    daily.to_csv(path, index=False)
    with pytest.raises(UserError, match=r"column 'fx' is 1\.\d\d at 2024-06-01.*not USD/KRW.*data.checks.fx_min"):
        CsvSource(str(path), **DAILY).load()


def test_the_daily_researcher_file_is_read_close_only_with_its_assumptions_stated(files, caplog):
    with caplog.at_level(logging.WARNING, logger="kpremia.data.files"):
        frame, manifest = CsvSource(str(files["researcher_daily.csv"]), **DAILY).load()
    assert manifest["timeframe"] == "1d" and len(frame) == 500 and manifest["inserted_bars"] == 0
    assert set(manifest["assumed"]) == {"open", "high", "low", "volume"} and "open = the previous bar's close" in caplog.text
    close = frame["close"].to_numpy()
    assert frame["open"].iloc[0] == close[0] and (frame["open"].to_numpy()[1:] == close[:-1]).all()
    assert (frame["high"] == frame[["open", "close"]].max(axis=1)).all() and (frame["volume"] == 0).all()
    assert frame.index[0] == pd.Timestamp("2024-06-01", tz="UTC")  # date_utc, not the KST stamp
    np.testing.assert_allclose(frame["premium"], frame["close"] / frame["fx"] - 1)


def test_the_btc_premium_in_percent_is_kept_only_when_asked_and_scaled(files):
    mapped = {**DAILY["columns"], "kimchi_premium_btc_pct": "premium"}
    with pytest.raises(UserError, match="'premium' column is not close / fx - 1.*premium_basis=btc"):
        CsvSource(str(files["researcher_daily.csv"]), time_column="date_utc", columns=mapped).load()
    with pytest.raises(UserError, match=r"premium \(the 'premium' column\) is \+\d+\.\d % .*looks like a percentage"):
        CsvSource(str(files["researcher_daily.csv"]), time_column="date_utc", columns=mapped,
                  premium_basis="btc").load()
    frame, manifest = CsvSource(str(files["researcher_daily.csv"]), time_column="date_utc", columns=mapped,
                                premium_basis="btc", premium_unit="percent").load()
    raw = pd.read_csv(files["researcher_daily.csv"])
    np.testing.assert_allclose(frame["premium"].to_numpy(), raw["kimchi_premium_btc_pct"].to_numpy() / 100)
    assert manifest["premium_unit"] == "percent"


def test_upbit_day_candles_newest_first_with_the_ecb_file(files):
    mapping = {"opening_price": "open", "high_price": "high", "low_price": "low", "trade_price": "close",
               "candle_acc_trade_volume": "volume"}
    frame, manifest = CsvSource(str(files["upbit_krw_usdt_days.csv"]), time_column="candle_date_time_utc",
                                columns=mapping, fx_path=str(files["eurofxref-hist.csv"])).load()
    assert manifest["timeframe"] == "1d" and manifest["row_order"]["order"] == "newest-first"
    assert manifest["fx_source"] == "ecb" and manifest["inserted_bars"] == 0
    ecb = pd.read_csv(files["eurofxref-hist.csv"], na_values=["N/A"])
    krw_per_usd = pd.Series((ecb["KRW"] / ecb["USD"]).to_numpy(), index=pd.to_datetime(ecb["Date"]).dt.tz_localize("UTC"))
    # the daily bar of D closes at D+1 00:00 UTC, after D's ECB rate (16:00 Berlin): it uses D's rate
    wednesday = pd.Timestamp("2024-07-03", tz="UTC")
    assert frame.loc[wednesday, "fx"] == pytest.approx(krw_per_usd[wednesday])
    saturday = pd.Timestamp("2024-07-06", tz="UTC")  # no ECB rate on weekends: Friday's is carried
    assert frame.loc[saturday, "fx"] == pytest.approx(krw_per_usd[pd.Timestamp("2024-07-05", tz="UTC")])


def test_a_time_given_twice_with_different_values_is_refused_with_its_rows(files, tmp_path):
    daily = pd.read_csv(files["researcher_daily.csv"])
    twice = pd.concat([daily.iloc[:5], daily.iloc[[3]].assign(usdt_krw_close=1500.0), daily.iloc[5:]])
    path = tmp_path / "twice.csv"
    twice.to_csv(path, index=False)
    with pytest.raises(UserError, match=r"rows 3, 5 all hold the bar at 2024-06-04T00:00:00\+00:00 with different "
                                         r"values; keep one row per bar time"):
        CsvSource(str(path), **DAILY).load()
    again = pd.concat([daily.iloc[:5], daily.iloc[[3]], daily.iloc[5:]])  # an exact repeat: dropped, counted
    again.to_csv(path, index=False)
    frame, manifest = CsvSource(str(path), **DAILY).load()
    assert len(frame) == 500 and manifest["row_order"]["identical_duplicates_dropped"] == 1


def test_mixed_spacings_are_refused_with_the_rows(tmp_path, bars):
    df = bars(20).reset_index()
    df.loc[10:, "time"] = df.loc[10:, "time"] + pd.Timedelta(minutes=5)  # from row 10 on, 20 min after the last
    path = tmp_path / "mixed.csv"
    df.to_csv(path, index=False)
    with pytest.raises(UserError, match=r"rows 9 and 10 are 0 days 00:20:00 apart but the file's bars are 15m apart "
                                         r"\(\d+% of steps\): mixed spacings"):
        CsvSource(str(path)).load()
    # a 15m file that turns hourly: whole multiples, but filling them would be 3 bars invented per hour
    quarter = bars(40).reset_index()
    hourly = bars(30, start="2024-01-01 10:00").reset_index().iloc[::4]
    pd.concat([quarter, hourly]).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"filling its gaps inserted 21 of 69 15m bars \(\d+% > "
                                         r"data.checks.max_inserted_frac=0.25\): that is a sparse or mixed file"):
        CsvSource(str(path)).load()


def test_mapping_onto_a_name_the_file_already_has_uses_the_mapped_column(tmp_path, bars, caplog):
    df = bars(12).reset_index().assign(volume_btc=lambda d: d["volume"] * 7.0)
    path = tmp_path / "both.csv"
    df.to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="kpremia.data.file_table"):
        frame, manifest = CsvSource(str(path), columns={"volume_btc": "volume"}).load()
    np.testing.assert_allclose(frame["volume"], df["volume_btc"])
    assert manifest["replaced_columns"] == {"volume": "volume"} and "is not used" in caplog.text
    with pytest.raises(UserError, match="maps both 'volume' and 'volume_btc' onto 'volume'"):
        CsvSource(str(path), columns={"volume": "volume", "volume_btc": "volume"}).load()


def test_read_kwargs_and_time_format_read_a_european_export(tmp_path, bars):
    df = bars(8).reset_index()
    df["time"] = df["time"].dt.strftime("%d.%m.%Y %H:%M")
    path = tmp_path / "european.csv"
    path.write_text("Exported by MyBroker 2024\n" + df.to_csv(index=False, sep=";", decimal=","))
    with pytest.raises(UserError, match="cannot read csv file|no time column|missing columns"):
        CsvSource(str(path)).load()
    frame, _ = CsvSource(str(path), read_kwargs={"skiprows": 1, "sep": ";", "decimal": ","},
                         time_format="%d.%m.%Y %H:%M").load()
    pd.testing.assert_frame_equal(frame.drop(columns="premium"), bars(8), check_freq=False, check_index_type=False)
    assert frame.index.equals(bars(8).index)
    with pytest.raises(UserError, match=r"unparseable time '01.01.2024 00:00' in row 0 of column 'time' with "
                                         r"time_format '%Y-%m-%d'"):
        CsvSource(str(path), read_kwargs={"skiprows": 1, "sep": ";", "decimal": ","}, time_format="%Y-%m-%d").load()


def test_data_inspect_reads_a_file_with_the_options_of_fit(files, capsys):
    args = [str(files["usdt_krw_1h_newest_first.csv"]), "data.read_kwargs={skiprows: 1}",
            r"data.columns={Volume\ USDT: volume}", f"data.fx_path={files['DEXKOUS.csv']}"]
    assert inspect_main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    frame, manifest = hourly_source(files["usdt_krw_1h_newest_first.csv"], files["DEXKOUS.csv"]).load()
    assert report["bar"] == "1h" and report["coverage"]["rows"] == len(frame)
    assert report["file"]["row_order"]["order"] == "newest-first" and report["file"]["inserted_bars"] == 0
    assert inspect_main(args) == 0
    text = capsys.readouterr().out
    assert "(1h bars)" in text and "rows in file     newest-first" in text and "inserted bars    0" in text
    with pytest.raises(UserError, match="takes data options only"):
        inspect_main([str(files["researcher_daily.csv"]), "env.fee_rate=0"])
    with pytest.raises(UserError, match="Could not override 'data.colums'.*the data options are those of"):
        inspect_main([str(files["researcher_daily.csv"]), "data.colums={a: close}"])
