"""The trade list of a backtest (``trades.csv``): one row per holding period, entry to exit.

Why: a return and a trade count say how much, not how.  A person checking a policy wants to see
when it bought and sold, at which premium, how long it held and what each holding made.

A holding opens at the first fill that takes the USDT weight above ``eps`` from (near) zero and
closes at the fill that brings it back to (near) zero -- the same round trips as the hit rate
(:mod:`kpremia.eval.formulas`).  Columns:

* ``entry_time`` / ``exit_time``: the fill times (UTC; a fill is at the open of its bar, which is the
  close of the bar the decision was made on); ``exit_time`` empty while still open at the end;
* ``entry_price`` / ``exit_price``: the fill prices (KRW per USDT, fee not included);
* ``entry_premium`` / ``exit_premium``: the premium at the decision bar's close, the last one the trader
  saw before the fill (fractions: 0.02 = 2 %);
* ``holding_hours``: exit time minus entry time (to the last bar while open);
* ``pnl_krw`` / ``pnl_pct``: the portfolio value after the exit fill minus the value before the entry
  fill, both fees included (marked at the last close while open), in KRW and in % of the value before;
* ``open``: True for a holding still open at the end of the split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TRADE_COLUMNS = ("entry_time", "exit_time", "entry_price", "exit_price", "entry_premium", "exit_premium",
                 "holding_hours", "pnl_krw", "pnl_pct", "open")


def trade_list(trace: pd.DataFrame, eps: float = 1e-6) -> pd.DataFrame:
    """One row per holding of ``trace`` (a backtest trace, :mod:`kpremia.eval.backtest`)."""
    weight = trace["position"].to_numpy(dtype=float)
    value = trace["portfolio_value_krw"].to_numpy(dtype=float)
    traded = trace["traded"].to_numpy(dtype=bool)
    times = pd.to_datetime(trace["time"], utc=True).reset_index(drop=True)
    fill = trace["fill_price"].to_numpy(dtype=float)
    premium = trace["premium"].to_numpy(dtype=float)
    rows = []
    entry: int | None = None
    for t in range(len(trace)):
        before = weight[t - 1] if t > 0 else 0.0
        if entry is None and traded[t] and before <= eps < weight[t]:
            entry = t
        elif entry is not None and traded[t] and weight[t] <= eps:
            rows.append(_row(entry, t, times, fill, premium, value, is_open=False))
            entry = None
    if entry is not None:
        rows.append(_row(entry, len(trace) - 1, times, fill, premium, value, is_open=True))
    return pd.DataFrame(rows, columns=list(TRADE_COLUMNS))


def _row(entry: int, exit_: int, times: pd.Series, fill: np.ndarray, premium: np.ndarray, value: np.ndarray,
         *, is_open: bool) -> dict[str, object]:
    start_value = value[entry - 1] if entry > 0 else value[0]
    return {"entry_time": times[entry], "exit_time": pd.NaT if is_open else times[exit_],
            "entry_price": fill[entry], "exit_price": np.nan if is_open else fill[exit_],
            "entry_premium": premium[entry - 1] if entry > 0 else premium[entry],
            "exit_premium": np.nan if is_open else premium[exit_ - 1],
            "holding_hours": (times[exit_] - times[entry]).total_seconds() / 3600.0,
            "pnl_krw": value[exit_] - start_value, "pnl_pct": 100.0 * (value[exit_] / start_value - 1.0),
            "open": is_open}
