"""Every start-up fault of a state_dir ends in one line naming the file and the fix, exit code 2, files unchanged.

The faults: a journal that is garbage, truncated, damaged inside, another program's SQLite file, or has an
unreadable state row; a journal that is empty or missing beside a paper book with orders (must never start a
new run); a paper book that is garbage or truncated; a read-only state_dir; a full disk.  ``live-report`` gets
the same one line.  The CLI runs in-process (``kpremia.app.cli.main``, the code path ``python -m kpremia`` takes);
one test runs it as a real process for the exit status.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live.conftest import run_cli


@pytest.fixture(scope="module")
def session(paper_session) -> Path:
    with sqlite3.connect(paper_session / "paper_exchange.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] > 0  # it traded: the book has orders
    conn.close()
    return paper_session


def hashes(state_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(state_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(state_dir.rglob("*")) if p.is_file()}


def live(capsys, checkpoint, state_dir, *extra) -> tuple[int, list[str]]:
    return run_cli(capsys, "live", f"ckpt={checkpoint}", f"live.state_dir={state_dir}", "live.max_bars=3",
                   "live.journal.synchronous=NORMAL", *extra)


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def _truncate(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


def _damage_a_page(path: Path) -> None:
    """Random bytes over the root page of the decisions table (a free page would be harmless, rightly)."""
    with sqlite3.connect(path) as conn:
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'decisions'").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(path, "r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(os.urandom(page_size))


def _foreign(path: Path) -> None:
    path.unlink()
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    conn.close()


def _bad_state_row(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE state SET state_json = '{\"cash_krw\": ' WHERE id = 1")
    conn.close()  # the last connection to close folds the WAL back into the file


FAULTS = {
    "garbage journal": ("journal.sqlite", _garbage, "is not an SQLite database"),
    "truncated journal": ("journal.sqlite", _truncate, "is truncated"),
    "damaged journal page": ("journal.sqlite", _damage_a_page, "is damaged"),
    "another program's database": ("journal.sqlite", _foreign, "is not a kpremia journal"),
    "unreadable state row": ("journal.sqlite", _bad_state_row, "unreadable state row"),
    "0-byte journal beside a book": ("journal.sqlite", lambda p: p.write_bytes(b""), "is empty but the paper book"),
    "missing journal beside a book": ("journal.sqlite", Path.unlink, "is missing but the paper book"),
    "garbage paper book": ("paper_exchange.sqlite", _garbage, "is not an SQLite database"),
    "truncated paper book": ("paper_exchange.sqlite", _truncate, "is truncated"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_damaged_state_is_one_line_exit_2_and_nothing_changes(fault, session, checkpoint, tmp_path, capsys):
    name, damage, fragment = FAULTS[fault]
    state_dir = tmp_path / "state"
    shutil.copytree(session, state_dir)
    damage(state_dir / name)
    before = hashes(state_dir)
    code, err = live(capsys, checkpoint, state_dir)
    assert code == 2 and len(err) == 1, err
    assert fragment in err[0] and str(state_dir / name) in err[0] and "nothing was changed" in err[0]
    assert hashes(state_dir) == before  # not a byte written, no file created (not even SQLite's -wal/-shm)


def test_a_zero_byte_journal_never_starts_a_new_run_as_a_real_process(session, checkpoint, tmp_path):
    state_dir = tmp_path / "state"
    shutil.copytree(session, state_dir)
    (state_dir / "journal.sqlite").write_bytes(b"")
    before = hashes(state_dir)
    proc = subprocess.run([sys.executable, "-m", "kpremia", "live", f"ckpt={checkpoint}",
                           f"live.state_dir={state_dir}"], capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(proc.stderr.strip().splitlines()) == 1 and "restore the journal from a backup" in proc.stderr
    assert hashes(state_dir) == before


@pytest.mark.parametrize("fault", ["garbage journal", "truncated journal", "0-byte journal beside a book"])
def test_live_report_on_a_damaged_journal_is_one_line(fault, session, tmp_path, capsys):
    name, damage, _ = FAULTS[fault]
    state_dir = tmp_path / "state"
    shutil.copytree(session, state_dir)
    damage(state_dir / name)
    before = hashes(state_dir)
    code, err = run_cli(capsys, "live-report", f"state_dir={state_dir}")
    assert code == 2 and len(err) == 1 and str(state_dir / "journal.sqlite") in err[0], err
    assert hashes(state_dir) == before


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    """A tmpfs mounted at ``where`` (root only; skips where mounting is not allowed)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_read_only_state_dir(session, checkpoint, tmp_path, capsys):
    with tmpfs(tmp_path / "mnt", "8m") as mnt:
        state_dir = mnt / "state"
        shutil.copytree(session, state_dir)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        before = hashes(state_dir)
        code, err = live(capsys, checkpoint, state_dir)
        assert code == 2 and len(err) == 1 and "is not writable (Read-only file system)" in err[0], err
        assert str(state_dir) in err[0]
        code, err = run_cli(capsys, "live-report", f"state_dir={state_dir}")
        assert code == 2 and len(err) == 1 and "is not writable" in err[0], err
        assert hashes(state_dir) == before


