"""Validation and repair of a MarketFrame: :func:`validate_frame`.

Real data is messy, so :func:`validate_frame` either repairs what can be
repaired without inventing information (identical duplicate rows, order, short
NaN runs, open/close outside high/low, missing no-trade bars *at the frame's own
spacing*) and reports every repair, or refuses with one line naming the problem
and the fix (conflicting duplicates, steps that are not whole bars, highs below
lows, gaps longer than the limit).  Repairs are never silent: they are counted
in a :class:`RepairReport` and logged as a warning.  Limits are durations turned
into bars of the bar size (a day of missing bars at most, by default).  The shape it
checks against is :mod:`kpremia.data.frame`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from kpremia.core.bars import DEFAULT_BAR, DEFAULT_TIMEFRAME, bars_in, timeframe_label
from kpremia.core.errors import UserError
from kpremia.data.frame import (
    COLUMNS,
    INPUT_COLUMNS,
    PRICE_COLUMNS,
    check_grid,
    fmt_time,
    numeric_frame,
    utc_index,
)

log = logging.getLogger(__name__)

# A missing bar in exchange data is a bar without trades; a run longer than a
# day more likely means a hole in the download than a quiet market.
DEFAULT_MAX_GAP = pd.Timedelta(days=1)
# NaN inside a row is corruption rather than "no trade": carry prices over an
# hour at most (one bar at least).
DEFAULT_MAX_NAN = pd.Timedelta(hours=1)
# FX is closed on weekends and holidays (Chuseok can close it for a week), so
# carrying the last rate across a long stretch is the causal, normal thing.
DEFAULT_MAX_FX_FILL = pd.Timedelta(days=10)


def default_limits(bar: pd.Timedelta = DEFAULT_BAR) -> dict[str, int]:
    """The repair limits of :func:`validate_frame` in bars of ``bar`` (at 15m: 96, 4 and 960 bars)."""
    return {"max_gap_bars": bars_in(DEFAULT_MAX_GAP, bar), "max_nan_bars": bars_in(DEFAULT_MAX_NAN, bar),
            "max_fx_fill_bars": bars_in(DEFAULT_MAX_FX_FILL, bar)}


@dataclass
class RepairReport:
    """What :func:`validate_frame` changed, as counts (all zero = nothing repaired)."""

    rows_in: int = 0
    rows_out: int = 0
    bar: str = DEFAULT_TIMEFRAME
    first_bar: str = ""
    last_bar: str = ""
    duplicates_dropped: int = 0
    unsorted_rows: int = 0
    leading_rows_dropped: int = 0
    nan_price_rows_filled: int = 0
    nan_volume_filled: int = 0
    nan_fx_filled: int = 0
    ohlc_clamped: int = 0
    gap_bars_inserted: int = 0
    gaps: int = 0
    longest_gap_bars: int = 0

    _REPAIR_FIELDS = (
        "duplicates_dropped", "unsorted_rows", "leading_rows_dropped", "nan_price_rows_filled",
        "nan_volume_filled", "nan_fx_filled", "ohlc_clamped", "gap_bars_inserted",
    )

    @property
    def repaired(self) -> bool:
        """True if any row was changed, added or dropped."""
        return any(getattr(self, f) for f in self._REPAIR_FIELDS)

    def summary(self) -> str:
        """One line for logs and ``data inspect``."""
        head = f"{self.rows_in} rows in, {self.rows_out} out ({self.first_bar} .. {self.last_bar})"
        parts = []
        if self.duplicates_dropped:
            parts.append(f"{self.duplicates_dropped} duplicate rows (identical) dropped")
        if self.unsorted_rows:
            parts.append(f"{self.unsorted_rows} rows earlier than a row above them sorted into place")
        if self.leading_rows_dropped:
            parts.append(f"{self.leading_rows_dropped} leading rows without close/fx dropped")
        if self.nan_price_rows_filled:
            parts.append(f"{self.nan_price_rows_filled} rows with NaN prices filled")
        if self.nan_volume_filled:
            parts.append(f"{self.nan_volume_filled} NaN volumes set to 0")
        if self.nan_fx_filled:
            parts.append(f"{self.nan_fx_filled} NaN fx forward-filled")
        if self.ohlc_clamped:
            parts.append(f"{self.ohlc_clamped} bars with high/low clamped around open/close")
        if self.gap_bars_inserted:
            parts.append(f"{self.gap_bars_inserted} missing no-trade {self.bar} bars inserted in {self.gaps} gaps "
                         f"(longest {self.longest_gap_bars})")
        return head + ("; repaired: " + "; ".join(parts) if parts else "; no repairs needed")

    def to_dict(self) -> dict:
        """JSON-able dict (for manifests)."""
        d = asdict(self)
        d["repaired"] = self.repaired
        return d


def _refuse(what: str) -> None:
    raise UserError(f"{what}; repair is off (repair=False) - fix the data or set repair=true")


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of the True runs of a boolean array."""
    if not mask.any():
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return starts, ends - starts


