"""The ``model`` live callback: online learning, versions and the challenger beside the runner.

Switched on by ``live.learn.enabled=true`` (its settings are ``live.learn.*`` and
``live.rollback``).  It also hosts the model when ``live.api.enabled=true``: the
``api`` callback (:mod:`kpremia.live.http.callback`) serves this callback's host.

One transition per *decision*, with the *training* reward: a checkpoint trained
with ``env.decision_every=k`` decides every ``k`` bars (its
:class:`~kpremia.envs.clock.DecisionClock`), so a transition runs from one
decision's observation to the next decision's, and its reward is the sum over
the bars in between of :meth:`kpremia.envs.reward.RewardRule.bar` -- the
checkpoint's own ``env.reward`` (``log_return`` or ``fx_hedged``),
``turnover_penalty`` and ``flat_penalty``, from the account the broker reports
-- exactly what the simulator paid in training (a test compares the two on the
same bars).

Per bar, after the decision is made (its latency is measured before this runs)
and before it is journaled:

1. the update started after the previous bar is joined and published (a new
   version; in direct mode it trades from the next bar on);
2. the bar's reward is added to the pending transition;
3. the challenger's paper account fills its pending target at this bar's open
   (the simulator's rules) and both accounts are judged;
4. on a decision bar, the pending transition is completed (next observation =
   this one) and given to the learner, and this decision becomes the pending one.

After the order is sent (``on_bar_end``) a due update starts on a background
thread, on the learner's own copy of the network: nothing in the decision path
waits for learning.  Because updates are published at the next bar's
``on_decision`` whatever their duration, which weights act at which bar does not
depend on timing, and the callback's state (learner, challenger, pending
transition, reward so far, paper account) is in every journal snapshot, so a
restart after a kill resumes the same weights as an uninterrupted run.  The
model-journal rows written while a bar is processed carry its step; a start
first deletes those of the bars after the journal's last commit (the bars it
replays), so they are written once, as in an uninterrupted run.

Learning never changes the risk state; decisions blocked by the risk manager
are not learned from (the transition before them is cut, ``truncated``).
Learning while a real broker trades (``broker.is_paper`` false) needs
``live.learn.allow_real_orders=true``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from kpremia.core.errors import UserError
from kpremia.core.registry import LIVE_CALLBACKS
from kpremia.core.spec import ACCOUNT, account_of
from kpremia.envs import execution
from kpremia.envs.reward import RewardRule
from kpremia.run.live_config import LearnConfig, LiveConfig
from kpremia.live.learning.host import ModelHost
from kpremia.live.learning.online_ppo import Transition, UpdateResult
from kpremia.live.learning.versions import VersionStore, parse_version
from kpremia.live.loop.account import Account
from kpremia.live.loop.callback import LiveCallback
from kpremia.live.loop.policy import CheckpointPolicy
from kpremia.live.loop.types import RiskState

log = logging.getLogger(__name__)


def _lower_this_threads_priority(niceness: int = 10) -> None:
    """Let the decision thread win the CPU over an update (Linux: per-thread nice; elsewhere a no-op)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):
        pass


def bar_reward(rule: RewardRule, before: Mapping[str, float], equity: float, position_usdt: float, close: float,
               fx: float, notional_krw: float) -> float:
    """The simulator's reward of one live bar (:meth:`RewardRule.bar` on the account after the bar's fills).

    ``before`` holds the previous close's ``equity`` and ``fx``; ``notional_krw`` is
    what the bar's fills traded.  The arithmetic is the simulator's (float64 tensors).
    """
    value_before, value = execution.money(before["equity"]), execution.money(equity)
    usdt_value = execution.money(position_usdt) * execution.money(close)
    reward = rule.bar(torch.log(value_before.clamp_min(1e-9)), torch.log(value.clamp_min(1e-9)),
                      usdt_value / value, torch.log(execution.money(fx) / execution.money(before["fx"])),
                      execution.money(position_usdt) == 0, execution.money(notional_krw), value_before)
    return float(reward[0])