def test_full_disk(session, checkpoint, tmp_path, capsys):
    with tmpfs(tmp_path / "mnt", "2m") as mnt:
        state_dir = mnt / "state"
        shutil.copytree(session, state_dir)
        with open(mnt / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
            while True:  # fill the disk to the last block
                fh.write(b"\0" * 4096)
        assert shutil.disk_usage(mnt).free < 4096 * 4
        before = hashes(state_dir)
        code, err = live(capsys, checkpoint, state_dir)
        assert code == 2 and len(err) == 1 and "MB free, under live.journal.min_free_mb=64" in err[0], err
        assert hashes(state_dir) == before
        # without the free-space check the first write fails inside SQLite: still one line, the journal
        # rolled back to its last commit (SQLite leaves its own -wal/-shm files beside it)
        code, err = live(capsys, checkpoint, state_dir, "live.journal.min_free_mb=0")
        assert code == 2 and err[-1].startswith("error: cannot write") and "start again" in err[-1], err
        assert "Traceback" not in "\n".join(err)
        after = hashes(state_dir)
        assert {k: v for k, v in after.items() if not k.endswith(("-wal", "-shm"))} == before


def test_low_free_space_is_refused_without_a_mount(session, checkpoint, tmp_path, capsys, monkeypatch):
    """The same check where a tmpfs cannot be mounted: the disk reports 1 MB free."""
    import kpremia.live.ops.preflight as preflight

    state_dir = tmp_path / "state"
    shutil.copytree(session, state_dir)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda p: usage._replace(free=2**20))
    before = hashes(state_dir)
    code, err = live(capsys, checkpoint, state_dir)
    assert code == 2 and len(err) == 1 and "has 1.0 MB free" in err[0], err
    assert hashes(state_dir) == before


def test_a_clean_state_dir_still_resumes(session, checkpoint, tmp_path, capsys):
    """The checks refuse damage, not a healthy journal: the copied session resumes and decides 3 more bars."""
    state_dir = tmp_path / "state"
    shutil.copytree(session, state_dir)
    code, err = live(capsys, checkpoint, state_dir)
    assert code == 0, err
    with sqlite3.connect(state_dir / "journal.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 43
    conn.close()


@pytest.mark.parametrize("bad", ["v1_0_0-../../x", "v" + "9" * 5000 + "_0_0"])
def test_a_rollback_that_is_not_exactly_a_version_is_one_line(bad, session, checkpoint, tmp_path, capsys):
    state_dir = tmp_path / "state"
    shutil.copytree(session, state_dir)
    before = hashes(state_dir)
    code, err = live(capsys, checkpoint, state_dir, f"live.rollback={bad}")
    assert code == 2 and len(err) == 1 and "is not a model version" in err[0] and len(err[0]) < 300, err
    assert hashes(state_dir) == before
