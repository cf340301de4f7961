"""LiveState: the runner's account and progress, in one place.

Everything the loop needs to continue after a restart that is not a model or
callback state: cash and position (changed only by journaled fills), the step
count, the last bar decided, the risk state and the day's starting equity (for
the daily loss limit).  The journal stores it in its ``state`` row in the same
transaction as the fills or decision that changed it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from kpremia.live.loop.types import FillReport, RiskState


@dataclass
class LiveState:
    """Account and progress of one live run (money in KRW and USDT units, float64)."""

    run_id: str
    symbol: str
    initial_krw: float
    cash_krw: float
    position_usdt: float = 0.0
    step: int = 0
    last_bar_time: pd.Timestamp | None = None
    last_close: float = math.nan
    risk_state: RiskState = RiskState.ACTIVE
    day: str = ""  # UTC date of the day whose starting equity is below
    day_start_equity_krw: float = math.nan
    cooldown_until_step: int = -1
    ready_bars: int = 0  # bars with a full observation so far; a policy acts on every decision_every-th

    def equity(self, price: float | None = None) -> float:
        """Cash plus the position marked at ``price`` (default: the last close)."""
        p = self.last_close if price is None else float(price)
        if self.position_usdt == 0.0:
            return self.cash_krw
        return self.cash_krw + self.position_usdt * p

    def weight(self, price: float | None = None) -> float:
        """USDT weight of the account at ``price`` (0 with no position)."""
        if self.position_usdt == 0.0:
            return 0.0
        p = self.last_close if price is None else float(price)
        return self.position_usdt * p / (self.cash_krw + self.position_usdt * p)

    def apply(self, fill: FillReport) -> None:
        """Book one fill (the same additions the paper broker makes to its own book)."""
        self.cash_krw = self.cash_krw + fill.krw_delta
        self.position_usdt = self.position_usdt + fill.usdt_delta

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["last_bar_time"] = None if self.last_bar_time is None else self.last_bar_time.isoformat()
        row["risk_state"] = self.risk_state.value
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "LiveState":
        kw = {k: row[k] for k in cls.__dataclass_fields__ if k in row}
        kw["last_bar_time"] = None if kw.get("last_bar_time") is None else pd.Timestamp(kw["last_bar_time"])
        kw["risk_state"] = RiskState(kw["risk_state"])
        kw["last_close"] = math.nan if kw.get("last_close") is None else float(kw["last_close"])
        kw["day_start_equity_krw"] = (math.nan if kw.get("day_start_equity_krw") is None
                                      else float(kw["day_start_equity_krw"]))
        return cls(**kw)