def validate_frame(
    df: pd.DataFrame,
    *,
    bar: pd.Timedelta = DEFAULT_BAR,
    repair: bool = True,
    max_gap_bars: int | None = None,
    max_nan_bars: int | None = None,
    max_fx_fill_bars: int | None = None,
    keep_premium: bool = False,
) -> tuple[pd.DataFrame, RepairReport]:
    """Check ``df`` against the MarketFrame schema at bar size ``bar``; repair what is safe or refuse.

    Args:
        df: indexed by bar open times (naive times are taken as UTC) with at least
            the columns ``open high low close volume fx``; ``premium`` is
            recomputed from close and fx unless ``keep_premium``.
        bar: the bar size (the spacing of ``df``'s own bars); a missing bar is a step of
            a whole number of bars, anything else is refused (never padded into finer bars).
        repair: if False, anything that would need a repair is refused instead.
        max_gap_bars: longest run of missing bars filled as no-trade bars
            (open=high=low=close=previous close, volume 0, fx carried); longer is refused.
            None: one day of bars (:func:`default_limits`).
        max_nan_bars: longest run of rows with NaN close carried forward; longer is refused
            (None: an hour of bars, at least one).
        max_fx_fill_bars: longest run of NaN fx carried forward (FX is closed on
            weekends/holidays, so this is long; None: ten days of bars); longer is refused.
        keep_premium: keep ``df``'s own ``premium`` column (another basis, e.g. the
            BTC premium of ``premium_basis=btc``) instead of recomputing the USDT one;
            bars inserted or filled by a repair carry the last premium.

    Returns:
        ``(frame, report)``: a new MarketFrame and what was repaired.

    Raises:
        UserError: missing columns, unparseable times, duplicate times with different
            values, bars off the grid or closer than one bar, non-positive prices, highs
            below lows, negative volume, too-long gaps/NaN runs, or any needed repair
            when ``repair`` is False.
    """
    limits = default_limits(bar)
    max_gap_bars = limits["max_gap_bars"] if max_gap_bars is None else int(max_gap_bars)
    max_nan_bars = limits["max_nan_bars"] if max_nan_bars is None else int(max_nan_bars)
    max_fx_fill_bars = limits["max_fx_fill_bars"] if max_fx_fill_bars is None else int(max_fx_fill_bars)
    wanted = (*INPUT_COLUMNS, "premium") if keep_premium else INPUT_COLUMNS
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        have = ", ".join(map(str, df.columns[:12]))
        fx_hint = " (no fx column: give a separate USD/KRW file with data.fx_path)" if "fx" in missing else ""
        raise UserError(
            f"market data is missing columns {', '.join(missing)} (have: {have}); map your column "
            f"names with data.columns={{yours: ours}}{fx_hint}"
        )
    report = RepairReport(rows_in=len(df), bar=timeframe_label(bar))
    idx = utc_index(df)
    frame = numeric_frame(df, idx, wanted)

    # -- order and duplicates (sorted first: every check below reads time order) ------------
    if not frame.index.is_monotonic_increasing:
        times = frame.index.asi8
        out_of_place = int((times[1:] < np.maximum.accumulate(times)[:-1]).sum())
        order = np.argsort(times, kind="stable")
        if not repair:
            _refuse(f"market data times are not sorted ({out_of_place} rows out of order)")
        frame = frame.iloc[order]
        report.unsorted_rows = out_of_place
    frame = _drop_identical_duplicates(frame, report, repair)

    # -- grid and spacing -----------------------------------------------------------------
    check_grid(frame.index, bar)

    # -- values that no repair can fix ---------------------------------------
    values = frame[list(PRICE_COLUMNS) + ["fx"]]
    nonpos = (values <= 0).to_numpy()
    if nonpos.any():
        r, c = np.argwhere(nonpos)[0]
        raise UserError(
            f"non-positive {values.columns[c]} {values.iat[r, c]} at {fmt_time(frame.index[r])}; prices "
            "and fx must be > 0 - drop or fix that row"
        )
    high_low = (frame["high"] < frame["low"]).to_numpy()
    if high_low.any():
        i = int(np.flatnonzero(high_low)[0])
        raise UserError(f"high {frame['high'].iat[i]} is below low {frame['low'].iat[i]} at {fmt_time(frame.index[i])} "
                        f"({int(high_low.sum())} such bars); the high and low columns are swapped or corrupt - "
                        "check the column mapping or fix those rows")
    negvol = (frame["volume"] < 0).to_numpy()
    if negvol.any():
        raise UserError(f"negative volume at {fmt_time(frame.index[np.flatnonzero(negvol)[0]])}; "
                        "fix that row (volume must be >= 0)")

    # -- leading rows without a close or fx can't be carried from anything ----
    known = frame["close"].notna().to_numpy() & frame["fx"].notna().to_numpy()
    if not known.any():
        raise UserError("market data has no row with both close and fx; check the column mapping "
                        "and the fx source")
    lead = int(np.argmax(known))
    if lead:
        if not repair:
            _refuse(f"the first {lead} rows have no close or fx")
        frame = frame.iloc[lead:]
        report.leading_rows_dropped = lead

    frame = _fill_nan(frame, report, repair, max_nan_bars, max_fx_fill_bars)
    frame = _clamp_ohlc(frame, report, repair)
    frame = _fill_gaps(frame, report, repair, max_gap_bars, bar)

    if keep_premium:
        frame["premium"] = frame["premium"].ffill()
        if frame["premium"].isna().any():
            first = frame.index[np.flatnonzero(frame["premium"].isna().to_numpy())[0]]
            raise UserError(f"the premium column has no value at {fmt_time(first)} nor before it; give a premium for "
                            "the first bars or compute it from close and fx (premium_basis=usdt)")
    else:
        frame["premium"] = frame["close"] / frame["fx"] - 1.0
    frame = frame[list(COLUMNS)].astype(np.float64)
    frame.index = pd.DatetimeIndex(frame.index, freq=None, name="time")  # same index however it was built
    report.rows_out = len(frame)
    if len(frame):
        report.first_bar, report.last_bar = fmt_time(frame.index[0]), fmt_time(frame.index[-1])
    if report.repaired:
        log.warning("market data repaired: %s", report.summary())
    return frame, report


