"""The figures the status page shows, read from the live journal (read-only, safe while the runner writes).

Sources: ``<state_dir>/journal.sqlite`` (``decisions``, ``orders``, ``meta``,
``state``, ``risk_events``; schema in docs/live.md) and
``<state_dir>/model_journal.sqlite`` (model events).  Buy-and-hold is the
initial cash put into USDT at the first decision's close and marked at each
close since (no fee): the line an agent has to beat by trading.

"Last decisions" are the bars where the policy acted (``action`` set, whatever
became of the order); warm-up bars and the bars between two decisions of a
policy that acts every k bars are journaled too, but are not decisions.  The
risk state comes with its cause and the time it was entered
(:func:`kpremia.live.ops.halt.risk_cause`) and the last risk events.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from kpremia.live.learning.control_log import read_events
from kpremia.live.loop.records import read_only
from kpremia.live.ops.halt import read_risk_events, risk_cause, what_to_do

_COLUMNS = ("d.bar_time, d.step, d.close, d.premium, d.action, d.action_name, d.target_weight, d.reason, d.risk_state, "
            "d.cash_krw, d.position_usdt, d.equity_krw, d.latency_ms, d.client_order_id, o.side AS side, "
            "o.status AS order_status")


class StatusSource:
    """Reads the journal of ``state_dir`` on demand (no connection is kept open)."""

    def __init__(self, state_dir: str | Path | None, max_points: int = 500, recent: int = 12):
        self.state_dir = Path(state_dir) if state_dir else None
        self.max_points = int(max_points)
        self.recent = int(recent)

    @property
    def journal_path(self) -> Path | None:
        return self.state_dir / "journal.sqlite" if self.state_dir else None

    def _connect(self, path: Path) -> AbstractContextManager[sqlite3.Connection]:
        """The one reader's connection to ``path`` (:func:`kpremia.live.loop.records.read_only`)."""
        return read_only(path)

    def _query(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        path = self.journal_path
        if path is None or not path.is_file():
            return []
        try:
            with self._connect(path) as conn:
                return [dict(r) for r in conn.execute(sql, args).fetchall()]
        except sqlite3.DatabaseError:  # a table the runner has not created yet (or a file that is no journal)
            return []

    def figures(self) -> dict[str, Any]:
        """Everything ``/status`` returns about trading (model figures come from the host).

        Its cost does not grow with the journal: only the last ``max_points`` decisions are read (by the
        ``step`` index, newest first), the first bar and the counts come from index lookups (steps are
        1, 2, ... one per bar; orders are never deleted, so the largest rowid is their number).
        """
        rows = self._query(f"SELECT {_COLUMNS} FROM decisions d LEFT JOIN orders o ON o.client_order_id = "
                           "d.client_order_id ORDER BY d.step DESC LIMIT ?", (self.max_points,))[::-1]
        # one MIN or MAX per query: SQLite answers each from the index (both in one query scan the table)
        low = self._query("SELECT MIN(step) AS s FROM decisions")
        high = self._query("SELECT MAX(step) AS s FROM decisions")
        bars = int(high[0]["s"] - low[0]["s"] + 1) if low and high and high[0]["s"] is not None else 0
        meta = {r["key"]: r["value"] for r in self._query("SELECT key, value FROM meta")}
        state_rows = self._query("SELECT state_json FROM state WHERE id = 1")
        state = json.loads(state_rows[0]["state_json"]) if state_rows else {}
        out: dict[str, Any] = {"bars": bars, "journal": str(self.journal_path) if self.journal_path else None,
                               "policy": meta.get("policy"), "run_id": meta.get("run_id"),
                               "learning_journal": self.learning()}
        events = read_risk_events(self.journal_path, limit=200) if self.journal_path else []
        risk_state = state.get("risk_state") or (rows[-1]["risk_state"] if rows else None)
        cause = risk_cause(events, risk_state) if risk_state else None
        if cause is not None:
            cause["todo"] = what_to_do(cause["kind"], risk_state, self.state_dir)
        out["risk"] = {"state": risk_state, "cause": cause}
        out["risk_events"] = grouped_events(events)[-self.recent:][::-1]
        if not rows:
            empty = {"time": [], "equity": [], "buy_hold": [], "premium": []}
            return {**out, "risk_state": risk_state, "series": empty, "trades": [], "recent": [],
                    "model_events": self._model_events()}
        first = self._query("SELECT close, equity_krw FROM decisions ORDER BY step LIMIT 1")[0]
        last = rows[-1]
        initial = float(meta.get("initial_krw") or state.get("initial_krw") or first["equity_krw"])
        units = initial / float(first["close"])
        tail = rows
        orders = self._query("SELECT MAX(rowid) AS n FROM orders")
        trades = [{"time": r["bar_time"], "premium": r["premium"], "side": r["side"], "action": r["action_name"],
                   "status": r["order_status"]} for r in tail if r["client_order_id"]]
        # the policy acted (not warm-up, not between decisions): the last few, newest first by the step index
        decided = self._query(f"SELECT {_COLUMNS} FROM decisions d LEFT JOIN orders o ON o.client_order_id = "
                              "d.client_order_id WHERE d.action IS NOT NULL ORDER BY d.step DESC LIMIT ?",
                              (self.recent,))[::-1]
        out.update({
            "last_bar_time": last["bar_time"], "step": last["step"], "initial_krw": initial,
            "equity_krw": float(last["equity_krw"]), "buy_hold_krw": units * float(last["close"]),
            "return": float(last["equity_krw"]) / initial - 1.0, "buy_hold_return": float(last["close"]) /
            float(first["close"]) - 1.0, "cash_krw": float(state.get("cash_krw", last["cash_krw"])),
            "position_usdt": float(state.get("position_usdt", last["position_usdt"])),
            "close": float(last["close"]), "premium": float(last["premium"]), "risk_state": risk_state,
            "latency_ms": float(last["latency_ms"]), "orders": int(orders[0]["n"] or 0) if orders else 0,
            "series": {"time": [r["bar_time"] for r in tail], "equity": [float(r["equity_krw"]) for r in tail],
                       "buy_hold": [units * float(r["close"]) for r in tail],
                       "premium": [float(r["premium"]) for r in tail]},
            "trades": trades,
            "recent": [{"time": r["bar_time"], "action": r["action_name"], "target_weight": r["target_weight"],
                        "reason": r["reason"], "order": r["side"], "order_status": r["order_status"]}
                       for r in decided][::-1],
            "model_events": self._model_events(),
        })
        return out

    def learning(self) -> dict[str, Any]:
        """Kept online updates as the model journal records them (the same in ``serve`` and ``live``)."""
        path = self.state_dir / "model_journal.sqlite" if self.state_dir else None
        if path is None or not path.is_file():
            return {"updates": 0}
        with read_only(path) as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM events WHERE source = 'learner' AND kind = 'update'").fetchone()
            last = conn.execute("SELECT model_version, detail, time_utc FROM events WHERE source = 'learner' AND "
                                "kind = 'update' ORDER BY id DESC LIMIT 1").fetchone()
        out: dict[str, Any] = {"updates": int(count)}
        if last is not None:
            detail = json.loads(last[1])
            out.update(version=last[0], time=last[2], anchor_distance=detail.get("anchor_distance"),
                       approx_kl=detail.get("approx_kl"))
        return out

    def _model_events(self) -> list[dict[str, Any]]:
        if self.state_dir is None:
            return []
        events = read_events(self.state_dir / "model_journal.sqlite", limit=200)
        keep = [e for e in events if e["source"] in ("learner", "challenger", "host") or e["kind"] in ("load", "save")]
        return [{"time": e["time_utc"], "source": e["source"], "kind": e["kind"], "version": e["model_version"]}
                for e in keep[-self.recent:]][::-1]


def grouped_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Risk events oldest first, runs of the same event merged (a HALTED session refuses an order every bar: one
    row "halted x 96" instead of 96 rows pushing the event that halted it off the page)."""
    out: list[dict[str, Any]] = []
    for e in events:
        row = {"time": e["created_at"], "bar_time": e["bar_time"], "step": e["step"], "kind": e["kind"],
               "before": e["state_before"], "after": e["state_after"], "reason": e["reason"], "count": 1,
               "first_bar_time": e["bar_time"]}
        last = out[-1] if out else None
        if last and all(last[k] == row[k] for k in ("kind", "before", "after", "reason")):
            last.update(time=row["time"], bar_time=row["bar_time"], step=row["step"], count=last["count"] + 1)
        else:
            out.append(row)
    return out
