"""DecisionClock: when a policy decides, counted in bars.

A policy trained with ``env.decision_every=k`` decides on one bar in ``k`` and
holds in between: the simulator steps ``k`` bars per decision, the backtest and
the live runner send no order on the bars between two decisions, and the online
learner records one transition per decision.  They all ask this one object, so
the cadence a policy acts on is the cadence it was trained on.

The clock counts *bars*, never minutes: what a bar is (15 minutes by default)
is the data's business, so the same ``decision_every`` works at any bar size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kpremia.config import ConfigPart, at_least, knob


@dataclass(frozen=True)
class DecisionClock(ConfigPart):
    """One decision every ``decision_every`` bars, counted from the first bar the policy can act on."""

    section: ClassVar[str] = "env"

    decision_every: int = knob(1, at_least(1))  # bars per decision: the action holds k bars, rewards summed

    def __post_init__(self) -> None:
        self.check()

    def decides(self, bars_since_start: int) -> bool:
        """Whether the bar ``bars_since_start`` bars after the first actionable one is a decision bar."""
        return bars_since_start % self.decision_every == 0

    @property
    def bars_per_decision(self) -> int:
        """How many bars one decision spans (its order fills at the first, it is held for all)."""
        return self.decision_every
