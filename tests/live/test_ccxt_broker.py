"""The ccxt broker against a REAL ccxt.upbit fed Upbit's private API responses.

Only the HTTP layer is replaced (tests/fixtures/ccxt/upbit_private.py): ccxt signs the
requests, builds the URLs, parses orders and balances and maps the errors.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "ccxt"))
from upbit_private import UpbitAccount  # noqa: E402

from kpremia.core.bars import DEFAULT_BAR  # noqa: E402
from kpremia.core.errors import UserError  # noqa: E402
from kpremia.data.exchange import create_exchange  # noqa: E402
from kpremia.data.market import ObservationBuilder  # noqa: E402
from kpremia.envs import execution  # noqa: E402
from kpremia.envs.execution import ExecutionRules  # noqa: E402
from kpremia.live.loop.journal import Journal, read_table  # noqa: E402
from kpremia.live.loop.policy import PremiumThresholdRule  # noqa: E402
from kpremia.live.loop.runner import LiveRunner, client_order_id  # noqa: E402
from kpremia.live.loop.state import LiveState  # noqa: E402
from kpremia.live.loop.types import OrderIntent, OrderStatus  # noqa: E402
from kpremia.live.venues.ccxt_broker import CcxtBroker  # noqa: E402
from kpremia.live.venues.feeds import ReplayFeed  # noqa: E402

API_KEY = "AKIAUPBITTESTKEY0123456789abcdef"
SECRET = "s3cr3t-UPBIT-0123456789abcdefghijklmnopqrstuv"
T0 = pd.Timestamp("2025-08-09T07:00", tz="UTC")


# Upbit's KRW market (env=upbit without the spread): 0.05 % fee in KRW on top of a bid, 5,000 KRW minimum
UPBIT_RULES = ExecutionRules(fee_rate=0.0005, fee_convention="krw_on_top", spread_krw=0.0, min_order_krw=5000.0)


def make_broker(account: UpbitAccount) -> CcxtBroker:
    exchange = account.attach(create_exchange("upbit", config={"apiKey": API_KEY, "secret": SECRET}))
    return CcxtBroker(exchange, "USDT/KRW", rules=UPBIT_RULES, backoff_s=0.0, sleep=lambda s: None)


def intent(side: str, *, cost_krw: float = 0.0, amount_usdt: float = 0.0, t: pd.Timestamp = T0) -> OrderIntent:
    return OrderIntent(client_order_id=client_order_id("abcdef123456", t, "USDT/KRW", side), bar_time=t,
                       symbol="USDT/KRW", side=side, target_weight=1.0 if side == "buy" else 0.0,
                       amount_usdt=amount_usdt, cost_krw=cost_krw, ref_price=1400.0)


def test_buy_leaves_room_for_upbit_fee_and_reports_fills():
    account = UpbitAccount()
    broker = make_broker(account)
    sized = execution.rebalance_one(1_000_000.0, 0.0, 1.0, 1400.0, UPBIT_RULES)  # all in, as the runner sizes it
    report = broker.submit(intent("buy", cost_krw=float(sized.notional_krw[0])))
    assert account.posts[0]["ord_type"] == "price" and account.posts[0]["identifier"] == report.client_order_id
    # KRW market buy: cost + fee must fit the cash
    assert float(account.posts[0]["price"]) * 1.0005 <= 1_000_000.0
    assert account.krw >= 0
    again = broker.fetch_order(report.client_order_id)
    assert again.status is OrderStatus.FILLED and len(again.fills) == 1
    fill = again.fills[0]
    assert fill.usdt_delta == pytest.approx(account.usdt)
    assert 1_000_000.0 + fill.krw_delta == pytest.approx(account.krw)
    assert broker.balance() == pytest.approx((account.krw, account.usdt))
    assert broker.fetch_order("kp-never-sent") is None


def test_timeout_after_acceptance_asks_instead_of_resending():
    account = UpbitAccount(faults=[("timeout_after_accept", 1.0)])
    broker = make_broker(account)
    report = broker.submit(intent("buy", cost_krw=500_000.0))
    assert len(account.posts) == 1, "a timeout after acceptance must not send a second order"
    assert report.status is OrderStatus.FILLED and report.fills
    assert any(m == "GET" and "identifier=" in u for m, u, _, _ in account.requests)


def test_rate_limited_send_is_retried_once_after_asking():
    account = UpbitAccount(faults=[("rate_limit", 1.0)])
    broker = make_broker(account)
    report = broker.submit(intent("buy", cost_krw=500_000.0))
    assert [p["identifier"] for p in account.posts] == [report.client_order_id] * 2
    assert len(account.orders) == 1 and report.status is OrderStatus.OPEN  # Upbit answers a POST with "wait"
    assert broker.fetch_order(report.client_order_id).status is OrderStatus.FILLED
    lookups = [u for m, u, _, _ in account.requests if m == "GET" and "/v1/order?" in u]
    assert len(lookups) == 2, "the broker must ask about the id between the 429 and the resend"


def test_below_minimum_is_refused_before_sending():
    account = UpbitAccount()
    report = make_broker(account).submit(intent("sell", amount_usdt=1.0))
    assert report.status is OrderStatus.REJECTED and "minimum" in report.error and not account.posts


def _runner(tmp_path, account, frame, *, buy=0.0135, sell=0.0145):
    rule = PremiumThresholdRule(buy_threshold=buy, sell_threshold=sell)
    journal = Journal(tmp_path / "journal.sqlite", synchronous="NORMAL")
    krw, usdt = account.krw, account.usdt
    return LiveRunner(feed=ReplayFeed(frame, start=frame.index[0]), broker=make_broker(account), policy=rule,
                      journal=journal, builder=ObservationBuilder(), callbacks=[],
                      initial_state=LiveState(run_id="abcdef123456", symbol="USDT/KRW", initial_krw=krw,
                                              cash_krw=krw, position_usdt=usdt),
                      rules=UPBIT_RULES,
                      fingerprint=rule.fingerprint())


def _frame(premiums) -> pd.DataFrame:
    n = len(premiums)
    index = pd.date_range(T0, periods=n, freq=DEFAULT_BAR, tz="UTC")
    close = [1400.0] * n
    return pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": [1.0] * n,
                         "fx": [1400.0 / (1 + p) for p in premiums], "premium": premiums}, index=index)


def test_cancelled_after_partial_fill_is_booked_once_and_never_resent(tmp_path):
    account = UpbitAccount(faults=[("cancel_partial", 0.4)])
    frame = _frame([0.010, 0.013, 0.013, 0.013])  # buy at every bar: the rule wants all-in
    _runner(tmp_path, account, frame).run()
    orders = read_table(tmp_path / "journal.sqlite", "orders")
    fills = read_table(tmp_path / "journal.sqlite", "fills")
    assert orders["status"].iloc[0] == "cancelled" and orders["filled_usdt"].iloc[0] > 0
    first = orders["client_order_id"].iloc[0]
    assert [p["identifier"] for p in account.posts].count(first) == 1, "no second order for the same decision"
    assert (fills["client_order_id"] == first).sum() == 1
    # the next bars' decisions buy the rest with their own ids; the books agree
    sent = orders[orders["status"] != "rejected"]
    assert orders["decision_id"].is_unique and len(account.posts) == len(sent) == 2
    assert orders.loc[orders["status"] == "rejected", "error"].str.contains("minimum").all()  # dust, never sent
    state = read_table(tmp_path / "journal.sqlite", "state")
    import json

    s = json.loads(state["state_json"].iloc[0])
    assert s["position_usdt"] == pytest.approx(account.usdt, rel=1e-12)
    assert s["cash_krw"] == pytest.approx(account.krw, rel=1e-12)
    assert s["risk_state"] == "ACTIVE"


def test_no_key_material_in_journal_or_logs(tmp_path, caplog):
    account = UpbitAccount(faults=[("rate_limit", 1.0), ("timeout_after_accept", 1.0)])
    frame = _frame([0.010, 0.013, 0.020, 0.010, 0.020])
    with caplog.at_level(logging.DEBUG):
        _runner(tmp_path, account, frame).run()
    assert len(read_table(tmp_path / "journal.sqlite", "fills")) >= 3
    assert any("Authorization" in (h or {}) for _, _, h, _ in account.requests), "requests were signed"
    blobs = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    text = caplog.text
    for secret in (API_KEY, SECRET):
        assert secret.encode() not in blobs and secret not in text


def test_real_orders_refused_without_flag_and_keys(monkeypatch):
    from kpremia.run.live_config import LiveConfig

    live = LiveConfig.from_dict({"allow_real_orders": False, "ccxt": {"exchange": "upbit"}})
    rules = UPBIT_RULES
    assert CcxtBroker.is_paper is False
    with pytest.raises(UserError, match="allow_real_orders=true"):
        CcxtBroker.from_config(live, rules)
    live = LiveConfig.from_dict({"allow_real_orders": True, "ccxt": {"exchange": "upbit"}})
    monkeypatch.delenv("KPREMIA_API_KEY", raising=False)
    monkeypatch.delenv("KPREMIA_API_SECRET", raising=False)
    with pytest.raises(UserError, match="KPREMIA_API_KEY") as err:
        CcxtBroker.from_config(live, rules)
    assert "KPREMIA_API_SECRET" in str(err.value)
    monkeypatch.setenv("KPREMIA_API_KEY", API_KEY)
    monkeypatch.setenv("KPREMIA_API_SECRET", SECRET)
    live = LiveConfig.from_dict({"allow_real_orders": True, "sandbox": True, "ccxt": {"exchange": "upbit"}})
    with pytest.raises(UserError, match="sandbox") as err:  # Upbit has no testnet in ccxt
        CcxtBroker.from_config(live, rules, exchange_factory=lambda i, config: UpbitAccount().attach(
            create_exchange(i, config=config)))
    assert API_KEY not in str(err.value) and SECRET not in str(err.value)


def test_cli_refuses_real_orders_in_one_line(live_cli, tmp_path):
    proc = live_cli("live.policy=premium_threshold", "live.rule.buy_threshold=0.01", "live.rule.sell_threshold=0.02",
                    "live.broker=ccxt", f"live.state_dir={tmp_path / 's'}", "data.days=30")
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "allow_real_orders=true" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "s" / "journal.sqlite").exists()
