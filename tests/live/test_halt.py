"""HALT for an operator: exit code 3 with the cause, clear_halt refused while the cause persists, live-resolve.

The story an operator lives through: someone changes the account behind the runner's back (1.5 USDT more at the
broker), the next start's reconcile halts the session, ``live`` exits 3 naming the cause, ``clear_halt`` is refused
while the books still disagree, ``live-resolve`` records which side is right, and only then ``clear_halt`` lifts it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from kpremia.core.errors import UserError
from kpremia.live.loop.journal import read_table
from tests.live.conftest import price_frame, rule_runner, run_cli

EXTRA_USDT = 1.5


def _tamper(state_dir: Path) -> None:
    with sqlite3.connect(state_dir / "paper_exchange.sqlite") as conn:
        conn.execute("UPDATE account SET usdt = usdt + ?", (EXTRA_USDT,))
    conn.close()


def _state(state_dir: Path) -> dict:
    return json.loads(read_table(state_dir / "journal.sqlite", "state")["state_json"].iloc[0])


def _book(state_dir: Path) -> tuple[float, float]:
    with sqlite3.connect(state_dir / "paper_exchange.sqlite") as conn:
        out = conn.execute("SELECT krw, usdt FROM account").fetchone()
    conn.close()
    return out


def _events(state_dir: Path) -> pd.DataFrame:
    return read_table(state_dir / "journal.sqlite", "risk_events")


@pytest.fixture
def halted(paper_session, checkpoint, tmp_path) -> Path:
    """A copy of the paper session whose broker holds 1.5 USDT the journal never booked."""
    state_dir = tmp_path / "state"
    shutil.copytree(paper_session, state_dir)
    _tamper(state_dir)
    return state_dir


def live(capsys, checkpoint, state_dir, *extra):
    return run_cli(capsys, "live", f"ckpt={checkpoint}", f"live.state_dir={state_dir}", "live.max_bars=3",
                   "live.journal.synchronous=NORMAL", *extra)


def test_a_halted_session_exits_3_naming_the_cause(halted, checkpoint):
    proc = subprocess.run([sys.executable, "-m", "kpremia", "live", f"ckpt={checkpoint}", f"live.state_dir={halted}",
                           "live.max_bars=3", "live.journal.synchronous=NORMAL"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 3, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("halted: ") and "Traceback" not in proc.stderr
    assert "HALTED (reconcile since" in last and "the broker" in last and "live-resolve" in last
    assert _state(halted)["risk_state"] == "HALTED"
    assert "HALTED" in proc.stdout  # the summary says so too


def test_clear_halt_is_refused_while_the_books_disagree(halted, checkpoint, capsys):
    assert live(capsys, checkpoint, halted)[0] == 3
    code, err = live(capsys, checkpoint, halted, "live.risk.clear_halt=true")
    assert code == 2 and err[-1].startswith("error: cannot clear HALTED: the journal and the broker still disagree")
    assert f"live-resolve state_dir={halted} adopt=broker|journal" in err[-1] and "Traceback" not in "\n".join(err)
    assert _state(halted)["risk_state"] == "HALTED" and "cleared" not in set(_events(halted)["kind"])


def test_resolve_adopting_the_broker_then_clear_halt(halted, checkpoint, capsys):
    assert live(capsys, checkpoint, halted)[0] == 3
    before = _state(halted)
    code, err = run_cli(capsys, "live-resolve", f"state_dir={halted}", "adopt=broker",
                        "reason=someone bought 1.5 USDT by hand on the account")
    assert code == 0, err
    state, book = _state(halted), _book(halted)
    assert (state["cash_krw"], state["position_usdt"]) == book  # the journal now holds what the broker holds
    assert state["risk_state"] == "HALTED"  # resolving is not clearing
    event = _events(halted).iloc[-1]
    assert event["kind"] == "resolve" and "adopt=broker by the operator: someone bought 1.5 USDT" in event["reason"]
    assert repr(before["position_usdt"]) in event["reason"] and repr(book[1]) in event["reason"]
    adjustments = read_table(halted / "journal.sqlite", "adjustments")
    assert len(adjustments) == 1 and adjustments["adopt"].iloc[0] == "broker"
    assert adjustments["usdt_delta"].iloc[0] == pytest.approx(book[1] - before["position_usdt"], abs=1e-12)

    code, err = live(capsys, checkpoint, halted, "live.risk.clear_halt=true")
    assert code == 0, err
    assert "cleared" in _events(halted)["kind"].tolist()
    assert _state(halted)["risk_state"] == "ACTIVE"
    # and the next plain start reconciles cleanly: the books agree, no new reconcile event
    n = len(_events(halted))
    assert live(capsys, checkpoint, halted)[0] == 0
    assert "reconcile" not in _events(halted)["kind"].tolist()[n:]
    state = _state(halted)
    assert (state["cash_krw"], state["position_usdt"]) == _book(halted)


def test_resolve_adopting_the_journal_rewrites_the_paper_book(halted, checkpoint, capsys):
    assert live(capsys, checkpoint, halted)[0] == 3
    code, err = run_cli(capsys, "live-resolve", f"state_dir={halted}", "adopt=journal",
                        "reason=the 1.5 USDT were a test transfer, already reversed at the bank")
    assert code == 0, err
    fills = read_table(halted / "journal.sqlite", "fills")
    state = _state(halted)
    booked = (state["initial_krw"] + fills["krw_delta"].sum(), fills["usdt_delta"].sum())
    assert _book(halted) == pytest.approx(booked, abs=1e-9)
    assert (state["cash_krw"], state["position_usdt"]) == pytest.approx(booked, abs=1e-9)
    assert read_table(halted / "journal.sqlite", "adjustments").empty  # the journal was right: nothing adjusted
    assert _events(halted).iloc[-1]["kind"] == "resolve"
    assert live(capsys, checkpoint, halted, "live.risk.clear_halt=true")[0] == 0
    assert _state(halted)["risk_state"] == "ACTIVE"


def test_resolve_refuses_without_a_reason_a_mismatch_or_while_a_session_runs(paper_session, halted, capsys):
    for args, fragment in ((["adopt=broker"], "needs reason"),
                           (["adopt=both", "reason=x"], "adopt='both'"),
                           (["adopt=broker", "reason=   "], "needs reason")):
        code, err = run_cli(capsys, "live-resolve", f"state_dir={halted}", *args)
        assert code == 2 and len(err) == 1 and fragment in err[0], err
    clean = halted.parent / "clean"
    shutil.copytree(paper_session, clean)
    code, err = run_cli(capsys, "live-resolve", f"state_dir={clean}", "adopt=broker", "reason=just checking")
    assert code == 2 and "nothing to resolve" in err[0], err
    import fcntl

    with open(halted / "journal.lock", "a+") as lock:  # a running session holds this lock
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, err = run_cli(capsys, "live-resolve", f"state_dir={halted}", "adopt=broker", "reason=x")
    assert code == 2 and "another live runner" in err[0], err


def test_clear_halt_after_a_daily_loss_is_refused_the_same_day(tmp_path):
    today = pd.Timestamp.now(tz="UTC").floor("D")
    closes = [1400, 1400, 1390, 1300, 1260, 1260]
    frame = price_frame(closes, [0.005, 0.015, 0.015, 0.015, 0.015, 0.015], start=str(today.tz_localize(None)))
    rule_runner(tmp_path, frame.iloc[:5], risk={"max_daily_loss": 0.05}).run()
    assert _state(tmp_path)["risk_state"] == "HALTED"
    with pytest.raises(UserError, match="the replay's day .* loss is .*over live.risk.max_daily_loss=0.05"):
        rule_runner(tmp_path, frame, risk={"max_daily_loss": 0.05, "clear_halt": True}).run()
    assert _state(tmp_path)["risk_state"] == "HALTED"
    rule_runner(tmp_path, frame, risk={"max_daily_loss": 0.5, "clear_halt": True}).run()  # a limit raised knowingly
    assert "cleared" in _events(tmp_path)["kind"].tolist()


def test_stop_on_halt_ends_the_session_at_the_halting_bar(tmp_path):
    kill = tmp_path / "KILL"
    frame = price_frame([1400] * 8, [0.005, 0.025] * 4)

    from kpremia.live.loop.callback import LiveCallback

    class Touch(LiveCallback):
        def on_bar_end(self, runner, decision):
            if decision.step == 3:
                kill.touch()

    runner = rule_runner(tmp_path, frame, risk={"kill_switch": str(kill), "stop_on_halt": True}, callbacks=[Touch()])
    state = runner.run()
    assert state.risk_state.value == "HALTED" and state.step == 4  # bar 4 halted (decided, no order), then it stopped
    decisions = read_table(tmp_path / "journal.sqlite", "decisions")
    assert len(decisions) == 4 and decisions["risk_state"].iloc[-1] == "HALTED"


def test_resolve_cancels_a_paper_order_the_journal_never_wrote(halted, checkpoint, capsys):
    assert live(capsys, checkpoint, halted)[0] == 3
    with sqlite3.connect(halted / "paper_exchange.sqlite") as conn:  # an order placed by someone else, still open
        conn.execute("INSERT INTO orders VALUES ('stray-order-1', 'buy', 1.0, 'open', '2024-01-01T00:00:00+00:00', "
                     "NULL)")
    conn.close()
    code, err = run_cli(capsys, "live-resolve", f"state_dir={halted}", "adopt=broker", "reason=a test order by hand")
    assert code == 0, err
    with sqlite3.connect(halted / "paper_exchange.sqlite") as conn:
        status = conn.execute("SELECT status FROM orders WHERE client_order_id = 'stray-order-1'").fetchone()[0]
    conn.close()
    assert status == "cancelled"  # it would otherwise fill at the next bar's open, behind the journal's back
    assert "cancelled at the paper broker: stray-order-1" in _events(halted)["reason"].iloc[-1]
    assert live(capsys, checkpoint, halted, "live.risk.clear_halt=true")[0] == 0
    assert _state(halted)["risk_state"] == "ACTIVE"
    state = _state(halted)
    assert (state["cash_krw"], state["position_usdt"]) == _book(halted)
