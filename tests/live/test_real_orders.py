"""Real money needs every guard: a broker says whether it is paper, and real orders refuse to start
without the flag, the risk callback and its daily-loss and position limits (one line, exit 2)."""

from __future__ import annotations

import pytest

from kpremia.core.errors import UserError
from kpremia.core.registry import LIVE_BROKERS
from kpremia.run.live_config import LiveConfig
from kpremia.live.loop.build import check_real_orders

LIMITS = {"max_daily_loss": 0.03, "max_position_krw": 500_000.0}


class _RealBrokerCalledPaper:
    """A real broker whatever its name: the guards read ``is_paper``, never the name."""

    name = "paper"
    is_paper = False
    checked: list[str] = []

    @classmethod
    def check_config(cls, live: LiveConfig) -> None:
        cls.checked.append("keys")


def test_brokers_declare_what_they_are() -> None:
    assert LIVE_BROKERS.get("paper").is_paper is True
    assert LIVE_BROKERS.get("ccxt").is_paper is False


def test_real_orders_need_the_flag_and_both_limits() -> None:
    broker = _RealBrokerCalledPaper
    with pytest.raises(UserError, match="allow_real_orders=true"):
        check_real_orders(LiveConfig.from_dict({"risk": LIMITS}), broker)
    with pytest.raises(UserError, match=r"live\.risk\.max_daily_loss and live\.risk\.max_position_krw are not set"):
        check_real_orders(LiveConfig.from_dict({"allow_real_orders": True}), broker)
    with pytest.raises(UserError, match=r"live\.risk\.max_position_krw is not set"):
        check_real_orders(LiveConfig.from_dict({"allow_real_orders": True, "risk": {"max_daily_loss": 0.03}}),
                          broker)
    with pytest.raises(UserError, match=r"the risk engine is always on"):  # it cannot be switched off
        LiveConfig.from_dict({"allow_real_orders": True, "risk": LIMITS,
                              "callbacks": {**LiveConfig().callbacks, "risk": None}})
    assert broker.checked == []  # nothing reached the broker's own checks
    check_real_orders(LiveConfig.from_dict({"allow_real_orders": True, "risk": LIMITS}), broker)
    assert broker.checked == ["keys"]  # every guard passed: then the broker's own (API keys)


def test_paper_needs_none_of_them() -> None:
    check_real_orders(LiveConfig(), LIVE_BROKERS.get("paper"))


def test_cli_refuses_real_orders_without_risk_limits_in_one_line(live_cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KPREMIA_API_KEY", "k")
    monkeypatch.setenv("KPREMIA_API_SECRET", "s")
    args = ["live.policy=premium_threshold", "live.rule.buy_threshold=0.01", "live.rule.sell_threshold=0.02",
            "live.broker=ccxt", "live.allow_real_orders=true", f"live.state_dir={tmp_path / 's'}", "data.days=30"]
    for extra, needle in ((["live.risk.max_daily_loss=0.03"], "live.risk.max_position_krw is not set"),
                          (["live.risk.max_daily_loss=0.03", "live.risk.max_position_krw=500000",
                            "+live.callbacks.risk=null"], "the risk engine is always on")):
        proc = live_cli(*args, *extra)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "s").exists()  # refused before anything was written