def _fill_nan(frame: pd.DataFrame, report: RepairReport, repair: bool, max_nan_bars: int,
              max_fx_fill_bars: int) -> pd.DataFrame:
    """Carry prices over short NaN runs (a NaN close row becomes a no-trade bar)."""
    frame = frame.copy()
    close_nan = frame["close"].isna().to_numpy()
    if close_nan.any():
        starts, lengths = _runs(close_nan)
        if not repair:
            _refuse(f"NaN close at {fmt_time(frame.index[starts[0]])}")
        worst = int(np.argmax(lengths))
        if lengths[worst] > max_nan_bars:
            raise UserError(
                f"{int(lengths[worst])} consecutive bars with NaN close from "
                f"{fmt_time(frame.index[starts[worst]])} (more than max_nan_bars={max_nan_bars}); "
                "fill that stretch or cut it out of the data"
            )
        carried = frame["close"].ffill()
        for col in PRICE_COLUMNS:  # a NaN-close row is a no-trade bar at the previous close
            frame.loc[close_nan, col] = carried[close_nan]
        frame.loc[close_nan & frame["volume"].isna().to_numpy(), "volume"] = 0.0
    # rows with a close but some NaN open/high/low
    prev_close = frame["close"].shift(1).fillna(frame["close"])
    ohl_nan = frame[["open", "high", "low"]].isna().any(axis=1).to_numpy()
    rows_filled = int((close_nan | ohl_nan).sum())
    if ohl_nan.any():
        if not repair:
            _refuse(f"NaN open/high/low at {fmt_time(frame.index[np.flatnonzero(ohl_nan)[0]])}")
        frame["open"] = frame["open"].fillna(prev_close)
        frame["high"] = frame["high"].fillna(np.maximum(frame["open"], frame["close"]))
        frame["low"] = frame["low"].fillna(np.minimum(frame["open"], frame["close"]))
    report.nan_price_rows_filled = rows_filled

    vol_nan = frame["volume"].isna().to_numpy()
    if vol_nan.any():
        if not repair:
            _refuse(f"NaN volume at {fmt_time(frame.index[np.flatnonzero(vol_nan)[0]])}")
        frame["volume"] = frame["volume"].fillna(0.0)
        report.nan_volume_filled = int(vol_nan.sum())

    fx_nan = frame["fx"].isna().to_numpy()
    if fx_nan.any():
        starts, lengths = _runs(fx_nan)
        if not repair:
            _refuse(f"NaN fx at {fmt_time(frame.index[starts[0]])}")
        worst = int(np.argmax(lengths))
        if lengths[worst] > max_fx_fill_bars:
            raise UserError(
                f"{int(lengths[worst])} consecutive bars without fx from {fmt_time(frame.index[starts[worst]])} "
                f"(more than max_fx_fill_bars={max_fx_fill_bars}); give fx for that stretch (fx_path)"
            )
        frame["fx"] = frame["fx"].ffill()
        report.nan_fx_filled = int(fx_nan.sum())
    return frame


