"""Account: KRW cash and a USDT position -- the one account model of the live side.

Every live account is one of these: the runner's (:class:`~kpremia.live.loop.state.LiveState`
adds progress to it), the paper exchange's own book
(:class:`~kpremia.live.venues.paper.PaperBroker`), the challenger's paper account beside
the trading policy, and the simulated account of the gap report.  So the value of an
account (cash plus the position marked at a price), its USDT weight and how a fill is
booked have one home, and the paper fills of all of them are the simulator's
(:func:`kpremia.envs.execution.rebalance_one`), booked by the same additions.
"""

from __future__ import annotations

from dataclasses import dataclass

from kpremia.envs import execution
from kpremia.envs.execution import ExecutionRules
from kpremia.live.loop.types import FillReport


@dataclass
class Account:
    """Cash (KRW) and position (USDT), float64; changed only by booked fills."""

    cash_krw: float
    position_usdt: float = 0.0

    def value(self, price: float) -> float:
        """Cash plus the position marked at ``price`` (KRW per USDT); the cash alone with no position."""
        if self.position_usdt == 0.0:
            return self.cash_krw
        return self.cash_krw + self.position_usdt * float(price)

    def weight(self, price: float) -> float:
        """The position's share of the account's value at ``price`` (0 with no position)."""
        if self.position_usdt == 0.0:
            return 0.0
        return self.position_usdt * float(price) / self.value(price)

    def apply(self, fill: FillReport) -> None:
        """Book one fill: the broker's deltas added to cash and position."""
        self.cash_krw = self.cash_krw + fill.krw_delta
        self.position_usdt = self.position_usdt + fill.usdt_delta

    def rebalance(self, target_weight: float, price: float, rules: ExecutionRules,
                  client_order_id: str = "") -> FillReport | None:
        """Trade towards ``target_weight`` at ``price`` by the simulator's ``rules`` and book it (paper accounts).

        Returns the fill (trade id ``"1"``), or None when nothing trades (at the target, or below the
        minimum order).
        """
        fill = execution.rebalance_one(self.cash_krw, self.position_usdt, target_weight, price, rules)
        if not bool(fill.traded[0]):
            return None
        report = FillReport(client_order_id, "1", float(fill.usdt[0]) - self.position_usdt,
                            float(fill.krw[0]) - self.cash_krw, float(fill.fill_price[0]), float(fill.fee_krw[0]))
        self.apply(report)
        return report
