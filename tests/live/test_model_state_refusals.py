"""Refused starts of a learning session write nothing, and the recovery their lines name works.

Every exit-2 path here is checked by the sha256 of every file under the state_dir
before and after (journal, paper book, model journal, versions, ``live-last.pt``):
a refused ``clear_halt``, a damaged acting version, a damaged snapshot, a
learning session resumed without learning, a 0-byte paper book or model
journal, a "start over" that left the model history behind, out-of-range
hyperparameters.
"""

from __future__ import annotations

import copy
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch

from kpremia.live.learning.versions import VersionStore
from kpremia.live.loop.build import run_live
from kpremia.live.loop.sealed import MAGIC, read_snapshot
from tests.live.conftest import run_cli
from tests.live.test_start_faults import hashes

LEARN = ("live.learn.enabled=true", "live.learn.every=2", "live.learn.batch_size=8", "live.learn.lr=0.003",
         "live.learn.max_distance=0.5", "live.learn.challenger.enabled=false")


@pytest.fixture(scope="module")
def learned(live_cfg, checkpoint, tmp_path_factory) -> Path:
    """A closed paper session of 40 bars that learned online (direct mode: it trades a learned version)."""
    state_dir = tmp_path_factory.mktemp("learned") / "state"
    cfg = copy.deepcopy(live_cfg)
    cfg["ckpt"] = str(checkpoint)
    cfg["live"].update(state_dir=str(state_dir), max_bars=40, journal={"synchronous": "NORMAL"})
    cfg["live"]["learn"].update(enabled=True, every=2, batch_size=8, lr=0.003, max_distance=0.5,
                                challenger={"enabled": False})
    run_live(cfg, overrides=[])
    assert _host(state_dir)["version"] != "v1_0_0" and (state_dir / "checkpoints" / "live-last.pt").is_file()
    return state_dir


@pytest.fixture
def copy_of(learned, tmp_path) -> Path:
    state_dir = tmp_path / "state"
    shutil.copytree(learned, state_dir)
    return state_dir


def _host(state_dir: Path) -> dict:
    """The model host's state in the journal's snapshot (read immutable: no -wal/-shm file is left behind)."""
    path = (state_dir / "journal.sqlite").resolve()
    with sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True) as conn:
        blob = conn.execute("SELECT snapshot FROM state").fetchone()[0]
    conn.close()
    return read_snapshot(blob)["callbacks"]["ModelCallback"]["host"]


def live(capsys, checkpoint, state_dir, *extra):
    return run_cli(capsys, "live", f"ckpt={checkpoint}", f"live.state_dir={state_dir}", "live.max_bars=2",
                   "live.journal.synchronous=NORMAL", *extra)


def refused(capsys, checkpoint, state_dir, *extra) -> str:
    """Start with ``extra``: exit 2, one line, no traceback, every file unchanged; the line."""
    before = hashes(state_dir)
    code, err = live(capsys, checkpoint, state_dir, *extra)
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], (code, err)
    assert hashes(state_dir) == before
    return err[0]


def test_a_refused_clear_halt_changes_no_file(copy_of, checkpoint, capsys):
    (copy_of / "KILL").touch()
    assert live(capsys, checkpoint, copy_of, *LEARN)[0] == 3  # halted by the kill switch
    line = refused(capsys, checkpoint, copy_of, *LEARN, "live.risk.clear_halt=true")  # the session counter too
    assert "kill switch" in line


def test_a_refused_clear_halt_while_the_books_disagree_changes_no_file(copy_of, checkpoint, capsys):
    with sqlite3.connect(copy_of / "paper_exchange.sqlite") as conn:
        conn.execute("UPDATE account SET usdt = usdt + 1.5")
    conn.close()
    assert live(capsys, checkpoint, copy_of, *LEARN)[0] == 3  # the reconcile halts it (journaled)
    line = refused(capsys, checkpoint, copy_of, *LEARN, "live.risk.clear_halt=true")
    assert "disagree" in line


def test_a_damaged_acting_version_is_refused_then_rolled_back_by_name(copy_of, checkpoint, capsys):
    acting = _host(copy_of)["version"]
    store = VersionStore(copy_of / "versions")
    weights = copy_of / "versions" / store.get(acting).folder / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[-200] ^= 0xFF
    weights.write_bytes(bytes(data))
    line = refused(capsys, checkpoint, copy_of, *LEARN)
    assert acting in line and "live.rollback=" in line
    # what the line says works: roll back to another version by name
    code, err = live(capsys, checkpoint, copy_of, *LEARN, "live.rollback=v1_0_2")
    assert code == 0, err
    _, expected = store.load("v1_0_2")
    host = _host(copy_of)
    assert host["version"] == "v1_0_2" or VersionStore(copy_of / "versions").get(host["version"]).parent == "v1_0_2"
    assert all(torch.equal(a, expected[k]) for k, a in zip(expected, host["learner"]["anchor"], strict=False))


def test_a_damaged_snapshot_is_one_line(copy_of, checkpoint, capsys):
    with sqlite3.connect(copy_of / "journal.sqlite") as conn:
        blob = bytearray(conn.execute("SELECT snapshot FROM state").fetchone()[0])
        assert blob.startswith(MAGIC)
        blob[len(blob) // 2] ^= 0x40  # one flipped bit inside the tensor data: torch.load would read it
        conn.execute("UPDATE state SET snapshot = ?", (bytes(blob),))
    conn.close()
    assert "sha256" in refused(capsys, checkpoint, copy_of, *LEARN)


def test_resuming_a_learning_session_without_learning_is_refused(copy_of, checkpoint, capsys):
    line = refused(capsys, checkpoint, copy_of)
    assert "live.learn.enabled=true" in line and "live.rollback=" in line
    version = _host(copy_of)["version"]
    assert live(capsys, checkpoint, copy_of, f"live.rollback={version}")[0] == 0  # knowingly: that version, frozen


@pytest.mark.parametrize("name", ["paper_exchange.sqlite", "model_journal.sqlite"])
def test_a_zero_byte_book_or_model_journal_beside_a_run_is_refused(name, copy_of, checkpoint, capsys):
    (copy_of / name).write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        (copy_of / f"{name}{suffix}").unlink(missing_ok=True)
    line = refused(capsys, checkpoint, copy_of, *LEARN)
    assert name in line and "0 bytes" in line


def test_start_over_must_move_the_model_history_too(copy_of, checkpoint, capsys):
    for name in ("journal.sqlite", "paper_exchange.sqlite"):  # what the 0-byte journal rule used to name
        for suffix in ("", "-wal", "-shm"):
            (copy_of / f"{name}{suffix}").unlink(missing_ok=True)
    line = refused(capsys, checkpoint, copy_of, *LEARN)
    assert "versions" in line and "model_journal.sqlite" in line


@pytest.mark.parametrize("value", ["5", "1e308", "1e-320", "0"])
def test_learning_rates_outside_the_api_range_are_refused_on_the_command_line(value, copy_of, checkpoint, capsys):
    line = refused(capsys, checkpoint, copy_of, *LEARN, f"live.learn.lr={value}")
    assert "live.learn.lr" in line and "(0, 0.01]" in line


def test_a_rollback_to_a_missing_or_damaged_version_changes_no_file(copy_of, checkpoint, capsys):
    assert "v9_9_9 not found" in refused(capsys, checkpoint, copy_of, *LEARN, "live.rollback=v9_9_9")
    weights = copy_of / "versions" / "v1_0_1" / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:-10])
    assert "v1_0_1" in refused(capsys, checkpoint, copy_of, *LEARN, "live.rollback=v1_0_1")
