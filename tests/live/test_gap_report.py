"""live-report: a paper session has no gap to the simulator; a doctored journal shows exactly its doctoring."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def paper_session(tmp_path_factory, checkpoint):
    root = tmp_path_factory.mktemp("gap")
    state_dir = root / "state"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "kpremia", "live", f"ckpt={checkpoint}", f"live.state_dir={state_dir}",
                           "live.max_bars=60", "live.journal.synchronous=NORMAL", "data.days=40", "env.window_bars=8",
                           "env.window_1d=5", "env.window_premium=5", "live.learn.enabled=true",
                           "live.learn.challenger.enabled=false"], capture_output=True, text=True, env=env, cwd=root,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return state_dir


def _report(state_dir, *extra):
    return subprocess.run([sys.executable, "-m", "kpremia", "live-report", f"state_dir={state_dir}", *extra],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_paper_session_has_no_gap(paper_session):
    proc = _report(paper_session)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == str(paper_session / "live_report")
    r = json.loads((paper_session / "live_report" / "gap_report.json").read_text())
    assert r["bars"] == 60 and r["fills_live"] == r["fills_sim"] >= 5  # enough fills to compare
    assert r["fill_mismatches"] == 0 and r["price_gap_bps_max_abs"] == 0.0
    assert r["fee_gap_krw"] == 0.0 and r["pnl_gap_krw"] == 0.0
    assert r["model_versions"][0] == {"from_step": 0, "version": "v1_0_0"} and len(r["model_versions"]) > 5
    assert "PnL KRW" in proc.stdout and "fill price gap" in proc.stdout


def test_a_doctored_journal_shows_its_gaps(paper_session, tmp_path):
    doctored = tmp_path / "doctored"
    shutil.copytree(paper_session, doctored, ignore=shutil.ignore_patterns("*.lock", "live_report"))
    with sqlite3.connect(doctored / "journal.sqlite") as conn:
        fid, price, fee, usdt = conn.execute("SELECT id, price, fee_krw, usdt_delta FROM fills ORDER BY id LIMIT 1"
                                             ).fetchone()
        conn.execute("UPDATE fills SET price = ?, fee_krw = ? WHERE id = ?", (price + 1.0, fee + 250.0, fid))
        state = json.loads(conn.execute("SELECT state_json FROM state").fetchone()[0])
        state["cash_krw"] -= 1000.0  # as if the exchange had charged 1,000 KRW more
        conn.execute("UPDATE state SET state_json = ?", (json.dumps(state),))
    proc = _report(doctored)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((doctored / "live_report" / "gap_report.json").read_text())
    assert r["fee_gap_krw"] == pytest.approx(250.0)
    assert r["price_gap_bps_max_abs"] == pytest.approx(1.0 / price * 1e4, rel=1e-9)
    assert r["pnl_gap_krw"] == pytest.approx(-1000.0, abs=1e-6)


def test_live_report_errors_are_one_line(tmp_path):
    proc = _report(tmp_path / "nothing")
    assert proc.returncode == 2 and "journal.sqlite not found" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "kpremia", "live-report"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "state_dir=" in proc.stderr
