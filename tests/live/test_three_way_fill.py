"""The same orders give the same fills in the simulator, the paper broker and the ccxt broker (to the KRW).

The rules are ``env=upbit``'s, composed by Hydra as a run gets them (0.05 % fee charged in KRW on
top of a bid, 0.5 KRW spread and tick, 5,000 KRW minimum).  The simulator is
:func:`kpremia.envs.execution.rebalance`; the paper broker is the live one with its own book; the
ccxt broker is a REAL ``ccxt.upbit`` fed Upbit's recorded private-API responses
(tests/fixtures/ccxt/upbit_private.py), filling at the simulator's fill price (the ask or the bid,
on the tick), so what is compared is how each side turns an order into KRW and USDT.  Orders are
sized by the live runner's own sizing (:func:`kpremia.live.loop.runner.size_order`) at a close equal to
the next open.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "ccxt"))
from upbit_private import UpbitAccount  # noqa: E402

from kpremia.data.exchange import create_exchange  # noqa: E402
from kpremia.envs import execution  # noqa: E402
from kpremia.envs.config import EnvConfig  # noqa: E402
from kpremia.envs.execution import ExecutionRules  # noqa: E402
from kpremia.live.loop.runner import size_order  # noqa: E402
from kpremia.live.loop.state import LiveState  # noqa: E402
from kpremia.live.loop.types import Bar, OrderStatus  # noqa: E402
from kpremia.live.venues.ccxt_broker import CcxtBroker  # noqa: E402
from kpremia.live.venues.paper import PaperBroker  # noqa: E402

T0 = pd.Timestamp("2025-08-09T07:00", tz="UTC")
START_KRW = 1_000_000.0
# (mid price at the decision's close = the next open, target USDT weight): buy part, sell part, buy all in
STEPS = [(1400.3, 0.6), (1412.7, 0.2), (1395.1, 1.0), (1388.8, 0.0)]


def _bar(i: int, price: float) -> Bar:
    return Bar(time=T0 + pd.Timedelta(minutes=15 * i), open=price, high=price, low=price, close=price, volume=1.0,
               fx=1390.0, premium=price / 1390.0 - 1.0)


def _state(krw: float, usdt: float) -> LiveState:
    return LiveState(run_id="abcdef123456", symbol="USDT/KRW", initial_krw=START_KRW, cash_krw=krw,
                     position_usdt=usdt)


def _three_ways(tmp_path: Path, rules: ExecutionRules, exchange_fee_on_top: bool = True):
    """Run STEPS through the three; yields (sim, paper, ccxt) (krw, usdt) after each step."""
    sim = (START_KRW, 0.0)
    paper = PaperBroker(tmp_path / "paper.sqlite", initial_krw=START_KRW, rules=rules)
    account = UpbitAccount(krw=START_KRW, usdt=0.0, fee_rate=rules.fee_rate)
    broker = CcxtBroker(account.attach(create_exchange("upbit", config={"apiKey": "k" * 32, "secret": "s" * 40})),
                        "USDT/KRW", rules=rules, backoff_s=0.0, sleep=lambda s: None)
    booked = _state(START_KRW, 0.0)
    out = []
    for i, (price, weight) in enumerate(STEPS):
        decided, opened = _bar(2 * i, price), _bar(2 * i + 1, price)
        fill = execution.rebalance_one(*sim, weight, price, rules)
        assert bool(fill.traded[0])
        sim = (float(fill.krw[0]), float(fill.usdt[0]))

        krw, usdt = paper.balance()
        paper.submit(size_order(_state(krw, usdt), weight, decided, rules))
        paper.observe(opened)

        intent = size_order(booked, weight, decided, rules)
        account.price = float(fill.fill_price[0])  # the exchange fills at the ask / bid the simulator models
        broker.submit(intent)  # Upbit answers a POST with "wait"; the runner asks again on the next bar
        report = broker.fetch_order(intent.client_order_id)
        assert report.status is OrderStatus.FILLED, report.error
        for f in report.fills:
            booked.apply(f)
        out.append((sim, paper.balance(), (booked.cash_krw, booked.position_usdt), (account.krw, account.usdt)))
    paper.close()
    return out


def test_simulator_paper_and_ccxt_fill_the_same_orders_the_same(compose_cfg, tmp_path):
    rules = EnvConfig.of(compose_cfg("env=upbit")["env"]).execution
    assert rules.fee_convention == "krw_on_top" and rules.fee_rate == 0.0005 and rules.min_order_krw == 5000.0
    for step, (sim, paper, ccxt_booked, exchange) in enumerate(_three_ways(tmp_path, rules)):
        price = STEPS[step][0]
        assert paper == sim, f"step {step}: the paper broker is the simulator"  # exactly: the same function
        assert ccxt_booked == pytest.approx(exchange, rel=1e-12), "the journal books what the exchange holds"
        # the ccxt order's KRW amount is whole KRW (floored): at most 1 KRW apart, in cash and in USDT value
        assert abs(ccxt_booked[0] - sim[0]) <= 1.0, f"step {step}: KRW {ccxt_booked[0]} vs {sim[0]}"
        assert abs(ccxt_booked[1] - sim[1]) * price <= 1.0, f"step {step}: USDT {ccxt_booked[1]} vs {sim[1]}"
    assert sim[1] == 0.0 and ccxt_booked[1] == pytest.approx(0.0, abs=1e-8)  # dust below the 8-decimal amount step


def test_a_fee_convention_other_than_the_exchanges_is_caught(tmp_path):
    """The control: sizing Upbit's orders with fees taken from what is received misses by the fee (> 1 KRW)."""
    rules = ExecutionRules(fee_rate=0.0005, spread_krw=0.5, tick_size_krw=0.5, min_order_krw=5000.0)
    sim, _, ccxt_booked, _ = _three_ways(tmp_path, rules)[0]
    assert abs(ccxt_booked[0] - sim[0]) > 100.0  # ~300 KRW of fee charged on top of a 600,000 KRW buy
