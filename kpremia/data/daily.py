"""Daily series of the observation: the last completed days' closes and premiums at every bar.

Days are UTC days (Upbit's daily candle starts 09:00 KST = 00:00 UTC).  Day D's value is
that of the last bar that closed at or before the end of D (00:00 UTC); it becomes visible
at the bar whose close reaches that midnight, so at bar t only days that ended by t's close
are in the window -- at 15m the day's last bar (open 23:45), at 1d the day's own bar.
:func:`daily_windows` is the batch path (training), :class:`DailyHistory` the bar-by-bar one
(live); they agree bar for bar.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from kpremia.core.bars import DEFAULT_BAR, NS_DAY, frame_bar, utc_timestamp


def daily_windows(frame: pd.DataFrame, window_1d: int, window_premium: int,
                  bar: pd.Timedelta | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Last completed-day closes and premiums at every bar.

    Returns:
        ``(closes [T, window_1d], premiums [T, window_premium])`` float64, oldest day
        first.  Day D ends at the midnight M = 00:00 UTC after it; its value is that of
        the last bar closing at or before M, and it is in row t once bar t's close has
        reached M.  Only midnights between the first and the last bar's close count
        (a day that ended before the data began is not known).  NaN where fewer days
        have completed.
    """
    bar = bar if bar is not None else frame_bar(frame.index)
    closes_ns = (frame.index + bar).as_unit("ns").asi8
    close = frame["close"].to_numpy(np.float64)
    premium = frame["premium"].to_numpy(np.float64)
    if len(closes_ns):
        first = -(-int(closes_ns[0]) // NS_DAY) * NS_DAY  # first midnight at or after the first close
        # integer arithmetic: np.arange over epoch nanoseconds would count in float64 and lose a day
        count = max(0, (int(closes_ns[-1]) - first) // NS_DAY + 1)
        midnights = first + NS_DAY * np.arange(count, dtype=np.int64)
    else:
        midnights = np.array([], dtype=np.int64)
    last_bar = np.searchsorted(closes_ns, midnights, side="right") - 1  # the day's value: its last closed bar
    day_close, day_prem = close[last_bar], premium[last_bar]
    completed = np.searchsorted(midnights, closes_ns, side="right")  # days ended by each bar's close

    def gather(values: np.ndarray, width: int) -> np.ndarray:
        idx = completed[:, None] - width + np.arange(width)[None, :]
        padded = np.concatenate([[np.nan], values])
        return padded[np.where(idx >= 0, idx + 1, 0)]

    return gather(day_close, window_1d), gather(day_prem, window_premium)


class DailyHistory:
    """Incremental counterpart of :func:`daily_windows` for live use."""

    def __init__(self, window_1d: int, window_premium: int, bar: pd.Timedelta = DEFAULT_BAR) -> None:
        self.window_1d, self.window_premium = window_1d, window_premium
        self.bar = bar
        size = max(window_1d, window_premium)
        self._closes: deque[float] = deque(maxlen=size)
        self._premiums: deque[float] = deque(maxlen=size)
        self._last: tuple[pd.Timestamp, float, float] | None = None

    def update(self, time: Any, close: float, premium: float) -> None:
        """Add one bar (OPEN time, close, premium); every midnight its close reaches ends a day.

        A midnight passed between the previous bar's close and this one's (a gap, or
        bars that do not close at midnight, e.g. daily bars opening 00:00 KST) records
        the previous bar's close/premium, as :func:`daily_windows` does offline.
        """
        time = utc_timestamp(time)
        close_ns = (time + self.bar).value
        if self._last is None:
            lo = close_ns  # only a midnight exactly at this close
        else:
            lo = (self._last[0] + self.bar).value + 1
        first = -(-lo // NS_DAY) * NS_DAY
        n_days = 0 if first > close_ns else (close_ns - first) // NS_DAY + 1
        ends_here = close_ns % NS_DAY == 0 and n_days > 0
        carried = n_days - int(ends_here)
        if self._last is not None and carried > 0:
            _, last_close, last_prem = self._last
            for _ in range(min(carried, self._closes.maxlen)):
                self._closes.append(last_close)
                self._premiums.append(last_prem)
        if ends_here:
            self._closes.append(float(close))
            self._premiums.append(float(premium))
        self._last = (time, float(close), float(premium))

    @staticmethod
    def _tail(values: deque[float], width: int) -> np.ndarray:
        out = np.full(width, np.nan)
        tail = list(values)[-width:]
        if tail:
            out[width - len(tail):] = tail
        return out

    def closes(self) -> np.ndarray:
        """Last ``window_1d`` completed-day closes, oldest first, NaN-padded in front."""
        return self._tail(self._closes, self.window_1d)

    def premiums(self) -> np.ndarray:
        """Last ``window_premium`` completed-day premiums, oldest first, NaN-padded in front."""
        return self._tail(self._premiums, self.window_premium)

    def state_dict(self) -> dict:
        last = None if self._last is None else (self._last[0].isoformat(), self._last[1], self._last[2])
        return {"closes": list(self._closes), "premiums": list(self._premiums), "last": last}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._closes.clear()
        self._closes.extend(state["closes"])
        self._premiums.clear()
        self._premiums.extend(state["premiums"])
        last = state["last"]
        self._last = None if last is None else (utc_timestamp(last[0]), float(last[1]), float(last[2]))
