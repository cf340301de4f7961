"""Start-up checks of a live ``state_dir``: refuse in one line, before anything is written.

A session that starts on a damaged journal or paper book, in a directory it
cannot write, or on a full disk fails somewhere inside SQLite with a traceback,
possibly after it has written part of its start (a new session number, a new
run).  Worse, a journal that is missing or empty while the paper book beside it
holds an earlier run's orders looks like a fresh start: a new run id would
re-decide every bar into a new journal beside a book it cannot explain.

So before the runner opens anything for writing, :func:`check_live_start`
reads (read-only connections, no WAL checkpoint, nothing created but a probe
file it removes) and raises a :class:`~kpremia.core.errors.UserError` naming the
file and what to do:

* the directory: exists as a directory, writable, ``live.journal.min_free_mb`` free;
* ``journal.sqlite``: an SQLite file, not truncated (its size against the page count
  in its own header), passing SQLite's ``quick_check``, with only the journal's tables,
  this kpremia's schema version, a readable state row and snapshot;
* the paper book (``live.broker=paper``): an SQLite file, not truncated, ``quick_check``,
  only the book's tables;
* a journal without a run (missing, 0 bytes, or no state row) next to a paper book
  with orders: refused, never a new run;
* the mirror: a journal with a run next to a missing or 0-byte paper book (a new book
  would invent the run's money): refused;
* a journal without a run next to a model history (``versions/`` with versions, or
  a ``model_journal.sqlite``): refused, so "start over" moves that too;
* ``model_journal.sqlite``, where present: not 0 bytes (its history was lost), an SQLite
  file that passes ``quick_check``.

:func:`storage_errors` turns what can still go wrong later (the disk filling up
between the check and a write, a directory made read-only meanwhile) into the
same kind of one line; SQLite rolls a failed transaction back, so the files keep
their last committed state.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kpremia.core.config import default_of
from kpremia.core.errors import UserError
from kpremia.run.live_config import JournalConfig, LiveConfig
from kpremia.live.loop.records import has_wal, read_only
from kpremia.live.loop.storage import storage_error_text

SQLITE_MAGIC = b"SQLite format 3\x00"
JOURNAL_TABLES = frozenset({"meta", "decisions", "orders", "fills", "risk_events", "state", "adjustments"})
BOOK_TABLES = frozenset({"account", "orders", "fills"})
MODEL_JOURNAL_TABLES = frozenset({"events"})
DEFAULT_MIN_FREE_MB = default_of(JournalConfig, "min_free_mb")  # live.journal.min_free_mb's default
_NOTHING = "nothing was changed"
_RESTORE = "restore it from a backup, or start over in a new live.state_dir"


def check_live_start(live: LiveConfig, *, paper: bool) -> None:
    """Every check of the module docstring for the ``live`` settings of a session about to start.

    ``paper``: the broker is a paper exchange (``is_paper``), whose book lives beside the journal.
    """
    state_dir = Path(live.state_dir)
    min_free_mb = float(live.journal.min_free_mb or 0.0)
    paper_book = None
    if paper:
        paper_book = Path(live.paper.path or state_dir / "paper_exchange.sqlite")
    check_directory(state_dir, min_free_mb)
    check_no_other_writer(state_dir / "journal.lock")
    has_run = check_journal(state_dir / "journal.sqlite")
    journal = state_dir / "journal.sqlite"
    how = "is empty" if journal.is_file() and journal.stat().st_size == 0 else (
        "has no run" if journal.is_file() else "is missing")
    start_over = _start_over(state_dir, paper_book)
    if paper_book is not None:
        orders = check_paper_book(paper_book)
        if not has_run and orders:
            raise UserError(f"{journal} {how} but the paper book {paper_book} holds {orders} order(s) of an earlier "
                            "run: the journal was lost, and a new run would trade beside a book it cannot explain; "
                            f"restore the journal from a backup, or {start_over}; {_NOTHING}")
        if has_run and (not paper_book.is_file() or paper_book.stat().st_size == 0):
            what = "is empty (0 bytes)" if paper_book.is_file() else "is missing"
            raise UserError(f"the paper book {paper_book} {what} but the journal {journal} holds a run: a new book "
                            "would start with money the run never had; restore the book from a backup, or "
                            f"{start_over}; {_NOTHING}")
    model_journal = state_dir / "model_journal.sqlite"
    if model_journal.is_file() and model_journal.stat().st_size == 0:
        raise UserError(f"the model journal {model_journal} is empty (0 bytes): its history of model events was "
                        f"lost; restore it from a backup, or {start_over}; {_NOTHING}")
    events = 0
    if model_journal.is_file():
        if "events" in check_sqlite(model_journal, "model journal", MODEL_JOURNAL_TABLES):
            with read_only(model_journal) as conn:
                events = int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    versions = [p.name for p in (state_dir / "versions").glob("v*/manifest.json")] if \
        (state_dir / "versions").is_dir() else []
    if not has_run and (versions or events):
        held = (f"{len(versions)} model version(s) in {state_dir / 'versions'}" if versions
                else f"the {events} event(s) of {model_journal}")
        raise UserError(f"{journal} {how} but {held} remain from an earlier run: a new run would continue its "
                        f"model history with other weights; {start_over}; {_NOTHING}")


def _start_over(state_dir: Path, paper_book: Path | None) -> str:
    """What "start over" means in this state_dir: every file of the run, moved away together."""
    names = ["journal.sqlite", "model_journal.sqlite", "versions/", "checkpoints/"]
    if paper_book is not None:
        names.insert(1, str(paper_book) if paper_book.parent != state_dir else paper_book.name)
    return f"move {', '.join(names)} away from {state_dir} together to start a new run (or use a new live.state_dir)"


def check_directory(state_dir: Path, min_free_mb: float = DEFAULT_MIN_FREE_MB) -> None:
    """The state_dir (or the folder it will be created in) is a writable directory with space left."""
    if state_dir.exists() and not state_dir.is_dir():
        raise UserError(f"live.state_dir={state_dir} is a file, not a directory; point live.state_dir at a directory")
    existing = state_dir
    while not existing.exists():
        existing = existing.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".kpremia-write-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"live.state_dir {existing} is not writable ({exc.strerror}): make it writable (or mount it "
                        f"read-write), or pick another live.state_dir; {_NOTHING}") from None
    free_mb = shutil.disk_usage(existing).free / 2**20
    if free_mb < min_free_mb:
        raise UserError(f"live.state_dir {existing} has {free_mb:.1f} MB free, under live.journal.min_free_mb="
                        f"{min_free_mb:g}: free some space on that disk (or move the state_dir) before starting; "
                        f"{_NOTHING}")
    for name in ("journal.sqlite", "paper_exchange.sqlite", "model_journal.sqlite"):
        path = state_dir / name
        if path.is_file() and not os.access(path, os.R_OK | os.W_OK):
            raise UserError(f"{path} is read-only for this user: give it write permission (chmod u+rw) or run as its "
                            f"owner; {_NOTHING}")


def check_no_other_writer(lock: Path) -> None:
    """No running session holds ``journal.lock`` (checked again, and then held, when the journal opens)."""
    if not lock.is_file():
        return
    with open(lock, "rb") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another live runner is writing {lock.parent}; stop it first (one writer per state_dir) "
                            "or use another live.state_dir") from None
        fcntl.flock(fh, fcntl.LOCK_UN)


def check_sqlite(path: Path, what: str, tables: frozenset[str]) -> set[str]:
    """An SQLite file that is whole and holds only ``tables`` (a subset); its tables.  Read-only."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise UserError(f"cannot read the {what} {path} ({exc.strerror}): give this user read access; "
                        f"{_NOTHING}") from None
    if not header or header[:16] != SQLITE_MAGIC[:len(header[:16])]:
        raise UserError(f"the {what} {path} is not an SQLite database (it was overwritten or is another file): "
                        f"{_RESTORE}; {_NOTHING}")
    if len(header) < 100:
        raise UserError(f"the {what} {path} is truncated ({size} bytes, shorter than an SQLite header): {_RESTORE}; "
                        f"{_NOTHING}")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    header_valid = header[24:28] == header[92:96]  # SQLite trusts the page count only when these agree
    # With a -wal file (a killed session) an interrupted checkpoint may have written page 1 before extending the
    # file; the pages are still in the WAL, so only quick_check (which reads through it) can judge.
    if not has_wal(path) and (page_size < 512 or size % page_size or (header_valid and size < pages * page_size)):
        expected = f"{pages * page_size} bytes" if header_valid else f"a multiple of {page_size} bytes"
        raise UserError(f"the {what} {path} is truncated ({size} bytes, its header says {expected}): {_RESTORE}; "
                        f"{_NOTHING}")
    try:
        with read_only(path) as conn:
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)").fetchall()]
            found = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise UserError(f"the {what} {path} is damaged (SQLite: {exc}): {_RESTORE}; {_NOTHING}") from None
    if problems != ["ok"]:
        raise UserError(f"the {what} {path} is damaged (SQLite quick_check: {'; '.join(problems)[:200]}): "
                        f"{_RESTORE}; {_NOTHING}")
    foreign = sorted(found - tables)
    if foreign:
        raise UserError(f"{path} is not a kpremia {what} (it has tables {', '.join(foreign[:5])}): point "
                        f"live.state_dir elsewhere or move that file away; {_NOTHING}")
    return found


