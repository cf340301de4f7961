"""User files as market data (registered sources ``csv`` and ``parquet``).

A user's file rarely matches the MarketFrame schema, so the source

1. reads it (``read_kwargs`` go to pandas: a banner line, a separator, a decimal comma),
   parses its times (ISO strings, ``time_format``, epoch s/ms; naive times in ``timezone``)
   and maps its columns (``columns={yours: ours}``; names that already match, in any
   case, map themselves; mapping onto a name the file also has uses the mapped column);
2. sorts the rows by time (a newest-first export is read like the same file oldest-first),
   drops exact repeats and refuses a time given twice with different values, naming rows;
3. takes the file's own bar size from its spacing (mixed spacings are refused with the
   rows) -- ``data.timeframe`` may only ask for the same size or a coarser one (the
   finer bars are aggregated); never a finer one, which would invent bars;
4. fills in what a close-only file lacks (open = previous close, high/low around
   open and close, volume 0), saying what it assumed in the log and the manifest;
5. merges a separate USD/KRW file (``fx_path``; a daily file, an ECB ``eurofxref-hist``
   file or ``ecb`` for the bundled ECB rates) causally at the bar's close;
6. validates (:func:`kpremia.data.repair.validate_frame`: missing bars are inserted only
   at the file's own spacing, within a limit, and counted), then checks plausibility
   (:mod:`kpremia.data.plausibility`: premium, FX range).

The manifest holds the file's sha256, its bar size and row order, every repair and
assumption, and the plausibility limits with any the user overrode.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kpremia.core.bars import DEFAULT_BAR, parse_timeframe, timeframe_label
from kpremia.core.errors import UserError
from kpremia.core.io import existing_file, sha256_file
from kpremia.core.registry import DATA_SOURCES
from kpremia.data.file_table import (
    ROW,
    file_spacing,
    find_time_column,
    map_columns,
    parse_times,
    read_table,
    sort_rows,
)
from kpremia.data.plausibility import PlausibilityChecks
from kpremia.data.repair import default_limits, validate_frame
from kpremia.data.resample import aggregate_bars

log = logging.getLogger(__name__)

PREMIUM_BASES = ("usdt", "btc")
PREMIUM_UNITS = ("fraction", "percent")
# Under premium_basis=usdt a file's own premium column may differ from close / fx - 1 by
# rounding; more than 1 bp on average means it is another premium (e.g. the BTC one).
_PREMIUM_TOLERANCE = 1e-4
# More inserted than real bars in a quarter of the frame means a sparse or mixed file, not no-trade bars.
DEFAULT_MAX_INSERTED_FRAC = 0.25
CLOSE_ONLY_ASSUMPTIONS = {"open": "the previous bar's close (the first bar: its own close)",
                          "high": "max(open, close)", "low": "min(open, close)"}


def _existing(path: str | Path, option: str) -> Path:
    return existing_file(path, f"data.{option}")


def column_mapping(columns: Mapping[str, str] | str | None, key: str) -> dict[str, str]:
    """``{yours: ours}`` from a mapping, or from a small YAML file when ``columns`` is its path.

    Why a file: a real column name such as ``kimchi_premium(%)`` or ``close (KRW)`` needs escaping
    in a Hydra override's dict keys; in a YAML file (``kimchi_premium(%): premium``) it needs none,
    and the override is just ``data.columns=columns.yaml``.
    """
    if columns is None:
        return {}
    if isinstance(columns, str):
        import yaml

        path = existing_file(columns, key)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise UserError(f"{key}={columns}: not valid YAML ({' '.join(str(exc).split())[:120]}); write one "
                            "`your column: our column` per line") from None
        if not isinstance(loaded, Mapping) or not loaded:
            raise UserError(f"{key}={columns}: the file must map your column names to ours, one "
                            "`your column: our column` per line (e.g. `usdt_krw_close: close`)")
        columns = loaded
    return {str(k): str(v) for k, v in dict(columns).items()}


def check_required_columns(columns: Sequence[Any], path: Path | str, *, fx_file: bool) -> None:
    """The columns this file's kind needs, named for its kind, with the keys that fix them.

    A close-only file needs ``close`` and ``fx`` (or ``data.fx_path``); an OHLC file ``open``, ``high``,
    ``low`` and ``close`` (``volume`` and, with ``data.fx_path``, ``fx`` are optional).
    """
    have = {str(c) for c in columns}
    shown = ", ".join(sorted(have - {ROW}))[:200]
    mapping = "map yours with data.columns={yours: ours} or data.columns=<a YAML file of `yours: ours` lines>"
    fx_missing = "fx" not in have and not fx_file
    if "close" not in have:
        need = "close" + (" and fx (USD/KRW; or give data.fx_path)" if fx_missing else "")
        raise UserError(f"data file {path} has no close column (have: {shown}): a close-only file needs {need}, "
                        f"an OHLC file open, high, low and close; {mapping}")
    ohlc = [c for c in ("open", "high", "low") if c in have]
    if ohlc and len(ohlc) < 3:
        lacking = ", ".join(c for c in ("open", "high", "low") if c not in have)
        raise UserError(f"data file {path} has {', '.join(ohlc)} but no {lacking} (have: {shown}): an OHLC file needs "
                        f"open, high, low and close, a close-only file close alone; {mapping}")
    if fx_missing:
        raise UserError(f"data file {path} has no fx column (USD/KRW; have: {shown}): give a USD/KRW file with "
                        "data.fx_path=<file> (or data.fx_path=ecb for the bundled ECB rates), or " + mapping)


@contextmanager
def _about(path: Path | str, role: str) -> Iterator[None]:
    """Prefix a data error with the file it is about (a run may read a data file and an fx file)."""
    try:
        yield
    except UserError as exc:
        message = str(exc)
        if str(path) in message or message.startswith(("data file ", "fx file ")):
            raise
        raise UserError(f"{role} {path}: {message}") from None


def merge_fx(bar_index: pd.DatetimeIndex, fx_times: pd.DatetimeIndex, fx_values: np.ndarray,
             available_after: pd.Timedelta, bar: pd.Timedelta = DEFAULT_BAR) -> np.ndarray:
    """FX known at the close of each bar: the last rate whose time + ``available_after`` <= bar close.

    A bar of size ``bar`` opening at t closes at t + ``bar``.  Causal by construction
    (``merge_asof`` backward): a bar never sees a rate published after it closed.
    NaN before the first usable rate.
    """
    fx_times, bar_index = fx_times.as_unit("ns"), bar_index.as_unit("ns")
    order = np.argsort(fx_times.asi8, kind="stable")
    avail = (fx_times[order] + available_after).asi8
    values = np.asarray(fx_values, dtype=np.float64)[order]
    closes = (bar_index + bar).asi8
    pos = np.searchsorted(avail, closes, side="right") - 1
    return np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan)


def fill_close_only(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """A file with ``close`` but no ``open``/``high``/``low`` (and maybe no ``volume``): the missing columns.

    Returns the frame and ``{column: what was assumed}``.  A decision then fills at the
    previous close (the open), the close the policy saw: every trader gets the same
    optimistic fill, the fee and spread still apply.
    """
    assumed: dict[str, str] = {}
    if "close" in df.columns and not {"open", "high", "low"} & set(df.columns):
        close = pd.to_numeric(df["close"], errors="coerce")
        previous = close.shift(1).fillna(close)
        df = df.assign(open=previous, high=np.maximum(previous, close), low=np.minimum(previous, close))
        assumed.update(CLOSE_ONLY_ASSUMPTIONS)
    if "volume" not in df.columns and {"open", "high", "low", "close"} <= set(df.columns):
        df = df.assign(volume=0.0)
        assumed["volume"] = "0 (unknown; volume features are constant)"
    return df, assumed


class FileSource:
    """Market data from a user file (``csv`` or ``parquet``).

    Args:
        path: the data file (USDT/KRW bars: OHLCV or close only, optionally an ``fx`` column).
        columns: mapping from the file's column names to ours (``open high low
            close volume fx premium``); names already equal to ours (any case) need no entry.
        time_column: the time column (None: guess from time/timestamp/datetime/date/open_time/
            candle_date_time_utc).
        timezone: zone of naive times (default UTC; e.g. "Asia/Seoul").
        time_unit: for numeric times: "s", "ms", "us", "ns" (None: guess from magnitude).
        time_format: a ``strftime`` format for string times (e.g. "%d.%m.%Y %H:%M"); None = ISO-like.
        time_is_close: the file stamps bars by their CLOSE time (shifted back one bar).
        timeframe: the bar size to use: None = the file's own spacing; a coarser size (e.g.
            "1h" for a 15m file) aggregates the file's bars; a finer one is refused.
        fx_path: USD/KRW when the data has no fx column: a file (``date,usdkrw`` / ``time,rate``
            rows or any one numeric column; an ECB ``eurofxref-hist`` csv/zip is recognised by its
            Date/USD/KRW columns) or ``ecb`` for the ECB rates bundled offline.
        fx_columns: column mapping for the fx file (its rate column must end up named ``fx``;
            a single non-time column is taken as the rate).
        fx_time_column, fx_timezone, fx_time_unit: like the above, for the fx file
            (fx_timezone defaults to ``timezone``).
        fx_available_after: how long after its time stamp a rate may be used, e.g. "1D"
            or "30min" (None: "1D" for daily files, whose rate for date D is only final
            after D, else 0; ECB rates: 16:00 Europe/Berlin on their date).
        repair: passed to ``validate_frame`` (False: refuse anything that needs a repair).
        max_gap_bars, max_nan_bars, max_fx_fill_bars: ``validate_frame``'s limits in bars of
            the bar size (None: a day, an hour and ten days of bars).
        premium_basis: ``usdt`` (default): ``premium = close / fx - 1``; ``btc``: the
            file's own ``premium`` column, kept as it is.  A file whose premium column
            disagrees with ``close / fx - 1`` under ``usdt`` is refused, never silently replaced.
        premium_unit: ``fraction`` (0.012) or ``percent`` (1.2) for a kept premium column.
        checks: plausibility limits (:class:`~kpremia.data.plausibility.PlausibilityChecks`,
            plus ``max_inserted_frac``); overriding one is recorded in the manifest.
        start, end: optional time range to keep (bar open times; naive = UTC).
        days: keep only the first ``days`` days (from ``start`` or the first bar);
            ``debug=fast`` sets 90, as it does for the synthetic market.
        read_kwargs: extra keyword arguments for ``pandas.read_csv``/``read_parquet``
            (e.g. ``{skiprows: 1, sep: ";", decimal: ","}``).
    """

    format = "csv"

    def __init__(
        self,
        path: str,
        columns: Mapping[str, str] | str | None = None,
        time_column: str | None = None,
        timezone: str = "UTC",
        time_unit: str | None = None,
        time_format: str | None = None,
        time_is_close: bool = False,
        timeframe: str | None = None,
        fx_path: str | None = None,
        fx_columns: Mapping[str, str] | str | None = None,
        fx_time_column: str | None = None,
        fx_timezone: str | None = None,
        fx_time_unit: str | None = None,
        fx_available_after: str | None = None,
        repair: bool = True,
        max_gap_bars: int | None = None,
        max_nan_bars: int | None = None,
        max_fx_fill_bars: int | None = None,
        premium_basis: str = "usdt",
        premium_unit: str = "fraction",
        checks: Mapping[str, Any] | None = None,
        start: str | None = None,
        end: str | None = None,
        days: float | None = None,
        read_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not path:
            raise UserError(f"the {self.format} data source needs a file: set data.path=/path/to/bars.{self.format}")
        self.path = str(path)
        self.columns = column_mapping(columns, "data.columns")
        self.time_column, self.timezone, self.time_unit = time_column, timezone, time_unit
        self.time_format = time_format
        self.time_is_close = bool(time_is_close)
        self.timeframe = parse_timeframe(timeframe) if timeframe else None
        self.fx_path = fx_path
        self.fx_columns = column_mapping(fx_columns, "data.fx_columns")
        self.fx_time_column, self.fx_time_unit = fx_time_column, fx_time_unit
        self.fx_timezone = fx_timezone or timezone
        self.fx_available_after = fx_available_after
        self.repair = bool(repair)
        self.limits = {"max_gap_bars": max_gap_bars, "max_nan_bars": max_nan_bars,
                       "max_fx_fill_bars": max_fx_fill_bars}
        if premium_basis not in PREMIUM_BASES:
            raise UserError(f"unknown data.premium_basis {premium_basis!r}; use one of: {', '.join(PREMIUM_BASES)}")
        self.premium_basis = premium_basis
        if premium_unit not in PREMIUM_UNITS:
            raise UserError(f"unknown data.premium_unit {premium_unit!r}; use one of: {', '.join(PREMIUM_UNITS)}")
        self.premium_unit = premium_unit
        checks = dict(checks or {})
        self.max_inserted_frac = float(checks.pop("max_inserted_frac", DEFAULT_MAX_INSERTED_FRAC))
        if not 0 <= self.max_inserted_frac <= 1:
            raise UserError(f"data.checks.max_inserted_frac={self.max_inserted_frac} must be in [0, 1]")
        self.checks = PlausibilityChecks.from_config(checks)
        self.start, self.end = start, end
        if days is not None and not float(days) > 0:
            raise UserError(f"data.days={days!r} is invalid: it must be > 0 (or null for the whole file)")
        self.days = float(days) if days is not None else None
        self.read_kwargs = dict(read_kwargs or {})

    # ----------------------------------------------------------------- fx
    def _load_fx(self, bar_index: pd.DatetimeIndex, bar: pd.Timedelta) -> tuple[np.ndarray, dict]:
        if str(self.fx_path).strip().lower() == "ecb":
            return self._ecb_fx(bar_index, bar, None)
        path = _existing(self.fx_path, "fx_path")
        with _about(path, "fx file"):
            return self._read_fx(path, bar_index, bar)

    def _ecb_fx(self, bar_index: pd.DatetimeIndex, bar: pd.Timedelta, path: Path | None) -> tuple[np.ndarray, dict]:
        """ECB reference rates (KRW per EUR / USD per EUR), usable from 16:00 Europe/Berlin on their date."""
        from kpremia.data.fx import align_fx_to_bars, load_fx

        series = load_fx("ecb", ecb_file=path)
        fx = align_fx_to_bars(bar_index, series, pd.Timedelta(days=5), bar_length=bar, on_stale="nan")
        info = {"fx_path": str(path) if path else "ecb (bundled)", "fx_source": "ecb",
                "fx_sha256": sha256_file(path) if path else None, "fx_rows": int(len(series)),
                "fx_published": "16:00 Europe/Berlin on the rate's date"}
        return fx.to_numpy(), info

    def _read_fx(self, path: Path, bar_index: pd.DatetimeIndex, bar: pd.Timedelta) -> tuple[np.ndarray, dict]:
        fmt = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"
        raw = read_table(path, fmt, None)
        names = {str(c).strip() for c in raw.columns}
        if {"Date", "USD", "KRW"} <= names and not self.fx_columns:  # the ECB eurofxref-hist layout
            return self._ecb_fx(bar_index, bar, path)
        tcol = find_time_column(raw, self.fx_time_column, "data.fx_time_column")
        times = parse_times(raw[tcol], timezone=self.fx_timezone, unit=self.fx_time_unit, what="fx time")
        df, _ = map_columns(raw.drop(columns=[tcol]), self.fx_columns)
        if "fx" not in df.columns:
            lower = {str(c).lower(): c for c in df.columns}
            named = [lower[c] for c in ("usdkrw", "rate") if c in lower]
            numeric = named or [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
            if len(numeric) != 1:
                raise UserError(f"fx file {path} has no 'fx' column (have: {', '.join(map(str, df.columns))}); "
                                "map the rate column with data.fx_columns={yours: fx}")
            df = df.rename(columns={numeric[0]: "fx"})
        values = pd.to_numeric(df["fx"], errors="coerce").to_numpy(np.float64)  # FRED's "." -> NaN
        local = times.tz_convert(self.fx_timezone)
        daily = bool(len(local)) and bool((local == local.normalize()).all())
        after = pd.Timedelta(self.fx_available_after) if self.fx_available_after is not None \
            else (pd.Timedelta("1D") if daily else pd.Timedelta(0))
        keep = np.isfinite(values)
        fx = merge_fx(bar_index, times[keep], values[keep], after, bar)
        info = {"fx_path": str(path), "fx_sha256": sha256_file(path), "fx_rows": int(len(raw)),
                "fx_rows_without_rate": int((~keep).sum()), "fx_daily": daily, "fx_available_after": str(after)}
        return fx, info

    # ----------------------------------------------------------------- load
    def load(self) -> tuple[pd.DataFrame, dict]:
        """Read, map, sort, (aggregate), merge fx, validate, check; return the frame and its manifest.

        Every data error names the file it is about (and the column or row where known).
        """
        path = _existing(self.path, "path")
        with _about(path, "data file"):
            return self._load(path)

    def _check_premium_column(self, df: pd.DataFrame, frame: pd.DataFrame) -> None:
        """Refuse a file premium that is not ``close / fx - 1`` under ``premium_basis=usdt``."""
        given = pd.to_numeric(df["premium"], errors="coerce") * (0.01 if self.premium_unit == "percent" else 1.0)
        given = given[~given.index.duplicated(keep="last")].reindex(frame.index)
        diff = (given - frame["premium"]).abs().mean()
        if np.isfinite(diff) and diff > _PREMIUM_TOLERANCE:
            raise UserError(f"its 'premium' column is not close / fx - 1 (mean difference {diff * 100:.2f} pp; "
                            "e.g. a BTC premium from `data fetch --premium-basis btc`); set data.premium_basis=btc "
                            "to train on that column, or drop the column to use the USDT premium")

    def _table(self, path: Path) -> tuple[pd.DataFrame, dict[str, str], Any]:
        """The file as a time-sorted table of our columns (plus :data:`ROW`), cut to the period."""
        raw = read_table(path, self.format, self.read_kwargs)
        if raw.empty:
            raise UserError(f"data file {path} has no rows; point data.path at a file with bars")
        tcol = find_time_column(raw, self.time_column)
        index = parse_times(raw[tcol], timezone=self.timezone, unit=self.time_unit, time_format=self.time_format)
        df, replaced = map_columns(raw.drop(columns=[tcol]), self.columns)
        df = df.assign(**{ROW: np.arange(len(df))})
        df.index = index
        df.index.name = "time"
        df, order = sort_rows(df)
        return df, replaced, order

    def _cut(self, df: pd.DataFrame, path: Path, spacing: pd.Timedelta) -> pd.DataFrame:
        if self.start is None and self.end is None and self.days is None:
            return df
        lo = pd.Timestamp(self.start, tz="UTC") if self.start is not None else df.index.min()
        hi = pd.Timestamp(self.end, tz="UTC") if self.end is not None else df.index.max() + spacing
        if self.days is not None:
            hi = min(hi, lo + pd.Timedelta(days=self.days))
        df = df[(df.index >= lo) & (df.index < hi)]
        if df.empty:
            raise UserError(f"no bars of {path} between start={self.start} and end={self.end}; widen the range")
        return df

    def _bar(self, spacing: pd.Timedelta | None) -> pd.Timedelta:
        """The run's bar size: data.timeframe, or the file's own spacing; never finer than the file."""
        if spacing is None:
            return self.timeframe or DEFAULT_BAR
        if self.timeframe is None or self.timeframe == spacing:
            return spacing
        if self.timeframe < spacing or self.timeframe % spacing != pd.Timedelta(0):
            raise UserError(f"the file holds {timeframe_label(spacing)} bars; data.timeframe="
                            f"{timeframe_label(self.timeframe)} would need bars the file does not have - use "
                            f"data.timeframe={timeframe_label(spacing)} (or null for the file's own bars), or a whole "
                            "multiple of it to aggregate")
        return self.timeframe

    def _load(self, path: Path) -> tuple[pd.DataFrame, dict]:
        df, replaced, order = self._table(path)
        spacing = file_spacing(df)  # refuses mixed spacings with the row numbers
        if self.time_is_close:
            df.index = df.index - (spacing or DEFAULT_BAR)
        df = self._cut(df, path, spacing or DEFAULT_BAR)
        bar = self._bar(spacing)
        check_required_columns(df.columns, path, fx_file=bool(self.fx_path))
        df, assumed = fill_close_only(df)
        if assumed:
            log.warning("%s: %s", path, "; ".join(f"{k} = {v}" for k, v in assumed.items()))
        dropped_edges = 0
        if spacing is not None and bar != spacing:
            missing = [c for c in ("open", "high", "low", "close", "volume") if c not in df.columns]
            if missing:  # let validate_frame name them
                validate_frame(df.drop(columns=[ROW]), bar=spacing, repair=self.repair)
            df, dropped_edges = aggregate_bars(df.drop(columns=[ROW]), bar, spacing)
            log.warning("%s: %s bars aggregated into %s bars (%d partial bars at the edges dropped)", path,
                        timeframe_label(spacing), timeframe_label(bar), dropped_edges)
        df = df.drop(columns=[ROW], errors="ignore")

        fx_info: dict = {}
        if self.fx_path:
            if "fx" in df.columns:
                log.warning("%s has an fx column; fx_path %s replaces it", path, self.fx_path)
            fx, fx_info = self._load_fx(df.index, bar)
            df = df.assign(fx=fx)
        keep = self.premium_basis != "usdt"
        if keep and "premium" not in df.columns:
            raise UserError(f"data.premium_basis={self.premium_basis} takes the premium from the file's 'premium' "
                            f"column, which it lacks (have: {', '.join(map(str, df.columns))}); map yours with "
                            "data.columns={yours: premium}, write the file with `data fetch --premium-basis btc "
                            "--out`, or use data.premium_basis=usdt (close / fx - 1)")
        if keep and self.premium_unit == "percent":
            df = df.assign(premium=pd.to_numeric(df["premium"], errors="coerce") / 100.0)
        limits = {**default_limits(bar), **{k: int(v) for k, v in self.limits.items() if v is not None}}
        frame, report = validate_frame(df, bar=bar, repair=self.repair, keep_premium=keep, **limits)
        share = report.gap_bars_inserted / max(len(frame), 1)
        if share > self.max_inserted_frac:
            raise UserError(f"filling its gaps inserted {report.gap_bars_inserted} of {len(frame)} "
                            f"{timeframe_label(bar)} bars ({share:.0%} > data.checks.max_inserted_frac="
                            f"{self.max_inserted_frac:g}): that is a sparse or mixed file, not a few no-trade bars; "
                            "use its own bar size (data.timeframe), cut it to the dense part, or raise the limit")
        self.checks.check(frame, premium_source="the 'premium' column" if keep else "close / fx - 1")
        if not keep and "premium" in df.columns:
            self._check_premium_column(df, frame)
        manifest = {
            "source": self.format, "synthetic": False, "path": str(path.resolve()), "sha256": sha256_file(path),
            "timeframe": timeframe_label(bar), "bar_minutes": bar.total_seconds() / 60.0,
            "file_spacing": timeframe_label(spacing) if spacing is not None else None,
            "rows": len(frame), "first_bar": frame.index[0].isoformat(), "last_bar": frame.index[-1].isoformat(),
            "row_order": order.to_dict(), "columns": self.columns, "replaced_columns": replaced,
            "assumed": assumed, "timezone": self.timezone, "time_is_close": self.time_is_close,
            "resampled_from": timeframe_label(spacing) if spacing is not None and bar != spacing else None,
            "partial_edge_bars_dropped": dropped_edges, "premium_basis": self.premium_basis,
            "premium_unit": self.premium_unit if keep else None, "limits": limits,
            "checks": {**self.checks.describe(), "max_inserted_frac": self.max_inserted_frac,
                       "overridden": self.checks.overridden() + (
                           ["max_inserted_frac"] if self.max_inserted_frac != DEFAULT_MAX_INSERTED_FRAC else [])},
            "inserted_bars": report.gap_bars_inserted, "repair": report.to_dict(), **fx_info,
        }
        log.info("%s: %d %s bars %s .. %s (%s rows, %s)", path, len(frame), manifest["timeframe"],
                 manifest["first_bar"], manifest["last_bar"], order.order, report.summary())
        return frame, manifest


@DATA_SOURCES.register("csv")
class CsvSource(FileSource):
    """Data source ``csv``: bars from a CSV file (see :class:`FileSource` for the options)."""

    format = "csv"


@DATA_SOURCES.register("parquet")
class ParquetSource(FileSource):
    """Data source ``parquet``: bars from a Parquet file (see :class:`FileSource` for the options)."""

    format = "parquet"
