"""The ccxt source against REAL ccxt exchange classes fed recorded/rendered HTTP responses.

Only ``exchange.fetch`` (the HTTP layer) is replaced (tests/fixtures/ccxt/ccxt_replay.py);
ccxt's URL building, throttle, parsers and error mapping all run.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import ccxt
import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "ccxt"))
from ccxt_replay import (  # noqa: E402
    HERE,
    ReplayServer,
    expected_ohlcv,
    make_candles,
    replay_factory,
)

from kpremia.core.errors import UserError  # noqa: E402
from kpremia.data.cache import OhlcvCache  # noqa: E402
from kpremia.data.ccxt_source import CcxtSource  # noqa: E402
from kpremia.data.exchange import (  # noqa: E402
    FetchFailed,
    RetryPolicy,
    call_with_retry,
    create_exchange,
    fetch_ohlcv_cached,
    request_interval_s,
)

FAST = RetryPolicy(max_retries=3, base_delay_s=0.0, max_delay_s=0.0)
BAR = pd.Timedelta(minutes=15)
TOO_MANY = json.dumps({"error": {"name": "too_many_requests", "message": "Too many API requests."}})


def ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)


@pytest.fixture
def table() -> pd.DataFrame:
    # 6 days of KRW-USDT, with no-trade bars (absent candles) at 10, 11 and 300
    return make_candles("2024-06-03", 96 * 6, seed=1, missing={10, 11, 300})


@pytest.fixture
def server(table: pd.DataFrame) -> ReplayServer:
    return ReplayServer(upbit_candles={"KRW-USDT": table})


def fetch(server: ReplayServer, tmp_path: Path, start: str = "2024-06-03", end: str = "2024-06-09", **kw):
    kw.setdefault("retry", FAST)
    return fetch_ohlcv_cached("upbit", "USDT/KRW", "15m", ms(start), ms(end), cache=OhlcvCache(tmp_path),
                              exchange_factory=replay_factory(server), **kw)


def source(server: ReplayServer, tmp_path: Path, **kw) -> CcxtSource:
    kw.setdefault("max_retries", 2)
    kw.setdefault("retry_base_delay_s", 0.0)
    return CcxtSource(start=kw.pop("start", "2024-06-03"), end=kw.pop("end", "2024-06-08"), cache_dir=str(tmp_path),
                      progress=False, exchange_factory=replay_factory(server), **kw)


# --------------------------------------------------------------------------- parsing of the recorded layouts


def test_recorded_upbit_page_parses_with_ccxt():
    """ccxt's own upbit parser reads the recorded layout: time from candle_date_time_utc, base volume."""
    page = json.loads((HERE / "upbit_candles_minutes_15_KRW-USDT.json").read_text())
    server = ReplayServer()
    ex = server.attach(create_exchange("upbit"))
    ex.load_markets()
    assert ex.market("USDT/KRW")["id"] == "KRW-USDT"
    ex.fetch = lambda url, method="GET", headers=None, body=None: page  # the recorded response verbatim
    rows = ex.fetch_ohlcv("USDT/KRW", "15m", since=ms("2024-06-03"), limit=200)
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)  # newest-first page comes back ascending
    assert len(rows) == 7  # one no-trade bar absent from the recording
    newest = page[0]
    assert rows[-1] == [ms(newest["candle_date_time_utc"]), newest["opening_price"], newest["high_price"],
                        newest["low_price"], newest["trade_price"], newest["candle_acc_trade_volume"]]


def test_recorded_binance_page_parses_with_ccxt():
    page = json.loads((HERE / "binance_klines_BTCUSDT_15m.json").read_text())
    server = ReplayServer()
    ex = server.attach(create_exchange("binance"))
    ex.load_markets()
    assert set(ex.markets) >= {"BTC/USDT", "ETH/USDT"}
    ex.fetch = lambda url, method="GET", headers=None, body=None: page
    rows = ex.fetch_ohlcv("BTC/USDT", "15m", since=page[0][0], limit=1000)
    assert rows[0] == [page[0][0], float(page[0][1]), float(page[0][2]), float(page[0][3]), float(page[0][4]),
                       float(page[0][5])]


