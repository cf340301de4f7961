"""LiveCallback: the live runner's hooks, in the spirit of Lightning's ``Callback``.

The runner owns time (one bar -> one decision) and the crash-safety protocol;
callbacks own behaviour.  Every hook is a no-op here, so a callback overrides
only what it needs.  Hooks are called in the order the callbacks are listed.

* Stopping is a flag: ``runner.should_stop = True`` ends the run after the
  current bar, like ``trainer.should_stop``.
* ``state_dict()`` / ``load_state_dict()`` are saved with every decision in the
  journal's snapshot, so a callback resumes exactly after a restart.
* ``on_decision`` may change the decision before it is journaled
  (``decision.block(reason)``); the other hooks see events after they are
  committed to the journal.
* The runner's ``live`` command builds each callback switched on in
  ``live.callbacks`` with :meth:`LiveCallback.from_config` (its options, and the
  typed ``live`` settings for callbacks whose settings have their own section,
  such as ``risk`` -> ``live.risk``).
* A third-party callback registers like any plug-in::

      from kpremia.core.registry import LIVE_CALLBACKS

      @LIVE_CALLBACKS.register("my_alerts")
      class MyAlerts(LiveCallback): ...

  and is switched on with ``+live.callbacks.my_alerts={}`` (its options go in the mapping).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kpremia.core.errors import UserError

if TYPE_CHECKING:
    from kpremia.run.live_config import LiveConfig
    from kpremia.live.loop.runner import LiveRunner, ReconcileReport
    from kpremia.live.loop.types import Bar, Decision, FillReport, OrderIntent, OrderReport


class LiveCallback:
    """Base class of live callbacks: override the hooks you need."""

    @classmethod
    def from_config(cls, options: Mapping[str, Any], live: LiveConfig) -> LiveCallback:
        """The callback for ``live.callbacks.<name>: options`` (override to read a ``live`` section)."""
        try:
            return cls(**dict(options))
        except TypeError as exc:
            raise UserError(f"live callback {cls.__name__} rejected its options {sorted(options)}: {exc}; fix "
                            "them under live.callbacks") from None

    @property
    def state_key(self) -> str:
        """Key of this callback's state in the snapshot (the class name; override to run two of a kind)."""
        return type(self).__qualname__

    def setup(self, runner: LiveRunner) -> None:
        """Called once when the runner is built, before the journal is read."""

    def on_start(self, runner: LiveRunner) -> None:
        """Called after resume and reconciliation, before the first bar."""

    def on_reconcile(self, runner: LiveRunner, report: ReconcileReport) -> None:
        """Called with what reconciling the journal against the broker found at start."""

    def on_bar(self, runner: LiveRunner, bar: Bar) -> None:
        """Called when a closed bar arrives, after pending fills are booked and before the policy acts."""

    def on_decision(self, runner: LiveRunner, decision: Decision) -> None:
        """Called after the policy acted (``decision.order`` sized) and before it is journaled; may block it."""

    def on_intent(self, runner: LiveRunner, decision: Decision) -> None:
        """Called after the decision (and its order intent, if any) is committed, before the order is sent."""

    def on_order(self, runner: LiveRunner, order: OrderIntent, report: OrderReport) -> None:
        """Called after the broker answered an order send (accepted, rejected) and the answer is journaled."""

    def on_fill(self, runner: LiveRunner, order_id: str, fill: FillReport) -> None:
        """Called for each new fill after it is journaled and booked in ``runner.state``."""

    def on_bar_end(self, runner: LiveRunner, decision: Decision) -> None:
        """Called when the bar is fully handled (decision journaled, order sent)."""

    def on_risk_event(self, runner: LiveRunner, event: dict[str, Any]) -> None:
        """Called when the risk state changes or an order is refused, after it is journaled."""

    def on_error(self, runner: LiveRunner, error: BaseException) -> None:
        """Called when the loop raises, before the runner stops."""

    def on_stop(self, runner: LiveRunner) -> None:
        """Called once when the run ends (bars exhausted, max_bars, should_stop or error)."""

    def teardown(self, runner: LiveRunner) -> None:
        """Called last, after the journal is closed."""

    def state_dict(self) -> dict[str, Any]:
        """What this callback needs to resume after a restart (saved with every decision)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