def check_journal(path: Path) -> bool:
    """Whether the journal holds a run (a state row); a UserError if it cannot be resumed from."""
    from kpremia.live.loop.journal import SCHEMA_VERSION
    from kpremia.live.loop.state import LiveState

    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return False
    if not path.is_file():
        raise UserError(f"{path} is not a file: move it away; {_NOTHING}")
    tables = check_sqlite(path, "journal", JOURNAL_TABLES)
    if "meta" not in tables or "state" not in tables:
        return False
    with read_only(path) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        row = conn.execute("SELECT state_json, snapshot FROM state WHERE id = 1").fetchone()
    version = meta.get("schema_version")
    if version is not None and version != str(SCHEMA_VERSION):
        raise UserError(f"{path} has journal schema {version}, this kpremia writes {SCHEMA_VERSION}; use a new "
                        f"live.state_dir or the kpremia version that wrote it; {_NOTHING}")
    if row is None:
        return False
    try:
        LiveState.from_row(json.loads(row[0]))
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"the journal {path} has an unreadable state row ({type(exc).__name__}: {str(exc)[:80]}): "
                        f"{_RESTORE}; {_NOTHING}") from None
    if row[1] is not None:
        from kpremia.live.loop.sealed import read_snapshot

        try:
            read_snapshot(row[1], str(path))
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to read it means the same to the operator
            raise UserError(f"the journal {path} has an unreadable snapshot ({type(exc).__name__}): {_RESTORE}; "
                            f"{_NOTHING}") from None
    return True


