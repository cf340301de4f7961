"""Exchange plumbing over ccxt: building exchanges, pagination, retries, cached fetches.

Shared by the ``ccxt`` data source (:mod:`kpremia.data.ccxt_source`) and
``python -m kpremia data fetch``; it knows nothing about premiums or frames.

How a fetch works, and why:
* **Pagination.**  ``fetch_ohlcv(symbol, timeframe, since, limit)`` is called
  window by window: the request at cursor ``c`` covers ``[c, c + limit * bar)``
  and the next cursor is ``c + limit * bar`` *regardless of what came back*.
  Upbit (``to`` = end of window, exclusive, newest first) returns exactly that
  window; exchanges that return "the first ``limit`` candles from ``since``"
  (Binance) return a superset when trades are missing, and the overlap is
  deduplicated.  Empty windows (no trades, market not listed yet, the future)
  just advance the cursor.  ccxt does not cap ``limit``: a page larger than the
  exchange serves would silently drop candles, so the page size is capped at
  the exchange's documented maximum (``features.spot.fetchOHLCV.limit``: Upbit 200).
* **Rate limit.**  ``enableRateLimit=True`` always; ccxt sleeps before each
  request so that requests are ``rateLimit * cost`` ms apart (Upbit: 50 ms x
  cost 2 = 100 ms, i.e. 10 requests/s, Upbit's quotation limit per IP).
* **Retries.**  ``ccxt.NetworkError`` (timeouts, connection resets, 5xx,
  ``RateLimitExceeded``/``DDoSProtection``) is retried with exponential backoff
  (``retry_base_delay_s * 2**attempt``, capped).  Upbit answers a 429 with
  ``{"error": {"name": "too_many_requests", ...}}``, which ccxt 4.5's upbit
  error map does not know and raises as a plain ``ExchangeError``; the exchange
  is built with that name mapped to ``RateLimitExceeded`` so it is retried.
* **Config mistakes** (unknown exchange id, symbol not listed, timeframe the
  exchange lacks) raise one-line :class:`~kpremia.core.errors.UserError`\\ s before
  any candle request; they never fall back.
* **Cache.**  Candles go to :mod:`kpremia.data.cache`; only ranges the cache has
  not scanned are requested, pages are flushed every ``flush_every_pages`` and
  on any interruption, so a rerun resumes.
* **Only closed bars** are kept: bars opening at or after the current bar's
  open are never requested, so the cache never holds a half-formed candle.
"""

from __future__ import annotations

import difflib
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import ccxt
import pandas as pd

from kpremia.core.errors import UserError
from kpremia.data.cache import (
    DatasetKey,
    Interval,
    OhlcvCache,
    candles_from_rows,
    empty_candles,
    gap_summary,
    merge_candles,
    merge_intervals,
    ms_to_iso,
    subtract_intervals,
)

log = logging.getLogger(__name__)

DEFAULT_EXCHANGE = "upbit"
DEFAULT_SYMBOL = "USDT/KRW"
DEFAULT_PAGE_SIZE = 200

# Per-exchange ccxt constructor settings (deep-merged into ``describe()``).
EXCHANGE_OVERRIDES: dict[str, dict[str, Any]] = {
    # Upbit's 429 body names "too_many_requests", unknown to ccxt's upbit map.
    "upbit": {"exceptions": {"broad": {"too_many_requests": ccxt.RateLimitExceeded}}},
    # Spot markets only: the futures exchangeInfo calls are two big requests we never use.
    "binance": {"options": {"fetchMarkets": {"types": ["spot"]}}},
}

ExchangeFactory = Callable[[str], ccxt.Exchange]


class FetchFailed(Exception):
    """An exchange could not serve the data (retries exhausted or an exchange-side error)."""


# --------------------------------------------------------------------------- exchanges


def check_exchange_id(exchange_id: str) -> None:
    """UserError for an exchange id ccxt does not know (no network needed)."""
    if exchange_id not in ccxt.exchanges:
        close = difflib.get_close_matches(exchange_id, ccxt.exchanges, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"ccxt has no exchange {exchange_id!r}; set data.exchange to a ccxt exchange id "
                        f"(e.g. upbit, bithumb, binance).{hint}")


