"""Parquet cache: incremental fetches, resume after interruption, integrity checks, atomic writes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "ccxt"))
from ccxt_replay import ReplayServer, expected_ohlcv, make_candles, replay_factory  # noqa: E402

from kpremia.core.io import atomic_write, atomic_write_bytes  # noqa: E402
from kpremia.data.cache import (  # noqa: E402
    DatasetKey,
    OhlcvCache,
    atomic_write_parquet,
    default_cache_dir,
    merge_intervals,
    subtract_intervals,
)
from kpremia.data.ccxt_source import CcxtSource  # noqa: E402
from kpremia.data.exchange import FetchFailed, RetryPolicy, fetch_ohlcv_cached  # noqa: E402

KEY = DatasetKey("upbit", "USDT/KRW", "15m")
NO_RETRY = RetryPolicy(max_retries=0, base_delay_s=0.0)
BAR_MS = 900_000


def ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)


@pytest.fixture
def table() -> pd.DataFrame:
    return make_candles("2024-06-01", 96 * 8, seed=11, missing={7, 400, 401})


@pytest.fixture
def server(table) -> ReplayServer:
    return ReplayServer(upbit_candles={"KRW-USDT": table})


def fetch(server, root, start="2024-06-01", end="2024-06-09", **kw):
    kw.setdefault("retry", NO_RETRY)
    return fetch_ohlcv_cached("upbit", "USDT/KRW", "15m", ms(start), ms(end), cache=OhlcvCache(root),
                              exchange_factory=replay_factory(server), **kw)


def candle_windows(server) -> list[tuple[int, int]]:
    """[since, to) of every candle request made so far."""
    out = []
    for q in server.candle_requests():
        to = ms(q["to"].replace("Z", ""))
        out.append((to - int(q["count"]) * BAR_MS, to))
    return out


# --------------------------------------------------------------------------- helpers


def test_interval_arithmetic():
    assert merge_intervals([(5, 7), (0, 2), (2, 3), (6, 9)]) == [(0, 3), (5, 9)]
    assert subtract_intervals((0, 10), [(2, 4), (6, 8)]) == [(0, 2), (4, 6), (8, 10)]
    assert subtract_intervals((0, 10), [(0, 10)]) == []
    assert subtract_intervals((3, 5), []) == [(3, 5)]


def test_default_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KPREMIA_DATA_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("KPREMIA_DATA_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "kpremia"


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "x.bin"
    atomic_write_bytes(path, b"old")
    with pytest.raises(RuntimeError):
        def half_then_crash(fh):
            fh.write(b"new but incomp")
            raise RuntimeError("killed mid-write")

        atomic_write(path, half_then_crash)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["x.bin"]


def test_dataset_key_round_trip():
    key = DatasetKey.parse("binance:BTC/USDT:USDT:1h")
    assert (key.exchange, key.symbol, key.timeframe) == ("binance", "BTC/USDT:USDT", "1h")
    assert KEY.relpath() == Path("ohlcv/upbit/USDT-KRW/15m")


# --------------------------------------------------------------------------- manifest


def test_manifest_describes_the_parquet(server, table, tmp_path):
    fetch(server, tmp_path)
    parquet, manifest_path = OhlcvCache(tmp_path).paths(KEY)
    m = json.loads(manifest_path.read_text())
    assert m["sha256"] == hashlib.sha256(parquet.read_bytes()).hexdigest()
    assert (m["source"], m["exchange"], m["symbol"], m["timeframe"], m["market_id"]) == \
        ("ccxt", "upbit", "USDT/KRW", "15m", "KRW-USDT")
    assert m["rows"] == len(table) and m["expected_rows"] == 96 * 8
    assert m["gaps"] == {"count": 2, "missing_bars": 3, "longest_bars": 2,
                         "longest_start": "2024-06-05T04:00:00+00:00"}
    assert m["first_bar"] == "2024-06-01T00:00:00+00:00" and m["last_bar"] == "2024-06-08T23:45:00+00:00"
    assert m["coverage"] == [["2024-06-01T00:00:00+00:00", "2024-06-09T00:00:00+00:00"]]
    assert m["fetched_at"] and m["page_size"] == 200
    assert not [p for p in parquet.parent.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- incremental fetches


def test_second_fetch_downloads_only_after_the_last_bar(server, table, tmp_path):
    fetch(server, tmp_path, end="2024-06-04")
    first_windows = len(candle_windows(server))
    result = fetch(server, tmp_path, end="2024-06-09")
    new = candle_windows(server)[first_windows:]
    assert new and min(a for a, _ in new) == ms("2024-06-04")
    assert len(new) == 3  # 5 days = 480 bars = 3 requests of 200
    pd.testing.assert_frame_equal(result.candles, expected_ohlcv(table), check_freq=False)


def test_second_fetch_downloads_only_before_the_first_bar(server, table, tmp_path):
    fetch(server, tmp_path, start="2024-06-05")
    n = len(candle_windows(server))
    result = fetch(server, tmp_path, start="2024-06-01")
    new = candle_windows(server)[n:]
    assert new and max(b for _, b in new) <= ms("2024-06-05")
    pd.testing.assert_frame_equal(result.candles, expected_ohlcv(table), check_freq=False)


def test_fully_cached_period_needs_no_exchange(server, tmp_path):
    fetch(server, tmp_path)

    def no_exchange(exchange_id):
        raise AssertionError("the exchange must not be contacted")

    result = fetch_ohlcv_cached("upbit", "USDT/KRW", "15m", ms("2024-06-02"), ms("2024-06-03"),
                                cache=OhlcvCache(tmp_path), exchange_factory=no_exchange)
    assert len(result.candles) == 96 and result.stats.requests == 0


# --------------------------------------------------------------------------- resume


def test_interrupted_fetch_resumes_and_equals_an_uninterrupted_one(server, table, tmp_path):
    server.fail("network", after=2, times=float("inf"))  # the connection dies after 2 pages
    with pytest.raises(FetchFailed):
        fetch(server, tmp_path / "a", flush_every_pages=1)
    m = json.loads(OhlcvCache(tmp_path / "a").paths(KEY)[1].read_text())
    assert m["coverage"] == [["2024-06-01T00:00:00+00:00", "2024-06-05T04:00:00+00:00"]]  # 2 pages x 200 bars

    server.faults.clear()
    n = len(server.requests)
    resumed = fetch(server, tmp_path / "a")
    resumed_windows = [(a, b) for a, b in candle_windows(ReplayServer(requests=server.requests[n:]))]
    assert min(a for a, _ in resumed_windows) == ms("2024-06-01") + 400 * BAR_MS  # only the rest
    assert len(resumed_windows) == 2

    clean = fetch(ReplayServer(upbit_candles=server.upbit_candles), tmp_path / "b")
    pd.testing.assert_frame_equal(resumed.candles, clean.candles)
    pd.testing.assert_frame_equal(resumed.candles, expected_ohlcv(table), check_freq=False)
    # and the assembled MarketFrames are identical too
    frames = [CcxtSource(start="2024-06-01", end="2024-06-08", cache_dir=str(tmp_path / d), progress=False,
                         exchange_factory=replay_factory(server)).load()[0] for d in ("a", "b")]
    pd.testing.assert_frame_equal(*frames)


def test_pages_are_persisted_while_fetching(server, tmp_path):
    """Every `flush_every_pages` pages the cache on disk advances, before the fetch ends."""
    seen: list[list[list[str]]] = []
    manifest_path = OhlcvCache(tmp_path).paths(KEY)[1]

    def snoop(url):
        if "candles" in url and manifest_path.exists():
            seen.append(json.loads(manifest_path.read_text())["coverage"])

    server.on_request = snoop
    fetch(server, tmp_path, flush_every_pages=2)
    assert seen[0] == [["2024-06-01T00:00:00+00:00", "2024-06-05T04:00:00+00:00"]]  # after pages 1-2, before 3


def test_keyboard_interrupt_keeps_fetched_pages(server, tmp_path):
    calls = {"n": 0}

    def interrupt(url):
        if "candles" in url:
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt

    server.on_request = interrupt
    with pytest.raises(KeyboardInterrupt):
        fetch(server, tmp_path, flush_every_pages=50)
    cached = OhlcvCache(tmp_path).load(KEY)
    assert cached is not None and cached.coverage == [(ms("2024-06-01"), ms("2024-06-01") + 400 * BAR_MS)]


# --------------------------------------------------------------------------- integrity


def test_corrupt_parquet_is_detected_and_refetched(server, table, tmp_path, caplog):
    fetch(server, tmp_path)
    parquet, manifest_path = OhlcvCache(tmp_path).paths(KEY)
    parquet.write_bytes(b"PAR1 this is not parquet")
    m = json.loads(manifest_path.read_text())
    m["sha256"] = hashlib.sha256(parquet.read_bytes()).hexdigest()  # sha matches: only the parquet is broken
    manifest_path.write_text(json.dumps(m))
    n = len(server.requests)
    with caplog.at_level(logging.WARNING):
        result = fetch(server, tmp_path)
    assert "unusable" in caplog.text and "unreadable" in caplog.text
    assert len(candle_windows(ReplayServer(requests=server.requests[n:]))) == 4  # everything again
    pd.testing.assert_frame_equal(result.candles, expected_ohlcv(table), check_freq=False)
    assert parquet.with_name(parquet.name + ".corrupt").exists()
    assert OhlcvCache(tmp_path).load(KEY) is not None  # the refetch wrote a good dataset


def test_sha_mismatch_is_detected_and_never_used(server, table, tmp_path, caplog):
    fetch(server, tmp_path)
    parquet, _ = OhlcvCache(tmp_path).paths(KEY)
    tampered = pd.read_parquet(parquet)
    tampered["close"] *= 2.0  # a valid parquet with the wrong numbers
    atomic_write_parquet(parquet, tampered)
    with caplog.at_level(logging.WARNING):
        result = fetch(server, tmp_path)
    assert "sha256" in caplog.text
    pd.testing.assert_frame_equal(result.candles, expected_ohlcv(table), check_freq=False)


def test_unreadable_manifest_is_treated_as_corrupt(server, tmp_path, caplog):
    fetch(server, tmp_path)
    OhlcvCache(tmp_path).paths(KEY)[1].write_text("{ truncated")
    with caplog.at_level(logging.WARNING):
        assert OhlcvCache(tmp_path).load(KEY) is None
    assert "manifest" in caplog.text
