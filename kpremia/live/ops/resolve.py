"""``python -m kpremia live-resolve state_dir=<dir> adopt=broker|journal reason="..."``: settle a book mismatch.

A start whose reconcile finds the journal and the broker apart goes HALTED and
stays there: the runner never guesses which side is right.  A person decides,
and this command records the decision in the journal instead of someone
editing SQLite by hand:

* ``adopt=broker`` -- the broker's balance is the truth (the usual case with a
  real exchange: someone traded or transferred on the account, or a fill was
  lost).  The journal's cash and position become the broker's; the difference
  is an ``adjustments`` row, so "state = initial cash + fills + adjustments"
  holds again;
* ``adopt=journal`` -- the journal is the truth (the paper broker only: its book
  is ours to write).  The paper book's cash and position become what the
  journal booked (initial cash + fills + adjustments), and the journal's state
  row is set to the same if it had drifted.

Either way: orders the journal still has open or intended are settled first (the
fills the broker reports for them are booked; ones the broker does not know are
closed); open orders at the broker that the journal never wrote are cancelled
(paper) or must be cancelled at the exchange first (a real broker: refused with
their ids).  Everything lands in ONE journal commit with a ``resolve`` row in
``risk_events`` holding the reason and both sides' numbers.  The risk state is
not touched: the next start reconciles, finds the books equal, and
``live.risk.clear_halt=true`` lifts HALTED (journaled).

The command holds the journal's writer lock, so it refuses while a session runs.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from kpremia.core.errors import UserError
from kpremia.core.registry import LIVE_BROKERS
from kpremia.live.loop.journal import Journal
from kpremia.live.loop.records import write_transaction
from kpremia.live.loop.types import FillReport, OrderStatus
from kpremia.live.ops.preflight import check_directory, check_journal, check_no_other_writer, check_paper_book
from kpremia.run.run_config import RunConfig

ADOPT = ("broker", "journal")


def resolve(cfg: dict[str, Any], state_dir: str | Path, adopt: str, reason: str) -> dict[str, Any]:
    """Make the journal and the broker agree by adopting one side; returns what was done (also printed by the CLI)."""
    state_dir = Path(state_dir)
    if adopt not in ADOPT:
        raise UserError(f"adopt={adopt!r}; use adopt=broker (the broker's balance is right) or adopt=journal "
                        "(the journal is right; paper broker only)")
    reason = " ".join(str(reason or "").split())
    if not reason:
        raise UserError('live-resolve needs reason="<why this side is right>" (it is journaled with the resolution)')
    if len(reason) > 500:
        raise UserError("reason is over 500 characters; say it in fewer")
    journal_path = state_dir / "journal.sqlite"
    check_directory(state_dir, min_free_mb=0.0)
    check_no_other_writer(state_dir / "journal.lock")
    if not journal_path.is_file() or not check_journal(journal_path):
        raise UserError(f"{journal_path} holds no run to resolve: pass the live.state_dir of a `live` session")
    run = RunConfig.of(cfg)  # parsed once: its live and env parts
    live = run.live
    broker_cls = LIVE_BROKERS.get(live.broker)
    paper = broker_cls.is_paper
    book = Path(live.paper.path or state_dir / "paper_exchange.sqlite")
    if paper:
        if not book.is_file() or book.stat().st_size == 0:
            if adopt == "broker":
                raise UserError(f"the paper book {book} is missing, so there is no broker balance to adopt; "
                                "adopt=journal writes a new book with the journal's cash and position")
        else:
            check_paper_book(book)
    elif adopt == "journal":
        raise UserError(f"adopt=journal needs a paper broker: {live.broker}'s balance cannot be written from here; "
                        "trade or transfer at the exchange until it matches the journal, or adopt=broker")

    journal = Journal(journal_path)
    broker = None
    try:
        loaded = journal.load_state()
        assert loaded is not None  # check_journal found a state row
        state = loaded[0]
        broker = _broker(run, broker_cls, state_dir, state.initial_krw)
        return _resolve(journal, broker, state, adopt, reason, paper=paper, book=book,
                        tolerance=(live.reconcile.tolerance_krw, live.reconcile.tolerance_usdt))
    finally:
        if broker is not None:
            broker.close()
        journal.close()


def _resolve(journal: Journal, broker: Any, state: Any, adopt: str, reason: str, *, paper: bool, book: Path,
             tolerance: tuple[float, float]) -> dict[str, Any]:
    before = (state.cash_krw, state.position_usdt)
    broker_before = broker.balance()
    # 1. orders the journal has not seen finish: book what the broker reports (as a start's reconcile would), close
    #    the open ones the broker does not know; intents it never saw and orders open on both sides are left to it
    closing: dict[str, tuple[OrderStatus, str]] = {}
    new_fills: list[FillReport] = []
    lost: list[str] = []  # open in the journal, unknown to the broker: a reconcile problem
    for row in journal.unfinished_orders():
        cid = row["client_order_id"]
        report = broker.fetch_order(cid)
        if report is None:
            if row["status"] == OrderStatus.OPEN.value:
                lost.append(cid)
                closing[cid] = (OrderStatus.CANCELLED, "open in the journal, unknown to the broker; closed by "
                                                       "live-resolve")
            continue
        if not report.status.final:
            continue
        known = journal.known_trade_ids(cid)
        new_fills += [f for f in report.fills if f.trade_id not in known]
        closing[cid] = (report.status, report.error or "settled by live-resolve")
    unknown_open = [cid for cid in broker.open_order_ids() if journal.order(cid) is None]
    if unknown_open and not paper:
        raise UserError(f"the broker has open orders the journal never wrote ({', '.join(unknown_open)}): cancel them "
                        "at the exchange and run live-resolve again; nothing was changed")
    booked_krw, booked_usdt = journal.fill_totals()
    fills_krw, fills_usdt = sum(f.krw_delta for f in new_fills), sum(f.usdt_delta for f in new_fills)
    booked = (state.initial_krw + booked_krw + fills_krw, booked_usdt + fills_usdt)
    settled = (before[0] + fills_krw, before[1] + fills_usdt)
    broker_equal = all(abs(x - y) <= t for x, y, t in zip(settled, broker_before, tolerance))
    agree = _booked_equal(settled, booked) and broker_equal and not unknown_open and not lost
    if agree:
        raise UserError(f"nothing to resolve: with its orders settled (a normal start does that) the journal agrees "
                        f"with the broker ({broker_before[0]!r} KRW / {broker_before[1]!r} USDT); to lift HALTED "
                        "start the session with live.risk.clear_halt=true")
    # 2. the target both sides will hold
    target = broker_before if adopt == "broker" else booked
    adjustment = (target[0] - booked[0], target[1] - booked[1]) if adopt == "broker" else (0.0, 0.0)
    cancelled_at_broker = unknown_open  # paper only (a real broker refused above)
    state.cash_krw, state.position_usdt = target
    closed = ", ".join(f"{cid} -> {status.value}" for cid, (status, _) in closing.items()) or "none"
    event = {"step": state.step, "bar_time": state.last_bar_time, "kind": "resolve",
             "state_before": state.risk_state.value, "state_after": state.risk_state.value,
             "reason": (f"adopt={adopt} by the operator: {reason} | journal {before[0]!r} KRW / {before[1]!r} USDT "
                        f"(booked {booked[0]!r} / {booked[1]!r}), broker {broker_before[0]!r} / {broker_before[1]!r} "
                        f"-> both {target[0]!r} KRW / {target[1]!r} USDT; orders closed: {closed}"
                        + (f"; cancelled at the paper broker: {', '.join(cancelled_at_broker)}"
                           if cancelled_at_broker else ""))}
    # 3. write: the paper book's cancellations, the journal (one commit), then the paper book's balance
    if paper and cancelled_at_broker:
        _paper_cancel(book, cancelled_at_broker)
    journal.commit_resolution(adopt=adopt, krw_delta=adjustment[0], usdt_delta=adjustment[1], reason=reason,
                              orders=closing, fills=new_fills, state=state, event=event)
    if adopt == "journal":
        _paper_set_balance(book, target, state.initial_krw)
    return {"adopt": adopt, "journal_before": before, "booked_before": booked, "broker_before": broker_before,
            "now": target, "adjustment": adjustment, "orders_closed": {k: v[0].value for k, v in closing.items()},
            "cancelled_at_broker": cancelled_at_broker, "risk_state": state.risk_state.value}


def _broker(run: RunConfig, broker_cls: Any, state_dir: Path, initial_krw: float) -> Any:
    """The session's broker (its own checks first: a real one needs its keys)."""
    broker_cls.check_config(run.live)
    return broker_cls.from_config(run.live, run.env.execution, state_dir, initial_krw)


