"""``/status`` does the same work on a long journal as on a short one (counted in SQLite VM steps, not time)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from kpremia.live.http.status import StatusSource
from kpremia.live.loop.journal import Journal
from kpremia.live.loop.state import LiveState


def _journal(state_dir: Path, n: int) -> None:
    """A real journal (the runner's schema) holding ``n`` decided bars, an order every 10th."""
    state_dir.mkdir()
    journal = Journal(state_dir / "journal.sqlite", synchronous="OFF")
    journal.set_meta({"run_id": "r", "symbol": "USDT/KRW", "initial_krw": "1000000.0", "policy": "p"})
    journal.init_state(LiveState(run_id="r", symbol="USDT/KRW", initial_krw=1e6, cash_krw=1e6, step=n))
    times = pd.date_range("2024-01-01", periods=n, freq="15min", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S+00:00")
    with journal.transaction() as c:
        c.executemany("INSERT INTO decisions(bar_time, step, session, open, close, fx, premium, action, action_name, "
                      "target_weight, reason, risk_state, cash_krw, position_usdt, equity_krw, latency_ms, "
                      "client_order_id, created_at) VALUES (?,?,1,1400,1400,1380,0.0145,?,?,?,'policy','ACTIVE',"
                      "1e6,0,1e6,1.0,?,?)",
                      [(t, i + 1, i % 2 if i % 4 == 0 else None, "buy" if i % 4 == 0 else None,
                        1.0 if i % 4 == 0 else None, f"kp-{i}" if i % 10 == 0 else None, t)
                       for i, t in enumerate(times)])
        c.executemany("INSERT INTO orders(client_order_id, decision_id, bar_time, symbol, side, target_weight, "
                      "amount_usdt, cost_krw, ref_price, status, created_at, updated_at) "
                      "VALUES (?,?,?,'USDT/KRW','buy',1,1,1400,1400,'filled',?,?)",
                      [(f"kp-{i}", i + 1, times[i], times[i], times[i]) for i in range(0, n, 10)])
    journal.close()


class CountingSource(StatusSource):
    """The real StatusSource, its connections counting the SQLite virtual machine's steps."""

    steps = 0

    @contextmanager
    def _connect(self, path: Path) -> Iterator[sqlite3.Connection]:
        def tick() -> int:
            CountingSource.steps += 100
            return 0

        with super()._connect(path) as conn:
            conn.set_progress_handler(tick, 100)
            yield conn


def _work(state_dir: Path) -> tuple[int, dict]:
    CountingSource.steps = 0
    figures = CountingSource(state_dir).figures()
    return CountingSource.steps, figures


def test_status_work_does_not_grow_with_the_journal(tmp_path):
    _journal(tmp_path / "short", 1_000)
    _journal(tmp_path / "long", 20_000)
    short, fs = _work(tmp_path / "short")
    long, fl = _work(tmp_path / "long")
    assert fs["bars"] == 1_000 and fl["bars"] == 20_000  # the figures are still the whole journal's
    assert fs["orders"] == 100 and fl["orders"] == 2_000
    assert len(fl["series"]["time"]) == 500 and fl["series"]["time"][-1] == fl["last_bar_time"]
    assert len(fl["recent"]) == 12 and all(r["action"] == "buy" for r in fl["recent"])
    assert long < 1.5 * short, f"{long} VM steps on 20,000 rows vs {short} on 1,000"