def create_exchange(exchange_id: str, *, rate_limit_ms: float | None = None,
                    config: Mapping[str, Any] | None = None) -> ccxt.Exchange:
    """A synchronous ccxt exchange with the rate limiter on and kpremia's per-exchange fixes."""
    check_exchange_id(exchange_id)
    settings: dict[str, Any] = {"enableRateLimit": True}
    settings.update(EXCHANGE_OVERRIDES.get(exchange_id, {}))
    if config:
        settings.update(dict(config))
    if rate_limit_ms is not None:
        settings["rateLimit"] = float(rate_limit_ms)
    settings["enableRateLimit"] = True  # never off: the exchange's limit is part of the contract
    return getattr(ccxt, exchange_id)(settings)


def max_page_size(exchange: ccxt.Exchange) -> int | None:
    """Most candles one request may return, per ccxt's feature table (None if unknown)."""
    features = getattr(exchange, "features", None) or {}
    for market_type in ("spot", "swap"):
        section = features.get(market_type) or {}
        limit = (section.get("fetchOHLCV") or {}).get("limit") if isinstance(section, Mapping) else None
        if limit:
            return int(limit)
    return None


def resolve_page_size(exchange: ccxt.Exchange, requested: int | None) -> int:
    cap = max_page_size(exchange)
    if requested is None:
        return cap or DEFAULT_PAGE_SIZE
    requested = int(requested)
    if requested < 1:
        raise UserError(f"page_size must be >= 1 (got {requested}); leave it null for the exchange's maximum")
    if cap and requested > cap:
        log.warning("page_size %d exceeds %s's maximum of %d candles per request; using %d",
                    requested, exchange.id, cap, cap)
        return cap
    return requested


def timeframe_ms(timeframe: str) -> int:
    try:
        return int(ccxt.Exchange.parse_timeframe(timeframe) * 1000)
    except Exception:
        raise UserError(f"timeframe {timeframe!r} is not a ccxt timeframe; use e.g. 15m, 1h, 1d") from None


# --------------------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff on ``ccxt.NetworkError`` (incl. rate-limit errors)."""

    max_retries: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay_s, self.base_delay_s * (2.0 ** attempt))


def _short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unresolved_host(exc: BaseException) -> str | None:
    """The host name a request could not resolve (DNS failure somewhere in ``exc``'s causes), else None.

    A timeout, a reset connection, a 5xx or a 429 is worth retrying with backoff; a name that
    does not resolve means this machine has no network (or no DNS), and retrying only made an
    offline ``data fetch`` wait 31 s before saying so.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror) or type(current).__name__ == "NameResolutionError":
            match = re.search(r"host='([^']+)'|resolve '([^']+)'|https?://([^/\s:]+)", f"{current} {exc}")
            return next((g for g in match.groups() if g), "the exchange's host") if match else "the exchange's host"
        current = current.__cause__ or current.__context__
    return None


def call_with_retry(fn: Callable[[], Any], *, retry: RetryPolicy, what: str,
                    sleep: Callable[[float], None] = time.sleep) -> Any:
    """Call ``fn``; retry network/rate-limit errors with backoff; map the rest.

    Raises:
        UserError: the exchange says the symbol does not exist.
        FetchFailed: retries exhausted, or a non-retryable exchange error.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except ccxt.BadSymbol as exc:
            raise UserError(f"{what}: the exchange does not know this symbol ({_short(exc)}); check data.symbol") \
                from None
        except ccxt.NetworkError as exc:
            unresolved = unresolved_host(exc)
            if unresolved is not None:  # no network (or no DNS) here: backing off for a minute will not bring it
                raise FetchFailed(f"{what}: no network: cannot resolve {unresolved}") from exc
            if attempt >= retry.max_retries:
                raise FetchFailed(f"{what}: {type(exc).__name__} after {attempt + 1} attempts: {_short(exc)}") \
                    from exc
            delay = retry.delay(attempt)
            attempt += 1
            log.warning("%s: %s (%s); retry %d/%d in %.2fs", what, type(exc).__name__, _short(exc, 100),
                        attempt, retry.max_retries, delay)
            sleep(delay)
        except ccxt.ExchangeError as exc:
            raise FetchFailed(f"{what}: {type(exc).__name__}: {_short(exc)}") from exc


