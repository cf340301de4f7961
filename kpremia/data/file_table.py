"""A user's table before it is a MarketFrame: read, times parsed, columns mapped, rows ordered, spacing found.

Why apart from the source: these are the steps where a real export goes wrong (a
banner line, a custom time format, ``Volume`` and ``volume_btc`` in one file, rows
newest-first, a duplicated day, an hourly file mixed with 15m rows), and each must
either produce exactly what the file says or refuse with one line naming the file's
row and the fix.  Nothing here invents a bar: the rows are sorted by time *before*
any spacing or gap is looked at, so a file's row order never changes the result.

Rows are counted from 0, after the header (pandas' row numbers, what
``pandas.read_csv(path, **data.read_kwargs)`` gives).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kpremia.core.bars import parse_timeframe, timeframe_label
from kpremia.core.errors import UserError

log = logging.getLogger(__name__)

OUR_COLUMNS = ("open", "high", "low", "close", "volume", "fx", "premium")
TIME_COLUMN_GUESSES = ("time", "timestamp", "datetime", "date", "open_time", "candle_date_time_utc", "observation_date")
ROW = "_row"  # the file's own row number, carried through sorting for messages


def read_table(path: Path, fmt: str, read_kwargs: Mapping[str, Any] | None) -> pd.DataFrame:
    """The file as pandas reads it (``read_kwargs`` go to ``read_csv`` / ``read_parquet``)."""
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path, **dict(read_kwargs or {}))
            if isinstance(df.index, pd.DatetimeIndex):  # a time index written by pandas
                df = df.reset_index()
            return df
        return pd.read_csv(path, **dict(read_kwargs or {}))
    except TypeError as exc:  # an unknown read option
        raise UserError(f"data.read_kwargs {dict(read_kwargs or {})} are not options of pandas.read_{fmt} ({exc}); "
                        "fix data.read_kwargs") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot read {fmt} file {path}: {first}; check the file format (a banner line above "
                        "the header needs data.read_kwargs={{skiprows: 1}})") from None


def parse_times(raw: pd.Series, *, timezone: str = "UTC", unit: str | None = None, time_format: str | None = None,
                what: str = "time") -> pd.DatetimeIndex:
    """Parse a time column to a UTC DatetimeIndex.

    Numbers are epoch times: ``unit`` "s", "ms", "us" or "ns", or guessed from
    the magnitude (ms above 1e11, s otherwise: 1e11 s is the year 5138).  Strings
    are ISO-like, or follow ``time_format`` (a ``strftime`` format such as
    ``"%d.%m.%Y %H:%M"``); naive values are localised to ``timezone``.
    """
    if pd.api.types.is_numeric_dtype(raw) and time_format is None:
        values = raw.to_numpy(dtype=np.float64)
        if unit is None:
            finite = values[np.isfinite(values)]
            big = float(np.nanmedian(np.abs(finite))) if len(finite) else 0.0
            unit = "ns" if big > 1e17 else "us" if big > 1e14 else "ms" if big > 1e11 else "s"
        parsed = pd.to_datetime(raw, unit=unit, utc=True, errors="coerce")
    elif time_format is not None:
        parsed = pd.to_datetime(raw.astype(str), format=time_format, errors="coerce")
    else:
        try:
            parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
        except ValueError:  # mixed UTC offsets: exact through UTC (naive values are then taken as UTC)
            log.warning("%ss have mixed UTC offsets; converting through UTC", what)
            parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
        if parsed.dtype == object:  # older pandas returns objects for mixed offsets
            parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
    bad = parsed.isna().to_numpy() & raw.notna().to_numpy() | raw.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        column = f" of column {raw.name!r}" if raw.name is not None else ""
        fmt = f" with time_format {time_format!r}" if time_format else ""
        raise UserError(f"unparseable {what} {raw.iloc[i]!r} in row {i}{column}{fmt}; use ISO times or epoch s/ms "
                        "(set data.time_unit), give data.time_format (e.g. '%d.%m.%Y %H:%M'), or point "
                        "data.time_column at the right column")
    idx = pd.DatetimeIndex(parsed)
    if idx.tz is None:
        try:
            idx = idx.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
        except Exception as exc:  # unknown time zone name
            raise UserError(f"cannot localise naive {what}s to timezone {timezone!r} ({exc}); use an IANA "
                            "name such as UTC or Asia/Seoul") from None
        if idx.hasnans:
            i = int(np.flatnonzero(idx.isna())[0])
            column = f" (row {i} of column {raw.name!r})" if raw.name is not None else f" (row {i})"
            raise UserError(f"{what} {raw.iloc[i]!r}{column} does not exist or is ambiguous in {timezone}; "
                            "store times in UTC")
    return idx.tz_convert("UTC").as_unit("ns")


def find_time_column(df: pd.DataFrame, time_column: str | None, key: str = "data.time_column") -> str:
    """``time_column`` if given (it must exist), else the first of :data:`TIME_COLUMN_GUESSES` (any case).

    ``key`` is the config key a hint names (``data.fx_time_column`` for the fx file).
    """
    if time_column is not None:
        if time_column not in df.columns:
            raise UserError(f"time column {time_column!r} not in the file (have: {', '.join(map(str, df.columns))});"
                            f" set {key} to one of them")
        return time_column
    lower = {str(c).lower(): c for c in df.columns}
    for guess in TIME_COLUMN_GUESSES:
        if guess in lower:
            return lower[guess]
    raise UserError(f"no time column found (have: {', '.join(map(str, df.columns))}); set {key}")


def map_columns(df: pd.DataFrame, columns: Mapping[str, str] | None) -> tuple[pd.DataFrame, dict[str, str]]:
    """Rename the file's columns to ours; returns the frame and ``{our name: file column it replaced}``.

    ``columns={yours: ours}`` wins: mapping ``volume_btc`` onto ``volume`` in a file that
    also has a ``volume`` (or ``Volume``) column uses ``volume_btc`` and drops the other,
    with a warning and a manifest entry.  Two file columns mapped onto one name are refused.
    Columns already named like ours (any case) map themselves.
    """
    mapping = {str(k): str(v) for k, v in dict(columns or {}).items()}
    missing_src = [c for c in mapping if c not in df.columns]
    if missing_src:
        raise UserError(f"columns mapping names {', '.join(missing_src)} which the file lacks (have: "
                        f"{', '.join(map(str, df.columns))}); fix data.columns")
    targets: dict[str, str] = {}
    for source, target in mapping.items():
        if target in targets:
            raise UserError(f"data.columns maps both {targets[target]!r} and {source!r} onto {target!r}; "
                            "map one column onto each name")
        targets[target] = source
    replaced: dict[str, str] = {}
    for target, source in targets.items():
        clash = [c for c in df.columns if str(c).lower() == target.lower() and c != source and c not in mapping]
        for column in clash:
            log.warning("data.columns maps %r onto %r: the file's own %r column is not used", source, target, column)
            replaced[target] = str(column)
        df = df.drop(columns=clash)
    df = df.rename(columns=mapping)
    lower = {str(c).lower(): c for c in df.columns}
    auto = {lower[c]: c for c in OUR_COLUMNS if c not in df.columns and c in lower}
    return df.rename(columns=auto), replaced


@dataclass
class RowOrder:
    """How the file's rows were ordered and what sorting them did (for the manifest)."""

    order: str = "oldest-first"  # oldest-first | newest-first | unsorted
    rows_moved: int = 0
    identical_duplicates_dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"order": self.order, "rows_moved": self.rows_moved,
                "identical_duplicates_dropped": self.identical_duplicates_dropped}


