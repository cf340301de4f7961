"""Risk limits stop trading, every refusal is journaled, and HALTED survives a restart."""

from __future__ import annotations

import json
import sqlite3

import pytest

from kpremia.core.errors import UserError
from kpremia.live.loop.journal import read_table
from tests.live.conftest import price_frame, rule_runner

LOW, MID, HIGH = 0.005, 0.015, 0.025  # premiums: buy, hold, sell for the 0.01 / 0.02 rule


def _journal(state_dir):
    path = state_dir / "journal.sqlite"
    return {t: read_table(path, t) for t in ("decisions", "orders", "risk_events", "state")}


def test_daily_loss_halts_and_halted_survives_restart(tmp_path):
    # buy at bar 0 (fills at bar 1's open = 1400), then the price falls 10 %
    closes = [1400, 1400, 1390, 1300, 1260, 1260, 1260, 1260]
    premiums = [LOW, MID, MID, MID, MID, HIGH, LOW, HIGH]
    frame = price_frame(closes, premiums)
    rule_runner(tmp_path, frame.iloc[:6], risk={"max_daily_loss": 0.05}).run()
    j = _journal(tmp_path)
    events = j["risk_events"]
    # the breach (equity 1300/1400 - 1 = -7.2 % at bar 3's close, step 4), then the refused sell at step 6
    assert list(events["kind"]) == ["daily_loss", "halted"] and events["step"].tolist() == [4, 6]
    assert (events["state_after"] == "HALTED").all()
    d = j["decisions"]
    assert d["risk_state"].iloc[-1] == "HALTED"
    assert d["target_weight"].iloc[5] != d["target_weight"].iloc[5]  # NaN: the sell signal was refused
    assert "halted" in d["reason"].iloc[5]
    assert len(j["orders"]) == 1  # only the first buy

    # restart: still HALTED, no orders even on clear signals
    rule_runner(tmp_path, frame, risk={"max_daily_loss": 0.05}).run()
    j = _journal(tmp_path)
    assert json.loads(j["state"]["state_json"].iloc[0])["risk_state"] == "HALTED"
    assert len(j["orders"]) == 1 and len(j["decisions"]) == len(frame)

    # an operator clears it on a start: journaled, trading resumes
    rule_runner(tmp_path, price_frame(closes + [1260, 1260], premiums + [HIGH, HIGH]),
                risk={"max_daily_loss": 0.5, "clear_halt": True}).run()
    j = _journal(tmp_path)
    assert list(j["risk_events"]["kind"])[-1] == "cleared"
    assert j["orders"]["side"].tolist() == ["buy", "sell"]


def test_kill_switch_file_halts_at_the_next_bar(tmp_path):
    kill = tmp_path / "KILL"
    frame = price_frame([1400] * 6, [LOW, HIGH, LOW, HIGH, LOW, HIGH])

    from kpremia.live.loop.callback import LiveCallback

    class Touch(LiveCallback):
        def on_bar_end(self, runner, decision):
            if decision.step == 2:
                kill.touch()

    rule_runner(tmp_path, frame, risk={"kill_switch": str(kill)}, callbacks=[Touch()]).run()
    j = _journal(tmp_path)
    assert j["risk_events"]["kind"].tolist()[0] == "kill_switch"
    assert set(j["risk_events"]["kind"].tolist()[1:]) <= {"halted"}
    assert len(j["orders"]) == 2 and j["decisions"]["risk_state"].tolist()[2:] == ["HALTED"] * 4
    with pytest.raises(UserError, match="kill switch"):
        rule_runner(tmp_path, frame, risk={"kill_switch": str(kill), "clear_halt": True}).run()


def test_order_and_position_limits_refuse_with_reasons(tmp_path):
    frame = price_frame([1400] * 4, [LOW, LOW, HIGH, LOW])
    rule_runner(tmp_path, frame, risk={"max_order_krw": 500_000}).run()
    j = _journal(tmp_path)
    assert j["orders"].empty
    assert set(j["risk_events"]["kind"]) == {"max_order"} and (j["risk_events"]["state_after"] == "ACTIVE").all()
    assert j["risk_events"]["reason"].str.contains("500000 KRW limit").all()

    other = tmp_path / "b"
    other.mkdir()
    rule_runner(other, frame, risk={"max_position_krw": 100_000}).run()
    assert set(_journal(other)["risk_events"]["kind"]) == {"max_position"}


def test_cooldown_after_a_losing_round_trip_only_allows_reducing(tmp_path):
    # buy at 1400 (fill bar 1 open), sell at 1300 (fill bar 3 open): a loss -> REDUCING for 3 bars
    closes = [1400, 1400, 1300, 1300, 1300, 1300, 1300, 1300, 1300]
    premiums = [LOW, MID, HIGH, LOW, LOW, LOW, LOW, MID, MID]
    rule_runner(tmp_path, price_frame(closes, premiums), risk={"cooldown_bars": 3}).run()
    j = _journal(tmp_path)
    kinds = j["risk_events"]["kind"].tolist()
    assert kinds[0] == "cooldown" and "cooldown_end" in kinds and "reducing" in kinds
    d = j["decisions"]
    # decisions at steps 4-6 (bars 3-5) wanted to buy and were refused; bar 6 buys again after the cooldown
    assert d["reason"].iloc[3].startswith("reducing") and j["orders"]["side"].tolist() == ["buy", "sell", "buy"]


def test_unexplained_broker_position_halts_on_start(tmp_path):
    frame = price_frame([1400] * 6, [LOW, MID, MID, MID, MID, MID])
    rule_runner(tmp_path, frame.iloc[:3]).run()
    with sqlite3.connect(tmp_path / "paper_exchange.sqlite") as conn:  # someone traded on the account
        conn.execute("UPDATE account SET usdt = usdt + 1.5")
    rule_runner(tmp_path, frame).run()
    j = _journal(tmp_path)
    event = j["risk_events"].iloc[-1]
    assert event["kind"] == "reconcile" and event["state_after"] == "HALTED" and "the broker" in event["reason"]
    assert j["decisions"]["risk_state"].iloc[-1] == "HALTED"
