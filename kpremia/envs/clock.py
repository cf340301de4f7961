"""DecisionClock: when a policy decides, counted in bars.

A policy trained with ``env.decision_every=k`` decides on one bar in ``k`` and
holds in between: the simulator steps ``k`` bars per decision, the backtest and
the live runner send no order on the bars between two decisions, the band rules
try deciding on the same cadence, and the online learner records one transition
per decision.  They all ask this one object, so the cadence a policy acts on is
the cadence it was trained on.

The clock counts *bars*.  The setting is a number of bars, or a duration
(``"4h"``) that becomes bars of the bar size of the market it runs on
(:func:`kpremia.core.bars.bars_setting`): :meth:`DecisionClock.at` resolves it once
the bar size is known (the simulator, a backtest, a rule's fit, the live
runner), and only a resolved clock answers :meth:`DecisionClock.decides`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from kpremia.core.bars import bar_of_minutes, bars_setting
from kpremia.core.config import ConfigPart, bars_or_duration, knob


@dataclass(frozen=True)
class DecisionClock(ConfigPart):
    """One decision every ``decision_every`` bars, counted from the first bar the policy can act on."""

    section: ClassVar[str] = "env"

    # bars per decision (the action holds k bars, rewards summed, gamma per decision), or a duration ("4h")
    decision_every: Any = knob(1, bars_or_duration())

    def __post_init__(self) -> None:
        self.check()

    @property
    def resolved(self) -> bool:
        """Whether the interval is a number of bars already (a duration needs the bar size: :meth:`at`)."""
        return isinstance(self.decision_every, int)

    def at(self, bar_minutes: float) -> DecisionClock:
        """This clock in bars of ``bar_minutes``-minute bars (a clock in bars is returned as it is)."""
        if self.resolved:
            return self
        return DecisionClock(bars_setting(self.decision_every, bar_of_minutes(bar_minutes), "env.decision_every"))

    @property
    def bars_per_decision(self) -> int:
        """How many bars one decision spans (its order fills at the first, it is held for all)."""
        if not self.resolved:
            raise ValueError(f"decision_every={self.decision_every!r} is a duration: resolve it with "
                             "DecisionClock.at(bar_minutes) first")
        return self.decision_every

    def decides(self, bars_since_start: int) -> bool:
        """Whether the bar ``bars_since_start`` bars after the first actionable one is a decision bar."""
        return bars_since_start % self.bars_per_decision == 0
