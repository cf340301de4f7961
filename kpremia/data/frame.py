"""MarketFrame: the one pandas shape every data source produces.

A MarketFrame is a DataFrame indexed by a tz-aware UTC ``DatetimeIndex`` of bar
OPEN times on a gap-free regular grid of the run's bar size (``data.timeframe``;
15 minutes by default, see :mod:`kpremia.core.bars`), with float64 columns
``open high low close volume`` (USDT/KRW), ``fx`` (USD/KRW known at the close of
the bar) and ``premium`` (``close / fx - 1``).

This module is the schema: the columns, how a raw table's times and numbers become the
MarketFrame's types, and the bar grid (or a one-line refusal).  Checking the rows against the schema
and repairing what is safe is :func:`kpremia.data.repair.validate_frame`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kpremia.core.bars import timeframe_label
from kpremia.core.errors import UserError

PRICE_COLUMNS = ("open", "high", "low", "close")
INPUT_COLUMNS = (*PRICE_COLUMNS, "volume", "fx")
COLUMNS = (*INPUT_COLUMNS, "premium")


def fmt_time(ts: pd.Timestamp) -> str:
    """A bar time as it appears in messages (ISO 8601)."""
    return ts.isoformat()


def utc_index(df: pd.DataFrame) -> pd.DatetimeIndex:
    """``df``'s index as UTC bar times in ns (naive times are UTC); unparseable or missing times are refused."""
    idx = df.index
    if not isinstance(idx, pd.DatetimeIndex):
        try:
            idx = pd.DatetimeIndex(pd.to_datetime(idx, utc=True))
        except (ValueError, TypeError, OverflowError) as exc:
            raise UserError(
                f"market data index is not parseable as times ({exc}); give a DatetimeIndex of "
                "bar open times or set the source's time_column"
            ) from None
    if idx.hasnans:
        first = int(np.flatnonzero(idx.isna())[0])
        raise UserError(f"market data has unparseable/missing times (first at row {first}); "
                        "fix the time column or set the source's time_column/time format")
    if idx.tz is None:  # naive times are taken as UTC; file sources localise first
        idx = idx.tz_localize("UTC")
    else:
        idx = idx.tz_convert("UTC")
    return idx.as_unit("ns")


def numeric_frame(df: pd.DataFrame, idx: pd.DatetimeIndex, columns: tuple[str, ...] = INPUT_COLUMNS) -> pd.DataFrame:
    """``columns`` of ``df`` as float64 on ``idx`` (inf becomes NaN); a value that is not a number is refused."""
    out = {}
    for col in columns:
        raw = df[col]
        values = pd.to_numeric(raw, errors="coerce").astype(np.float64)
        bad = values.isna().to_numpy() & ~pd.isna(raw).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UserError(
                f"column {col!r} has non-numeric values (first {raw.iloc[i]!r} at {fmt_time(idx[i])}); "
                "check the column mapping (columns={{yours: ours}})"
            )
        out[col] = values.to_numpy(copy=True)
    frame = pd.DataFrame(out, index=idx)
    frame.replace([np.inf, -np.inf], np.nan, inplace=True)
    return frame


def check_grid(index: pd.DatetimeIndex, bar: pd.Timedelta) -> None:
    """Every bar on one grid of size ``bar``: no step shorter than a bar or between whole bars.

    Bars that divide an hour sit on the UTC clock (15m bars open at :00, :15, ...), as
    exchange candles do; longer bars are anchored at the first bar (a daily candle may
    open at 00:00 KST = 15:00 UTC).
    """
    if not len(index):
        return
    times = index.asi8
    anchor = 0 if pd.Timedelta(hours=1) % bar == pd.Timedelta(0) else int(times[0])
    off = (times - anchor) % bar.value != 0
    label = timeframe_label(bar)
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise UserError(
            f"bar times are not on the {label} grid (first {fmt_time(index[i])}, row {i} after sorting); kpremia "
            f"needs {label} bar OPEN times - set data.timeframe to the file's bar size, or resample the data"
        )