def check_report_journal(state_dir: Path) -> Path:
    """The journal a report (``live-report``) can read: present, whole, with a run, in a directory the report
    can be written to; a UserError otherwise."""
    path = Path(state_dir) / "journal.sqlite"
    if not path.is_file():
        raise UserError(f"{path} not found: pass the live.state_dir of a `live` session (state_dir=<dir>)")
    check_directory(Path(state_dir), min_free_mb=0.0)
    if path.stat().st_size == 0 or not check_journal(path):
        raise UserError(f"{path} holds no run (it is empty or was never written): run `live` on that state_dir "
                        "first, or restore the journal from a backup")
    return path


def check_paper_book(path: Path) -> int:
    """How many orders the paper book holds (0 for a missing or empty file); a UserError if it is damaged."""
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return 0
    tables = check_sqlite(path, "paper book", BOOK_TABLES)
    if "orders" not in tables:
        return 0
    with read_only(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0])


def read_meta(journal: Path, key: str) -> str | None:
    """A ``meta`` value of a journal, read without creating or changing a file (None: no journal, no run yet)."""
    if not journal.is_file() or not journal.stat().st_size:
        return None
    try:
        with read_only(journal) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


@contextmanager
def storage_errors(where: str | os.PathLike | None) -> Iterator[None]:
    """Full disk, read-only files and refused permissions at start as one line naming the file (or ``where``).

    Once bars were processed, the runner raises :class:`~kpremia.core.errors.StorageFailed` (exit 4) itself.
    """
    try:
        yield
    except (sqlite3.OperationalError, OSError) as exc:
        text = storage_error_text(exc)
        if text is None:
            raise
        raise UserError(f"cannot write {where} ({text}): free space on that disk or make it writable, then start "
                        "again; the journal keeps its last committed state") from None
