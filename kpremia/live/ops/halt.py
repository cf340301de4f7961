"""Why a session is in its risk state: the cause and the time, read from the journal's ``risk_events``.

An operator looking at a HALTED session (the exit line of ``live``, the status
page, a ``live.risk.clear_halt=true`` that is refused) needs three facts: what
halted it, when, and what to do.  ``risk_events`` holds both kinds of rows:
state changes (``daily_loss``, ``kill_switch``, ``reconcile``, ``overfill``,
``cooldown``, ``cleared``, ``resolve``...) and refused orders (``halted``,
``reducing``, ``max_position``, ``max_order``: the state did not change).  The
*cause* of the current state is the latest row ending in it that is not a
refused order; *since* is when that cause put the session there: the first of
the cause's own run of rows (a restart whose reconcile still finds the books
apart repeats the row), never an earlier halt's time for another cause.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from kpremia.live.loop.records import read_rows

REFUSED_ORDERS = frozenset({"halted", "reducing", "max_position", "max_order", "gate"})
RESOLVE_HINT = ("python -m kpremia live-resolve state_dir={state_dir} adopt=broker|journal reason=\"...\" "
                "(docs/live.md, \"Resolving a mismatch\")")


def risk_cause(events: list[dict[str, Any]], state: str) -> dict[str, Any] | None:
    """``{kind, reason, time, bar_time, since, since_bar_time}`` for ``state``, from ``events`` oldest first."""
    cause = next((e for e in reversed(events) if e["state_after"] == state and e["kind"] not in REFUSED_ORDERS), None)
    if cause is None:
        return None
    entered = cause
    for e in reversed(events[:events.index(cause)]):
        if e["kind"] in REFUSED_ORDERS:
            continue
        if e["state_after"] != state or e["kind"] != cause["kind"] or entered["state_before"] != state:
            break
        entered = e
    return {"kind": cause["kind"], "reason": cause["reason"], "time": cause["created_at"],
            "bar_time": cause["bar_time"], "since": entered["created_at"], "since_bar_time": entered["bar_time"]}


def read_risk_events(journal: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """``risk_events`` rows oldest first (the last ``limit``), through a read-only connection; [] without a journal."""
    try:
        # the one reader (kpremia.live.loop.records): a closed journal is read immutable, so the exit-3 line
        # changes no file
        query = "SELECT * FROM risk_events ORDER BY id" + (" DESC LIMIT ?" if limit else "")
        rows = read_rows(journal, query, (limit,) if limit else ())
    except sqlite3.DatabaseError:  # no table yet (a journal being created), or not a journal
        return []
    return rows[::-1] if limit else rows


def what_to_do(kind: str, state: str, state_dir: str | Path) -> str:
    """What a person does about risk state ``state`` caused by ``kind`` (the banner and the exit line say it)."""
    if state == "REDUCING":
        return "nothing: only orders that reduce the position go out until the cooldown ends, then it trades again"
    if state != "HALTED":
        return ""
    return {"kill_switch": "remove the kill switch file, then start again with live.risk.clear_halt=true",
            "reconcile": f"resolve the mismatch ({RESOLVE_HINT.format(state_dir=state_dir)}), then start again with "
                         "live.risk.clear_halt=true",
            "overfill": "check the order at the exchange, resolve the books "
                        f"({RESOLVE_HINT.format(state_dir=state_dir)}), then start again with live.risk.clear_halt=true",
            "daily_loss": "look at the day's trades; after 00:00 UTC (the loss is the day's) start again with "
                          "live.risk.clear_halt=true",
            }.get(kind, "start again with live.risk.clear_halt=true once the cause is gone")


def halt_line(state_dir: str | Path) -> str:
    """One line for a session that ended HALTED: cause, time, and what to do."""
    state_dir = Path(state_dir)
    cause = risk_cause(read_risk_events(state_dir / "journal.sqlite"), "HALTED")
    if cause is None:
        return (f"the session in {state_dir} ended HALTED; see its risk_events, then start it again with "
                "live.risk.clear_halt=true once the cause is gone")
    what = what_to_do(cause["kind"], "HALTED", state_dir)
    return (f"the session in {state_dir} ended HALTED ({cause['kind']} since {cause['since']}, bar "
            f"{cause['since_bar_time']}): {cause['reason']}; {what}")
