"""The paper broker: the simulator's execution rules behind a broker interface.

Fills come from :meth:`kpremia.live.loop.account.Account.rebalance`, i.e.
:func:`kpremia.envs.execution.rebalance` -- the same function
the simulator, the oracle and the baselines use -- at the OPEN of the bar after
the decision, towards the order's target weight, with the run's fee, slippage,
tick and minimum order.  So a paper session over replayed bars reproduces the
backtest's fills and equity (the parity test checks it).

Like a real exchange, the paper broker keeps its own book in its own SQLite
file (``paper_exchange.sqlite``), separate from the runner's journal: orders by
client order id, fills, cash and position.  That is what makes "journal
position == broker position" a real check after a crash, and what lets the
runner ask it about an order it may or may not have sent.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pandas as pd

from kpremia.core.registry import LIVE_BROKERS
from kpremia.envs.execution import ExecutionRules
from kpremia.run.live_config import LiveConfig
from kpremia.live.loop.account import Account
from kpremia.live.loop.records import write_transaction
from kpremia.live.loop.types import Bar, FillReport, OrderIntent, OrderReport, OrderStatus

_SCHEMA = """
CREATE TABLE IF NOT EXISTS account (id INTEGER PRIMARY KEY CHECK (id = 1), krw REAL NOT NULL, usdt REAL NOT NULL,
                                    last_bar_time TEXT);
CREATE TABLE IF NOT EXISTS orders (client_order_id TEXT PRIMARY KEY, side TEXT NOT NULL, target_weight REAL NOT NULL,
                                   status TEXT NOT NULL, received_at TEXT NOT NULL, error TEXT);
CREATE TABLE IF NOT EXISTS fills (client_order_id TEXT NOT NULL, trade_id TEXT NOT NULL, usdt_delta REAL NOT NULL,
                                  krw_delta REAL NOT NULL, price REAL NOT NULL, fee_krw REAL NOT NULL,
                                  PRIMARY KEY (client_order_id, trade_id));
"""


@LIVE_BROKERS.register("paper")
class PaperBroker:
    """Simulated exchange with the backtest's fill rules and its own persistent book.

    Args:
        path: its SQLite file (created on first use with ``initial_krw`` cash).
        initial_krw: cash of a new paper account.
        rules: the run's :class:`~kpremia.envs.execution.ExecutionRules` (what the simulator fills with).
    """

    name = "paper"
    is_paper = True

    def __init__(self, path: str | Path, initial_krw: float, rules: ExecutionRules = ExecutionRules()) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rules = rules
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_SCHEMA)
        self.conn.execute("INSERT OR IGNORE INTO account(id, krw, usdt, last_bar_time) VALUES (1, ?, 0.0, NULL)",
                          (float(initial_krw),))

    @classmethod
    def check_config(cls, live: LiveConfig) -> None:
        """Nothing to refuse: paper trading moves no money."""

    @classmethod
    def check_rules(cls, live: LiveConfig, rules: ExecutionRules) -> None:
        """Any rules: the paper exchange fills by the rules it is given."""

    @classmethod
    def from_config(cls, live: LiveConfig, rules: ExecutionRules, state_dir: Path, initial_krw: float) -> PaperBroker:
        """The paper exchange at ``live.paper.path`` (default ``<state_dir>/paper_exchange.sqlite``)."""
        return cls(live.paper.path or Path(state_dir) / "paper_exchange.sqlite", initial_krw=initial_krw, rules=rules)

    # ------------------------------------------------------------------ the exchange side
    def observe(self, bar: Bar) -> None:
        """A new bar opened: fill every open order at its open (once per bar, even after a restart)."""
        krw, usdt, last = self.conn.execute("SELECT krw, usdt, last_bar_time FROM account").fetchone()
        if last is not None and pd.Timestamp(last) >= bar.time:
            return
        account = Account(float(krw), float(usdt))
        with write_transaction(self.conn):
            for cid, target in self.conn.execute(
                    "SELECT client_order_id, target_weight FROM orders WHERE status = 'open' ORDER BY rowid").fetchall():
                self._fill(cid, float(target), account, bar)
            self.conn.execute("UPDATE account SET krw = ?, usdt = ?, last_bar_time = ?",
                              (account.cash_krw, account.position_usdt, bar.time.isoformat()))

    def _fill(self, cid: str, target: float, account: Account, bar: Bar) -> None:
        # Account.rebalance books the fill by the additions the journal makes: the books agree exactly.
        fill = account.rebalance(target, bar.open, self.rules, cid)
        if fill is None:
            self.conn.execute("UPDATE orders SET status = 'cancelled', error = ? WHERE client_order_id = ?",
                              ("nothing to trade at the open (below the minimum order or at the target)", cid))
            return
        self.conn.execute("INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?)",
                          (cid, fill.trade_id, fill.usdt_delta, fill.krw_delta, fill.price, fill.fee_krw))
        self.conn.execute("UPDATE orders SET status = 'filled' WHERE client_order_id = ?", (cid,))

    # ------------------------------------------------------------------ broker interface
    def submit(self, order: OrderIntent) -> OrderReport:
        """Accept the order (idempotent per client order id); it fills at the next bar's open."""
        target = order.target_weight
        if not math.isfinite(target):
            self.conn.execute("INSERT OR IGNORE INTO orders VALUES (?, ?, ?, 'rejected', ?, ?)",
                              (order.client_order_id, order.side, 0.0, pd.Timestamp.now(tz="UTC").isoformat(),
                               "target weight is not a number"))
        else:
            self.conn.execute("INSERT OR IGNORE INTO orders VALUES (?, ?, ?, 'open', ?, NULL)",
                              (order.client_order_id, order.side, float(target),
                               pd.Timestamp.now(tz="UTC").isoformat()))
        report = self.fetch_order(order.client_order_id)
        assert report is not None
        return report

    def fetch_order(self, client_order_id: str) -> OrderReport | None:
        row = self.conn.execute("SELECT status, error FROM orders WHERE client_order_id = ?",
                                (client_order_id,)).fetchone()
        if row is None:
            return None
        fills = [FillReport(client_order_id, trade_id, usdt_delta, krw_delta, price, fee)
                 for trade_id, usdt_delta, krw_delta, price, fee in self.conn.execute(
                     "SELECT trade_id, usdt_delta, krw_delta, price, fee_krw FROM fills WHERE client_order_id = ? "
                     "ORDER BY trade_id", (client_order_id,))]
        return OrderReport(client_order_id, OrderStatus(row[0]), exchange_order_id=f"paper-{client_order_id}",
                           fills=fills, error=row[1])

    def open_order_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT client_order_id FROM orders WHERE status = 'open'")]

    def balance(self) -> tuple[float, float]:
        krw, usdt = self.conn.execute("SELECT krw, usdt FROM account").fetchone()
        return float(krw), float(usdt)

    def close(self) -> None:
        self.conn.close()
