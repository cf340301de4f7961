"""LiveRunner: one bar -> one decision, crash-safe, with callbacks.

The loop (per closed bar)::

    broker.observe(bar)                 # paper: open orders fill at this bar's open
    book fills of unfinished orders     # journal commit per order (fills + new cash/position)
    features <- bar; on_bar             # the observation builder, the checkpoint's normaliser
    act -> decision; on_decision        # callbacks may block it
    risk.check(decision)                # the risk engine: every order, after every callback
    journal the decision + intent       # ONE commit, before anything is sent
    send the order (client order id)    # at most one per decision
    journal the broker's answer; on_order / on_fill / on_bar_end

Crash safety is the order of those steps, not a try/except: whatever point a
kill -9 hits, the journal holds either the previous step or this one, and on
start :meth:`LiveRunner.reconcile` asks the broker about every order the
journal has not seen finish.  An unsent intent is sent (same client order id)
only if the broker has never seen it and its fill is still ahead; a state the
journal and the broker cannot both explain puts the runner in HALTED.

The risk engine (:class:`~kpremia.live.loop.risk.RiskEngine`, :attr:`LiveRunner.risk`) is
part of the loop, not a callback: it checks every decision's order after the
callbacks, gates every send (resends included), and is the only code that changes
the risk state.

Everything a restart needs is in one place: :attr:`LiveRunner.state` (cash,
position, step, risk state; see :class:`~kpremia.live.loop.state.LiveState`) and
:meth:`LiveRunner.snapshot` (observation builder, policy and callback states),
written to the journal with every decision.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from kpremia.core.errors import StorageFailed, UserError
from kpremia.core.spec import ACCOUNT, account_of
from kpremia.data.market import ObservationBuilder
from kpremia.envs import execution
from kpremia.envs.execution import ExecutionRules
from kpremia.live.loop.callback import LiveCallback
from kpremia.live.loop.journal import Journal
from kpremia.live.loop.policy import LivePolicy
from kpremia.live.loop.risk import RiskEngine
from kpremia.live.loop.sealed import read_snapshot, seal
from kpremia.live.loop.state import LiveState
from kpremia.live.loop.storage import StorageAlarm, classify
from kpremia.live.loop.types import Bar, Decision, FillReport, OrderIntent, OrderReport, OrderStatus
from kpremia.live.venues.broker import Broker, BrokerError
from kpremia.live.venues.feeds import Feed

log = logging.getLogger(__name__)

_FETCH_RETRIES = 3


@dataclass
class ReconcileReport:
    """What :meth:`LiveRunner.reconcile` found: orders settled, resent, expired, and problems."""

    checked: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    new_fills: int = 0
    problems: list[str] = field(default_factory=list)
    broker_balance: tuple[float, float] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def client_order_id(run_id: str, bar_time: pd.Timestamp, symbol: str, side: str) -> str:
    """Deterministic client order id from run, bar time, symbol and side (<= 36 characters)."""
    sym = "".join(ch for ch in symbol if ch.isalnum())[:8]
    return f"kp-{run_id[:6]}-{sym}-{pd.Timestamp(bar_time):%Y%m%d%H%M}-{side[0]}"


class LiveRunner:
    """Hosts a policy on a feed of closed bars and trades through a broker.

    Args:
        feed: where bars come from (``LIVE_FEEDS``).
        broker: where orders go (``LIVE_BROKERS``).
        policy: what decides (``LIVE_POLICIES``, :class:`~kpremia.live.loop.policy.LivePolicy`): ``act`` on the
            bars its ``clock`` says, ``scheme``, ``normalizer``.
        journal: the SQLite journal of this ``state_dir``.
        builder: observation builder with the policy's windows and normaliser.
        callbacks: :class:`LiveCallback` instances, called in this order.
        risk: the risk engine (always on; the default has no limits but still holds HALTED and REDUCING).
        initial_state: the state of a new run (ignored when the journal has one).
        rules: the run's :class:`ExecutionRules` (sizing orders, the challenger's paper fills).
        max_bars: stop after this many bars in this session (None: until the feed ends).
        resend_intents: on start, send an intent the broker never saw if its fill is still ahead.
        reconcile_tolerance: ``(krw, usdt)`` difference between journal and broker still called equal.
    """

    def __init__(self, *, feed: Feed, broker: Broker, policy: LivePolicy, journal: Journal,
                 builder: ObservationBuilder, callbacks: Sequence[LiveCallback] = (), initial_state: LiveState,
                 risk: RiskEngine | None = None,
                 rules: ExecutionRules = ExecutionRules(),
                 max_bars: int | None = None, resend_intents: bool = True,
                 reconcile_tolerance: tuple[float, float] = (0.0, 0.0), fingerprint: str = "",
                 config: dict[str, Any] | None = None) -> None:
        self.feed, self.broker, self.policy, self.journal, self.builder = feed, broker, policy, journal, builder
        self.callbacks = list(callbacks)
        self.risk = risk or RiskEngine()
        self.state = initial_state
        self.rules = rules
        self.max_bars = None if max_bars is None else int(max_bars)
        self.resend_intents = bool(resend_intents)
        self.reconcile_tolerance = reconcile_tolerance
        self.fingerprint = fingerprint
        self.config = dict(config or {})
        self.should_stop = False
        self.session = 0
        self.bars_this_session = 0
        self.last_decision: Decision | None = None
        self._session_journaled = False
        self._pending_events: list[dict[str, Any]] = []
        self._unfinished: set[str] = set()
        self.storage = StorageAlarm()  # tripped by the first storage failure (the runner's or the control API's)
        self.stop_signal: int | None = None  # the signal that asked for a clean stop (SIGINT, SIGTERM)
        self.in_bar = False  # inside process_bar: a stop waits for the bar to be finished

    @property
    def bar(self) -> pd.Timedelta:
        """The run's bar size (the observation builder's): what callbacks turn their durations into bars with."""
        return self.builder.bar

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> LiveState:
        """Resume, reconcile, then process bars until the feed ends, ``max_bars`` or ``should_stop``."""
        try:
            for cb in self.callbacks:
                cb.setup(self)
        except BaseException:  # a refused setup: close what is open (no -wal/-shm left), write nothing
            self.broker.close()
            self.journal.close()
            for cb in self.callbacks:
                cb.teardown(self)
            raise
        try:
            self.resume()
            report = self.reconcile()
            self.risk.on_reconcile(self, report)
            for cb in self.callbacks:
                cb.on_reconcile(self, report)
            self.risk.on_start(self)
            for cb in self.callbacks:
                cb.on_start(self)
            self.flush_events()  # the start is accepted: what reconcile found is journaled now
            for bar in self.feed.bars(after=self.state.last_bar_time):
                self.process_bar(bar)
                if self.should_stop or (self.max_bars is not None and self.bars_this_session >= self.max_bars):
                    break
        except BaseException as exc:
            failure = self._storage_failure(exc)
            for cb in self.callbacks:
                cb.on_error(self, exc)
            if failure is not None:
                raise failure from None
            raise
        finally:
            self._quietly_if_storage_failed(lambda: [cb.on_stop(self) for cb in self.callbacks])
            self.broker.close()
            self._quietly_if_storage_failed(self.journal.close)
            for cb in self.callbacks:
                cb.teardown(self)
        return self.state

    def _storage_failure(self, exc: BaseException) -> StorageFailed | None:
        """Trip the storage alarm on a storage error; the exit-4 error once bars were processed (else a start fault)."""
        if isinstance(exc, StorageFailed):
            return None
        text = classify(exc, self.journal.path.parent)
        if text is None:
            return None
        self.storage.trip(text)
        return self.storage_failed() if self.bars_this_session else None

    def storage_failed(self) -> StorageFailed:
        """The one line for a storage failure while running (exit code 4)."""
        return StorageFailed(f"storage failed while running: cannot write in {self.journal.path.parent} "
                             f"({self.storage.message}): free space on that disk or make it writable, then start "
                             "again with the same live.state_dir; the journal keeps its last commit")

    def _quietly_if_storage_failed(self, fn: Any) -> None:
        """Run a stop step; after a storage failure its own write errors are logged, not raised over the cause."""
        try:
            fn()
        except Exception as exc:
            if not self.storage.tripped:
                raise
            log.warning("after the storage failure, a stop step failed too: %s", exc)

    def resume(self) -> None:
        """Load state and snapshot from the journal, or start a new run (and warm the features up)."""
        loaded = self.journal.load_state()
        fingerprint = self.journal.get_meta("policy_fingerprint")
        if loaded is None:
            self.journal.set_meta({"run_id": self.state.run_id, "symbol": self.state.symbol,
                                   "initial_krw": repr(self.state.initial_krw), "policy": self.policy.name,
                                   "policy_fingerprint": self.fingerprint})
            self.journal.init_state(self.state)
            snapshot = None
        else:
            self.state, snapshot = loaded
            if fingerprint and self.fingerprint and fingerprint != self.fingerprint:
                raise UserError(f"live.state_dir {self.journal.path.parent} was run with another policy "
                                f"({self.journal.get_meta('policy')}); use its checkpoint again or a new live.state_dir")
        if snapshot is None:
            self.builder.warm_up(self.feed.history())
        else:
            self.load_snapshot(snapshot)
        self.session = self.journal.next_session(write=False)  # journaled with the first bar: a refused start
        self._session_journaled = False  # (one line, exit 2) leaves the journal as it found it
        self._unfinished = {row["client_order_id"] for row in self.journal.unfinished_orders()}
        log.info("live run %s session %d: step %d, cash %.2f KRW, position %.6f USDT, risk %s", self.state.run_id,
                 self.session, self.state.step, self.state.cash_krw, self.state.position_usdt,
                 self.state.risk_state.value)

    # ------------------------------------------------------------------ snapshot
    def state_dict(self) -> dict[str, Any]:
        """Observation builder, policy and callback states (the account is in :attr:`state`)."""
        return {"builder": self.builder.state_dict(), "policy": self.policy.state_dict(),
                "risk": self.risk.state_dict(), "callbacks": {cb.state_key: cb.state_dict() for cb in self.callbacks}}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.builder.load_state_dict(sd["builder"])
        self.policy.load_state_dict(sd.get("policy", {}))
        self.risk.load_state_dict(sd.get("risk", {}))
        states = sd.get("callbacks", {})
        for cb in self.callbacks:
            if cb.state_key in states:
                cb.load_state_dict(states[cb.state_key])

    def snapshot(self) -> bytes:
        """The state dict as a sealed blob (:mod:`kpremia.live.loop.sealed`: damage is refused, not resumed from)."""
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        return seal(buf.getvalue())

    def load_snapshot(self, blob: bytes) -> None:
        self.load_state_dict(read_snapshot(blob, str(self.journal.path)))

    # ------------------------------------------------------------------ reconcile
    def reconcile(self) -> ReconcileReport:
        """Settle every unfinished order with the broker and compare positions; HALTED on what can't be explained."""
        report = ReconcileReport()
        for row in self.journal.unfinished_orders():
            cid = row["client_order_id"]
            report.checked.append(cid)
            answer = self._fetch(cid)
            if answer is None and row["status"] == OrderStatus.INTENT.value:
                bar_time = pd.Timestamp(row["bar_time"])
                if (self.resend_intents and self.state.last_bar_time is not None
                        and bar_time == self.state.last_bar_time and self.feed.can_still_send(bar_time)):
                    report.resent.append(cid)
                    self._send(_intent_from_row(row))
                else:
                    report.expired.append(cid)
                    self.journal.update_order(cid, OrderStatus.EXPIRED,
                                              error="never reached the broker; its bar has passed")
                    self._unfinished.discard(cid)
            elif answer is None:
                report.problems.append(f"order {cid} is {row['status']} in the journal but unknown to the broker")
            else:
                report.new_fills += self._apply(row, answer)
        known = set(report.checked)
        for cid in self.broker.open_order_ids():
            if cid not in known and self.journal.order(cid) is None:
                report.problems.append(f"the broker has an open order {cid} the journal never wrote")
        krw_total, usdt_total = self.journal.fill_totals()
        if not (_close(self.state.initial_krw + krw_total, self.state.cash_krw, 1e-6)
                and _close(usdt_total, self.state.position_usdt, 1e-9)):
            report.problems.append(f"journal state (cash {self.state.cash_krw}, position {self.state.position_usdt}) "
                                   f"differs from its fills (cash {self.state.initial_krw + krw_total}, "
                                   f"position {usdt_total})")
        try:
            report.broker_balance = self.broker.balance()
        except BrokerError as exc:
            report.problems.append(f"cannot read the broker's balance: {exc}")
        if report.broker_balance is not None:
            b_krw, b_usdt = report.broker_balance
            tol_krw, tol_usdt = self.reconcile_tolerance
            if abs(b_krw - self.state.cash_krw) > tol_krw or abs(b_usdt - self.state.position_usdt) > tol_usdt:
                report.problems.append(f"journal has {self.state.cash_krw!r} KRW / {self.state.position_usdt!r} USDT, "
                                       f"the broker {b_krw!r} KRW / {b_usdt!r} USDT")
        if report.problems:
            for problem in report.problems:
                log.error("reconcile: %s", problem)
            self.risk.halt(self, "reconcile", "; ".join(report.problems))  # journaled by run() once the start is accepted
        else:
            log.info("reconcile: %d order(s) checked, %d resent, %d expired, %d new fill(s); books agree",
                     len(report.checked), len(report.resent), len(report.expired), report.new_fills)
        return report

    # ------------------------------------------------------------------ one bar
    def process_bar(self, bar: Bar) -> Decision | None:
        """Handle one closed bar: fills, features, decision, intent, order (None: a bar already decided)."""
        if self.storage.tripped:  # the control API's write failed: stop before this bar, the journal is intact
            raise self.storage_failed()
        if self.state.last_bar_time is not None and bar.time <= self.state.last_bar_time:
            log.warning("bar %s was already decided (last: %s); skipped", bar.time, self.state.last_bar_time)
            return None
        self.in_bar = True
        try:
            return self._process_bar(bar)
        finally:
            self.in_bar = False

    def _process_bar(self, bar: Bar) -> Decision:
        self.broker.observe(bar)
        self.sync_orders()
        t0 = time.perf_counter()
        obs = self.observe(bar)
        state = self.state
        state.step += 1
        state.last_bar_time = bar.time
        state.last_close = bar.close
        day = bar.time.strftime("%Y-%m-%d")
        if state.day != day:
            state.day, state.day_start_equity_krw = day, state.equity(bar.close)
        self.bars_this_session += 1
        self.risk.on_bar(self, bar)
        for cb in self.callbacks:
            cb.on_bar(self, bar)
        decision = self.decide(bar, obs)
        decision.latency_ms = (time.perf_counter() - t0) * 1e3
        if decision.wants_trade:
            decision.order = self.make_order(decision)
            if decision.order is None:
                decision.reason = f"{decision.reason}; nothing to trade"
        for cb in self.callbacks:
            cb.on_decision(self, decision)
        self.risk.check(self, decision)
        if decision.order is not None and not self.feed.can_still_send(bar.time):
            decision.block("catch-up: the bar closed too long ago to trade on")
        events = self._take_events()
        if not self._session_journaled:
            self.journal.set_meta({"sessions": str(self.session)})
            self._session_journaled = True
        self.journal.commit_decision(decision, state, self.session, self.snapshot(), events)
        self._notify_events(events)
        self.last_decision = decision
        for cb in self.callbacks:
            cb.on_intent(self, decision)
        if decision.order is not None:
            self._unfinished.add(decision.order.client_order_id)
            self._send(decision.order)
        for cb in self.callbacks:
            cb.on_bar_end(self, decision)
        return decision

    def observe(self, bar: Bar) -> dict[str, torch.Tensor] | None:
        """Update the features with ``bar``; the normalised observation with the account, or None in warm-up."""
        raw = self.builder.update(bar.as_mapping())
        if not self.builder.ready:
            return None
        normalizer = self.policy.normalizer
        if normalizer is None:
            return None
        obs = normalizer.normalize_obs(raw)
        state = self.state
        obs[ACCOUNT] = account_of(state.cash_krw, state.position_usdt, bar.close, state.initial_krw)
        return obs

    def decide(self, bar: Bar, obs: dict[str, torch.Tensor] | None) -> Decision:
        """The policy's action at this close, as a target weight (None = hold)."""
        decision = Decision(bar=bar, step=self.state.step, obs=obs)
        if obs is None and self.policy.normalizer is not None:  # a rule needs no features
            decision.reason = "warm-up"
            return decision
        clock = self.policy.clock
        k, self.state.ready_bars = self.state.ready_bars, self.state.ready_bars + 1
        if not clock.decides(k):  # as in training and the backtest: no order between two decisions
            decision.reason = f"between decisions (acts every {clock.decision_every} bars, as trained)"
            return decision
        action = int(self.policy.act(obs, bar))
        scheme = self.policy.scheme
        weight = execution.money(self.state.weight(bar.close))
        target = float(scheme.target_weight(torch.tensor([action]), weight)[0])
        decision.action, decision.action_name = action, scheme.action_names[action]
        decision.target_weight = None if math.isnan(target) else target
        decision.reason = "policy"
        return decision

    def make_order(self, decision: Decision) -> OrderIntent | None:
        """The order for a target weight, sized at the close; None when there is nothing to trade."""
        return size_order(self.state, float(decision.target_weight), decision.bar, self.rules)

    # ------------------------------------------------------------------ orders
    def _send(self, order: OrderIntent) -> None:
        """Send once (if the risk engine lets it); on an unknown outcome ask the broker (never resend blindly)."""
        refused = self.risk.gate(self, order)
        if refused is not None:
            log.warning("order %s not sent: %s", order.client_order_id, refused)
            self.record_event({"step": self.state.step, "bar_time": order.bar_time, "kind": "gate",
                               "state_before": self.state.risk_state.value,
                               "state_after": self.state.risk_state.value, "reason": f"order not sent: {refused}"})
            events = self._take_events()
            self.journal.update_order(order.client_order_id, OrderStatus.REJECTED,
                                      error=f"refused by the risk engine: {refused}", state=self.state, events=events)
            self._notify_events(events)
            self._unfinished.discard(order.client_order_id)
            return
        try:
            report = self.broker.submit(order)
        except BrokerError as exc:
            log.warning("order %s: send failed (%s); asking the broker about it", order.client_order_id, exc)
            report = self._fetch(order.client_order_id)
            if report is None:
                log.warning("order %s: the broker does not know it; it stays an intent until the next bar",
                            order.client_order_id)
                return
        row = self.journal.order(order.client_order_id)
        self._apply(row, report)
        for cb in self.callbacks:
            cb.on_order(self, order, report)

    def _fetch(self, cid: str) -> OrderReport | None:
        """``broker.fetch_order`` with a few retries on transport errors (then: unknown)."""
        for attempt in range(_FETCH_RETRIES):
            try:
                return self.broker.fetch_order(cid)
            except BrokerError as exc:
                log.warning("fetch order %s failed (%s), attempt %d/%d", cid, exc, attempt + 1, _FETCH_RETRIES)
                time.sleep(min(1.0, 0.1 * 2**attempt))
        return None

    def sync_orders(self) -> None:
        """Ask the broker about every unfinished order and book what it reports."""
        if not self._unfinished:
            return
        for row in self.journal.unfinished_orders():
            cid = row["client_order_id"]
            report = self._fetch(cid)
            if report is None:
                if row["status"] == OrderStatus.INTENT.value:
                    self.journal.update_order(cid, OrderStatus.EXPIRED, error="never reached the broker; "
                                              "its bar has passed")
                    self._unfinished.discard(cid)
                continue
            self._apply(row, report)

    def _apply(self, row: Any, report: OrderReport) -> int:
        """Book the new fills of ``report`` and its status in one commit; returns how many fills were new."""
        cid = report.client_order_id
        known = self.journal.known_trade_ids(cid)
        new = [f for f in report.fills if f.trade_id not in known]
        for fill in new:
            self.state.apply(fill)
        total = sum(abs(f.usdt_delta) for f in report.fills)
        limit = float(row["amount_usdt"]) if row is not None else math.inf
        if row is not None and self.rules_cap_fills(row) and total > limit * (1 + 1e-9) + 1e-12:
            self.risk.halt(self, "overfill", f"order {cid} filled {total} USDT, more than its {limit} USDT")
        status = report.status
        if status is OrderStatus.INTENT:  # a broker never reports an intent; treat as accepted
            status = OrderStatus.OPEN
        if (not new and not self._pending_events and row is not None and status.value == row["status"]
                and report.exchange_order_id == row["exchange_order_id"] and report.error == row["error"]):
            return 0  # the journal already says all of it: no write (a start refused later changes no file)
        events = self._take_events()
        self.journal.update_order(cid, status, exchange_order_id=report.exchange_order_id, error=report.error,
                                  fills=new, state=self.state, events=events)
        self._notify_events(events)
        if status.final:
            self._unfinished.discard(cid)
        for fill in new:
            self.risk.on_fill(self, cid, fill)
            for cb in self.callbacks:
                cb.on_fill(self, cid, fill)
        return len(new)

    def rules_cap_fills(self, row: Any) -> bool:
        """Whether the order's ``amount_usdt`` bounds its fills (exchange orders; paper fills track the target)."""
        return not self.broker.is_paper and row["side"] == "sell"

    # ------------------------------------------------------------------ risk events
    def record_event(self, event: dict[str, Any]) -> None:
        """Queue a risk event (the risk engine's) for the next journal commit."""
        self._pending_events.append(event)

    def _take_events(self) -> list[dict[str, Any]]:
        events, self._pending_events = self._pending_events, []
        return events

    def _notify_events(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            for cb in self.callbacks:
                cb.on_risk_event(self, event)

    def flush_events(self) -> None:
        """Journal the queued risk events now (outside a bar: once the start is accepted, its reconcile and a cleared halt)."""
        events = self._take_events()
        if events:
            self.journal.record_events(events, self.state)
            self._notify_events(events)


def size_order(state: LiveState, target_weight: float, bar: Bar, rules: ExecutionRules) -> OrderIntent | None:
    """The order that trades ``state`` to ``target_weight``, sized at ``bar``'s close by the run's rules.

    A buy's ``cost_krw`` is the fill's notional: the KRW amount an exchange is asked to spend (with
    ``fee_convention=krw_on_top`` the fee comes on top of it and still fits the cash).  The fill at the
    next open, not the close, decides on the minimum order.  None when there is nothing to trade.
    """
    fill = execution.rebalance_one(state.cash_krw, state.position_usdt, target_weight, bar.close,
                                   rules.without_min_order())
    if not bool(fill.traded[0]):
        return None
    usdt_delta = float(fill.usdt[0]) - state.position_usdt
    side = "buy" if usdt_delta > 0 else "sell"
    return OrderIntent(
        client_order_id=client_order_id(state.run_id, bar.time, state.symbol, side), bar_time=bar.time,
        symbol=state.symbol, side=side, target_weight=float(target_weight),
        amount_usdt=abs(usdt_delta), cost_krw=float(fill.notional_krw[0]) if side == "buy" else 0.0,
        ref_price=bar.close)


def _intent_from_row(row: Any) -> OrderIntent:
    return OrderIntent(client_order_id=row["client_order_id"], bar_time=pd.Timestamp(row["bar_time"]),
                       symbol=row["symbol"], side=row["side"], target_weight=float(row["target_weight"]),
                       amount_usdt=float(row["amount_usdt"]), cost_krw=float(row["cost_krw"]),
                       ref_price=float(row["ref_price"]))


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


__all__ = ["LiveRunner", "ReconcileReport", "client_order_id", "size_order", "FillReport"]