# --------------------------------------------------------------------------- pagination


def test_multi_page_pagination_uses_upbit_to_and_count(server, table, tmp_path):
    result = fetch(server, tmp_path)
    reqs = server.candle_requests()
    assert len(reqs) == 3  # 576 bars / 200 per request
    assert all(r["market"] == "KRW-USDT" for r in reqs)
    assert [r["count"] for r in reqs] == ["200", "200", "176"]  # the last window stops at `end`
    # each request's exclusive `to` is the next window's start
    tos = [ms(r["to"].replace("Z", "")) for r in reqs]
    assert tos == [ms("2024-06-03") + k * 900_000 for k in (200, 400, 576)]
    pd.testing.assert_frame_equal(result.candles, expected_ohlcv(table), check_index_type=False,
                                  check_freq=False)
    assert result.stats.requests == 3


def test_page_size_is_capped_at_the_exchange_maximum(server, table, tmp_path, caplog):
    """Upbit serves at most 200 candles; a bigger page would silently lose candles."""
    with caplog.at_level(logging.WARNING):
        result = fetch(server, tmp_path, page_size=1000)
    assert "exceeds upbit's maximum of 200" in caplog.text
    assert max(int(r["count"]) for r in server.candle_requests()) == 200
    assert len(result.candles) == len(table)


def test_overlapping_pages_are_deduplicated(tmp_path):
    """Binance pages forward from `since`; with missing trades a page runs past its window and overlaps."""
    klines = make_candles("2024-06-03", 600, seed=3, price=68000.0, tick=0.01,
                          missing=set(range(50, 90)) | set(range(250, 260)))
    server = ReplayServer(binance_klines={"BTCUSDT": klines})
    result = fetch_ohlcv_cached("binance", "BTC/USDT", "15m", ms("2024-06-03"), ms("2024-06-10"), cache=None,
                                retry=FAST, page_size=100, exchange_factory=replay_factory(server))
    served = sum(min(100, int((klines["time"] >= int(r["startTime"])).sum())) for r in server.candle_requests())
    assert served > len(klines)  # pages did overlap
    assert not result.candles.index.has_duplicates
    pd.testing.assert_frame_equal(result.candles, expected_ohlcv(klines), check_index_type=False, check_freq=False)


def test_empty_pages_at_the_end_stop_cleanly(server, table, tmp_path):
    """Asking past the last candle: the trailing windows are empty, the fetch ends at `end`."""
    result = fetch(server, tmp_path, end="2024-06-12")
    assert len(result.candles) == len(table)
    assert server.candle_requests()[-1]  # it did ask for the empty windows
    assert result.manifest["coverage"] == [["2024-06-03T00:00:00+00:00", "2024-06-12T00:00:00+00:00"]]
    n = len(server.requests)
    fetch(server, tmp_path, end="2024-06-12")
    assert len(server.requests) == n  # scanned once: empty windows are not rescanned


def test_only_closed_bars_are_fetched(server, tmp_path):
    now = ms("2024-06-03") + 10 * 900_000 + 7 * 60_000  # 7 minutes into bar 10
    result = fetch(server, tmp_path, now_ms=now)
    assert result.candles.index[-1] == pd.Timestamp("2024-06-03 02:15", tz="UTC")  # bar 9
    assert result.manifest["coverage"][0][1] == "2024-06-03T02:30:00+00:00"


# --------------------------------------------------------------------------- retries and errors


def test_network_error_and_timeout_are_retried(server, table, tmp_path, caplog):
    server.fail("network", times=2)
    server.fail("timeout", times=1, after=1)
    with caplog.at_level(logging.WARNING):
        result = fetch(server, tmp_path)
    assert len(result.candles) == len(table)
    assert caplog.text.count("retry") == 3
    assert "NetworkError" in caplog.text and "RequestTimeout" in caplog.text


