"""The model journal's ``bar`` column: rows of bar processing roll back with the trading journal.

Real SQLite files: a file of an earlier release (no ``bar`` column) opens, gains the
column and keeps its rows; :meth:`ControlLog.rewind` deletes only the rows tagged
after the given step, in one transaction, and never a request's row.
"""

from __future__ import annotations

import sqlite3

from kpremia.live.learning.control_log import ControlLog, read_events
from kpremia.live.ops.preflight import MODEL_JOURNAL_TABLES, check_sqlite

OLD_SCHEMA = """
CREATE TABLE events (id INTEGER PRIMARY KEY, time_utc TEXT NOT NULL, source TEXT NOT NULL, kind TEXT NOT NULL,
                     model_version TEXT, ok INTEGER NOT NULL DEFAULT 1, detail TEXT NOT NULL);
INSERT INTO events(time_utc, source, kind, model_version, ok, detail)
    VALUES ('2026-01-01T00:00:00.000000Z', 'host', 'start', 'v1_0_0', 1, '{"source": "ckpt"}'),
           ('2026-01-01T00:05:00.000000Z', 'learner', 'update', 'v1_0_1', 1, '{"loss": 0.5}');
"""


def _old_file(path):
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
    conn.close()


def test_a_file_without_the_bar_column_is_read_then_opened_and_keeps_its_rows(tmp_path):
    path = tmp_path / "model_journal.sqlite"
    _old_file(path)
    before = read_events(path)  # a reader of an old file (status page, live-report) sees bar None
    assert [(e["source"], e["kind"], e["bar"]) for e in before] == [("host", "start", None),
                                                                  ("learner", "update", None)]
    log = ControlLog(path)
    log.write("challenger", "refuse", {"reason": "x"}, model_version="v1_0_1", ok=False, bar=7)
    assert log.rewind(7) == 0
    log.close()
    with sqlite3.connect(path) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(events)")]
    conn.close()
    assert columns[-1] == "bar"
    after = read_events(path)
    assert [{k: v for k, v in e.items() if k != "bar"} for e in after[:2]] == \
        [{k: v for k, v in e.items() if k != "bar"} for e in before]
    assert [(e["kind"], e["bar"]) for e in after] == [("start", None), ("update", None), ("refuse", 7)]
    assert check_sqlite(path, "model journal", MODEL_JOURNAL_TABLES) == {"events"}  # start-up checks accept it
    log = ControlLog(path)  # opening a migrated file again changes nothing
    assert read_events(path) == after
    assert log.rewind(0) == 1  # the old rows have no bar: every rewind keeps them
    log.close()
    assert read_events(path) == after[:2]


def test_rewind_deletes_the_rows_of_the_bars_after_the_step_and_nothing_else(tmp_path):
    path = tmp_path / "model_journal.sqlite"
    log = ControlLog(path)
    log.write("host", "start", {"source": "ckpt"}, model_version="v1_0_0", bar=1)
    for step in range(2, 8):
        log.write("challenger", "refuse", {"step": step}, model_version="v1_0_0", ok=False, bar=step)
        if step % 2:
            log.write("learner", "update", {"step": step}, model_version=f"v1_0_{step}", bar=step)
    log.write("api", "save", {"note": "by hand"}, model_version="v1_0_9")  # a request: it happened
    log.write("host", "restore", {"version": "v1_0_5"}, model_version="v1_0_5")
    assert log.rewind(5) == 3  # bars 6 and 7: two refusals and one update
    assert log.rewind(5) == 0
    kept = [(e["source"], e["kind"], e["bar"]) for e in read_events(path)]
    assert kept == [("host", "start", 1), ("challenger", "refuse", 2), ("challenger", "refuse", 3),
                    ("learner", "update", 3), ("challenger", "refuse", 4), ("challenger", "refuse", 5),
                    ("learner", "update", 5), ("api", "save", None), ("host", "restore", None)]
    assert log.rewind(0) == 7  # a start before any commit: every row of bar processing goes, the rest stays
    assert [(e["source"], e["kind"]) for e in read_events(path)] == [("api", "save"), ("host", "restore")]
    log.close()
