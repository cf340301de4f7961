"""The ccxt feed against a REAL ccxt.upbit fed recorded-layout candle responses, with a fake clock."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "ccxt"))
from ccxt_replay import ReplayServer, make_candles  # noqa: E402

from kpremia.data.exchange import RetryPolicy, create_exchange  # noqa: E402
from kpremia.live.venues.ccxt_feed import CcxtFeed  # noqa: E402

START = "2024-06-03"
BAR_S = 900


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def make_feed(table, clock, *, polls, server=None):
    server = server or ReplayServer(upbit_candles={"KRW-USDT": table})
    exchange = server.attach(create_exchange("upbit"))
    fx = pd.Series([1380.0], index=pd.DatetimeIndex([pd.Timestamp("2024-01-01", tz="UTC")]))
    return CcxtFeed(exchange, "USDT/KRW", fx, warmup=96, refresh_interval=BAR_S, max_staleness=pd.Timedelta(days=999),
                    retry=RetryPolicy(max_retries=3, base_delay_s=0.0, max_delay_s=0.0), clock=clock,
                    sleep=clock.sleep, max_polls=polls), server


def test_yields_each_closed_candle_once_never_the_forming_one():
    table = make_candles(START, 400, seed=3, missing={150, 151})
    t0 = pd.Timestamp(START, tz="UTC").timestamp()
    clock = Clock(t0 + 200 * BAR_S + 60)  # bar 200 is forming
    feed, server = make_feed(table, clock, polls=11)  # the first poll finds bar 200 still forming
    history = feed.history()
    assert history.index[-1] == pd.Timestamp(START, tz="UTC") + pd.Timedelta(minutes=15 * 199)
    assert len(history) == 96 and history["premium"].notna().all()
    bars, sendable = [], []
    for bar in feed.bars(after=history.index[-1]):  # as the runner sees them, with the clock at that moment
        bars.append(bar)
        sendable.append(feed.can_still_send(bar.time))
    times = [b.time for b in bars]
    # one bar per poll as the clock moves; the forming bar is never given out
    assert times == list(pd.date_range(history.index[-1] + pd.Timedelta("15min"), periods=10, freq="15min"))
    for b in bars:
        assert b.time + pd.Timedelta("15min") <= pd.Timestamp(clock.t, unit="s", tz="UTC")
        row = table[table["time"] == int(b.time.value // 1_000_000)].iloc[0]
        assert (b.open, b.close, b.volume) == (row.open, row.close, row.volume)
    assert all(sendable) and not feed.can_still_send(bars[0].time)


def test_catch_up_after_a_restart_and_retry_on_429():
    table = make_candles(START, 400, seed=4)
    t0 = pd.Timestamp(START, tz="UTC").timestamp()
    clock = Clock(t0 + 300 * BAR_S + 5)
    feed, server = make_feed(table, clock, polls=1)
    server.fail("http", status=429, body='{"error": {"name": "too_many_requests", "message": "Too many"}}')
    last_decided = pd.Timestamp(START, tz="UTC") + pd.Timedelta(minutes=15 * 279)
    bars, sendable = [], []
    for bar in feed.bars(after=last_decided):  # down for 20 bars: they all come, in order
        bars.append(bar)
        sendable.append(feed.can_still_send(bar.time))
    assert [b.time for b in bars] == list(pd.date_range(last_decided + pd.Timedelta("15min"), periods=20,
                                                        freq="15min"))
    assert sendable == [False] * 19 + [True]  # only the newest can still be traded on
    assert len([u for u in server.requests if "candles" in u]) >= 2  # the 429 was retried


def test_an_hourly_checkpoint_polls_hourly_candles():
    """A checkpoint trained on 1h bars gets a feed of 1h candles: ccxt's 60-minute endpoint, hourly closes."""
    fine = make_candles(START, 400 * 4, seed=5)
    table = fine.iloc[::4].reset_index(drop=True)  # hourly candles, opening on the hour
    hour = 3600
    t0 = pd.Timestamp(START, tz="UTC").timestamp()
    clock = Clock(t0 + 200 * hour + 60)  # the hour opening at bar 200 is forming
    server = ReplayServer(upbit_candles={"KRW-USDT": table})
    exchange = server.attach(create_exchange("upbit"))
    fx = pd.Series([1380.0], index=pd.DatetimeIndex([pd.Timestamp("2024-01-01", tz="UTC")]))
    feed = CcxtFeed(exchange, "USDT/KRW", fx, warmup=24, refresh_interval=hour, max_staleness=pd.Timedelta(days=999),
                    retry=RetryPolicy(max_retries=3, base_delay_s=0.0, max_delay_s=0.0), clock=clock,
                    sleep=clock.sleep, max_polls=3, bar=pd.Timedelta("1h"))
    history = feed.history()
    assert len(history) == 24 and history.index[-1] == pd.Timestamp(START, tz="UTC") + pd.Timedelta(hours=199)
    assert all("/v1/candles/minutes/60" in u for u in server.requests if "candles" in u)
    bars, sendable = [], []
    for bar in feed.bars(after=history.index[-1]):
        bars.append(bar)
        sendable.append(feed.can_still_send(bar.time))  # within the hour after its close
    assert [b.time for b in bars] == list(pd.date_range(history.index[-1] + pd.Timedelta("1h"), periods=2, freq="1h"))
    assert all(sendable) and not feed.can_still_send(bars[0].time)