def prepare_market(exchange: ccxt.Exchange, symbol: str, timeframe: str, retry: RetryPolicy) -> dict[str, Any]:
    """Load markets (retried) and check symbol and timeframe; UserError on a config mistake."""
    if not exchange.has.get("fetchOHLCV"):
        raise UserError(f"{exchange.id} does not serve OHLCV candles through ccxt; choose another data.exchange")
    if timeframe not in (exchange.timeframes or {}):
        known = ", ".join(exchange.timeframes or {}) or "(none)"
        raise UserError(f"{exchange.id} has no {timeframe!r} candles; set data.timeframe to one of: {known}")
    call_with_retry(exchange.load_markets, retry=retry, what=f"{exchange.id} load_markets")
    if symbol not in exchange.markets:
        close = difflib.get_close_matches(symbol, list(exchange.markets), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"{exchange.id} has no market {symbol!r}; set data.symbol to a listed symbol "
                        f"(BASE/QUOTE, e.g. USDT/KRW).{hint}")
    return exchange.market(symbol)


# --------------------------------------------------------------------------- pagination


class OhlcvPage(NamedTuple):
    start_ms: int
    end_ms: int
    rows: list[list[Any]]


def iter_ohlcv_pages(exchange: ccxt.Exchange, symbol: str, timeframe: str, start_ms: int, end_ms: int, *,
                     page_size: int, retry: RetryPolicy,
                     sleep: Callable[[float], None] = time.sleep) -> Iterator[OhlcvPage]:
    """Windows ``[c, c + page_size bars)`` from ``start_ms`` to ``end_ms``, one request each.

    Each page carries the candles with ``start <= t < end_ms`` (possibly beyond
    its own window, on exchanges that page forward from ``since``).
    """
    bar_ms = timeframe_ms(timeframe)
    cursor = int(start_ms)
    while cursor < end_ms:
        since = cursor
        limit = min(page_size, -(-(int(end_ms) - since) // bar_ms))  # the last window ends at end_ms
        raw = call_with_retry(
            lambda: exchange.fetch_ohlcv(symbol, timeframe, since=since, limit=limit),
            retry=retry, what=f"{exchange.id} fetch_ohlcv {symbol} {timeframe} since {ms_to_iso(since)}",
            sleep=sleep,
        )
        rows = [list(r) for r in raw or [] if r and since <= int(r[0]) < end_ms]
        cursor = min(since + limit * bar_ms, int(end_ms))
        yield OhlcvPage(since, cursor, rows)


@dataclass
class FetchStats:
    requests: int = 0
    bars_scanned: int = 0
    candles: int = 0
    seconds: float = 0.0


class FetchResult(NamedTuple):
    candles: pd.DataFrame
    manifest: dict[str, Any]
    stats: FetchStats


class _ProgressiveWriter:
    """Accumulates pages of one missing range and commits them (candles + coverage) to the cache."""

    def __init__(self, cache: OhlcvCache | None, key: DatasetKey, bar: pd.Timedelta, candles: pd.DataFrame,
                 coverage: list[Interval], manifest: dict[str, Any], extra: dict[str, Any]) -> None:
        self.cache, self.key, self.bar, self.extra = cache, key, bar, extra
        self.candles, self.coverage, self.manifest = candles, coverage, manifest
        self._rows: list[list[Any]] = []
        self._flushed_to = self._cursor = 0

    def begin(self, start_ms: int) -> None:
        self._rows, self._flushed_to, self._cursor = [], start_ms, start_ms

    def add(self, page: OhlcvPage) -> None:
        self._rows.extend(page.rows)
        self._cursor = page.end_ms

    def flush(self) -> None:
        """Merge the buffered pages; the range scanned so far becomes covered."""
        if self._cursor <= self._flushed_to:
            return
        self.candles = merge_candles(self.candles, candles_from_rows(self._rows))
        self.coverage = merge_intervals([*self.coverage, (self._flushed_to, self._cursor)])
        self._rows, self._flushed_to = [], self._cursor
        if self.cache is not None:
            self.manifest = self.cache.save(self.key, self.candles, self.coverage, bar=self.bar, extra=self.extra)


def current_bar_open_ms(bar_ms: int, now_ms: int | None = None) -> int:
    now_ms = int(time.time() * 1000) if now_ms is None else int(now_ms)
    return now_ms - now_ms % bar_ms


def fetch_ohlcv_cached(
    exchange_id: str,
    symbol: str,
    timeframe: str,
    start_ms: int,
    end_ms: int,
    *,
    cache: OhlcvCache | None,
    retry: RetryPolicy = RetryPolicy(),
    page_size: int | None = None,
    flush_every_pages: int = 20,
    exchange_factory: ExchangeFactory | None = None,
    progress: Callable[[int], None] | None = None,
    now_ms: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchResult:
    """Candles of ``[start_ms, end_ms)`` (closed bars only), from the cache plus what it lacks.

    ``progress`` is called with the number of bars each page advanced.  Pages are
    flushed to the cache every ``flush_every_pages`` and when the fetch stops for
    any reason, so an interrupted fetch resumes where it stopped.
    """
    check_exchange_id(exchange_id)
    bar_ms = timeframe_ms(timeframe)
    start_ms = -(-int(start_ms) // bar_ms) * bar_ms
    stop_ms = min(int(end_ms) - int(end_ms) % bar_ms, current_bar_open_ms(bar_ms, now_ms))
    key = DatasetKey(exchange_id, symbol, timeframe)
    bar = pd.Timedelta(milliseconds=bar_ms)
    stats = FetchStats()

    cached = cache.load(key) if cache is not None else None
    candles = cached.candles if cached else empty_candles()
    coverage: list[Interval] = list(cached.coverage) if cached else []
    manifest: dict[str, Any] = dict(cached.manifest) if cached else {}
    missing = subtract_intervals((start_ms, stop_ms), coverage) if stop_ms > start_ms else []

    if missing:
        factory = exchange_factory or create_exchange
        exchange = factory(exchange_id)
        market = prepare_market(exchange, symbol, timeframe, retry)
        size = resolve_page_size(exchange, page_size)
        total_bars = sum((b - a) // bar_ms for a, b in missing)
        pages_needed = sum(-(-(b - a) // (size * bar_ms)) for a, b in missing)
        log.info("%s %s %s: cache has %d candles; fetching %d bars in %d range(s), ~%d requests "
                 "(~%.0f s at the rate limit)", exchange_id, symbol, timeframe, len(candles), total_bars,
                 len(missing), pages_needed, pages_needed * request_interval_s(exchange))
        writer = _ProgressiveWriter(cache, key, bar, candles, coverage, manifest,
                                    extra={"market_id": market.get("id"), "page_size": size,
                                           "ccxt_version": ccxt.__version__})
        t0 = time.monotonic()
        for a, b in missing:
            writer.begin(a)
            try:
                for pages, page in enumerate(iter_ohlcv_pages(exchange, symbol, timeframe, a, b, page_size=size,
                                                              retry=retry, sleep=sleep), start=1):
                    writer.add(page)
                    stats.requests += 1
                    stats.bars_scanned += (page.end_ms - page.start_ms) // bar_ms
                    if progress is not None:
                        progress((page.end_ms - page.start_ms) // bar_ms)
                    if flush_every_pages and pages % flush_every_pages == 0:
                        writer.flush()
            finally:  # keep every page already fetched, whatever stopped us
                writer.flush()
        stats.seconds = time.monotonic() - t0
        candles, coverage, manifest = writer.candles, writer.coverage, writer.manifest

    window = candles[(candles.index >= pd.Timestamp(start_ms, unit="ms", tz="UTC"))
                     & (candles.index < pd.Timestamp(max(stop_ms, start_ms), unit="ms", tz="UTC"))]
    stats.candles = len(window)
    if cache is None or not manifest:
        manifest = {"dataset": key.id, "exchange": exchange_id, "symbol": symbol, "timeframe": timeframe,
                    "rows": len(candles), "gaps": gap_summary(candles.index, bar),
                    "coverage": [[ms_to_iso(a), ms_to_iso(b)] for a, b in coverage]}
    return FetchResult(window, manifest, stats)


def request_interval_s(exchange: ccxt.Exchange) -> float:
    """Seconds between candle requests under ccxt's throttle (rateLimit x endpoint cost)."""
    cost = 1.0
    try:
        api = exchange.api["public"]["get"]
        costs = [v.get("cost", 1) for k, v in api.items() if k.startswith(("candles", "klines")) and isinstance(v, dict)]
        cost = float(max(costs)) if costs else 1.0
    except (AttributeError, KeyError, TypeError):
        pass
    return float(exchange.rateLimit) * cost / 1000.0
