"""The live side's SQLite files -- journal, model journal, paper book -- read and written one way.

* :func:`read_only` is the one reader: a connection that can change no file.  Without a
  ``-wal`` holding data (a cleanly closed file) it opens the file ``immutable`` -- a plain
  read-only connection to a WAL-mode file would leave empty ``-wal``/``-shm`` files behind,
  and a read of a closed session (its status page, its gap report, the halt line, the start
  checks) must change nothing; with one (a running or killed session) SQLite must read the
  WAL, so it opens ``mode=ro``, which never blocks the writer.  :func:`read_rows` and
  :func:`read_frame` are the two shapes callers want.
* :func:`write_transaction` is the one writer's transaction: ``BEGIN IMMEDIATE`` (the write
  lock taken up front, so a transaction never fails half-way for a lock), ``COMMIT``, and
  ``ROLLBACK`` on any exception -- what keeps a ``kill -9`` from leaving half a bar behind.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


def has_wal(path: str | os.PathLike) -> bool:
    """Whether ``path`` has a ``-wal`` file with data in it (a session writing, or killed before it closed)."""
    path = Path(path)
    wal = path.with_name(path.name + "-wal")
    return wal.is_file() and wal.stat().st_size > 0


@contextmanager
def read_only(path: str | os.PathLike, timeout_s: float = 5.0) -> Iterator[sqlite3.Connection]:
    """A read-only connection to ``path`` that creates and changes nothing (rows as :class:`sqlite3.Row`)."""
    path = Path(path)
    flags = "mode=ro" if has_wal(path) else "mode=ro&immutable=1"
    conn = sqlite3.connect(f"file:{path.resolve()}?{flags}", uri=True, timeout=timeout_s)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def read_rows(path: str | os.PathLike, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """The rows of one query as dicts; ``[]`` when the file does not exist yet."""
    if not Path(path).is_file():
        return []
    with read_only(path) as conn:
        return [dict(r) for r in conn.execute(sql, args).fetchall()]


def read_frame(path: str | os.PathLike, sql: str) -> pd.DataFrame:
    """The rows of one query as a DataFrame."""
    with read_only(path) as conn:
        return pd.read_sql_query(sql, conn)


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` on ``conn`` (autocommit mode), rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
