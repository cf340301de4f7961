"""The ``model`` live callback: online learning, the challenger and the control API beside the runner.

Switched on by ``live.learn.enabled=true`` and/or ``live.api.enabled=true``
(``configs/live/default.yaml`` wires ``live.callbacks.model`` to both blocks).

Per bar, after the decision is made (its latency is measured before this runs)
and before it is journaled:

1. the update started after the previous bar is joined and published (a new
   version; in direct mode it trades from the next bar on);
2. the previous decision's transition is completed: reward = log change of the
   account value from that close to this one (the simulator's reward), next
   observation = this one; it is added to the learner;
3. the challenger's paper account fills its previous target at this bar's open
   (the simulator's rules) and both accounts are judged;
4. this decision becomes the pending transition.

After the order is sent (``on_bar_end``) a due update starts on a background
thread, on the learner's own copy of the network: nothing in the decision path
waits for learning.  Because updates are published at the next bar's
``on_decision`` whatever their duration, which weights act at which bar does not
depend on timing, and the callback's state (learner, challenger, pending
transition, paper account) is in every journal snapshot, so a restart after a
kill resumes the same weights as an uninterrupted run.

Learning never changes the risk state; decisions blocked by the risk manager
are not learned from (the transition before them is cut, ``truncated``).
Real orders with learning on need ``live.learn.allow_real_orders=true``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from pathlib import Path
from typing import Any

import torch

from kpremia.envs import execution
from kpremia.spec import ACCOUNT
from kpremia.errors import UserError
from kpremia.live.alerts import AlertConfig, WebhookSender
from kpremia.live.api import ApiConfig, ApiServer, check_bind, create_app
from kpremia.live.callback import LiveCallback
from kpremia.live.host import ModelHost
from kpremia.live.online_ppo import Transition, UpdateResult
from kpremia.live.serve import learn_configs
from kpremia.live.status import StatusSource
from kpremia.live.versions import parse_version
from kpremia.registry import LIVE_CALLBACKS

log = logging.getLogger(__name__)


def _lower_this_threads_priority(niceness: int = 10) -> None:
    """Let the decision thread win the CPU over an update (Linux: per-thread nice; elsewhere a no-op)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):
        pass


class _LockedPolicy:
    """The runner's policy, acting under the host's lock and remembering the observation it acted on."""

    def __init__(self, policy: Any, lock: threading.RLock):
        self._policy = policy
        self._lock = lock
        self.last_obs: dict[str, torch.Tensor] | None = None
        self.last_bar_time: Any = None

    def act(self, obs: dict[str, torch.Tensor], bar: Any) -> int:
        with self._lock:
            action = self._policy.act(obs, bar)
        self.last_obs, self.last_bar_time = obs, bar.time
        return action

    def __getattr__(self, name: str) -> Any:
        return getattr(self._policy, name)