@LIVE_CALLBACKS.register("model")
class ModelCallback(LiveCallback):
    """Online PPO, versions and the challenger for a checkpoint policy (and the host the ``api`` callback serves).

    Args:
        learn: ``live.learn``.
        rollback: ``live.rollback``.
        serve: host the model for the control API (``live.api.enabled``) even without learning.
    """

    def __init__(self, learn: LearnConfig = LearnConfig(), rollback: str | None = None, serve: bool = False) -> None:
        self.learn_cfg = learn
        self.learn_on = learn.enabled
        self.api_on = bool(serve)
        self.rollback = str(rollback) if rollback else None
        if self.rollback:
            parse_version(self.rollback)  # a typo fails before anything starts
        self.host: ModelHost | None = None
        self.reward_rule = RewardRule()
        self._pending: dict[str, Any] | None = None  # the last decision, collecting its reward bar by bar
        self._last: dict[str, float] | None = None  # the previous close's equity and fx (a bar's reward needs them)
        self._notional = 0.0  # KRW traded by the fills booked since the previous bar
        self._shadow: Account | None = None  # the challenger's paper account
        self._shadow_target = math.nan  # its pending target weight, filled at the next bar's open (NaN: hold)
        self._thread: threading.Thread | None = None
        self._lineage = 0  # the learner's lineage when the running update started
        self._restored = False  # the host's state came from the journal's snapshot
        self._result: UpdateResult | None = None
        self._error: BaseException | None = None

    @classmethod
    def from_config(cls, options: Mapping[str, Any], live: LiveConfig) -> ModelCallback:
        """``live.learn`` and ``live.rollback`` (their one address); ``live.api.enabled`` asks for a host."""
        if options:
            raise UserError(f"live.callbacks.model takes no options ({sorted(options)}); its settings are "
                            "live.learn.* and live.rollback")
        return cls(live.learn, live.rollback, serve=live.api.enabled)

    # ----------------------------------------------------------------- lifecycle
    def setup(self, runner: Any) -> None:
        if not (self.learn_on or self.api_on or self.rollback):
            return
        policy = runner.policy
        if not isinstance(policy, CheckpointPolicy):
            raise UserError(f"live.learn / live.api / live.rollback need a checkpoint policy, not {policy.name}; "
                            "set live.learn.enabled=false and live.api.enabled=false")
        if self.learn_on and not runner.broker.is_paper and not self.learn_cfg.allow_real_orders:
            raise UserError("online learning with real orders is off by default: trade on paper "
                            "(live.broker=paper), or set live.learn.allow_real_orders=true knowingly")
        module = policy.module  # OnlinePPO refuses a network that is not an actor-critic (DQN), in one line
        self.reward_rule = policy.env.reward_rule  # the reward the checkpoint was trained on
        state_dir = Path(runner.config.get("state_dir", "."))
        if self.rollback:  # not found or damaged: one line before anything is opened or written
            VersionStore(state_dir / "versions").load(self.rollback)
        self.host = ModelHost(module, state_dir, learn=self.learn_cfg.learner(module.algo_cfg) if self.learn_on else None,
                              challenger=self.learn_cfg.challenger, source=policy.ckpt,
                              deterministic=policy.deterministic, temperature=policy.temperature, lock=policy.lock,
                              keep_versions=self.learn_cfg.keep_versions, trading=policy, bar=policy.bar,
                              begin=False)  # after every refusal of this start: on_start

    def on_start(self, runner: Any) -> None:
        # Every refusal of this start has been made by now (the risk callback's come first; the rollback
        # target was checked in setup): from here on it writes.  Orphans first (folders and temporary
        # files a kill left under versions/).
        if self.host is not None:
            removed = self.host.versions.clean()
            if removed:
                log.info("removed %d unfinished version write(s) under %s", len(removed), self.host.versions.root)
            # The rows of the bars after the last commit: the replay writes them again.
            rewound = self.host.log.rewind(runner.state.step)
            if rewound:
                log.info("model journal: %d row(s) of bars after step %d removed (replayed now)", rewound,
                         runner.state.step)
            if self._restored:
                self.host.log.write("host", "restore", {"version": self.host.version},
                                    model_version=self.host.version)
            else:
                self.host.begin(adopt_latest=False, bar=runner.state.step + 1)
        if self.rollback and self.host is not None:
            before = self.host.version
            version = self.host.load(self.rollback)
            self._pending = None  # its log-prob came from the weights rolled away from
            self.host.log.write("host", "rollback", {"from": before, "to": version.name, "by": "live.rollback"},
                                model_version=version.name)  # host.load journaled the step it trades from
            log.info("model rolled back from %s to %s (live.rollback)", before, version.name)

    def on_stop(self, runner: Any) -> None:
        self._join()

    def teardown(self, runner: Any) -> None:
        if self.host is not None:
            self.host.close()

    # ----------------------------------------------------------------- per bar
    def on_fill(self, runner: Any, order_id: str, fill: Any) -> None:
        # The notional the simulator charges the turnover penalty on: KRW spent on a buy,
        # gross KRW proceeds (before the fee) on a sell.
        self._notional += -fill.krw_delta if fill.usdt_delta > 0 else abs(fill.usdt_delta) * fill.price

    def on_decision(self, runner: Any, decision: Any) -> None:
        host = self.host
        if host is None or host.learner is None:
            return
        state, bar = runner.state, decision.bar
        obs = decision.obs
        equity = state.equity(bar.close)
        host.bars_seen = state.step
        # Join the update started after the previous bar first: the learner is never touched
        # while it runs, and its result trades from the next bar whatever its duration.
        self._publish(state.step)
        if obs is None:  # warm-up: nothing decided yet, no account history to reward
            self._notional = 0.0
            return
        if self._pending is not None and self._last is not None:
            self._pending["reward"] += bar_reward(self.reward_rule, self._last, equity, state.position_usdt,
                                                  bar.close, bar.fx, self._notional)
        self._last, self._notional = {"equity": equity, "fx": bar.fx}, 0.0
        if host.challenger is not None:
            self._judge(runner, bar, equity)
        if decision.action is None:  # between two decisions: the pending one keeps collecting its reward
            return
        recordable = state.risk_state is not RiskState.HALTED and decision.reason == "policy"
        if self._pending is not None:
            p = self._pending
            host.add_transition(Transition(p["obs"], p["action"], p["logprob"], p["reward"], obs, False,
                                           not recordable))
        self._pending = None
        if recordable:
            self._pending = {"obs": {k: v.detach().clone() for k, v in obs.items()}, "action": int(decision.action),
                             "logprob": host.logprob(obs, decision.action), "reward": 0.0}
            if host.challenger is not None:
                self._challenger_target(runner, bar, obs)

    def on_bar_end(self, runner: Any, decision: Any) -> None:
        if self.host is not None and self.host.learner is not None and self.host.learner.update_due():
            self._start_update()

    # ----------------------------------------------------------------- challenger paper account
    def _judge(self, runner: Any, bar: Any, incumbent_equity: float) -> None:
        """Fill the challenger's pending target at this bar's open, then compare both accounts at its close."""
        state = runner.state
        if self._shadow is None:  # starts as a copy of the incumbent's account
            self._shadow, self._shadow_target = Account(state.cash_krw, state.position_usdt), math.nan
        if not math.isnan(self._shadow_target):
            self._shadow.rebalance(self._shadow_target, bar.open, runner.rules)  # the paper exchange's fill
            self._shadow_target = math.nan
        decision = self.host.judge(str(bar.time), incumbent_equity, self._shadow.value(bar.close),
                                   state.risk_state.value, bar=state.step)
        if decision is not None and decision.outcome == "promote":
            self._shadow, self._shadow_target = Account(state.cash_krw, state.position_usdt), math.nan

    def _challenger_target(self, runner: Any, bar: Any, obs: dict[str, torch.Tensor]) -> None:
        account, state = self._shadow, runner.state
        if account is None:
            return
        weight = account.weight(bar.close) if account.value(bar.close) else 0.0
        own = {**obs, ACCOUNT: account_of(account.cash_krw, account.position_usdt, bar.close, state.initial_krw)}
        action = self.host.challenger_act(own)
        scheme = runner.policy.scheme
        self._shadow_target = float(scheme.target_weight(torch.tensor([action]), execution.money(weight))[0])  # NaN: hold

    # ----------------------------------------------------------------- background update
    def _start_update(self) -> None:
        if self._thread is not None:
            return
        learner = self.host.learner
        self._lineage = learner.lineage

        def work() -> None:
            _lower_this_threads_priority()
            try:
                with self.host.learn_lock:
                    self._result = learner.update()
            except BaseException as exc:  # noqa: BLE001 - reported at the next bar, never kills trading
                self._error = exc

        self._thread = threading.Thread(target=work, name="kpremia-online-update", daemon=True)
        self._thread.start()

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _publish(self, step: int) -> None:
        """Publish the update started after the previous bar, at bar ``step`` (waits only if it is still running)."""
        if self._thread is None:
            return
        self._join()
        if self._error is not None:
            log.error("online update failed (%s); trading continues with %s", self._error, self.host.version)
            self.host.log.write("learner", "error", {"error": repr(self._error)}, model_version=self.host.version,
                                ok=False, bar=step)
            self._error = None
            return
        result, self._result = self._result, None
        if result is not None:
            self.host.publish(result, self._lineage, bar=step)

    # ----------------------------------------------------------------- restart
    def state_dict(self) -> dict[str, Any]:
        if self.host is None:
            return {}
        # Taken when the decision is journaled: any update is published by then (on_decision)
        # and the next one starts after it (on_bar_end), so the snapshot is never mid-update.
        shadow = None if self._shadow is None else {"cash": self._shadow.cash_krw, "usdt": self._shadow.position_usdt,
                                                    "target": self._shadow_target}
        return {"host": self.host.state_dict(), "pending": self._pending, "last": self._last,
                "notional": self._notional, "shadow": shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        host_state = (state or {}).get("host") or {}
        if self.host is None and (host_state.get("learner") is not None
                                  or host_state.get("version", "v1_0_0") != "v1_0_0"):
            version = host_state.get("version", "v1_0_0")
            raise UserError(f"this session learned online and trades model version {version}; without "
                            "live.learn.enabled=true it would trade the checkpoint's own weights instead: add "
                            f"live.learn.enabled=true to continue, or live.rollback={version} to trade that version "
                            "without learning; nothing was changed")
        if self.host is None or not state:
            return
        self.host.load_state_dict(state["host"], rollback=self.rollback)
        self._restored = True
        self._pending, shadow = state.get("pending"), state.get("shadow")
        if shadow is not None:
            self._shadow, self._shadow_target = Account(shadow["cash"], shadow["usdt"]), float(shadow["target"])
        self._last, self._notional = state.get("last"), float(state.get("notional", 0.0))
        if self.host.learner is not None and self.host.learner.update_due():
            self._start_update()  # the killed run had started it after this snapshot: do it again
