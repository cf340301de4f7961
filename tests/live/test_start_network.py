"""Real-money configuration is refused before any network call; no network at start is one line, exit 2, no files.

The exchanges are REAL ccxt classes pointed at a host that cannot resolve (``.invalid``, RFC 2606), so the
failure is ccxt's own, wherever the tests run (with or without a network).
"""

from __future__ import annotations

import pytest

from kpremia.data import exchange as data_exchange
from kpremia.live.venues import ccxt_broker, ccxt_feed

from .conftest import run_cli

RULE = ("live.policy=premium_threshold", "live.rule.buy_threshold=0.01", "live.rule.sell_threshold=0.02",
        "data.days=30")
REAL = ("live.broker=ccxt", "env=upbit", "live.allow_real_orders=true", "live.risk.max_daily_loss=0.03",
        "live.risk.max_position_krw=500000")


@pytest.fixture
def exchanges(monkeypatch):
    """Every exchange the live command makes is a real ccxt class whose host does not resolve; returns their ids."""
    made: list[str] = []

    def unreachable(exchange_id, *, rate_limit_ms=None, config=None):
        made.append(exchange_id)
        return data_exchange.create_exchange(exchange_id, rate_limit_ms=rate_limit_ms,
                                             config={**(config or {}), "hostname": "api.upbit.invalid"})

    monkeypatch.setattr(ccxt_feed, "create_exchange", unreachable)
    monkeypatch.setattr(ccxt_broker, "create_exchange", unreachable)
    monkeypatch.setenv("KPREMIA_API_KEY", "k" * 32)
    monkeypatch.setenv("KPREMIA_API_SECRET", "s" * 40)
    return made


def _one_line(code: int, err: list[str], *needles: str) -> str:
    assert code == 2, err
    assert len(err) == 1 and "Traceback" not in err[0], err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def test_ccxt_feed_without_network_is_one_line_and_writes_nothing(capsys, tmp_path, exchanges):
    state_dir = tmp_path / "s"
    code, err = run_cli(capsys, "live", *RULE, "live.feed=ccxt", "live.ccxt.fx_rate=1380", f"live.state_dir={state_dir}")
    _one_line(code, err, "cannot reach the ccxt feed", "nothing was written")
    assert exchanges == ["upbit"] and not state_dir.exists()


def test_ccxt_broker_without_network_is_one_line_and_creates_no_journal(capsys, tmp_path, exchanges):
    state_dir = tmp_path / "s"
    code, err = run_cli(capsys, "live", *RULE, *REAL, f"live.state_dir={state_dir}")
    _one_line(code, err, "cannot reach the ccxt broker (upbit)", "nothing was written")
    assert exchanges == ["upbit"] and not state_dir.exists()
    assert "k" * 32 not in err[0] and "s" * 40 not in err[0]


@pytest.mark.parametrize("args, needle", [
    (("live.allow_real_orders=false",), "allow_real_orders=true"),
    (("live.risk.max_daily_loss=0.99",), "max_daily_loss=0.99 is no limit"),
    (("live.risk.max_position_krw=1e12",), "max_position_krw=1e+12 is no limit"),
    (("live.risk.max_order_krw=600000",), "max_order_krw=600000 is larger"),
    (("live.learn.enabled=true",), "live.learn.allow_real_orders=true"),
    (("env.fee_convention=from_received",), "env.fee_convention=krw_on_top"),
])
def test_real_order_configuration_is_refused_before_any_network_call(capsys, tmp_path, exchanges, args, needle):
    state_dir = tmp_path / "s"
    code, err = run_cli(capsys, "live", *RULE, *REAL, *args, f"live.state_dir={state_dir}")
    _one_line(code, err, needle)
    assert exchanges == [], "no exchange may be contacted (or even made) before the configuration is accepted"
    assert not state_dir.exists()
