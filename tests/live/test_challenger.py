"""The challenger is promoted only when it beats the incumbent on the same bars by the margin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kpremia.core.errors import UserError
from kpremia.live.learning.challenger import Challenger, ChallengerConfig


def _run(judge, inc, cha, risk="ACTIVE"):
    return [d for t, (a, b) in enumerate(zip(inc, cha, strict=True))
            if (d := judge.record(f"t{t}", a, b, risk)) is not None]


def test_promoted_only_when_it_wins_by_the_margin():
    cfg = ChallengerConfig(window=4, margin=0.01)
    inc = [100.0, 101, 102, 103, 104]  # +4 % over the window
    assert _run(Challenger(cfg), inc, [100.0, 101, 102, 103, 104.8])[0].outcome == "refuse"  # +4.8 %: < 1 pp more
    win = _run(Challenger(cfg), inc, [100.0, 101, 103, 104, 105.1])[0]  # +5.1 %: 1.1 pp more
    assert win.outcome == "promote" and win.window_bars == 4
    assert win.challenger_return == pytest.approx(0.051) and win.incumbent_return == pytest.approx(0.04)
    lose = _run(Challenger(cfg), inc, [100.0, 99, 98, 97, 96])[0]
    assert lose.outcome == "refuse" and "< margin" in lose.reason


def test_decides_once_per_window_on_that_window_only():
    judge = Challenger(ChallengerConfig(window=3, margin=0.0))
    rng = np.random.default_rng(0)
    inc = 100 * np.cumprod(1 + rng.normal(0, 0.01, 10))
    cha = 100 * np.cumprod(1 + rng.normal(0, 0.01, 10))
    decisions = _run(judge, inc, cha)
    assert [d.bar_time for d in decisions] == ["t3", "t6", "t9"]
    for d, end in zip(decisions, (3, 6, 9), strict=True):  # independent reference: returns over [end-3, end]
        assert d.incumbent_return == pytest.approx(inc[end] / inc[end - 3] - 1)
        assert d.challenger_return == pytest.approx(cha[end] / cha[end - 3] - 1)
        assert d.outcome == ("promote" if d.challenger_return - d.incumbent_return >= 0 else "refuse")


def test_risk_states_are_never_lifted_and_block_promotion():
    judge = Challenger(ChallengerConfig(window=2, margin=0.0))
    d = _run(judge, [100, 100, 100], [100, 110, 120], risk="HALTED")[0]
    assert d.outcome == "refuse" and "HALTED" in d.reason and d.risk_state == "HALTED"


def test_state_round_trip_and_config_errors():
    a = Challenger(ChallengerConfig(window=3, margin=0.0))
    a.record("t0", 100, 100)
    a.record("t1", 101, 102)
    b = Challenger(a.config)
    b.load_state_dict(a.state_dict())
    assert a.record("t2", 102, 101) is None and b.record("t2", 102, 101) is None
    assert a.record("t3", 103, 104) == b.record("t3", 103, 104)
    with pytest.raises(UserError, match="challenger.window"):
        ChallengerConfig.from_dict({"window": 0})
    with pytest.raises(UserError, match="not a setting"):
        ChallengerConfig.from_dict({"windows": 3})


def test_the_window_is_a_span_of_time_in_bars_of_the_run():
    """``window: 1d`` is a day of bars at any bar size; a number stays a number of bars."""
    hour = pd.Timedelta(hours=1)
    assert Challenger(ChallengerConfig()).window_bars == 96  # 1d of 15m bars
    assert Challenger(ChallengerConfig(), hour).window_bars == 24
    assert Challenger(ChallengerConfig(window="6h"), hour).window_bars == 6
    assert Challenger(ChallengerConfig(window=5), hour).window_bars == 5
