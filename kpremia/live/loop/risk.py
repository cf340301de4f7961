"""The risk engine: the one gate every order passes and the one place the trading state changes.

It is not a callback that can be switched off: the runner owns it
(:attr:`LiveRunner.risk`), and every order -- the policy's, a resend after a
restart, any order a callback or an operator path makes -- passes it twice:
:meth:`RiskEngine.check` before the decision is journaled (after every
callback's ``on_decision``, so no callback can route around it) and
:meth:`RiskEngine.gate` right before ``broker.submit``.  On paper its limits may
be loose (all off by default); it still enforces HALTED and REDUCING.

States (:class:`~kpremia.live.loop.types.RiskState`, kept in
:class:`~kpremia.live.loop.state.LiveState`, journaled, so they survive a restart);
only :meth:`RiskEngine.set_state` changes them:

* ACTIVE -- the policy trades within the limits;
* REDUCING -- only orders that lower the position go out (entered while a
  cooldown after a losing round trip runs; back to ACTIVE when it ends);
* HALTED -- nothing goes out until a person clears it
  (``live.risk.clear_halt=true`` on the next start, journaled).  Entered on the
  daily loss limit, the kill switch file, an order the broker overfilled, or a
  reconcile mismatch.  Learning or a policy can never lift it, and neither can
  ``clear_halt`` while the cause is still there: the kill switch file exists, the
  start's reconcile still finds the books apart (``live-resolve`` settles them),
  or the day's loss is still over the limit (the day of the session's clock: the
  last replayed bar's in a replay, the wall clock's live) -- that start is refused
  with one line saying which.  ``stop_on_halt`` ends the session at the bar that
  halted it (exit code 3) instead of deciding further bars without orders.

Limits (``live.risk.*``, :class:`~kpremia.run.live_config.RiskConfig`; 0 or null
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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kpremia.core.errors import UserError
from kpremia.run.live_config import LiveConfig, RiskConfig
from kpremia.live.loop.types import Bar, Decision, FillReport, OrderIntent, RiskState
from kpremia.live.ops.halt import RESOLVE_HINT

log = logging.getLogger(__name__)


class RiskEngine:
    """Daily loss, position and order size limits, cooldown after a loss, kill switch; HALTED and REDUCING.

    Args:
        limits: ``live.risk`` (the default: no limits, kill switch off -- the states still hold).
        state_dir: where a relative kill switch file lives.
    """

    def __init__(self, limits: RiskConfig = RiskConfig(kill_switch=None), *,
                 state_dir: str | Path | None = None) -> None:
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
    def from_config(cls, live: LiveConfig) -> RiskEngine:
        """The limits of ``live.risk`` (their one address)."""
        return cls(live.risk, state_dir=live.state_dir)

    # ------------------------------------------------------------------ the one place the state changes
    def set_state(self, runner: Any, new: RiskState, kind: str, reason: str) -> None:
        """Move to risk state ``new`` (journaled with the runner's next commit, then ``on_risk_event``)."""
        state = runner.state
        old = state.risk_state
        state.risk_state = new
        log.warning("risk %s -> %s (%s): %s", old.value, new.value, kind, reason)
        runner.record_event({"step": state.step, "bar_time": state.last_bar_time, "kind": kind,
                             "state_before": old.value, "state_after": new.value, "reason": reason})

    def halt(self, runner: Any, kind: str, reason: str) -> None:
        """HALTED for ``kind`` (``stop_on_halt``: the session ends after this bar, exit 3)."""
        self.set_state(runner, RiskState.HALTED, kind, reason)
        if self.stop_on_halt:  # this bar is still decided and journaled (no order); then the session ends, exit 3
            runner.should_stop = True

    def refuse(self, runner: Any, decision: Decision, kind: str, reason: str) -> None:
        """Block ``decision`` and journal why (a risk event without a state change)."""
        decision.block(f"{kind}: {reason}")
        state = runner.state
        runner.record_event({"step": state.step, "bar_time": decision.bar.time, "kind": kind,
                             "state_before": state.risk_state.value, "state_after": state.risk_state.value,
                             "reason": reason})

    def on_reconcile(self, runner: Any, report: Any) -> None:
        self._reconcile_problems = list(report.problems)

    def on_start(self, runner: Any) -> None:
        state = runner.state
        if self.clear_halt and state.risk_state is not RiskState.HALTED:
            log.info("live.risk.clear_halt=true: nothing to clear (risk state %s)", state.risk_state.value)
        elif self.clear_halt:
            self._refuse_to_clear_while_the_cause_persists(runner)
            self.set_state(runner, RiskState.ACTIVE, "cleared", "cleared by the operator (live.risk.clear_halt)")
            # journaled by the runner once every callback has accepted the start (a refused start writes nothing)
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
        # the session's clock: a replay is at its last bar's day (a wall-clock day would never match it)
        replay = runner.feed.replays
        today = state.day if replay else datetime.now(timezone.utc).strftime("%Y-%m-%d")
        if self.max_daily_loss is not None and state.day == today and state.day_start_equity_krw > 0:
            loss = 1.0 - state.equity() / state.day_start_equity_krw
            if loss >= self.max_daily_loss:
                when = "the replay's day" if replay else "today's"
                wait = "replay from the next day (live.replay.start)" if replay else "wait for 00:00 UTC"
                raise UserError(f"cannot clear HALTED: {when} ({today} UTC) loss is {loss:.2%}, over "
                                f"live.risk.max_daily_loss={self.max_daily_loss:g}; {wait} or raise the "
                                "limit knowingly")

    def on_bar(self, runner: Any, bar: Bar) -> None:
        state = runner.state
        if state.risk_state is RiskState.HALTED:
            return
        if self.kill_switch is not None and self.kill_switch.exists():
            self.halt(runner, "kill_switch", f"kill switch file {self.kill_switch} exists")
            return
        if self.max_daily_loss is not None and state.day_start_equity_krw > 0:
            loss = 1.0 - state.equity(bar.close) / state.day_start_equity_krw
            if loss >= self.max_daily_loss:
                self.halt(runner, "daily_loss", f"equity fell {loss:.2%} since the start of {state.day} UTC "
                                                 f"(limit {self.max_daily_loss:.2%})")
                return
        if state.risk_state is RiskState.REDUCING and state.step >= state.cooldown_until_step:
            self.set_state(runner, RiskState.ACTIVE, "cooldown_end", "cooldown after a loss is over")

    def check(self, runner: Any, decision: Decision) -> None:
        """Refuse the decision's order if a state or a limit forbids it (every order, before it is journaled)."""
        if decision.order is None:  # a hold, or a target the account is already at: nothing to refuse
            return
        state, bar = runner.state, decision.bar
        if state.risk_state is RiskState.HALTED:
            self.refuse(runner, decision, "halted", "risk state is HALTED")
            return
        equity = state.equity(bar.close)
        weight = state.weight(bar.close)
        target = float(decision.target_weight)
        increases = abs(target) > abs(weight) + 1e-12
        if state.risk_state is RiskState.REDUCING and increases:
            self.refuse(runner, decision, "reducing", f"only orders that reduce the position are allowed until step "
                                                f"{state.cooldown_until_step}")
            return
        if self.max_position_krw is not None and increases and abs(target) * equity > self.max_position_krw + 1e-6:
            self.refuse(runner, decision, "max_position",
                          f"target position {abs(target) * equity:.0f} KRW is over the {self.max_position_krw:.0f} "
                          "KRW limit")
            return
        notional = abs(target - weight) * equity
        if self.max_order_krw is not None and notional > self.max_order_krw + 1e-6:
            self.refuse(runner, decision, "max_order",
                        f"order of {notional:.0f} KRW is over the {self.max_order_krw:.0f} KRW limit")

    def gate(self, runner: Any, order: OrderIntent) -> str | None:
        """Why ``order`` must not be sent now (None: it may), checked right before ``broker.submit``.

        The last word for orders not decided at this bar (a resend after a restart): HALTED sends
        nothing, REDUCING only orders that lower the position.
        """
        state = runner.state
        if state.risk_state is RiskState.HALTED:
            return "risk state is HALTED"
        if state.risk_state is RiskState.REDUCING and order.target_weight is not None:
            price = order.ref_price
            if abs(order.target_weight) > abs(state.weight(price)) + 1e-12:
                return f"risk state is REDUCING: only orders that reduce the position until step " \
                       f"{state.cooldown_until_step}"
        return None

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
                self.set_state(runner, RiskState.REDUCING, "cooldown",
                                      f"round trip lost money; only reducing orders for {self.cooldown_bars} bars")

    def state_dict(self) -> dict[str, Any]:
        return {"entry_equity_krw": self.entry_equity_krw}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        value = state.get("entry_equity_krw")
        self.entry_equity_krw = None if value is None or math.isnan(value) else float(value)
