"""The model journal: every control request and model event of a live run, in SQLite.

``<state_dir>/model_journal.sqlite`` beside the trading journal (the runner
holds that one's single writer; requests to the control API arrive on server
threads, so they get their own file).  One table::

    events(id INTEGER PRIMARY KEY, time_utc TEXT, source TEXT, kind TEXT,
           model_version TEXT, ok INTEGER, detail TEXT /* JSON */)

``source`` is ``api`` (a request: /act, /learn, /save, /load, /set_hparams),
``learner`` (an online update kept or refused), ``challenger`` (a promotion or
refusal, with both returns) or ``host`` (start, restore).  Writes go through
one connection under a lock, each in its own transaction (WAL, busy timeout),
so concurrent requests never lose a row and a reader (the status page,
``live-report``) never blocks a writer.
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
    detail TEXT NOT NULL
);
"""


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
        self._conn.executescript(SCHEMA)

    def write(self, source: str, kind: str, detail: dict[str, Any] | None = None, *, model_version: str | None = None,
              ok: bool = True) -> int:
        text = json.dumps(detail or {}, default=str, sort_keys=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1_000_000:06d}Z"
        with self._lock, write_transaction(self._conn) as conn:
            cur = conn.execute(
                "INSERT INTO events(time_utc, source, kind, model_version, ok, detail) VALUES (?,?,?,?,?,?)",
                (stamp, source, kind, model_version, int(bool(ok)), text))
        return int(cur.lastrowid)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def read_events(path: str | Path, source: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Events oldest first (read-only connection; safe while a writer appends)."""
    query = "SELECT * FROM events" + (" WHERE source = ?" if source else "") + " ORDER BY id"
    rows = read_rows(path, query, (source,) if source else ())
    out = [{**r, "detail": json.loads(r["detail"])} for r in rows]
    return out[-limit:] if limit else out
