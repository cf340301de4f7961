"""Challenger: the online-updated copy replaces the trading policy only when it has beaten it.

While the incumbent (the policy whose orders are sent) trades, the online-updated
copy trades the same bars on a paper account beside it.  Every
``live.learn.challenger.window`` (a duration such as ``1d``, as bars of the run's
bar size; a number is bars) the two accounts' returns over those bars are compared:

* the challenger is **promoted** when ``challenger_return - incumbent_return >= margin``
  and the risk manager is ACTIVE;
* otherwise it is **refused**, with the reason.

Both outcomes are returned as a :class:`ChallengerDecision` for the journal, and
the window starts again.  The judge never touches the risk manager: a promotion
changes which weights act, never the risk state, so a HALTED or REDUCING runner
stays so whatever the challenger earned (no promotion at all happens then: a
policy change while a person is resolving a halt would muddy the picture).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import pandas as pd

from kpremia.core.bars import DEFAULT_BAR, bars_setting
from kpremia.run.live_config import ChallengerConfig

ACTIVE = "ACTIVE"


class ChallengerDecision(NamedTuple):
    bar_time: str
    outcome: str  # "promote" | "refuse"
    reason: str
    incumbent_return: float
    challenger_return: float
    window_bars: int
    risk_state: str


class Challenger:
    """Compares the incumbent's and the challenger's account values on the same bars.

    Args:
        config: ``live.learn.challenger``.
        bar: the bar size of the bars it is given (resolves ``config.window`` to ``window_bars``).
    """

    def __init__(self, config: ChallengerConfig | None = None, bar: pd.Timedelta = DEFAULT_BAR):
        self.config = config or ChallengerConfig()
        self.window_bars = bars_setting(self.config.window, bar, "live.learn.challenger.window")
        self._start: tuple[float, float] | None = None
        self._bars = 0

    def record(self, bar_time: str, incumbent_value: float, challenger_value: float,
               risk_state: str = ACTIVE) -> ChallengerDecision | None:
        """Both accounts' values after ``bar_time``; a decision every ``window_bars`` bars."""
        if self._start is None:
            self._start = (float(incumbent_value), float(challenger_value))
            return None
        self._bars += 1
        if self._bars < self.window_bars:
            return None
        inc = float(incumbent_value) / self._start[0] - 1.0
        cha = float(challenger_value) / self._start[1] - 1.0
        margin = self.config.margin
        if risk_state != ACTIVE:
            outcome, reason = "refuse", f"risk state {risk_state}: no promotion unless ACTIVE"
        elif math.isfinite(cha) and cha - inc >= margin:
            outcome, reason = "promote", f"challenger {cha:+.4%} vs incumbent {inc:+.4%} >= margin {margin:.4%}"
        else:
            outcome, reason = "refuse", f"challenger {cha:+.4%} vs incumbent {inc:+.4%} < margin {margin:.4%}"
        decision = ChallengerDecision(str(bar_time), outcome, reason, inc, cha, self._bars, str(risk_state))
        self._start = (float(incumbent_value), float(challenger_value))
        self._bars = 0
        return decision

    def state_dict(self) -> dict[str, Any]:
        return {"start": self._start, "bars": self._bars}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._start = tuple(state["start"]) if state["start"] is not None else None
        self._bars = int(state["bars"])
