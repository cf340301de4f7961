"""The SQLite journal: the live run's durable record and its resume point.

Why SQLite: one file, atomic multi-row transactions, and readers that never
block the writer in WAL mode.  The rules peers learned the hard way:

* WAL mode and a busy timeout (a reader such as a status page never makes a
  commit fail with "database is locked");
* one writer: the runner's thread, guarded by an exclusive lock file, so two
  processes can never write the same ``state_dir``;
* every protocol step is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``):
  a kill at any point leaves the journal at the previous step, never between.

Schema (``docs/live.md`` has the full description): ``meta`` (key/value),
``decisions`` (one row per bar, bar time unique), ``orders`` (client order id
primary key, at most one per decision), ``fills`` (unique per order and trade
id), ``risk_events``, ``adjustments`` (an operator's resolution of a book
mismatch, ``live-resolve``), ``state`` (one row: the :class:`LiveState` and a
snapshot blob of model/observation/callback states).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from kpremia.core.errors import UserError
from kpremia.live.loop.records import read_frame, write_transaction
from kpremia.live.loop.state import LiveState
from kpremia.live.loop.types import Decision, FillReport, OrderStatus, RiskState

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    bar_time TEXT NOT NULL UNIQUE,
    step INTEGER NOT NULL UNIQUE,
    session INTEGER NOT NULL,
    open REAL NOT NULL, close REAL NOT NULL, fx REAL NOT NULL, premium REAL NOT NULL,
    action INTEGER, action_name TEXT, target_weight REAL,
    reason TEXT NOT NULL,
    risk_state TEXT NOT NULL,
    cash_krw REAL NOT NULL, position_usdt REAL NOT NULL, equity_krw REAL NOT NULL,
    latency_ms REAL NOT NULL,
    client_order_id TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    decision_id INTEGER NOT NULL UNIQUE REFERENCES decisions(id),
    bar_time TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    target_weight REAL NOT NULL,
    amount_usdt REAL NOT NULL,
    cost_krw REAL NOT NULL,
    ref_price REAL NOT NULL,
    status TEXT NOT NULL,
    exchange_order_id TEXT,
    filled_usdt REAL NOT NULL DEFAULT 0,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fills (
    id INTEGER PRIMARY KEY,
    client_order_id TEXT NOT NULL REFERENCES orders(client_order_id),
    trade_id TEXT NOT NULL,
    usdt_delta REAL NOT NULL,
    krw_delta REAL NOT NULL,
    price REAL NOT NULL,
    fee_krw REAL NOT NULL,
    step INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (client_order_id, trade_id)
);
CREATE TABLE IF NOT EXISTS risk_events (
    id INTEGER PRIMARY KEY,
    step INTEGER NOT NULL,
    bar_time TEXT,
    kind TEXT NOT NULL,
    state_before TEXT NOT NULL,
    state_after TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS adjustments (
    id INTEGER PRIMARY KEY,
    step INTEGER NOT NULL,
    adopt TEXT NOT NULL CHECK (adopt IN ('broker', 'journal')),
    krw_delta REAL NOT NULL,
    usdt_delta REAL NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state_json TEXT NOT NULL,
    snapshot BLOB,
    updated_at TEXT NOT NULL
);
"""


def _now() -> str:
    return pd.Timestamp.now(tz="UTC").isoformat()


def _iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None else pd.Timestamp(ts).isoformat()


