"""Storage that fails while a session runs: one line, exit 4, the journal's last commit intact, the API 503.

The disk is "filled" with a file-size limit (``RLIMIT_FSIZE``, SIGXFSZ ignored): every write past it
fails with EFBIG, the way writes fail on a full disk, in a subprocess, whatever the user (root ignores
a read-only directory).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ARGS = ("live.policy=premium_threshold", "live.rule.buy_threshold=0.01", "live.rule.sell_threshold=0.02",
        "data.days=30", "live.journal.synchronous=NORMAL", "live.journal.min_free_mb=0")


def _limited(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


@pytest.mark.slow
def test_disk_full_while_running_is_one_line_exit_4_and_the_journal_resumes(tmp_path):
    state_dir = tmp_path / "s"
    env = {**os.environ, "KPREMIA_RUNS_DIR": str(tmp_path / "runs"), "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "kpremia", "live", *ARGS, f"live.state_dir={state_dir}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
                          preexec_fn=_limited(400_000))
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: storage failed while running: cannot write in") and "last commit" in last, last
    with sqlite3.connect(state_dir / "journal.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count, last_step = conn.execute("SELECT COUNT(*), MAX(step) FROM decisions").fetchone()
        state = json.loads(conn.execute("SELECT state_json FROM state").fetchone()[0])
    assert count == last_step == state["step"] > 0, "the last commit is whole: decisions and state agree"
    again = subprocess.run([*cmd, "live.max_bars=1"], capture_output=True, text=True, env=env, cwd=tmp_path,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    with sqlite3.connect(state_dir / "journal.sqlite") as conn:
        assert conn.execute("SELECT MAX(step) FROM decisions").fetchone()[0] == state["step"] + 1


@pytest.mark.slow
def test_a_save_on_a_full_disk_answers_503_and_so_does_everything_after(tmp_path):
    child = Path(__file__).with_name("storage_child.py")
    proc = subprocess.Popen([sys.executable, str(child), str(tmp_path / "state"), "4096"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": "Bearer storage-test-token-0123456789abcdef"}
        assert httpx.get(f"{base}/health", timeout=30).status_code == 200
        saved = httpx.post(f"{base}/save", json={"note": "x"}, headers=headers, timeout=60)
        assert saved.status_code == 503, saved.text
        assert saved.json()["detail"].startswith("storage failed (") and "stopping" in saved.json()["detail"]
        assert proc.stdout.readline().startswith("alarm: "), "the shared alarm (the runner's) was tripped"
        for method, path in (("GET", "/health"), ("GET", "/status"), ("POST", "/save")):
            answer = httpx.request(method, f"{base}{path}", headers=headers, json={} if method == "POST" else None,
                                   timeout=30)
            assert answer.status_code == 503 and "storage failed" in answer.json()["detail"]
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err[-2000:]
