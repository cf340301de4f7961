"""What the runner needs from a broker, and the errors it can raise.

A broker is anything that takes orders by client order id and answers for
them later.  The runner never trusts its own memory over the broker's: after
any doubt (a timeout, a restart) it asks :meth:`Broker.fetch_order` for the
client order id before it would send again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from kpremia.live.loop.types import Bar, OrderIntent, OrderReport

if TYPE_CHECKING:
    from kpremia.envs.execution import ExecutionRules
    from kpremia.run.live_config import LiveConfig


class BrokerError(Exception):
    """The broker could not be reached or answered with an error (the order's fate may be unknown)."""


class OrderUnknownOutcome(BrokerError):
    """A send whose outcome is unknown (timeout, dropped connection): ask before resending."""


@runtime_checkable
class Broker(Protocol):
    """The broker interface of the live runner (``LIVE_BROKERS`` registry).

    A broker says what it is: ``is_paper`` is true for a simulated exchange (no
    money moves).  Everything that guards real money reads it -- the real-order
    checks at start, online learning's ``allow_real_orders``, how a fresh account's
    starting cash is found -- never the broker's name.
    """

    name: str
    is_paper: bool

    @classmethod
    def check_config(cls, live: LiveConfig) -> None:
        """Refuse a bad configuration before any work is done (a real broker: keys, flags); one UserError line."""

    @classmethod
    def check_rules(cls, live: LiveConfig, rules: ExecutionRules) -> None:
        """Refuse execution rules this broker cannot trade by (e.g. another fee convention than the exchange's)."""

    @classmethod
    def from_config(cls, live: LiveConfig, rules: ExecutionRules, state_dir: Path, initial_krw: float) -> Broker:
        """The broker the ``live`` settings ask for, trading with the run's execution rules."""

    def observe(self, bar: Bar) -> None:
        """Market data for brokers that simulate fills (paper); a no-op for real exchanges."""

    def submit(self, order: OrderIntent) -> OrderReport:
        """Send ``order``; a second send of the same client order id must not create a second order."""

    def fetch_order(self, client_order_id: str) -> OrderReport | None:
        """What the broker knows about ``client_order_id`` (None: it never saw it)."""

    def open_order_ids(self) -> list[str]:
        """Client order ids of this runner's orders that are still open at the broker."""

    def balance(self) -> tuple[float, float]:
        """``(krw, usdt)`` the broker holds for this account."""

    def close(self) -> None:
        """Release connections and files."""