def _clamp_ohlc(frame: pd.DataFrame, report: RepairReport, repair: bool) -> pd.DataFrame:
    """Make ``low <= open, close <= high`` by widening high/low (never moving open/close)."""
    o, h, lo, c = (frame[k].to_numpy() for k in PRICE_COLUMNS)
    new_h = np.maximum(h, np.maximum(o, c))
    new_l = np.minimum(lo, np.minimum(o, c))
    bad = (new_h != h) | (new_l != lo)
    if bad.any():
        if not repair:
            i = int(np.flatnonzero(bad)[0])
            _refuse(f"{int(bad.sum())} bars with high/low not containing open/close "
                            f"(first {fmt_time(frame.index[i])})")
        frame = frame.copy()
        frame["high"], frame["low"] = new_h, new_l
        report.ohlc_clamped = int(bad.sum())
    return frame


def _fill_gaps(frame: pd.DataFrame, report: RepairReport, repair: bool, max_gap_bars: int,
               bar: pd.Timedelta) -> pd.DataFrame:
    """Insert missing bars as no-trade bars (a candle exists only if a trade happened).

    Only where the frame's own spacing says a bar is missing: a step of k whole bars
    is k - 1 missing bars (:func:`kpremia.data.frame.check_grid` has refused anything else).
    """
    if len(frame) < 2:
        return frame
    steps = np.diff(frame.index.asi8) // bar.value - 1  # missing bars after each row
    if not steps.any():
        return frame
    label = timeframe_label(bar)
    gap_rows = np.flatnonzero(steps)
    lengths = steps[gap_rows]
    worst = int(np.argmax(lengths))
    if lengths[worst] > max_gap_bars:
        start = frame.index[gap_rows[worst]] + bar
        raise UserError(
            f"gap of {int(lengths[worst])} missing {label} bars from {fmt_time(start)} (more than "
            f"max_gap_bars={max_gap_bars}); download the missing stretch, cut the data, or raise "
            "max_gap_bars"
        )
    if not repair:
        start = frame.index[gap_rows[0]] + bar
        _refuse(f"{int(lengths.sum())} missing {label} bars in {len(lengths)} gaps (first {fmt_time(start)})")
    full = pd.date_range(frame.index[0], frame.index[-1], freq=bar, tz="UTC", unit="ns")
    out = frame.reindex(full)
    inserted = out["close"].isna().to_numpy()
    carried = out["close"].ffill()
    for col in PRICE_COLUMNS:
        out.loc[inserted, col] = carried[inserted]
    out.loc[inserted, "volume"] = 0.0
    out["fx"] = out["fx"].ffill()
    report.gap_bars_inserted = int(inserted.sum())
    report.gaps = len(lengths)
    report.longest_gap_bars = int(lengths.max())
    return out


def _drop_identical_duplicates(frame: pd.DataFrame, report: RepairReport, repair: bool) -> pd.DataFrame:
    """Drop rows that repeat an earlier row exactly; refuse a time given twice with different values.

    Dropping an exact repeat loses nothing; choosing between two different bars for one
    time would be a guess, so that is the data's owner's call.
    """
    dup = frame.index.duplicated(keep="first")
    if not dup.any():
        return frame
    same_time = frame.index.duplicated(keep=False)
    groups = frame[same_time]
    differing = groups.groupby(level=0).nunique(dropna=False).gt(1).any(axis=1)
    if differing.any():
        first = differing.index[np.flatnonzero(differing.to_numpy())[0]]
        raise UserError(f"market data has {int(differing.sum())} bar times given twice with different values "
                        f"(first {fmt_time(first)}); keep one row per bar time")
    if not repair:
        _refuse(f"market data has {int(dup.sum())} duplicate rows (first {fmt_time(frame.index[dup][0])})")
    report.duplicates_dropped = int(dup.sum())
    return frame[~dup]
