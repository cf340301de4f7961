"""The risk manager: limits that stop or shrink trading, as a live callback.

States (kept in :class:`~kpremia.live.state.LiveState`, journaled, so they
survive a restart):

* ACTIVE -- the policy trades within the limits;
* REDUCING -- only orders that lower the position go out (entered while a
  cooldown after a losing round trip runs; back to ACTIVE when it ends);
* HALTED -- nothing goes out until a person clears it
  (``live.risk.clear_halt=true`` on the next start, journaled).  Entered on the
  daily loss limit, the kill switch file, an order the broker overfilled, or a
  reconcile mismatch.  Learning or a policy can never lift it, and neither can
  ``clear_halt`` while the cause is still there: the kill switch file exists, the
  start's reconcile still finds the books apart (``live-resolve`` settles them),
  or today's loss is still over the limit -- that start is refused with one line
  saying which.  ``stop_on_halt`` ends the session at the bar that halted it
  (exit code 3) instead of deciding further bars without orders.

Limits (``live.risk.*``, :class:`~kpremia.live.config.RiskConfig`; 0 or null
switches one off): ``max_daily_loss`` (fraction of the day's starting equity,
UTC days), ``max_position_krw`` (USDT held after the order, valued at the
close), ``max_order_krw`` (one order's notional), ``cooldown_bars`` (bars of
REDUCING after a round trip that lost money), ``kill_switch`` (a file, relative
to ``live.state_dir``: when it exists the runner halts).  Every refused order is
journaled in ``risk_events`` with its reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kpremia.errors import UserError
from kpremia.live.callback import LiveCallback
from kpremia.live.config import LiveConfig, RiskConfig
from kpremia.live.halt import RESOLVE_HINT
from kpremia.live.types import Bar, Decision, FillReport, RiskState
from kpremia.registry import LIVE_CALLBACKS

log = logging.getLogger(__name__)


@LIVE_CALLBACKS.register("risk")
class RiskManager(LiveCallback):
    """Daily loss, position and order size limits, cooldown after a loss, kill switch."""

    def __init__(self, limits: RiskConfig = RiskConfig(), *, state_dir: str | Path | None = None) -> None:
        self.limits = limits
        self.max_daily_loss = float(limits.max_daily_loss) if limits.max_daily_loss else None
        self.max_position_krw = float(limits.max_position_krw) if limits.max_position_krw else None
        self.max_order_krw = float(limits.max_order_krw) if limits.max_order_krw else None
        self.cooldown_bars = int(limits.cooldown_bars)
        self.kill_switch = limits.kill_switch_path(state_dir)
        self.clear_halt = bool(limits.clear_halt)
        self.stop_on_halt = bool(limits.stop_on_halt)
        self.entry_equity_krw: float | None = None  # equity before the buy that opened the position
        self._reconcile_problems: list[str] = []

    @classmethod
    def from_config(cls, options: Mapping[str, Any], live: LiveConfig) -> RiskManager:
        """The limits of ``live.risk`` (their one address; ``live.callbacks.risk`` only switches it on)."""
        if options:
            raise UserError(f"live.callbacks.risk takes no options ({sorted(options)}); set the limits under "
                            "live.risk (e.g. live.risk.max_daily_loss=0.05)")
        return cls(live.risk, state_dir=live.state_dir)

    def on_reconcile(self, runner: Any, report: Any) -> None:
        self._reconcile_problems = list(report.problems)

    def on_start(self, runner: Any) -> None:
        state = runner.state
        if self.clear_halt and state.risk_state is not RiskState.HALTED:
            log.info("live.risk.clear_halt=true: nothing to clear (risk state %s)", state.risk_state.value)
        elif self.clear_halt:
            self._refuse_to_clear_while_the_cause_persists(runner)
            runner.set_risk_state(RiskState.ACTIVE, "cleared", "cleared by the operator (live.risk.clear_halt)")
            runner._flush_events()
        if self.stop_on_halt and state.risk_state is RiskState.HALTED:
            runner.should_stop = True

    def _refuse_to_clear_while_the_cause_persists(self, runner: Any) -> None:
        """A UserError naming what still holds the session HALTED, if anything does."""
        state_dir = runner.config.get("state_dir", "<state_dir>")
        if self.kill_switch is not None and self.kill_switch.exists():
            raise UserError(f"cannot clear HALTED while the kill switch {self.kill_switch} exists; remove it first")
        if self._reconcile_problems:
            raise UserError("cannot clear HALTED: the journal and the broker still disagree ("
                            + "; ".join(self._reconcile_problems) + "); resolve it first with "
                            + RESOLVE_HINT.format(state_dir=state_dir))
        state = runner.state
        today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        if self.max_daily_loss is not None and state.day == today and state.day_start_equity_krw > 0:
            loss = 1.0 - state.equity() / state.day_start_equity_krw
            if loss >= self.max_daily_loss:
                raise UserError(f"cannot clear HALTED: today's ({today} UTC) loss is {loss:.2%}, over "
                                f"live.risk.max_daily_loss={self.max_daily_loss:g}; wait for 00:00 UTC or raise the "
                                "limit knowingly")

    def on_bar(self, runner: Any, bar: Bar) -> None:
        state = runner.state
        if state.risk_state is RiskState.HALTED:
            return
        if self.kill_switch is not None and self.kill_switch.exists():
            self._halt(runner, "kill_switch", f"kill switch file {self.kill_switch} exists")
            return
        if self.max_daily_loss is not None and state.day_start_equity_krw > 0:
            loss = 1.0 - state.equity(bar.close) / state.day_start_equity_krw
            if loss >= self.max_daily_loss:
                self._halt(runner, "daily_loss", f"equity fell {loss:.2%} since the start of {state.day} UTC "
                                                 f"(limit {self.max_daily_loss:.2%})")
                return
        if state.risk_state is RiskState.REDUCING and state.step >= state.cooldown_until_step:
            runner.set_risk_state(RiskState.ACTIVE, "cooldown_end", "cooldown after a loss is over")

    def _halt(self, runner: Any, kind: str, reason: str) -> None:
        runner.set_risk_state(RiskState.HALTED, kind, reason)
        if self.stop_on_halt:  # this bar is still decided and journaled (no order); then the session ends, exit 3
            runner.should_stop = True

    def on_decision(self, runner: Any, decision: Decision) -> None:
        if decision.order is None:  # a hold, or a target the account is already at: nothing to refuse
            return
        state, bar = runner.state, decision.bar
        if state.risk_state is RiskState.HALTED:
            runner.reject(decision, "halted", "risk state is HALTED")
            return
        equity = state.equity(bar.close)
        weight = state.weight(bar.close)
        target = float(decision.target_weight)
        increases = abs(target) > abs(weight) + 1e-12
        if state.risk_state is RiskState.REDUCING and increases:
            runner.reject(decision, "reducing", f"only orders that reduce the position are allowed until step "
                                                f"{state.cooldown_until_step}")
            return
        if self.max_position_krw is not None and increases and abs(target) * equity > self.max_position_krw + 1e-6:
            runner.reject(decision, "max_position",
                          f"target position {abs(target) * equity:.0f} KRW is over the {self.max_position_krw:.0f} "
                          "KRW limit")
            return
        notional = abs(target - weight) * equity
        if self.max_order_krw is not None and notional > self.max_order_krw + 1e-6:
            runner.reject(decision, "max_order", f"order of {notional:.0f} KRW is over the {self.max_order_krw:.0f} "
                                                 "KRW limit")

    def on_fill(self, runner: Any, order_id: str, fill: FillReport) -> None:
        state = runner.state
        before = state.position_usdt - fill.usdt_delta
        if before == 0.0 and fill.usdt_delta != 0.0:
            self.entry_equity_krw = state.cash_krw - fill.krw_delta  # the cash the buy started from
        elif state.position_usdt == 0.0 and self.entry_equity_krw is not None:
            lost = state.cash_krw < self.entry_equity_krw
            self.entry_equity_krw = None
            if lost and self.cooldown_bars and state.risk_state is RiskState.ACTIVE:
                state.cooldown_until_step = state.step + self.cooldown_bars
                runner.set_risk_state(RiskState.REDUCING, "cooldown",
                                      f"round trip lost money; only reducing orders for {self.cooldown_bars} bars")

    def state_dict(self) -> dict[str, Any]:
        return {"entry_equity_krw": self.entry_equity_krw}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        value = state.get("entry_equity_krw")
        self.entry_equity_krw = None if value is None or math.isnan(value) else float(value)
