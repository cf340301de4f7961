"""Bar size: the one place a timeframe like ``15m`` / ``1h`` / ``1d`` becomes time, and time becomes bars.

Why a module of its own: the bar size is a setting of a run (``data.timeframe``), not a
constant, so every part that used to count in 15-minute bars -- features' look-backs,
gap limits, the decision interval and episode length, the FX publication rule, the
annualisation of metrics, the live feed -- asks here how many bars a span of time is.

Two kinds of text are understood, both ``<number><unit>`` with one unit:

* a **timeframe** (bar size): ``1m`` .. ``1d``, the ccxt spelling (``15m``, ``1h``, ``4h``, ``1d``;
  ``15min`` also works).  It must divide a day, because daily windows, the time-of-day
  features and the FX publication rule are about UTC days.
* a **duration** (``4h``, ``7d``, ``1000h``, ``90s``): a span of time that becomes bars with
  :func:`bars_in` -- ``round(duration / bar)``, at least ``minimum``.  A duration shorter than a
  bar is one bar (nothing finer exists).

Units: ``s`` seconds, ``m``/``min`` minutes, ``h`` hours, ``d`` days, ``w`` weeks (any case, except
``M``, which ccxt uses for months and is refused).
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from kpremia.core.errors import UserError

DEFAULT_BAR = pd.Timedelta(minutes=15)  # the default bar size; a run's own is data.timeframe
DAY = pd.Timedelta(days=1)
NS_HOUR = 3_600 * 10**9  # an hour and a day in nanoseconds: the unit of int64 time arithmetic on bar times
NS_DAY = 24 * NS_HOUR
_UNITS = {"s": "seconds", "sec": "seconds", "m": "minutes", "min": "minutes", "h": "hours", "d": "days",
          "w": "weeks"}
_TEXT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")


def parse_duration(value: Any, what: str = "duration") -> pd.Timedelta:
    """``"4h"`` -> 4 hours (a Timedelta passes through); :class:`UserError` naming ``what`` otherwise."""
    if isinstance(value, pd.Timedelta):
        return value
    match = _TEXT.match(str(value))
    # "M" is a month in ccxt's spelling (a month is not a fixed span): refused, not read as minutes
    unit = _UNITS.get(match.group(2).lower()) if match and match.group(2) != "M" else None
    if unit is None:
        raise UserError(f"{what}={value!r} is not a duration; write <number><unit> with unit s, m, h, d or w "
                        "(e.g. 15m, 4h, 7d)")
    span = pd.Timedelta(**{unit: float(match.group(1))})
    if span <= pd.Timedelta(0):
        raise UserError(f"{what}={value!r} must be longer than zero")
    return span


def parse_timeframe(value: Any, what: str = "data.timeframe") -> pd.Timedelta:
    """A bar size: a duration of at least a minute that divides a day (``15m``, ``1h``, ``4h``, ``1d``)."""
    bar = parse_duration(value, what)
    if bar < pd.Timedelta(minutes=1) or bar > DAY or DAY % bar != pd.Timedelta(0):
        raise UserError(f"{what}={value!r} is not a bar size kpremia can use: bars must last from 1 minute to "
                        "1 day and divide a day (e.g. 1m, 5m, 15m, 30m, 1h, 4h, 1d)")
    return bar


def timeframe_label(bar: pd.Timedelta) -> str:
    """The ccxt spelling of a bar size: ``15m``, ``1h``, ``1d`` (seconds for odd sizes)."""
    seconds = int(bar.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


DEFAULT_TIMEFRAME = timeframe_label(DEFAULT_BAR)  # the default bar size in the ccxt spelling (``data.timeframe``)


def bar_minutes(bar: pd.Timedelta) -> float:
    """The bar size in minutes (what the metrics' annualisation takes)."""
    return bar.total_seconds() / 60.0


DEFAULT_BAR_MINUTES = bar_minutes(DEFAULT_BAR)  # what the metrics take when no bar size is given


def bar_of_minutes(minutes: float) -> pd.Timedelta:
    """The inverse of :func:`bar_minutes`."""
    return pd.Timedelta(minutes=float(minutes))


def bars_in(duration: Any, bar: pd.Timedelta, minimum: int = 1) -> int:
    """How many bars of size ``bar`` a duration spans: ``round(duration / bar)``, at least ``minimum``.

    Halves round up (``floor(x + 0.5)``), so the result never depends on banker's rounding.
    """
    span = parse_duration(duration) if not isinstance(duration, pd.Timedelta) else duration
    return max(int(minimum), int(math.floor(span / bar + 0.5)))


def is_duration_text(value: Any) -> bool:
    """True for a duration string like ``"4h"`` (not for plain numbers)."""
    if not isinstance(value, str):
        return False
    match = _TEXT.match(value)
    return bool(match) and match.group(2) != "M" and match.group(2).lower() in _UNITS


def bars_setting(value: Any, bar: pd.Timedelta, key: str) -> int | None:
    """A setting given in bars (a whole number) or as a duration (``"4h"``), as bars of ``bar``.

    ``None`` stays ``None`` (no limit).  This is the one rule for settings such as
    ``env.decision_every`` and ``env.max_steps``: numbers are bars of the run's bar
    size, durations are converted with :func:`bars_in` (at least one bar).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise UserError(f"{key}={value!r} must be a whole number of bars or a duration such as '4h'")
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
        number = float(value)
        if not number.is_integer() or number < 1:
            raise UserError(f"{key}={value!r} must be a whole number of bars >= 1 or a duration such as '4h'")
        return int(number)
    return bars_in(parse_duration(value, key), bar)


def frame_bar(index: pd.DatetimeIndex, default: pd.Timedelta = DEFAULT_BAR) -> pd.Timedelta:
    """The bar size of a MarketFrame's index: its smallest step (a MarketFrame is gap-free and regular).

    ``default`` for fewer than two rows.
    """
    if len(index) < 2:
        return default
    steps = index[1:] - index[:-1]
    return pd.Timedelta(steps.min())


def utc_timestamp(value: Any) -> pd.Timestamp:
    """A bar time as a UTC Timestamp (naive input is taken as UTC)."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
