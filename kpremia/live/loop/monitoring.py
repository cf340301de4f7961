"""Built-in callbacks that watch a run: ``logging`` (log lines) and ``metrics`` (metrics.csv).

Both only read the runner; neither is needed for a restart to be exact (their
state is small and saved with every decision anyway).
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

from kpremia.core.bars import DEFAULT_BAR, bars_setting
from kpremia.core.registry import LIVE_CALLBACKS
from kpremia.live.loop.callback import LiveCallback
from kpremia.live.loop.types import Decision, FillReport, OrderIntent, OrderReport

log = logging.getLogger("kpremia.live")


@LIVE_CALLBACKS.register("logging")
class LoggingCallback(LiveCallback):
    """Logs every order and fill and a status line every ``every`` (the runner logs risk events).

    ``every`` is a duration (``1d``: a status line per day of bars, whatever the bar size) or a
    number of bars.
    """

    def __init__(self, every: Any = "1d") -> None:
        self.every = every
        self.every_bars = bars_setting(every, DEFAULT_BAR, "live.callbacks.logging.every")  # checked now

    def setup(self, runner: Any) -> None:
        self.every_bars = bars_setting(self.every, runner.bar, "live.callbacks.logging.every")

    def on_start(self, runner: Any) -> None:
        log.info("live: policy %s, feed %s, broker %s, state %s", runner.policy.name, type(runner.feed).__name__,
                 runner.broker.name, runner.state.risk_state.value)

    def on_bar_end(self, runner: Any, decision: Decision) -> None:
        if decision.step % self.every_bars == 0:
            s = runner.state
            log.info("bar %s step %d: equity %.0f KRW, position %.4f USDT, %s, decision %s (%.2f ms)",
                     decision.bar.time, s.step, s.equity(), s.position_usdt, s.risk_state.value,
                     decision.action_name or decision.reason, decision.latency_ms)

    def on_order(self, runner: Any, order: OrderIntent, report: OrderReport) -> None:
        log.info("order %s %s target %.3f: %s", order.client_order_id, order.side, order.target_weight,
                 report.status.value)

    def on_fill(self, runner: Any, order_id: str, fill: FillReport) -> None:
        log.info("fill %s: %+.6f USDT at %.2f, fee %.2f KRW", order_id, fill.usdt_delta, fill.price, fill.fee_krw)

    def on_stop(self, runner: Any) -> None:
        s = runner.state
        log.info("live stopped at step %d (%d bars this session): equity %.0f KRW, risk %s", s.step,
                 runner.bars_this_session, s.equity(), s.risk_state.value)


@LIVE_CALLBACKS.register("metrics")
class MetricsCallback(LiveCallback):
    """Appends ``live/*`` metrics per bar to ``<state_dir>/metrics.csv`` (equity, return, drawdown, fees, fills)."""

    FIELDS = ("step", "bar_time", "live/equity_krw", "live/return", "live/max_drawdown", "live/position_usdt",
              "live/fees_krw", "live/fills", "live/latency_ms", "live/risk_state")

    def __init__(self, path: str | None = None) -> None:
        self.path = Path(path) if path else None
        self.peak = -math.inf
        self.max_drawdown = 0.0
        self.fees_krw = 0.0
        self.fills = 0

    def setup(self, runner: Any) -> None:
        if self.path is None:
            self.path = runner.journal.path.parent / "metrics.csv"

    def on_fill(self, runner: Any, order_id: str, fill: FillReport) -> None:
        self.fees_krw += fill.fee_krw
        self.fills += 1

    def on_bar_end(self, runner: Any, decision: Decision) -> None:
        s = runner.state
        equity = s.equity(decision.bar.close)
        self.peak = max(self.peak, equity)
        self.max_drawdown = max(self.max_drawdown, 1.0 - equity / self.peak if self.peak > 0 else 0.0)
        row = {"step": s.step, "bar_time": decision.bar.time.isoformat(), "live/equity_krw": equity,
               "live/return": equity / s.initial_krw - 1.0, "live/max_drawdown": self.max_drawdown,
               "live/position_usdt": s.position_usdt, "live/fees_krw": self.fees_krw, "live/fills": self.fills,
               "live/latency_ms": round(decision.latency_ms, 4), "live/risk_state": s.risk_state.value}
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)

    def state_dict(self) -> dict[str, Any]:
        return {"peak": self.peak, "max_drawdown": self.max_drawdown, "fees_krw": self.fees_krw, "fills": self.fills}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.peak = float(state.get("peak", -math.inf))
        self.max_drawdown = float(state.get("max_drawdown", 0.0))
        self.fees_krw = float(state.get("fees_krw", 0.0))
        self.fills = int(state.get("fills", 0))