def sort_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, RowOrder]:
    """Rows in time order (stable); identical repeated rows dropped; a time with two different rows refused.

    ``df`` is indexed by parsed times and carries the file's row numbers in :data:`ROW`.
    """
    times = df.index.asi8
    info = RowOrder()
    if len(times) > 1 and not bool((np.diff(times) >= 0).all()):
        if bool((np.diff(times) <= 0).all()):
            info.order = "newest-first"
        else:
            info.order = "unsorted"
        order = np.argsort(times, kind="stable")
        info.rows_moved = int((order != np.arange(len(order))).sum())
        df = df.iloc[order]
    same = df.index.duplicated(keep=False)
    if same.any():
        values = df[same].drop(columns=[ROW])
        differing = values.groupby(level=0).nunique(dropna=False).gt(1).any(axis=1)
        if differing.any():
            time = differing.index[np.flatnonzero(differing.to_numpy())[0]]
            numbers = ", ".join(str(int(r)) for r in df.loc[[time], ROW])
            raise UserError(f"rows {numbers} all hold the bar at {pd.Timestamp(time).isoformat()} with different "
                            "values; keep one row per bar time (a file of two exchanges or two timeframes "
                            "mixed together?)")
        dup = df.index.duplicated(keep="first")
        info.identical_duplicates_dropped = int(dup.sum())
        log.warning("%d rows repeat an earlier row exactly (same time, same values); dropped", int(dup.sum()))
        df = df[~dup]
    return df, info


def file_spacing(df: pd.DataFrame) -> pd.Timedelta | None:
    """The file's own bar size: its most common step between rows (sorted, no duplicates).

    Every other step must be a whole number of bars (a gap); anything else is a file of
    mixed spacings, refused with the rows where it happens.  None for fewer than 2 rows.
    """
    if len(df) < 2:
        return None
    steps = np.diff(df.index.asi8)
    values, counts = np.unique(steps, return_counts=True)
    best = values[counts == counts.max()].min()  # ties: the finer step
    spacing = pd.Timedelta(int(best))
    odd = (steps % best) != 0
    if odd.any():
        i = int(np.flatnonzero(odd)[0])
        rows = df[ROW].to_numpy()
        share = counts.max() / len(steps)
        raise UserError(
            f"rows {int(rows[i])} and {int(rows[i + 1])} are {pd.Timedelta(int(steps[i]))} apart but the file's bars "
            f"are {timeframe_label(spacing)} apart ({share:.0%} of steps): mixed spacings; keep one bar size per "
            "file (cut it with data.start / data.end) or resample it yourself")
    try:
        parse_timeframe(spacing, "the file's bar spacing")
    except UserError as exc:
        raise UserError(f"{exc} (its rows are {spacing} apart)") from None
    return spacing
