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

from kpremia.live.loop.account import Account
from kpremia.live.loop.types import RiskState


@dataclass(kw_only=True)
class LiveState(Account):
    """Account (cash, position: :class:`Account`) and progress of one live run (KRW and USDT units, float64)."""

    run_id: str
    symbol: str
    initial_krw: float
    step: int = 0
    last_bar_time: pd.Timestamp | None = None
    last_close: float = math.nan
    risk_state: RiskState = RiskState.ACTIVE
    day: str = ""  # UTC date of the day whose starting equity is below
    day_start_equity_krw: float = math.nan
    cooldown_until_step: int = -1
    ready_bars: int = 0  # bars with a full observation so far; a policy acts on every decision_every-th

    def equity(self, price: float | None = None) -> float:
        """The account's :meth:`~Account.value` at ``price`` (default: the last close)."""
        return self.value(self.last_close if price is None else price)

    def weight(self, price: float | None = None) -> float:
        """USDT weight of the account at ``price`` (default: the last close; 0 with no position)."""
        return super().weight(self.last_close if price is None else price)

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
