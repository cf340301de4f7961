"""Market statistics on daily samples, comparable with docs/market.md.

The reference figures were measured on one sample a day at 09:00 KST (00:00 UTC,
the start of Upbit's daily candle), so :func:`market_stats` samples the same way:
the close of the last bar of each UTC day (the bar closing at 00:00 UTC), at any bar
size (at 1d bars opening 00:00 UTC: every bar).  Bars that never close at 00:00 UTC
(daily candles opening 00:00 KST) are sampled at the last bar closed by each midnight,
as the observation's daily windows are (:func:`kpremia.data.daily.daily_windows`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kpremia.core.bars import NS_DAY, frame_bar


def daily_samples(frame: pd.DataFrame, bar: pd.Timedelta | None = None) -> pd.DataFrame:
    """Rows of ``frame`` at the last bar closed by each UTC midnight (the value at 09:00 KST)."""
    bar = bar if bar is not None else frame_bar(frame.index)
    closes = (frame.index + bar).as_unit("ns").asi8
    if not len(closes):
        return frame
    first = -(-int(closes[0]) // NS_DAY) * NS_DAY
    # integer arithmetic: np.arange over epoch nanoseconds would count in float64 and lose a day
    count = max(0, (int(closes[-1]) - first) // NS_DAY + 1)
    midnights = first + NS_DAY * np.arange(count, dtype=np.int64)
    rows = np.unique(np.searchsorted(closes, midnights, side="right") - 1)
    return frame.iloc[rows]


def _ar1(x: np.ndarray) -> float:
    if len(x) < 3 or np.std(x) == 0:
        return float("nan")
    return float(np.corrcoef(x[:-1], x[1:])[0, 1])


def market_stats(frame: pd.DataFrame, bar: pd.Timedelta | None = None) -> dict[str, float]:
    """Daily premium and FX statistics of a MarketFrame (units in the key names).

    Keys: ``days``; ``premium_mean_pct``, ``premium_sd_pct``, ``premium_p5_pct``,
    ``premium_p95_pct``, ``premium_min_pct``, ``premium_max_pct`` (daily samples);
    ``premium_max_intraday_pct``, ``premium_min_intraday_pct`` (all bars);
    ``negative_days_frac``; ``premium_daily_ar1``; ``premium_change_sd_pp`` (sd of
    day-to-day change in percentage points); ``big_move_days_frac`` (|change| > 2 pp);
    ``fx_min``, ``fx_max``; ``fx_daily_logret_sd_pct`` (over days on which FX moved,
    i.e. trading sessions; weekends and holidays are flat).
    """
    daily = daily_samples(frame, bar)
    prem = daily["premium"].to_numpy() * 100.0
    change = np.diff(prem)
    fx = daily["fx"].to_numpy()
    fx_ret = np.diff(np.log(fx)) * 100.0
    fx_ret = fx_ret[fx_ret != 0]
    nan = float("nan")
    return {
        "days": int(len(prem)),
        "premium_mean_pct": float(prem.mean()) if len(prem) else nan,
        "premium_sd_pct": float(prem.std(ddof=1)) if len(prem) > 1 else nan,
        "premium_p5_pct": float(np.percentile(prem, 5)) if len(prem) else nan,
        "premium_p95_pct": float(np.percentile(prem, 95)) if len(prem) else nan,
        "premium_min_pct": float(prem.min()) if len(prem) else nan,
        "premium_max_pct": float(prem.max()) if len(prem) else nan,
        "premium_min_intraday_pct": float(frame["premium"].min() * 100.0) if len(frame) else nan,
        "premium_max_intraday_pct": float(frame["premium"].max() * 100.0) if len(frame) else nan,
        "negative_days_frac": float((prem < 0).mean()) if len(prem) else nan,
        "premium_daily_ar1": _ar1(prem),
        "premium_change_sd_pp": float(change.std(ddof=1)) if len(change) > 1 else nan,
        "big_move_days_frac": float((np.abs(change) > 2.0).mean()) if len(change) else nan,
        "fx_min": float(frame["fx"].min()) if len(frame) else nan,
        "fx_max": float(frame["fx"].max()) if len(frame) else nan,
        "fx_daily_logret_sd_pct": float(fx_ret.std(ddof=1)) if len(fx_ret) > 1 else nan,
    }
