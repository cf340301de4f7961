"""What the runner needs from a broker, and the errors it can raise.

A broker is anything that takes orders by client order id and answers for
them later.  The runner never trusts its own memory over the broker's: after
any doubt (a timeout, a restart) it asks :meth:`Broker.fetch_order` for the
client order id before it would send again.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from kpremia.live.types import Bar, OrderIntent, OrderReport


class BrokerError(Exception):
    """The broker could not be reached or answered with an error (the order's fate may be unknown)."""


class OrderUnknownOutcome(BrokerError):
    """A send whose outcome is unknown (timeout, dropped connection): ask before resending."""


@runtime_checkable
class Broker(Protocol):
    """The broker interface of the live runner (``LIVE_BROKERS`` registry)."""

    name: str

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
