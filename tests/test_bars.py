"""Bar sizes and durations: the one rule that turns time into bars (kpremia.core.bars)."""

from __future__ import annotations

import pandas as pd
import pytest

from kpremia.core.bars import bars_in, bars_setting, parse_duration, parse_timeframe, timeframe_label
from kpremia.core.errors import UserError


@pytest.mark.parametrize("text, minutes", [("15m", 15), ("15min", 15), ("1h", 60), ("4h", 240), ("1d", 1440),
                                           ("30m", 30), ("1m", 1)])
def test_timeframes(text, minutes):
    bar = parse_timeframe(text)
    assert bar == pd.Timedelta(minutes=minutes)
    assert parse_timeframe(timeframe_label(bar)) == bar


@pytest.mark.parametrize("text", ["1w", "7m", "2d", "30s", "1M", "hourly", ""])
def test_bar_sizes_that_do_not_divide_a_day_or_are_not_durations_are_refused(text):
    with pytest.raises(UserError, match="data.timeframe=.*(is not a bar size kpremia can use|is not a duration)"):
        parse_timeframe(text)


def test_one_rule_for_settings_in_bars_or_durations():
    q, h, d = pd.Timedelta("15min"), pd.Timedelta("1h"), pd.Timedelta("1D")
    # numbers are bars of the run's bar size, whatever it is
    assert bars_setting(16, q, "k") == bars_setting(16, d, "k") == bars_setting("16", h, "k") == 16
    # durations are round(duration / bar), at least one bar
    assert [bars_setting("4h", b, "k") for b in (q, h, d)] == [16, 4, 1]
    assert [bars_setting("1000h", b, "k") for b in (q, h, d)] == [4000, 1000, 42]
    assert bars_setting(None, q, "k") is None
    assert bars_in("90min", h) == 2 and bars_in("30min", h) == 1 and bars_in("29min", h) == 1
    for bad in (0, -3, 2.5, True, "4x", "soon"):
        with pytest.raises(UserError, match="env.decision_every="):
            bars_setting(bad, q, "env.decision_every")


def test_durations_are_single_unit_and_positive():
    assert parse_duration("7d") == pd.Timedelta(days=7) and parse_duration("90s") == pd.Timedelta(seconds=90)
    with pytest.raises(UserError, match="must be longer than zero"):
        parse_duration("0h")
