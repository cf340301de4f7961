"""A paper session over replayed bars, end to end from the command line."""

from __future__ import annotations

import sqlite3

import pandas as pd

from kpremia.live.loop.journal import read_table


def test_paper_session_from_cli(live_cli, checkpoint, tmp_path):
    state_dir = tmp_path / "state"
    proc = live_cli(f"ckpt={checkpoint}", "live.feed=replay", "live.broker=paper", f"live.state_dir={state_dir}",
                    "live.max_bars=120", "live.journal.synchronous=NORMAL")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert str(state_dir) in proc.stdout.strip().splitlines()[-1]
    decisions = read_table(state_dir / "journal.sqlite", "decisions")
    orders = read_table(state_dir / "journal.sqlite", "orders")
    fills = read_table(state_dir / "journal.sqlite", "fills")
    assert len(decisions) == 120 and decisions["bar_time"].is_unique
    times = pd.to_datetime(decisions["bar_time"])
    assert (times.diff().dropna() == pd.Timedelta("15min")).all()
    assert len(orders) > 5, "the test checkpoint should trade"
    assert orders["decision_id"].is_unique
    # every order but the last decided one has been answered by the paper exchange at the next open
    assert set(orders["status"].iloc[:-1]) <= {"filled", "cancelled"}
    # journal position == the paper exchange's own book
    with sqlite3.connect(state_dir / "paper_exchange.sqlite") as conn:
        krw, usdt = conn.execute("SELECT krw, usdt FROM account").fetchone()
    last = read_table(state_dir / "journal.sqlite", "state")
    import json

    state = json.loads(last["state_json"].iloc[0])
    assert state["position_usdt"] == usdt and state["cash_krw"] == krw
    assert abs(fills["usdt_delta"].sum() - usdt) < 1e-9
    assert (state_dir / "metrics.csv").is_file()

    # a second session continues after the last decided bar: no bar twice
    again = live_cli(f"ckpt={checkpoint}", f"live.state_dir={state_dir}", "live.max_bars=30",
                     "live.journal.synchronous=NORMAL")
    assert again.returncode == 0, again.stderr[-3000:]
    decisions = read_table(state_dir / "journal.sqlite", "decisions")
    assert len(decisions) == 150 and decisions["bar_time"].is_unique and decisions["step"].tolist() == list(
        range(1, 151))
    assert decisions["session"].tolist() == [1] * 120 + [2] * 30


def test_live_without_state_dir_or_ckpt_is_one_line(live_cli, checkpoint):
    proc = live_cli(f"ckpt={checkpoint}")
    assert proc.returncode == 2 and "live.state_dir" in proc.stderr and "Traceback" not in proc.stderr
    proc = live_cli("live.state_dir=x")
    assert proc.returncode == 2 and "ckpt=" in proc.stderr and "Traceback" not in proc.stderr