@pytest.mark.parametrize("body", [TOO_MANY, "Too many API requests."], ids=["json", "text"])
def test_rate_limit_429_is_retried(server, table, tmp_path, caplog, body):
    server.fail("http", status=429, body=body, times=2)
    with caplog.at_level(logging.WARNING):
        result = fetch(server, tmp_path)
    assert len(result.candles) == len(table)
    assert caplog.text.count("RateLimitExceeded") == 2


def test_stock_ccxt_upbit_maps_json_429_to_a_plain_exchange_error():
    """Why create_exchange patches the upbit error map: stock ccxt would not retry this 429."""
    server = ReplayServer()
    server.fail("http", match="market/all", status=429, body=TOO_MANY)
    stock = server.attach(ccxt.upbit({"enableRateLimit": True}))
    with pytest.raises(ccxt.ExchangeError) as info:
        stock.load_markets()
    assert not isinstance(info.value, ccxt.NetworkError)
    server.fail("http", match="market/all", status=429, body=TOO_MANY)
    ours = server.attach(create_exchange("upbit"))
    with pytest.raises(ccxt.RateLimitExceeded):
        ours.load_markets()


def test_exhausted_rate_limit_retries_give_one_clear_error(server, tmp_path):
    server.fail("http", status=429, body=TOO_MANY, times=float("inf"))
    with pytest.raises(UserError) as info:
        source(server, tmp_path, max_retries=2).load()
    msg = str(info.value)
    assert "RateLimitExceeded after 3 attempts" in msg and "allow_synthetic_fallback" in msg
    assert "\n" not in msg


def test_backoff_is_exponential_and_capped():
    delays: list[float] = []
    calls = iter([ccxt.RequestTimeout("t")] * 4 + ["ok"])

    def flaky():
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    policy = RetryPolicy(max_retries=5, base_delay_s=0.5, max_delay_s=3.0)
    assert call_with_retry(flaky, retry=policy, what="x", sleep=delays.append) == "ok"
    assert delays == [0.5, 1.0, 2.0, 3.0]


def test_non_retryable_exchange_error_fails_fast():
    def boom():
        raise ccxt.ExchangeError("upbit {\"error\":{\"name\":\"server_error\"}}")

    with pytest.raises(FetchFailed, match="ExchangeError"):
        call_with_retry(boom, retry=FAST, what="x", sleep=lambda s: pytest.fail("no retry expected"))


def test_bad_symbol_is_a_user_error(server, tmp_path):
    with pytest.raises(UserError, match=r"upbit has no market 'USDT/KRX'.*Did you mean USDT/KRW"):
        source(server, tmp_path, symbol="USDT/KRX").load()
    assert server.candle_requests() == []


def test_bad_symbol_reported_by_the_exchange_is_a_user_error(tmp_path):
    """ETH/USDT is listed but the kline endpoint says -1121 Invalid symbol: ccxt maps it to BadSymbol."""
    server = ReplayServer(binance_klines={})
    with pytest.raises(UserError, match="does not know this symbol"):
        fetch_ohlcv_cached("binance", "ETH/USDT", "15m", ms("2024-06-03"), ms("2024-06-04"), cache=None,
                           retry=FAST, exchange_factory=replay_factory(server))


def test_bad_timeframe_is_a_user_error(server, tmp_path):
    with pytest.raises(UserError, match=r"upbit has no '2h' candles; set data.timeframe to one of: 1s, 1m"):
        fetch_ohlcv_cached("upbit", "USDT/KRW", "2h", ms("2024-06-03"), ms("2024-06-04"), cache=None,
                           retry=FAST, exchange_factory=replay_factory(server))
    with pytest.raises(UserError, match="not a ccxt timeframe"):
        CcxtSource(timeframe="15x")


def test_unknown_exchange_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"ccxt has no exchange 'upbitt'.*Did you mean upbit"):
        CcxtSource(exchange="upbitt", cache_dir=str(tmp_path))
    with pytest.raises(UserError, match="ccxt has no exchange 'nope'"):
        CcxtSource(fallback_exchanges=["nope"], cache_dir=str(tmp_path))