def _paper_cancel(book: Path, ids: list[str]) -> None:
    """Cancel open orders in the paper book (its schema: kpremia/live/venues/paper.py)."""
    conn = sqlite3.connect(book, isolation_level=None, timeout=5.0)
    try:
        with write_transaction(conn):
            conn.executemany("UPDATE orders SET status = 'cancelled', error = 'cancelled by live-resolve' "
                             "WHERE client_order_id = ? AND status = 'open'", [(cid,) for cid in ids])
    finally:
        conn.close()


def _paper_set_balance(book: Path, balance: tuple[float, float], initial_krw: float) -> None:
    """Set the paper book's cash and position (creating the book when it was missing)."""

    LIVE_BROKERS.get("paper")(book, initial_krw=initial_krw).close()  # its schema and account row, if missing
    conn = sqlite3.connect(book, isolation_level=None, timeout=5.0)
    try:
        with write_transaction(conn):
            conn.execute("UPDATE account SET krw = ?, usdt = ? WHERE id = 1", (float(balance[0]), float(balance[1])))
    finally:
        conn.close()


def _booked_equal(state: tuple[float, float], booked: tuple[float, float]) -> bool:
    """The runner's own check of the state against its fills (relative 1e-6 on cash, 1e-9 on the position)."""
    return all(abs(a - b) <= rel * max(1.0, abs(a), abs(b)) for a, b, rel in zip(state, booked, (1e-6, 1e-9)))


def format_resolution(state_dir: str | Path, r: dict[str, Any]) -> str:
    rows = [("journal before", r["journal_before"]), ("booked by its fills", r["booked_before"]),
            ("broker before", r["broker_before"]), ("both now", r["now"])]
    lines = [f"resolved {state_dir}: adopt={r['adopt']} (journaled in risk_events as 'resolve')"]
    lines += [f"  {k:<20}{krw:>20,.2f} KRW {usdt:>16,.6f} USDT" for k, (krw, usdt) in rows]
    if any(r["adjustment"]):
        lines.append(f"  {'adjustment':<20}{r['adjustment'][0]:>+20,.2f} KRW {r['adjustment'][1]:>+16,.6f} USDT")
    if r["orders_closed"]:
        lines.append("  orders closed: " + ", ".join(f"{k} ({v})" for k, v in r["orders_closed"].items()))
    if r["cancelled_at_broker"]:
        lines.append("  cancelled at the paper broker: " + ", ".join(r["cancelled_at_broker"]))
    if r["risk_state"] == "HALTED":
        lines.append("still HALTED: start the session again with live.risk.clear_halt=true to trade")
    return "\n".join(lines) + "\n"
