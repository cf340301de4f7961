"""The one reader and the one write transaction of the live SQLite files."""

from __future__ import annotations

import sqlite3

import pytest

from kpremia.live.loop.records import has_wal, read_frame, read_only, read_rows, write_transaction


def _wal_db(path):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x INTEGER)")
    return conn


def test_a_failed_transaction_leaves_nothing_and_a_committed_one_is_read(tmp_path):
    path = tmp_path / "j.sqlite"
    conn = _wal_db(path)
    with pytest.raises(ZeroDivisionError), write_transaction(conn) as c:
        c.execute("INSERT INTO t VALUES (1)")
        1 / 0
    assert not conn.in_transaction
    with write_transaction(conn) as c:
        c.executemany("INSERT INTO t VALUES (?)", [(2,), (3,)])
    # while the writer is open its WAL holds the rows: the reader sees them (mode=ro) and never blocks it
    assert has_wal(path) and read_rows(path, "SELECT x FROM t ORDER BY x") == [{"x": 2}, {"x": 3}]
    conn.close()
    assert not has_wal(path)


def test_reading_a_closed_journal_changes_no_file(tmp_path):
    path = tmp_path / "j.sqlite"
    conn = _wal_db(path)
    conn.execute("INSERT INTO t VALUES (7)")
    conn.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert read_frame(path, "SELECT x FROM t")["x"].tolist() == [7]
    with read_only(path) as c:
        assert c.execute("SELECT x FROM t").fetchone()["x"] == 7
        with pytest.raises(sqlite3.OperationalError):
            c.execute("INSERT INTO t VALUES (8)")
    assert sorted(p.name for p in tmp_path.iterdir()) == before == ["j.sqlite"]
    assert read_rows(tmp_path / "missing.sqlite", "SELECT 1") == []