# --------------------------------------------------------------------------- fallbacks


def test_fallback_exchange_is_used_on_persistent_failure(tmp_path, caplog):
    usdc = make_candles("2024-06-03", 96 * 5, seed=4, price=1.0, tick=0.0001)
    server = ReplayServer(binance_klines={"USDCUSDT": usdc})
    server.fail("network", match="api.upbit.com/v1/candles", times=float("inf"))
    src = source(server, tmp_path, fallback_exchanges=[{"exchange": "binance", "symbol": "USDC/USDT"}])
    with caplog.at_level(logging.WARNING):
        venue, result, reasons = src.fetch_candles()
    assert venue.exchange == "binance" and len(result.candles) == len(usdc)
    assert "upbit" in reasons[0] and "NetworkError after 3 attempts" in reasons[0]
    assert "using fallback exchange binance" in caplog.text


def test_synthetic_fallback_says_so(server, tmp_path, caplog):
    server.fail("network", times=float("inf"))
    src = source(server, tmp_path, allow_synthetic_fallback=True, synthetic={"seed": 3})
    with caplog.at_level(logging.WARNING):
        frame, manifest = src.load()
    assert manifest["synthetic"] is True
    assert "NetworkError" in manifest["fallback_reason"]
    assert manifest["requested"]["exchange"] == "upbit"
    assert "SYNTHETIC" in caplog.text
    assert frame.index[0] == pd.Timestamp("2024-06-03", tz="UTC")
    assert len(frame) == 6 * 96  # end 2024-06-08 is inclusive


def test_synthetic_fallback_when_the_period_has_no_candles(server, tmp_path):
    frame, manifest = source(server, tmp_path, start="2023-01-02", end="2023-01-03",
                             allow_synthetic_fallback=True).load()
    assert manifest["synthetic"] is True and "no candles" in manifest["fallback_reason"]


# --------------------------------------------------------------------------- the MarketFrame


def test_load_gives_a_valid_market_frame(server, table, tmp_path):
    frame, manifest = source(server, tmp_path).load()
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "fx", "premium"]
    assert (frame.dtypes == "float64").all()
    assert str(frame.index.tz) == "UTC"
    assert len(frame) == 6 * 96 and frame.index.to_series().diff().dropna().eq(BAR).all()
    # absent candles became no-trade bars: previous close carried, zero volume
    gap = frame.loc["2024-06-03 02:30":"2024-06-03 02:45"]
    assert (gap["volume"] == 0).all() and (gap["close"] == frame.loc["2024-06-03 02:15", "close"]).all()
    np.testing.assert_allclose(frame["premium"], frame["close"] / frame["fx"] - 1)
    assert manifest["source"] == "ccxt" and manifest["synthetic"] is False
    assert manifest["repair"]["gap_bars_inserted"] == 3
    assert manifest["dataset"]["sha256"]


def test_inserted_no_trade_bar_gets_the_fx_published_before_its_own_close(tmp_path):
    """A gap spanning the ECB publication must not carry the previous day's rate."""
    # 2024-06-04 (CEST): ECB publishes at 14:00 UTC; remove the bars around it
    start = pd.Timestamp("2024-06-04 12:00", tz="UTC")
    table = make_candles("2024-06-04 12:00", 16, seed=5, missing={6, 7, 8, 9})  # 13:30 .. 14:15 absent
    server = ReplayServer(upbit_candles={"KRW-USDT": table})
    frame, _ = source(server, tmp_path, start="2024-06-04T12:00", end="2024-06-04T16:00").load()
    before, after = frame.loc[start + 6 * BAR, "fx"], frame.loc[start + 8 * BAR, "fx"]  # close 13:45 / 14:15
    assert before != after