@LIVE_CALLBACKS.register("model")
class ModelCallback(LiveCallback):
    """Online PPO, versions, challenger and the control API for a checkpoint policy."""

    def __init__(self, learn: dict[str, Any] | None = None, api: dict[str, Any] | None = None,
                 rollback: str | None = None) -> None:
        self.learn_cfg = dict(learn or {})
        self.api_cfg = dict(api or {})
        self.learn_on = bool(self.learn_cfg.get("enabled", False))
        self.api_on = bool(self.api_cfg.get("enabled", False))
        self.rollback = str(rollback) if rollback else None
        if self.rollback:
            parse_version(self.rollback)  # a typo fails before anything starts
        self.host: ModelHost | None = None
        self.server: ApiServer | None = None
        self._pending: dict[str, Any] | None = None  # the last decision, waiting for its reward
        self._shadow: dict[str, float] | None = None  # the challenger's paper account
        self._thread: threading.Thread | None = None
        self._result: UpdateResult | None = None
        self._error: BaseException | None = None

    # ----------------------------------------------------------------- lifecycle
    def setup(self, runner: Any) -> None:
        if not (self.learn_on or self.api_on or self.rollback):
            return
        policy = runner.policy
        module = getattr(policy, "module", None)
        if module is None:
            raise UserError(f"live.learn / live.api / live.rollback need a checkpoint policy, not {policy.name}; "
                            "set live.learn.enabled=false and live.api.enabled=false")
        if self.learn_on and getattr(runner.broker, "name", "paper") != "paper" and not self.learn_cfg.get(
                "allow_real_orders", False):
            raise UserError("online learning with real orders is off by default: trade on paper "
                            "(live.broker=paper), or set live.learn.allow_real_orders=true knowingly")
        token = check_bind(ApiConfig.from_cfg(self.api_cfg)) if self.api_on else None
        learn, challenger = learn_configs({"learn": self.learn_cfg}, module.algo_cfg)
        state_dir = Path(runner.config.get("state_dir", "."))
        self.host = ModelHost(module, state_dir, learn=learn, challenger=challenger,
                              source=getattr(policy, "ckpt", None), deterministic=getattr(policy, "deterministic", True),
                              temperature=getattr(policy, "temperature", 1.0))
        runner.policy = _LockedPolicy(policy, self.host.lock)
        if self.api_on:
            self.server = ApiServer(create_app(self.host, StatusSource(state_dir), token), ApiConfig.from_cfg(self.api_cfg))

    def on_start(self, runner: Any) -> None:
        if self.rollback and self.host is not None:
            before = self.host.version
            version = self.host.load(self.rollback)
            self._pending = None  # its log-prob came from the weights rolled away from
            self.host.log.write("host", "rollback", {"from": before, "to": version.name, "by": "live.rollback"},
                                model_version=version.name)  # host.load journaled the step it trades from
            log.info("model rolled back from %s to %s (live.rollback)", before, version.name)
        if self.server is not None:
            self.server.start()

    def on_stop(self, runner: Any) -> None:
        self._join()
        if self.server is not None:
            self.server.stop()

    def teardown(self, runner: Any) -> None:
        if self.host is not None:
            self.host.close()

    # ----------------------------------------------------------------- per bar
    def on_decision(self, runner: Any, decision: Any) -> None:
        host = self.host
        if host is None or host.learner is None:
            return
        state, bar = runner.state, decision.bar
        policy = runner.policy
        obs = getattr(decision, "obs", None)
        if obs is None and decision.action is not None and policy.last_bar_time == bar.time:
            obs = policy.last_obs
        acted = decision.action is not None and obs is not None
        recordable = acted and state.risk_state.value != "HALTED" and decision.reason == "policy"
        equity = state.equity(bar.close)
        host.bars_seen = state.step
        # Join the update started after the previous bar first: the learner is never touched
        # while it runs, and its result trades from the next bar whatever its duration.
        self._publish()
        if self._pending is not None and obs is not None:
            p = self._pending
            reward = math.log(max(equity, 1e-9) / max(p["equity"], 1e-9))
            host.add_transition(Transition(p["obs"], p["action"], p["logprob"], reward, obs, False, not recordable))
        self._pending = None
        if host.challenger is not None and acted:
            self._judge(runner, bar, equity)
        if recordable:
            self._pending = {"obs": {k: v.detach().clone() for k, v in obs.items()}, "action": int(decision.action),
                             "logprob": host.logprob(obs, decision.action), "equity": equity}
            if host.challenger is not None:
                self._challenger_target(runner, bar, obs)

    def on_bar_end(self, runner: Any, decision: Any) -> None:
        if self.host is not None and self.host.learner is not None and self.host.learner.update_due():
            self._start_update()

    # ----------------------------------------------------------------- challenger paper account
    def _judge(self, runner: Any, bar: Any, incumbent_equity: float) -> None:
        state = runner.state
        if self._shadow is None:  # starts as a copy of the incumbent's account
            self._shadow = {"cash": state.cash_krw, "usdt": state.position_usdt, "target": math.nan}
        s = self._shadow
        if not math.isnan(s["target"]):
            one = lambda x: torch.tensor([float(x)], dtype=execution.MONEY_DTYPE)  # noqa: E731
            fill = execution.rebalance(one(s["cash"]), one(s["usdt"]), one(s["target"]), one(bar.open),
                                       **dict(runner.rules))
            s["cash"], s["usdt"] = float(fill.krw[0]), float(fill.usdt[0])
            s["target"] = math.nan
        challenger_equity = s["cash"] + s["usdt"] * bar.close
        decision = self.host.judge(str(bar.time), incumbent_equity, challenger_equity, state.risk_state.value)
        if decision is not None and decision.outcome == "promote":
            self._shadow = {"cash": state.cash_krw, "usdt": state.position_usdt, "target": math.nan}

    def _challenger_target(self, runner: Any, bar: Any, obs: dict[str, torch.Tensor]) -> None:
        s, state = self._shadow, runner.state
        if s is None:
            return
        value = s["cash"] + s["usdt"] * bar.close
        weight = s["usdt"] * bar.close / value if value else 0.0
        own = dict(obs)
        own[ACCOUNT] = torch.tensor([[s["cash"] / value, weight, math.log(max(value, 1e-9) / state.initial_krw)]],
                                    dtype=torch.float64).float()
        action = self.host.challenger_act(own)
        scheme = runner.policy.scheme
        target = float(scheme.target_weight(torch.tensor([action]), torch.tensor([weight],
                                                                                 dtype=execution.MONEY_DTYPE))[0])
        s["target"] = target  # NaN = hold

    # ----------------------------------------------------------------- background update
    def _start_update(self) -> None:
        if self._thread is not None:
            return
        learner = self.host.learner

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

    def _publish(self) -> None:
        """Publish the update started after the previous bar (waits only if it is still running)."""
        if self._thread is None:
            return
        self._join()
        if self._error is not None:
            log.error("online update failed (%s); trading continues with %s", self._error, self.host.version)
            self.host.log.write("learner", "error", {"error": repr(self._error)}, model_version=self.host.version,
                                ok=False)
            self._error = None
            return
        result, self._result = self._result, None
        if result is not None:
            self.host.publish(result)

    # ----------------------------------------------------------------- restart
    def state_dict(self) -> dict[str, Any]:
        if self.host is None:
            return {}
        # Taken when the decision is journaled: any update is published by then (on_decision)
        # and the next one starts after it (on_bar_end), so the snapshot is never mid-update.
        return {"host": self.host.state_dict(), "pending": self._pending, "shadow": self._shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.host is None and state and state.get("host", {}).get("version", "v1_0_0") != "v1_0_0":
            log.warning("this session traded model version %s; with live.learn and live.api off it now trades the "
                        "checkpoint's own weights (add live.rollback=%s to keep the learned ones)",
                        state["host"]["version"], state["host"]["version"])
        if self.host is None or not state:
            return
        self.host.load_state_dict(state["host"])
        self._pending, self._shadow = state.get("pending"), state.get("shadow")
        if self.host.learner is not None and self.host.learner.update_due():
            self._start_update()  # the killed run had started it after this snapshot: do it again
