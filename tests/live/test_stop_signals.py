"""Ctrl-C and SIGTERM stop a running session cleanly: one line, exit 130 / 143, a journal a start resumes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

ARGS = ("live.policy=premium_threshold", "live.rule.buy_threshold=0.01", "live.rule.sell_threshold=0.02",
        "data.days=30", "live.replay.speed=3000", "live.journal.synchronous=NORMAL")  # 0.3 s a bar


def _decisions(journal) -> int:
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    except sqlite3.Error:
        return 0


def _stop(cmd, env, cwd, journal, signum, after: int) -> tuple[int, str]:
    """Start ``cmd``, wait until the journal holds ``after`` decisions, send ``signum``; (exit code, stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    deadline = time.monotonic() + 240
    while _decisions(journal) < after and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "the session ended before it could be stopped"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def _journal_state(journal) -> tuple[int, int, int]:
    with sqlite3.connect(journal) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count, last = conn.execute("SELECT COUNT(*), MAX(step) FROM decisions").fetchone()
        state = json.loads(conn.execute("SELECT state_json FROM state").fetchone()[0])
    return count, last, state["step"]


@pytest.mark.slow
def test_ctrl_c_then_sigterm_stop_the_session_cleanly_in_one_line_and_it_resumes(tmp_path):
    state_dir = tmp_path / "s"
    journal = state_dir / "journal.sqlite"
    env = {**os.environ, "KPREMIA_RUNS_DIR": str(tmp_path / "runs"), "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "kpremia", "live", *ARGS, f"live.state_dir={state_dir}"]
    steps_before = 0
    for signum, code, name, after in ((signal.SIGINT, 130, "Ctrl-C (SIGINT)", 2),
                                      (signal.SIGTERM, 143, "SIGTERM", 0)):
        returncode, err = _stop(cmd, env, tmp_path, journal, signum, after or steps_before + 2)
        assert returncode == code, err[-2000:]
        assert "Traceback" not in err
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"stopped: {name} received: the session stopped cleanly after bar"), last
        count, last_step, state_step = _journal_state(journal)
        assert count == last_step == state_step, "every decided bar is journaled whole, and only those"
        assert f"(step {state_step}," in last and state_step > steps_before  # the second session resumed
        steps_before = state_step