def test_btc_premium_basis(tmp_path):
    usdt = make_candles("2024-06-03", 96 * 3, seed=6)
    btc_usdt = make_candles("2024-06-03", 96 * 3, seed=7, price=68000.0, tick=0.01, volume_scale=20.0)
    btc_krw = btc_usdt.copy()
    btc_krw[["open", "high", "low", "close"]] = (btc_usdt[["open", "high", "low", "close"]] * 1400.0).round()
    btc_krw = btc_krw.drop(index=[20, 21])  # no BTC/KRW trade in two bars
    server = ReplayServer(upbit_candles={"KRW-USDT": usdt, "KRW-BTC": btc_krw},
                          binance_klines={"BTCUSDT": btc_usdt})
    frame, manifest = source(server, tmp_path, end="2024-06-05", premium_basis="btc").load()
    krw = expected_ohlcv(btc_krw)["close"].reindex(frame.index).ffill()  # missing candles carry the close
    usd = expected_ohlcv(btc_usdt)["close"].reindex(frame.index)
    np.testing.assert_allclose(frame["premium"], krw / (usd * frame["fx"]) - 1, rtol=1e-12)
    assert set(manifest["btc"]["datasets"]) == {"btc_krw", "btc_usdt"}
    assert "api.binance.com/api/v3/klines" in " ".join(server.requests)


# --------------------------------------------------------------------------- the rate limit


def test_requests_respect_the_exchange_rate_limit(tmp_path, caplog):
    """With ccxt's real throttle, Upbit candle requests are >= rateLimit * cost = 100 ms apart.

    Also the figure docs/data.md quotes: requests/s and candles/min replayed (no network latency).
    """
    table = make_candles("2024-06-03", 200 * 8, seed=2)
    stamps: list[float] = []
    server = ReplayServer(upbit_candles={"KRW-USDT": table},
                          on_request=lambda url: stamps.append(time.monotonic()) if "candles" in url else None)
    result = fetch_ohlcv_cached("upbit", "USDT/KRW", "15m", ms("2024-06-03"), ms("2024-06-03") + 1600 * 900_000,
                                cache=None, retry=FAST, exchange_factory=replay_factory(server, rate_limit_ms=None))
    gaps = np.diff(stamps)
    assert len(stamps) == 8 and gaps.min() >= 0.095
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert rate <= 10.5
    assert request_interval_s(create_exchange("upbit")) == pytest.approx(0.1)
    logging.getLogger(__name__).info("replayed upbit fetch: %.2f req/s = %.0f candles/min", rate, rate * 200 * 60)
    assert len(result.candles) == 1600


# --------------------------------------------------------------------------- config


def test_shipped_config_composes_and_builds_the_source(compose_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("KPREMIA_DATA_DIR", str(tmp_path))
    cfg = compose_cfg("data=ccxt")["data"]
    assert cfg["name"] == "ccxt" and cfg["cache_dir"] == str(tmp_path)
    kwargs = {k: v for k, v in cfg.items() if k not in ("name", "split")}
    src = CcxtSource(**kwargs)  # no network until load()
    assert src.venues[0].exchange == "upbit" and src.venues[0].symbol == "USDT/KRW"
    assert src.start_ms == ms("2024-06-01") and src.end_ms == ms("2025-11-01")
    assert src.fx_cfg.source == "ecb" and src.fx_cfg.max_staleness == pd.Timedelta(days=5)
    assert src.cache is not None and src.cache.root == tmp_path


def test_a_data_error_names_the_market_and_its_cache_file(tmp_path):
    """Like a file source's errors, the ccxt source's say which data they are about."""
    table = make_candles("2024-06-03", 96 * 3, seed=2, missing=set(range(40, 70)))  # a 30-bar hole
    server = ReplayServer(upbit_candles={"KRW-USDT": table})
    with pytest.raises(UserError) as caught:
        source(server, tmp_path, end="2024-06-05", max_gap_bars=10).load()
    message = str(caught.value)
    cache_file = tmp_path / "ohlcv" / "upbit" / "USDT-KRW" / "15m.parquet"
    assert message.startswith(f"upbit USDT/KRW 15m candles (cache file {cache_file}): gap of 30 missing 15m bars")
