"""The live runner's small value types: bars, decisions, order intents, fills.

Plain dataclasses so a journal row, a log line and a callback all see the same
fields.  Money follows :mod:`kpremia.envs.execution`: KRW cash and USDT units in
float64, a fill's ``usdt_delta``/``krw_delta`` signed from the account's side
(a buy has ``usdt_delta > 0`` and ``krw_delta < 0``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Bar:
    """One closed bar of USDT/KRW at the run's bar size, with the FX rate known at its close.

    The bar size is the checkpoint's (``data.timeframe`` it was trained on; the rule
    policy takes the replayed data's): the feed yields bars of that size and nothing
    here assumes one.  ``time`` is the bar's OPEN time (UTC), as everywhere in kpremia.
    """

    time: pd.Timestamp
    open: float
    high: float
    low: float
    close: float
    volume: float
    fx: float
    premium: float

    def as_mapping(self) -> dict[str, Any]:
        """The mapping :class:`kpremia.data.market.ObservationBuilder` reads."""
        return {"time": self.time, "open": self.open, "high": self.high, "low": self.low, "close": self.close,
                "volume": self.volume, "fx": self.fx, "premium": self.premium}


class OrderStatus(str, Enum):
    """Life of an order, as the journal records it (see docs/live.md)."""

    INTENT = "intent"  # journaled, maybe not sent: ask the broker before any resend
    OPEN = "open"  # the broker accepted it; fills may follow
    FILLED = "filled"
    CANCELLED = "cancelled"  # closed by the broker; may carry a partial fill
    REJECTED = "rejected"  # the broker refused it (no fill)
    EXPIRED = "expired"  # never reached the broker and too old to send

    @property
    def final(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED)


class RiskState(str, Enum):
    """ACTIVE trades; REDUCING only lowers the position; HALTED sends nothing until a person clears it."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


@dataclass
class OrderIntent:
    """An order the runner wants, before it is sent.

    The paper broker trades to ``target_weight`` at the next open with the
    simulator's rules; an exchange gets a market order for ``amount_usdt``
    (sells) or ``cost_krw`` (buys), both sized at ``ref_price`` (the decision
    bar's close).  ``client_order_id`` is derived from run, bar time, symbol and
    side, so a restart rebuilds the same id and can ask the broker about it.
    """

    client_order_id: str
    bar_time: pd.Timestamp
    symbol: str
    side: str  # "buy" | "sell"
    target_weight: float
    amount_usdt: float
    cost_krw: float
    ref_price: float


@dataclass(frozen=True)
class FillReport:
    """One execution of an order as the broker reports it (``trade_id`` unique per order)."""

    client_order_id: str
    trade_id: str
    usdt_delta: float
    krw_delta: float
    price: float
    fee_krw: float


@dataclass
class OrderReport:
    """What the broker knows about one client order id: its status and every fill so far."""

    client_order_id: str
    status: OrderStatus
    exchange_order_id: str | None = None
    fills: list[FillReport] = field(default_factory=list)
    error: str | None = None

    @property
    def filled_usdt(self) -> float:
        return sum(abs(f.usdt_delta) for f in self.fills)


@dataclass
class Decision:
    """The runner's decision at the close of one bar (one journal row per bar).

    Callbacks' ``on_decision`` may block it (``block(reason)``): the row is still
    journaled, without an order.
    """

    bar: Bar
    step: int
    action: int | None = None
    action_name: str | None = None
    target_weight: float | None = None
    reason: str = ""
    latency_ms: float = 0.0
    order: OrderIntent | None = None
    obs: dict[str, Any] | None = field(default=None, repr=False)  # what the policy saw (online learners use it)

    @property
    def wants_trade(self) -> bool:
        return self.target_weight is not None

    def block(self, reason: str) -> None:
        """Keep the decision on record but trade nothing."""
        self.target_weight = None
        self.order = None
        self.reason = reason
