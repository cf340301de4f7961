"""The model journal: every control request and model event of a live run, in SQLite.

``<state_dir>/model_journal.sqlite`` beside the trading journal (the runner
holds that one's single writer; requests to the control API arrive on server
threads, so they get their own file).  One table::

    events(id INTEGER PRIMARY KEY, time_utc TEXT, source TEXT, kind TEXT,
           model_version TEXT, ok INTEGER, detail TEXT /* JSON */, bar INTEGER)

``source`` is ``api`` (a request: /act, /learn, /save, /load, /set_hparams),
``learner`` (an online update kept or refused), ``challenger`` (a promotion or
refusal, with both returns) or ``host`` (start, restore).  Writes go through
one connection under a lock, each in its own transaction (WAL, busy timeout),
so concurrent requests never lose a row and a reader (the status page,
``live-report``) never blocks a writer.

**Rows of bar processing are rolled back with the trading journal.**  ``bar``
is the trading journal's step whose commit makes the row final: a row the live
session writes while it processes bar N (an update published, a challenger's
verdict) carries N, and the session's ``host``/``start`` row carries its first
step.  Every other row (a request to the API, a restart, a ``live.rollback``)
has ``bar`` NULL: it happened whatever the trading journal kept.  A ``kill -9``
between such a row and its bar's commit leaves a row of a bar that, for the
run, was never decided; the restart replays that bar and writes the row again.
So a live start first calls :meth:`ControlLog.rewind` with the journal's last
committed step: one transaction deletes the rows tagged after it, and the
replay writes them again, from the same state, exactly once.  Deleting rather
than making the writes idempotent by a unique key (bar, source, kind, ...):
the rule is the trading journal's own (nothing after the last commit
happened), it needs no key per kind of row (two rows of one bar may share
source and kind), and a replay that differs from the killed run (an update
that failed and now succeeds, a ``live.rollback`` start) records what the run
now did instead of keeping a stale row beside it.

Files written before ``bar`` existed get the column when opened for writing
(``ALTER TABLE ... ADD COLUMN``; their rows stay NULL, kept on every rewind).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from kpremia.live.loop.records import read_rows, write_transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    time_utc TEXT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    model_version TEXT,
    ok INTEGER NOT NULL DEFAULT 1,
    detail TEXT NOT NULL,
    bar INTEGER
);
"""
BAR_INDEX = "CREATE INDEX IF NOT EXISTS events_bar ON events(bar) WHERE bar IS NOT NULL"


class ControlLog:
    """Appends events to ``path`` (thread-safe) and reads them back."""

    def __init__(self, path: str | Path, busy_timeout_ms: int = 5000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=busy_timeout_ms / 1000,
                                     check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        with write_transaction(self._conn) as conn:
            conn.execute(SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
            if "bar" not in columns:  # a file of an earlier release
                conn.execute("ALTER TABLE events ADD COLUMN bar INTEGER")
            conn.execute(BAR_INDEX)

    def write(self, source: str, kind: str, detail: dict[str, Any] | None = None, *, model_version: str | None = None,
              ok: bool = True, bar: int | None = None) -> int:
        """Append one row; ``bar``: the trading journal's step it belongs to (None: not a row of bar processing)."""
        text = json.dumps(detail or {}, default=str, sort_keys=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1_000_000:06d}Z"
        with self._lock, write_transaction(self._conn) as conn:
            cur = conn.execute(
                "INSERT INTO events(time_utc, source, kind, model_version, ok, detail, bar) VALUES (?,?,?,?,?,?,?)",
                (stamp, source, kind, model_version, int(bool(ok)), text, None if bar is None else int(bar)))
        return int(cur.lastrowid)

    def rewind(self, committed: int) -> int:
        """Delete the rows of the bars after step ``committed`` (one transaction); how many were deleted.

        Called when a live session starts, before it processes a bar: ``committed`` is the trading
        journal's last committed step (0 before the first), so the rows of the bars it will replay go.
        """
        with self._lock, write_transaction(self._conn) as conn:
            return int(conn.execute("DELETE FROM events WHERE bar > ?", (int(committed),)).rowcount)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def read_events(path: str | Path, source: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Events oldest first (read-only connection; safe while a writer appends).

    Each has a ``bar`` (None in a file written before the column existed that was not opened for writing since).
    """
    query = "SELECT * FROM events" + (" WHERE source = ?" if source else "") + " ORDER BY id"
    rows = read_rows(path, query, (source,) if source else ())
    out = [{"bar": None, **r, "detail": json.loads(r["detail"])} for r in rows]
    return out[-limit:] if limit else out
