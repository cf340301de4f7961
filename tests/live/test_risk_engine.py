"""The risk engine is in the order path: every order passes it, it alone changes the risk state, it is always on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import kpremia
from kpremia.core.errors import UserError
from kpremia.live.loop.callback import LiveCallback
from kpremia.live.loop.journal import read_table
from kpremia.live.ops.halt import risk_cause
from tests.live.conftest import price_frame, rule_runner

LOW, MID, HIGH = 0.005, 0.015, 0.025  # premiums: buy, hold, sell for the 0.01 / 0.02 rule


def _table(state_dir: Path, name: str):
    return read_table(state_dir / "journal.sqlite", name)


def test_a_callback_cannot_route_an_order_around_the_limits(tmp_path):
    """The engine checks after every callback: an order a callback makes passes the same limits."""

    class Operator(LiveCallback):  # a callback that turns every hold into an all-in buy
        def on_decision(self, runner, decision):
            if decision.order is None and decision.step == 2:
                decision.target_weight = 1.0
                decision.order = runner.make_order(decision)

    frame = price_frame([1400] * 4, [MID, MID, MID, MID])  # the rule itself only holds
    rule_runner(tmp_path, frame, risk={"max_order_krw": 500_000}, callbacks=[Operator()]).run()
    assert _table(tmp_path, "orders").empty
    events = _table(tmp_path, "risk_events")
    assert events["kind"].tolist() == ["max_order"] and events["step"].tolist() == [2]


def test_the_gate_stops_an_order_halted_between_its_decision_and_its_send(tmp_path):
    """Halted after the intent was journaled (an operator's kill between commit and send): it is never sent."""

    class HaltAfterIntent(LiveCallback):
        def on_intent(self, runner, decision):
            if decision.order is not None:
                runner.risk.halt(runner, "operator", "halted by hand")

    frame = price_frame([1400] * 3, [LOW, MID, MID])
    rule_runner(tmp_path, frame, callbacks=[HaltAfterIntent()]).run()
    orders = _table(tmp_path, "orders")
    assert orders["status"].tolist() == ["rejected"] and "risk engine" in orders["error"].iloc[0]
    assert read_table(tmp_path / "paper_exchange.sqlite", "orders").empty, "the broker never saw it"
    assert _table(tmp_path, "risk_events")["kind"].tolist() == ["operator", "gate"]
    assert _table(tmp_path, "fills").empty


def test_only_the_risk_engine_assigns_the_risk_state():
    root = Path(kpremia.__file__).parent
    writers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                     if re.search(r"\.risk_state\s*=(?!=)", p.read_text(encoding="utf-8")))
    assert writers == ["live/loop/risk.py"], writers


def test_since_is_the_new_halts_not_an_earlier_one():
    def ev(i, kind, before, after):
        return {"created_at": f"t{i}", "bar_time": f"b{i}", "kind": kind, "state_before": before,
                "state_after": after, "reason": kind}

    events = [ev(1, "daily_loss", "ACTIVE", "HALTED"), ev(2, "halted", "HALTED", "HALTED"),
              ev(3, "reconcile", "HALTED", "HALTED"), ev(4, "halted", "HALTED", "HALTED"),
              ev(5, "reconcile", "HALTED", "HALTED")]  # a restart that still finds the books apart
    cause = risk_cause(events, "HALTED")
    assert cause["kind"] == "reconcile" and cause["since"] == "t3" and cause["time"] == "t5"
    assert risk_cause(events[:2], "HALTED")["since"] == "t1"


def test_clear_halt_in_a_replay_compares_with_the_replays_day(tmp_path):
    """A replay of 2025 bars is at its last bar's day: clearing a daily-loss halt that same day is refused."""
    closes = [1400, 1400, 1390, 1300, 1260, 1260]
    frame = price_frame(closes, [LOW, MID, MID, MID, MID, MID], start="2025-03-03T00:00")
    rule_runner(tmp_path, frame.iloc[:5], risk={"max_daily_loss": 0.05}).run()
    with pytest.raises(UserError, match=r"the replay's day \(2025-03-03 UTC\) loss is .* over"):
        rule_runner(tmp_path, frame, risk={"max_daily_loss": 0.05, "clear_halt": True}).run()
