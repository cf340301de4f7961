"""Finer bars -> coarser bars (``15m`` -> ``1h`` / ``1d``), the one aggregation rule.

Used by the synthetic source (generated at 15m, aggregated to ``data.timeframe``, so
one market can be studied at several bar sizes) and by the file sources when a user
asks for a coarser ``data.timeframe`` than the file's own bars.

A coarse bar is labelled by its OPEN time on the UTC clock (a 1d bar opens at 00:00 UTC
= 09:00 KST, like Upbit's daily candle) and holds the fine bars that open inside it:
``open`` first, ``high`` max, ``low`` min, ``close`` last, ``volume`` sum, and ``fx`` /
``premium`` of its last fine bar (what is known at its close, so the FX publication rule
carries over unchanged).  A coarse slot with no fine bar stays missing (the frame
validation decides whether that is a no-trade bar).  The first and last coarse bars are
dropped when the fine bars do not cover them from their open to their close: a partial
bar at an edge would be a different kind of bar, not a shorter one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum", "fx": "last",
        "premium": "last"}


def aggregate_bars(fine: pd.DataFrame, bar: pd.Timedelta, fine_bar: pd.Timedelta) -> tuple[pd.DataFrame, int]:
    """Aggregate ``fine`` (sorted bars of size ``fine_bar``, UTC index of open times) into bars of size ``bar``.

    Returns:
        ``(coarse, dropped_edges)``: the coarse bars (only the columns ``fine`` has, of
        ``open high low close volume fx premium``) and how many partial edge bars were dropped.
    """
    if bar % fine_bar != pd.Timedelta(0) or bar < fine_bar:
        raise ValueError(f"cannot aggregate {fine_bar} bars into {bar} bars (not a whole multiple)")
    agg = {c: how for c, how in _AGG.items() if c in fine.columns}
    coarse = fine.resample(bar, label="left", closed="left", origin="epoch").agg(agg)
    counts = fine["close"].resample(bar, label="left", closed="left", origin="epoch").count()
    coarse = coarse[counts.to_numpy() > 0]  # empty slots stay gaps
    dropped = 0
    if len(coarse) and len(fine):
        first_open, last_open = fine.index[0], fine.index[-1]
        if first_open != coarse.index[0]:  # the first coarse bar started before the data
            coarse, dropped = coarse.iloc[1:], dropped + 1
        if len(coarse) and last_open + fine_bar != coarse.index[-1] + bar:  # the last one ends after it
            coarse, dropped = coarse.iloc[:-1], dropped + 1
    coarse = coarse.astype(np.float64)
    coarse.index = pd.DatetimeIndex(coarse.index, freq=None, name=fine.index.name)
    return coarse, dropped