class Journal:
    """The writer's connection to ``<state_dir>/journal.sqlite`` (one per process).

    Args:
        path: the SQLite file (created with its schema when missing).
        busy_timeout_ms: how long a statement waits for a lock before failing.
        synchronous: SQLite's ``synchronous`` pragma; ``FULL`` survives power loss,
            ``NORMAL`` survives a killed process (WAL), which is what tests need.
    """

    def __init__(self, path: str | os.PathLike, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.path.with_suffix(".lock"), "a+")  # noqa: SIM115 - held for the process
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise UserError(f"another live runner is writing {self.path}; stop it first (one writer per "
                            "state_dir) or use another live.state_dir") from None
        if str(synchronous).upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise UserError(f"live.journal.synchronous={synchronous!r}; use FULL, NORMAL or EXTRA")
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=busy_timeout_ms / 1000.0,
                                    check_same_thread=True)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        self.conn.execute(f"PRAGMA synchronous={str(synchronous).upper()}")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(SCHEMA)  # CREATE ... IF NOT EXISTS: a start after a kill completes it
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta({"schema_version": str(SCHEMA_VERSION)})
        elif int(version) != SCHEMA_VERSION:
            raise UserError(f"{self.path} has journal schema {version}, this kpremia writes {SCHEMA_VERSION}; "
                            "use a new live.state_dir or the kpremia version that wrote it")

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any exception)."""
        if self.conn.in_transaction:  # executescript may leave none open; nested use is a bug
            raise RuntimeError("journal transaction already open")
        with write_transaction(self.conn) as conn:
            yield conn

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, values: dict[str, str]) -> None:
        with self.transaction() as c:
            c.executemany("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                          "excluded.value", list(values.items()))

    # ------------------------------------------------------------------ state
    def load_state(self) -> tuple[LiveState, bytes | None] | None:
        """The last committed :class:`LiveState` and snapshot, or None on a fresh journal."""
        row = self.conn.execute("SELECT state_json, snapshot FROM state WHERE id = 1").fetchone()
        if row is None:
            return None
        return LiveState.from_row(json.loads(row["state_json"])), row["snapshot"]

    def _write_state(self, c: sqlite3.Connection, state: LiveState, snapshot: bytes | None) -> None:
        state_json = json.dumps(state.to_row(), allow_nan=True)
        if snapshot is None:
            updated = c.execute("UPDATE state SET state_json = ?, updated_at = ? WHERE id = 1",
                                (state_json, _now())).rowcount
            if updated:
                return
        c.execute("INSERT INTO state(id, state_json, snapshot, updated_at) VALUES (1, ?, ?, ?) ON CONFLICT(id) "
                  "DO UPDATE SET state_json = excluded.state_json, snapshot = excluded.snapshot, "
                  "updated_at = excluded.updated_at", (state_json, snapshot, _now()))

    def init_state(self, state: LiveState) -> None:
        with self.transaction() as c:
            self._write_state(c, state, None)

    # ------------------------------------------------------------------ protocol steps
    def commit_decision(self, decision: Decision, state: LiveState, session: int, snapshot: bytes,
                        events: Iterable[dict[str, Any]] = ()) -> int:
        """Step 1 of the protocol: the decision row, its order intent, risk events and state, one commit."""
        bar, order = decision.bar, decision.order
        now = _now()
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO decisions(bar_time, step, session, open, close, fx, premium, action, action_name, "
                "target_weight, reason, risk_state, cash_krw, position_usdt, equity_krw, latency_ms, "
                "client_order_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (_iso(bar.time), decision.step, session, bar.open, bar.close, bar.fx, bar.premium, decision.action,
                 decision.action_name, decision.target_weight, decision.reason, state.risk_state.value,
                 state.cash_krw, state.position_usdt, state.equity(bar.close), decision.latency_ms,
                 order.client_order_id if order else None, now))
            decision_id = int(cur.lastrowid)
            if order is not None:
                c.execute(
                    "INSERT INTO orders(client_order_id, decision_id, bar_time, symbol, side, target_weight, "
                    "amount_usdt, cost_krw, ref_price, status, created_at, updated_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (order.client_order_id, decision_id, _iso(order.bar_time), order.symbol, order.side,
                     order.target_weight, order.amount_usdt, order.cost_krw, order.ref_price,
                     OrderStatus.INTENT.value, now, now))
            self._insert_events(c, events)
            self._write_state(c, state, snapshot)
        return decision_id

    def update_order(self, client_order_id: str, status: OrderStatus, *, exchange_order_id: str | None = None,
                     error: str | None = None, fills: Iterable[FillReport] = (), state: LiveState | None = None,
                     events: Iterable[dict[str, Any]] = ()) -> None:
        """Steps 2-3: the broker's answer (status, new fills) and the state they produced, one commit."""
        fills = list(fills)
        with self.transaction() as c:
            for f in fills:
                c.execute("INSERT INTO fills(client_order_id, trade_id, usdt_delta, krw_delta, price, fee_krw, "
                          "step, created_at) VALUES (?,?,?,?,?,?,?,?)",
                          (f.client_order_id, f.trade_id, f.usdt_delta, f.krw_delta, f.price, f.fee_krw,
                           state.step if state else -1, _now()))
            c.execute("UPDATE orders SET status = ?, exchange_order_id = COALESCE(?, exchange_order_id), "
                      "error = COALESCE(?, error), filled_usdt = filled_usdt + ?, updated_at = ? "
                      "WHERE client_order_id = ?",
                      (status.value, exchange_order_id, error, sum(abs(f.usdt_delta) for f in fills), _now(),
                       client_order_id))
            self._insert_events(c, events)
            if state is not None:
                self._write_state(c, state, None)

    def record_events(self, events: Iterable[dict[str, Any]], state: LiveState | None = None) -> None:
        with self.transaction() as c:
            self._insert_events(c, events)
            if state is not None:
                self._write_state(c, state, None)

    @staticmethod
    def _insert_events(c: sqlite3.Connection, events: Iterable[dict[str, Any]]) -> None:
        for e in events:
            c.execute("INSERT INTO risk_events(step, bar_time, kind, state_before, state_after, reason, created_at) "
                      "VALUES (?,?,?,?,?,?,?)",
                      (e["step"], _iso(e.get("bar_time")), e["kind"], RiskState(e["state_before"]).value,
                       RiskState(e["state_after"]).value, e["reason"], _now()))

    # ------------------------------------------------------------------ queries
    def known_trade_ids(self, client_order_id: str) -> set[str]:
        rows = self.conn.execute("SELECT trade_id FROM fills WHERE client_order_id = ?", (client_order_id,))
        return {r[0] for r in rows}

    def unfinished_orders(self) -> list[sqlite3.Row]:
        """Orders whose outcome the broker has not confirmed (intent or open), oldest first."""
        return list(self.conn.execute(
            "SELECT * FROM orders WHERE status IN (?, ?) ORDER BY decision_id",
            (OrderStatus.INTENT.value, OrderStatus.OPEN.value)))

    def order(self, client_order_id: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)).fetchone()

    def last_decision(self) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM decisions ORDER BY step DESC LIMIT 1").fetchone()

    def fill_totals(self) -> tuple[float, float]:
        """``(krw, usdt)`` the journal has booked: every fill plus every operator adjustment (``live-resolve``).

        The state's cash must equal ``initial_krw`` plus the first, its position the second.
        """
        row = self.conn.execute("SELECT COALESCE(SUM(krw_delta), 0), COALESCE(SUM(usdt_delta), 0) FROM fills")
        krw, usdt = row.fetchone()
        row = self.conn.execute("SELECT COALESCE(SUM(krw_delta), 0), COALESCE(SUM(usdt_delta), 0) FROM adjustments")
        adj_krw, adj_usdt = row.fetchone()
        return float(krw) + float(adj_krw), float(usdt) + float(adj_usdt)

    def commit_resolution(self, *, adopt: str, krw_delta: float, usdt_delta: float, reason: str,
                          orders: dict[str, tuple[OrderStatus, str]], fills: Iterable[FillReport], state: LiveState,
                          event: dict[str, Any]) -> None:
        """An operator's resolution (``live-resolve``), one commit: order statuses, fills the broker reported,
        the adjustment that makes the books agree, the new state and the ``resolve`` risk event."""
        now = _now()
        with self.transaction() as c:
            for f in fills:
                c.execute("INSERT OR IGNORE INTO fills(client_order_id, trade_id, usdt_delta, krw_delta, price, "
                          "fee_krw, step, created_at) VALUES (?,?,?,?,?,?,?,?)",
                          (f.client_order_id, f.trade_id, f.usdt_delta, f.krw_delta, f.price, f.fee_krw, state.step,
                           now))
            for cid, (status, note) in orders.items():
                c.execute("UPDATE orders SET status = ?, error = ?, updated_at = ? WHERE client_order_id = ?",
                          (status.value, note, now, cid))
            if krw_delta or usdt_delta:
                c.execute("INSERT INTO adjustments(step, adopt, krw_delta, usdt_delta, reason, created_at) "
                          "VALUES (?,?,?,?,?,?)", (state.step, adopt, krw_delta, usdt_delta, reason, now))
            self._insert_events(c, [event])
            self._write_state(c, state, None)

    def next_session(self, write: bool = True) -> int:
        """The number of the session starting now (``write=False``: not journaled yet)."""
        value = int(self.get_meta("sessions") or 0) + 1
        if write:
            self.set_meta({"sessions": str(value)})
        return value


def read_table(path: str | os.PathLike, table: str) -> pd.DataFrame:
    """A journal table as a DataFrame through a read-only connection (safe while the runner writes)."""
    if table not in ("meta", "decisions", "orders", "fills", "risk_events", "adjustments", "state"):
        raise ValueError(f"unknown journal table {table!r}")
    for attempt in range(50):
        try:
            return read_frame(path, f"SELECT * FROM {table}")
        except (sqlite3.DatabaseError, pd.errors.DatabaseError):  # the file is being created right now (pandas
            # wraps SQLite's "no such table" in its own DatabaseError)
            if attempt == 49:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")  # pragma: no cover
