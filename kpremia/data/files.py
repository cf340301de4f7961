"""User files as market data (registered sources ``csv`` and ``parquet``).

A user's file rarely matches the MarketFrame schema, so the source maps column
names (``columns={yours: ours}``; names that already match, in any case, map
themselves), parses times (ISO strings, epoch seconds or milliseconds; naive
times localised with ``timezone``), resamples bars finer than 15 minutes, merges
a separate USD/KRW file causally when the data has no ``fx`` column, and then
runs :func:`kpremia.data.frame.validate_frame`, whose repair report goes into
the manifest.  The manifest also holds the file's sha256 so a run records
exactly which data it saw.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kpremia.data.frame import (
    BAR, BAR_FREQ, DEFAULT_MAX_FX_FILL_BARS, DEFAULT_MAX_GAP_BARS, DEFAULT_MAX_NAN_BARS, INPUT_COLUMNS,
    validate_frame,
)
from kpremia.errors import UserError
from kpremia.registry import DATA_SOURCES

from kpremia.io import sha256_file

log = logging.getLogger(__name__)

PREMIUM_BASES = ("usdt", "btc")
# Under premium_basis=usdt a file's own premium column may differ from close / fx - 1 by
# rounding; more than 1 bp on average means it is another premium (e.g. the BTC one).
_PREMIUM_TOLERANCE = 1e-4
TIME_COLUMN_GUESSES = ("time", "timestamp", "datetime", "date", "open_time", "candle_date_time_utc")


def _existing(path: str | Path, option: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"data file not found: {p} (relative paths start at {Path.cwd()}); set data.{option} "
                        "to an existing file")
    return p


@contextmanager
def _about(path: Path, role: str) -> Iterator[None]:
    """Prefix a data error with the file it is about (a run may read a data file and an fx file)."""
    try:
        yield
    except UserError as exc:
        message = str(exc)
        if str(path) in message or message.startswith(("data file ", "fx file ")):
            raise
        raise UserError(f"{role} {path}: {message}") from None


def _read(path: Path, fmt: str, read_kwargs: Mapping[str, Any] | None) -> pd.DataFrame:
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path, **dict(read_kwargs or {}))
            if isinstance(df.index, pd.DatetimeIndex):  # a time index written by pandas
                df = df.reset_index()
            return df
        return pd.read_csv(path, **dict(read_kwargs or {}))
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot read {fmt} file {path}: {first}; check the file format") from None


def parse_times(raw: pd.Series, *, timezone: str = "UTC", unit: str | None = None, what: str = "time") -> pd.DatetimeIndex:
    """Parse a time column to a UTC DatetimeIndex.

    Numbers are epoch times: ``unit`` "s", "ms", "us" or "ns", or guessed from
    the magnitude (ms above 1e11, s otherwise: 1e11 s is the year 5138).  Strings
    are ISO-like; naive values are localised to ``timezone``.
    """
    if pd.api.types.is_numeric_dtype(raw):
        values = raw.to_numpy(dtype=np.float64)
        if unit is None:
            finite = values[np.isfinite(values)]
            big = float(np.nanmedian(np.abs(finite))) if len(finite) else 0.0
            unit = "ns" if big > 1e17 else "us" if big > 1e14 else "ms" if big > 1e11 else "s"
        parsed = pd.to_datetime(raw, unit=unit, utc=True, errors="coerce")
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
        raise UserError(f"unparseable {what} {raw.iloc[i]!r} in row {i}{column}; use ISO times or epoch s/ms "
                        "(set time_unit), or point time_column at the right column")
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


def _find_time_column(df: pd.DataFrame, time_column: str | None) -> str:
    if time_column is not None:
        if time_column not in df.columns:
            raise UserError(f"time column {time_column!r} not in the file (have: {', '.join(map(str, df.columns))});"
                            " set time_column to one of them")
        return time_column
    lower = {str(c).lower(): c for c in df.columns}
    for guess in TIME_COLUMN_GUESSES:
        if guess in lower:
            return lower[guess]
    raise UserError(f"no time column found (have: {', '.join(map(str, df.columns))}); set time_column")


def _map_columns(df: pd.DataFrame, columns: Mapping[str, str] | None) -> pd.DataFrame:
    mapping = dict(columns or {})
    missing_src = [c for c in mapping if c not in df.columns]
    if missing_src:
        raise UserError(f"columns mapping names {', '.join(missing_src)} which the file lacks (have: "
                        f"{', '.join(map(str, df.columns))}); fix data.columns")
    df = df.rename(columns=mapping)
    lower = {str(c).lower(): c for c in df.columns}
    auto = {lower[c]: c for c in (*INPUT_COLUMNS, "premium") if c not in df.columns and c in lower}
    return df.rename(columns=auto)


def _resample(df: pd.DataFrame) -> pd.DataFrame:
    """Aggregate bars finer than 15m into 15m bars labelled by their open time."""
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    for column in ("fx", "premium"):
        if column in df.columns:
            agg[column] = "last"
    out = df.resample(BAR_FREQ, label="left", closed="left").agg(agg)
    return out[out["close"].notna()]  # 15m slots without any fine bar stay gaps (validate fills them)


def _bar_spacing(index: pd.DatetimeIndex) -> pd.Timedelta | None:
    if len(index) < 3:
        return None
    steps = np.diff(np.sort(index.asi8))
    steps = steps[steps > 0]
    return pd.Timedelta(int(np.median(steps))) if len(steps) else None


def merge_fx(bar_index: pd.DatetimeIndex, fx_times: pd.DatetimeIndex, fx_values: np.ndarray,
             available_after: pd.Timedelta) -> np.ndarray:
    """FX known at the close of each bar: the last rate whose time + ``available_after`` <= bar close.

    Causal by construction (``merge_asof`` backward): a bar never sees a rate
    published after it closed.  NaN before the first usable rate.
    """
    fx_times, bar_index = fx_times.as_unit("ns"), bar_index.as_unit("ns")
    order = np.argsort(fx_times.asi8, kind="stable")
    avail = (fx_times[order] + available_after).asi8
    values = np.asarray(fx_values, dtype=np.float64)[order]
    closes = (bar_index + BAR).asi8
    pos = np.searchsorted(avail, closes, side="right") - 1
    return np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan)


class FileSource:
    """Market data from a user file (``csv`` or ``parquet``).

    Args:
        path: the data file (OHLCV of USDT/KRW, optionally an ``fx`` column).
        columns: mapping from the file's column names to ours (``open high low
            close volume fx``); names already equal to ours (any case) need no entry.
        time_column: the time column (None: guess from time/timestamp/datetime/date/open_time).
        timezone: zone of naive times (default UTC; e.g. "Asia/Seoul").
        time_unit: for numeric times: "s", "ms", "us", "ns" (None: guess from magnitude).
        time_is_close: the file stamps bars by their CLOSE time (shifted back 15m).
        fx_path: a separate USD/KRW file (daily or intraday) when the data has no fx column.
        fx_columns: column mapping for the fx file (its rate column must end up named ``fx``;
            a single non-time column is taken as the rate).
        fx_time_column, fx_timezone, fx_time_unit: like the above, for the fx file
            (fx_timezone defaults to ``timezone``).
        fx_available_after: how long after its time stamp a rate may be used, e.g. "1D"
            or "30min" (None: "1D" for daily files, whose rate for date D is only final
            after D, else 0).
        repair, max_gap_bars, max_nan_bars, max_fx_fill_bars: passed to ``validate_frame``.
        premium_basis: ``usdt`` (default): ``premium = close / fx - 1``; ``btc``: the
            file's own ``premium`` column, kept as it is (a MarketFrame written by
            ``data fetch --premium-basis btc --out``).  A file whose premium column
            disagrees with ``close / fx - 1`` under ``usdt`` is refused, never silently
            replaced.
        start, end: optional time range to keep (bar open times; naive = UTC).
        days: keep only the first ``days`` days (from ``start`` or the first bar);
            ``debug=fast`` sets 90, as it does for the synthetic market.
        read_kwargs: extra keyword arguments for ``pandas.read_csv``/``read_parquet``.
    """

    format = "csv"

    def __init__(
        self,
        path: str,
        columns: Mapping[str, str] | None = None,
        time_column: str | None = None,
        timezone: str = "UTC",
        time_unit: str | None = None,
        time_is_close: bool = False,
        fx_path: str | None = None,
        fx_columns: Mapping[str, str] | None = None,
        fx_time_column: str | None = None,
        fx_timezone: str | None = None,
        fx_time_unit: str | None = None,
        fx_available_after: str | None = None,
        repair: bool = True,
        max_gap_bars: int = DEFAULT_MAX_GAP_BARS,
        max_nan_bars: int = DEFAULT_MAX_NAN_BARS,
        max_fx_fill_bars: int = DEFAULT_MAX_FX_FILL_BARS,
        premium_basis: str = "usdt",
        start: str | None = None,
        end: str | None = None,
        days: float | None = None,
        read_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not path:
            raise UserError(f"the {self.format} data source needs a file: set data.path=/path/to/bars.{self.format}")
        self.path = str(path)
        self.columns = dict(columns or {})
        self.time_column, self.timezone, self.time_unit = time_column, timezone, time_unit
        self.time_is_close = bool(time_is_close)
        self.fx_path = fx_path
        self.fx_columns = dict(fx_columns or {})
        self.fx_time_column, self.fx_time_unit = fx_time_column, fx_time_unit
        self.fx_timezone = fx_timezone or timezone
        self.fx_available_after = fx_available_after
        self.repair = bool(repair)
        self.limits = {"max_gap_bars": int(max_gap_bars), "max_nan_bars": int(max_nan_bars),
                       "max_fx_fill_bars": int(max_fx_fill_bars)}
        if premium_basis not in PREMIUM_BASES:
            raise UserError(f"unknown data.premium_basis {premium_basis!r}; use one of: {', '.join(PREMIUM_BASES)}")
        self.premium_basis = premium_basis
        self.start, self.end = start, end
        if days is not None and not float(days) > 0:
            raise UserError(f"data.days={days!r} is invalid: it must be > 0 (or null for the whole file)")
        self.days = float(days) if days is not None else None
        self.read_kwargs = dict(read_kwargs or {})

    def _fx_format(self, path: Path) -> str:
        return "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"

    def _load_fx(self, bar_index: pd.DatetimeIndex) -> tuple[np.ndarray, dict]:
        path = _existing(self.fx_path, "fx_path")
        with _about(path, "fx file"):
            return self._read_fx(path, bar_index)

    def _read_fx(self, path: Path, bar_index: pd.DatetimeIndex) -> tuple[np.ndarray, dict]:
        raw = _read(path, self._fx_format(path), None)
        tcol = _find_time_column(raw, self.fx_time_column)
        times = parse_times(raw[tcol], timezone=self.fx_timezone, unit=self.fx_time_unit, what="fx time")
        df = _map_columns(raw.drop(columns=[tcol]), self.fx_columns)
        if "fx" not in df.columns:
            numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
            if len(numeric) != 1:
                raise UserError(f"fx file {path} has no 'fx' column (have: {', '.join(map(str, df.columns))}); "
                                "map the rate column with fx_columns={yours: fx}")
            df = df.rename(columns={numeric[0]: "fx"})
        values = pd.to_numeric(df["fx"], errors="coerce").to_numpy(np.float64)
        local = times.tz_convert(self.fx_timezone)
        daily = bool(len(local)) and bool((local == local.normalize()).all())
        after = pd.Timedelta(self.fx_available_after) if self.fx_available_after is not None \
            else (pd.Timedelta("1D") if daily else pd.Timedelta(0))
        keep = np.isfinite(values)
        fx = merge_fx(bar_index, times[keep], values[keep], after)
        info = {"fx_path": str(path), "fx_sha256": sha256_file(path), "fx_rows": int(len(raw)),
                "fx_daily": daily, "fx_available_after": str(after)}
        return fx, info

    def load(self) -> tuple[pd.DataFrame, dict]:
        """Read, map, parse, (resample), merge fx, validate; return the frame and its manifest.

        Every data error names the file it is about (and the column where known).
        """
        path = _existing(self.path, "path")
        with _about(path, "data file"):
            return self._load(path)

    def _check_premium_column(self, df: pd.DataFrame, frame: pd.DataFrame) -> None:
        """Refuse a file premium that is not ``close / fx - 1`` under ``premium_basis=usdt``."""
        given = pd.to_numeric(df["premium"], errors="coerce")
        given = given[~given.index.duplicated(keep="last")].reindex(frame.index)
        diff = (given - frame["premium"]).abs().mean()
        if np.isfinite(diff) and diff > _PREMIUM_TOLERANCE:
            raise UserError(f"its 'premium' column is not close / fx - 1 (mean difference {diff * 100:.2f} pp; "
                            "e.g. a BTC premium from `data fetch --premium-basis btc`); set data.premium_basis=btc "
                            "to train on that column, or drop the column to use the USDT premium")

    def _load(self, path: Path) -> tuple[pd.DataFrame, dict]:
        raw = _read(path, self.format, self.read_kwargs)
        if raw.empty:
            raise UserError(f"data file {path} has no rows; point data.path at a file with bars")
        tcol = _find_time_column(raw, self.time_column)
        index = parse_times(raw[tcol], timezone=self.timezone, unit=self.time_unit)
        if self.time_is_close:
            index = index - BAR
        df = _map_columns(raw.drop(columns=[tcol]), self.columns)
        df.index = index
        df.index.name = "time"
        if self.start is not None or self.end is not None or self.days is not None:
            lo = pd.Timestamp(self.start, tz="UTC") if self.start is not None else index.min()
            hi = pd.Timestamp(self.end, tz="UTC") if self.end is not None else index.max() + BAR
            if self.days is not None:
                hi = min(hi, lo + pd.Timedelta(days=self.days))
            df = df[(df.index >= lo) & (df.index < hi)]
            if df.empty:
                raise UserError(f"no bars of {path} between start={self.start} and end={self.end}; "
                                "widen the range")

        spacing = _bar_spacing(df.index)
        resampled = False
        if spacing is not None and spacing < BAR:
            if BAR % spacing != pd.Timedelta(0):
                raise UserError(f"bars are {spacing} apart, which does not divide 15 minutes; resample the "
                                "data to 15m bars yourself")
            missing = [c for c in ("open", "high", "low", "close", "volume") if c not in df.columns]
            if missing:  # let validate_frame name them
                validate_frame(df, repair=self.repair, **self.limits)
            df = _resample(df.sort_index(kind="stable"))
            resampled = True
            log.warning("%s: %s bars resampled to 15m bars", path, spacing)
        elif spacing is not None and spacing > BAR and spacing % BAR == pd.Timedelta(0) and \
                (np.diff(df.index.asi8) > BAR.value).mean() > 0.9:
            raise UserError(f"{path} holds {spacing} bars; kpremia needs 15m bars (download 15m candles)")

        fx_info: dict = {}
        if self.fx_path:
            if "fx" in df.columns:
                log.warning("%s has an fx column; fx_path %s replaces it", path, self.fx_path)
            fx, fx_info = self._load_fx(df.index)
            df = df.assign(fx=fx)
        keep = self.premium_basis != "usdt"
        if keep and "premium" not in df.columns:
            raise UserError(f"data.premium_basis={self.premium_basis} takes the premium from the file's 'premium' "
                            f"column, which it lacks (have: {', '.join(map(str, df.columns))}); map yours with "
                            "data.columns={yours: premium}, write the file with `data fetch --premium-basis btc "
                            "--out`, or use data.premium_basis=usdt (close / fx - 1)")
        frame, report = validate_frame(df, repair=self.repair, keep_premium=keep, **self.limits)
        if not keep and "premium" in df.columns:
            self._check_premium_column(df, frame)
        manifest = {
            "source": self.format, "synthetic": False, "path": str(path.resolve()), "sha256": sha256_file(path),
            "rows": len(frame), "first_bar": frame.index[0].isoformat(), "last_bar": frame.index[-1].isoformat(),
            "columns": self.columns, "timezone": self.timezone, "time_is_close": self.time_is_close,
            "resampled_from": str(spacing) if resampled else None, "premium_basis": self.premium_basis,
            "repair": report.to_dict(), **fx_info,
        }
        log.info("%s: %d bars %s .. %s (%s)", path, len(frame), manifest["first_bar"], manifest["last_bar"],
                 report.summary())
        return frame, manifest


@DATA_SOURCES.register("csv")
class CsvSource(FileSource):
    """Data source ``csv``: bars from a CSV file (see :class:`FileSource` for the options)."""

    format = "csv"


@DATA_SOURCES.register("parquet")
class ParquetSource(FileSource):
    """Data source ``parquet``: bars from a Parquet file (see :class:`FileSource` for the options)."""

    format = "parquet"
