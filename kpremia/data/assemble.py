"""From fetched candles and FX rates to a validated MarketFrame; the time bounds of a fetch.

Used by the ``ccxt`` source and by ``python -m kpremia data fetch`` (which
assembles frames from the cache without a source object).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

import numpy as np
import pandas as pd

from kpremia.core.bars import DEFAULT_BAR
from kpremia.core.errors import UserError
from kpremia.data.fx import align_fx_to_bars, btc_premium, compute_premium

log = logging.getLogger(__name__)


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
    bar: pd.Timedelta = DEFAULT_BAR,
) -> tuple[pd.DataFrame, Any]:
    """Candles (bars of size ``bar``) + publication-aligned FX -> a validated MarketFrame and its RepairReport.

    FX is aligned twice: on the candles (validate_frame needs an fx column) and
    again on the gap-filled grid, so an inserted no-trade bar gets the rate
    published before *its* close, not the rate carried from the previous candle.
    A bar of size ``bar`` closes ``bar`` after its open: that is when its rate must
    have been published.
    """
    from kpremia.data.repair import default_limits, validate_frame

    raw = candles.copy()
    raw["fx"] = align_fx_to_bars(raw.index, fx, max_staleness, bar_length=bar)
    kwargs: dict[str, Any] = {"repair": repair, "bar": bar}
    if max_gap_bars is not None:
        kwargs["max_gap_bars"] = int(max_gap_bars)
    frame, report = validate_frame(raw, **kwargs)
    frame["fx"] = align_fx_to_bars(frame.index, fx, max_staleness, bar_length=bar).to_numpy()
    if premium_basis == "usdt":
        frame["premium"] = compute_premium(frame["close"], frame["fx"]).to_numpy()
    elif premium_basis == "btc":
        if btc_krw is None or btc_usdt is None or btc_krw.empty or btc_usdt.empty:
            raise UserError("premium_basis=btc needs BTC/KRW and BTC/USDT candles for the period; "
                            "check data.btc settings or use premium_basis=usdt")
        limit = max_gap_bars or default_limits(bar)["max_gap_bars"]
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
