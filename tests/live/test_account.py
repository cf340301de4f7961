"""Account: the one account model of the live side (value, weight, paper fills booked by additions)."""

from __future__ import annotations

import math

import pytest

from kpremia.envs.execution import ExecutionRules
from kpremia.live.loop.account import Account
from kpremia.live.loop.state import LiveState


def test_value_and_weight_by_hand():
    a = Account(600_000.0, 300.0)
    assert a.value(1_400.0) == 600_000.0 + 420_000.0
    assert a.weight(1_400.0) == pytest.approx(420_000.0 / 1_020_000.0, rel=1e-15)
    flat = Account(1e6)
    assert flat.value(math.nan) == 1e6 and flat.weight(math.nan) == 0.0  # no position: no price needed


def test_the_runner_state_is_an_account_marked_at_its_last_close():
    s = LiveState(run_id="r", symbol="USDT/KRW", initial_krw=1e6, cash_krw=600_000.0, position_usdt=300.0,
                  last_close=1_400.0)
    assert s.equity() == Account(600_000.0, 300.0).value(1_400.0) and s.equity(1_500.0) == 1_050_000.0
    assert s.weight() == Account(600_000.0, 300.0).weight(1_400.0)
    assert LiveState.from_row(s.to_row()) == s


def test_a_paper_fill_is_booked_by_the_additions_it_reports():
    rules = ExecutionRules(fee_rate=0.001, min_order_krw=5_000.0)
    a = Account(1_000_000.0)
    fill = a.rebalance(0.5, 1_400.0, rules, "cid")
    assert fill is not None and fill.client_order_id == "cid" and fill.usdt_delta > 0
    assert a.cash_krw == 1_000_000.0 + fill.krw_delta and a.position_usdt == fill.usdt_delta
    # bought at the ask (half the 0.5 KRW spread above 1,400); the KRW paid is the USDT at that price plus the fee,
    # and the fee is 0.1 % of the KRW paid
    assert fill.price == 1_400.25
    assert -fill.krw_delta == pytest.approx(fill.usdt_delta * fill.price + fill.fee_krw, rel=1e-12)
    assert fill.fee_krw == pytest.approx(0.001 * -fill.krw_delta, rel=1e-12)
    assert a.weight(1_400.0) == pytest.approx(0.5, abs=1e-3)
    assert a.rebalance(a.weight(1_400.0), 1_400.0, rules) is None  # at the target: nothing trades, nothing booked
