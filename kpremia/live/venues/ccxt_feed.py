"""The ``ccxt`` feed: closed candles (at the checkpoint's bar size) polled as they close.

Every ``refresh_interval`` seconds it asks the exchange for the candles since the
last bar it gave out, through the data module's paging, retry and rate limit
(:func:`kpremia.data.exchange.iter_ohlcv_pages`), and yields the ones whose
bar has closed -- never the candle still forming.  Candles become
MarketFrame rows with the data module's own assembly
(:func:`~kpremia.data.assemble.assemble_frame`): a minute without trades is a
no-trade bar, FX is the rate published before the bar closed.  After a restart
it first yields the bars missed while down; the runner journals them but does
not trade on a bar that closed too long ago (:meth:`CcxtFeed.can_still_send`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import ccxt
import pandas as pd

from kpremia.core.bars import DEFAULT_BAR, timeframe_label
from kpremia.core.registry import LIVE_FEEDS
from kpremia.data.assemble import assemble_frame
from kpremia.data.cache import candles_from_rows
from kpremia.data.exchange import RetryPolicy, create_exchange, iter_ohlcv_pages, resolve_page_size, timeframe_ms
from kpremia.data.fx import load_fx
from kpremia.run.live_config import LiveConfig
from kpremia.live.loop.types import Bar
from kpremia.live.venues.feeds import frame_bars, warmup_bars

log = logging.getLogger(__name__)


@LIVE_FEEDS.register("ccxt")
class CcxtFeed:
    """Polls ``exchange`` for closed candles of ``symbol``.

    Args:
        exchange: a ccxt exchange (public endpoints only; no keys needed).
        symbol: the exchange's symbol, e.g. ``USDT/KRW``.
        fx: USD/KRW indexed by publication time (UTC).
        warmup: bars of history for the observation builder.
        refresh_interval: seconds between polls.
        max_staleness: how old the latest FX rate may be for a bar.
        clock, sleep: wall clock (seconds) and sleep; tests pass fakes.
        max_polls: stop after this many polls (None: poll until the runner stops).
        bar: the candle size (the checkpoint's bar size; fetched as the ccxt timeframe of that size).
    """

    replays = False

    def __init__(self, exchange: ccxt.Exchange, symbol: str, fx: pd.Series, *, warmup: int,
                 refresh_interval: float = 60.0, max_staleness: pd.Timedelta = pd.Timedelta(days=5),
                 retry: RetryPolicy | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, max_polls: int | None = None,
                 bar: pd.Timedelta = DEFAULT_BAR) -> None:
        self.exchange, self.symbol, self.fx = exchange, symbol, fx
        self.bar = bar
        self.timeframe = timeframe_label(bar)
        self._bar_ms = int(bar / pd.Timedelta(milliseconds=1))
        self.warmup = int(warmup)
        self.refresh_interval = float(refresh_interval)
        self.max_staleness = max_staleness
        self.retry = retry or RetryPolicy()
        self.clock, self.sleep = clock, sleep
        self.max_polls = max_polls
        self.page_size = resolve_page_size(exchange, None)
        self._history: pd.DataFrame | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], live: LiveConfig, windows: Mapping[str, int],
                    bar: pd.Timedelta | None = None) -> CcxtFeed:
        """Polls ``live.ccxt``'s exchange for ``bar`` candles (the checkpoint's size);
        USD/KRW from ``live.ccxt.fx_rate``, ``fx_path`` or the ECB."""
        opts = live.ccxt
        if opts.fx_rate is not None:
            fx = pd.Series([float(opts.fx_rate)], index=pd.DatetimeIndex([pd.Timestamp(0, tz="UTC")]))
            staleness = pd.Timedelta(days=365 * 100)
        else:
            fx = load_fx("csv", path=opts.fx_path) if opts.fx_path else load_fx("ecb")
            staleness = pd.Timedelta(days=5)
        exchange = create_exchange(opts.exchange)
        bar = bar or DEFAULT_BAR
        timeframe_ms(timeframe_label(bar))  # a size ccxt cannot name is refused before any request
        return cls(exchange, opts.market, fx, warmup=warmup_bars(windows["window_1d"], windows["window_premium"], bar),
                   refresh_interval=live.refresh_interval, max_staleness=staleness, bar=bar)

    # ------------------------------------------------------------------ feed interface
    def _closed_end_ms(self) -> int:
        """Open time (ms) of the candle still forming: everything before it has closed."""
        now_ms = int(self.clock() * 1000)
        return now_ms - now_ms % self._bar_ms

    def _frame(self, start_ms: int, end_ms: int) -> pd.DataFrame:
        rows: list[list[Any]] = []
        for page in iter_ohlcv_pages(self.exchange, self.symbol, self.timeframe, start_ms, end_ms, page_size=self.page_size,
                                     retry=self.retry, sleep=self.sleep):
            rows.extend(page.rows)
        candles = candles_from_rows(rows)
        if candles.empty:
            return candles
        frame, _ = assemble_frame(candles, self.fx, max_staleness=self.max_staleness, bar=self.bar)
        return frame

    def connect(self) -> None:
        """Fetch the warm-up history now, before the runner writes anything (no network: FetchFailed)."""
        self._history = self._fetch_history()

    def history(self) -> pd.DataFrame:
        """The warm-up history before the first bar: the one :meth:`connect` fetched at start (else fetched now)."""
        return self._history if self._history is not None else self._fetch_history()

    def _fetch_history(self) -> pd.DataFrame:
        end = self._closed_end_ms()
        return self._frame(end - self.warmup * self._bar_ms, end)

    def bars(self, after: pd.Timestamp | None) -> Iterator[Bar]:
        last = pd.Timestamp(after) if after is not None else None
        polls = 0
        while self.max_polls is None or polls < self.max_polls:
            polls += 1
            end = self._closed_end_ms()
            start = int(last.value // 1_000_000) + self._bar_ms if last is not None else end - self._bar_ms
            if start < end:
                frame = self._frame(start, end)
                for bar in frame_bars(frame):
                    if last is None or bar.time > last:
                        last = bar.time
                        yield bar
            self.sleep(self.refresh_interval)

    def can_still_send(self, bar_time: pd.Timestamp) -> bool:
        """True while the bar after ``bar_time`` is still forming (an order now fills at about its open)."""
        next_close_ms = int(pd.Timestamp(bar_time).value // 1_000_000) + 2 * self._bar_ms
        return self.clock() * 1000 < next_close_ms
