"""The optional edge features: off by default, causal, batch == bar-by-bar, and what they say they are."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kpremia.core.errors import UserError
from kpremia.data.feature_formulas import FEATURE_NAMES, OPTIONAL_FEATURE_NAMES, feature_names
from kpremia.data.feature_table import IncrementalFeatures, compute_features, feature_lookback, feature_matrix

from .test_features import _records, perturb_after, probe_rows

ALL = feature_names(OPTIONAL_FEATURE_NAMES)


def test_off_by_default_and_named_on_request() -> None:
    assert not set(OPTIONAL_FEATURE_NAMES) & set(FEATURE_NAMES)
    assert {"premium_ema_gap_2h", "premium_ema_gap_8h", "premium_ema_gap_4h_x_hour_sin", "jump_age_days",
            "jump_size_pct", "jump_decayed_frac"} <= set(OPTIONAL_FEATURE_NAMES)
    assert feature_names(["jump_age_days"]) == (*FEATURE_NAMES, "jump_age_days")
    with pytest.raises(UserError, match="unknown extra feature.*ret_1x"):
        feature_names(["ret_1x"])
    # declared look-backs: a week and an hour (the jump features) at 15m, in time at 1h
    assert feature_lookback(names=ALL) == 672 + 4 and feature_lookback(pd.Timedelta("1h"), ALL) == 168 + 1


def test_edge_features_do_not_look_ahead(short_frame) -> None:
    base = feature_matrix(short_frame, names=ALL).numpy()
    for t in probe_rows(short_frame)[:6] + [len(short_frame) - 2]:
        moved = feature_matrix(perturb_after(short_frame, t, seed=t), names=ALL).numpy()
        np.testing.assert_array_equal(moved[:t + 1], base[:t + 1], err_msg=f"row {t}")
        if t + 1 >= feature_lookback(names=ALL):
            assert not np.allclose(moved[t + 1], base[t + 1], equal_nan=True)


def test_incremental_edge_features_equal_batch(short_frame) -> None:
    frame = short_frame.iloc[:feature_lookback(names=ALL) + 300]
    batch = feature_matrix(frame, names=ALL).numpy()
    inc = IncrementalFeatures(names=ALL)
    rows = np.array([inc.update(r) for r in _records(frame)])
    np.testing.assert_allclose(rows, batch, rtol=1e-9, atol=1e-12, equal_nan=True)


def _frame(premium: np.ndarray, start: str = "2024-03-04 00:00") -> pd.DataFrame:
    index = pd.date_range(start, periods=len(premium), freq="15min", tz="UTC", name="time")
    fx = np.full(len(premium), 1400.0)
    close = fx * (1 + premium)
    return pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0, "fx": fx,
                         "premium": premium}, index=index)


def test_ema_gap_is_the_premium_minus_its_trailing_ema() -> None:
    rng = np.random.default_rng(0)
    premium = 0.01 + np.cumsum(rng.normal(0, 2e-4, 900))
    got = compute_features(_frame(premium), names=ALL)
    n, t = 64, 800  # the 4 h gap: EMA span 16 bars at 15m, over a window of four spans
    alpha = 2.0 / (16 + 1)
    window = premium[t - n + 1:t + 1]
    weights = np.array([(1 - alpha) ** k for k in range(n - 1, -1, -1)])
    want = (premium[t] - (window * weights).sum() / weights.sum()) * 100
    assert got["premium_ema_gap_4h"].iloc[t] == pytest.approx(want, rel=1e-12)
    hour = ((got.index[t].hour + 9) % 24 + got.index[t].minute / 60) * 2 * np.pi / 24
    assert got["premium_ema_gap_4h_x_hour_sin"].iloc[t] == pytest.approx(want * np.sin(hour), rel=1e-9)


def test_jump_features_find_the_last_jump_its_size_and_how_much_is_given_back() -> None:
    premium = np.full(1_000, 0.01)
    premium[800:] += 0.015  # a 1.5-point jump at bar 800, then a slow give-back
    premium[800:] -= np.linspace(0.0, 0.006, 200)  # 0.6 points back by the last bar
    got = compute_features(_frame(premium), names=ALL)
    last = got.iloc[-1]
    # the last one-hour move >= 0.5 points ends at bar 803 (the window 799 -> 803 still holds the jump)
    assert last["jump_age_days"] == pytest.approx((999 - 803) / 96)
    assert last["jump_size_pct"] == pytest.approx(1.5 - 100 * 0.006 * 3 / 199, rel=1e-6)
    level_after = premium[803]
    assert last["jump_decayed_frac"] == pytest.approx((level_after - premium[-1]) * 100 / last["jump_size_pct"])
    before = got.iloc[790]  # no jump in the week before bar 800
    assert before["jump_age_days"] == 7.0 and before["jump_size_pct"] == 0.0 and before["jump_decayed_frac"] == 0.0
