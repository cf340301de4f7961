"""Features and daily windows: causal, and batch == bar-by-bar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kpremia.data.features import (
    FEATURE_NAMES, DailyHistory, IncrementalFeatures, compute_features, daily_windows, feature_lookback,
    feature_matrix,
)
from kpremia.data.frame import validate_frame

LOOKBACK = feature_lookback()  # at the default 15m bars


def perturb_after(frame: pd.DataFrame, t: int, seed: int = 0) -> pd.DataFrame:
    """A copy of ``frame`` with every bar after row t changed (prices, fx, volume)."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    n = len(frame) - t - 1
    if n <= 0:
        return out
    scale = np.exp(rng.normal(0, 0.05, n))
    for col in ("open", "high", "low", "close"):
        out.iloc[t + 1:, out.columns.get_loc(col)] = frame[col].to_numpy()[t + 1:] * scale
    out.iloc[t + 1:, out.columns.get_loc("fx")] = frame["fx"].to_numpy()[t + 1:] * np.exp(rng.normal(0, 0.02, n))
    out.iloc[t + 1:, out.columns.get_loc("volume")] = rng.lognormal(10, 2, n)
    out["premium"] = out["close"] / out["fx"] - 1
    return out


def probe_rows(frame: pd.DataFrame) -> list[int]:
    """Rows to probe: around two UTC midnights (23:30, 23:45, 00:00, 00:15) and a few others."""
    rows = []
    for day in (12, 17):
        midnight = frame.index.get_loc(frame.index[0].normalize() + pd.Timedelta(days=day))
        rows += [midnight - 2, midnight - 1, midnight, midnight + 1]
    return rows + [LOOKBACK - 1, LOOKBACK + 500, len(frame) - 2]


def test_names_and_lookback():
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) >= 16
    assert LOOKBACK <= 700
    assert {"premium_pct", "premium_z_96", "rsi_14", "hour_sin", "hour_cos", "volume_z_96"} <= set(FEATURE_NAMES)


def test_warm_up_is_nan_then_finite(short_frame):
    feats = compute_features(short_frame)
    assert list(feats.columns) == list(FEATURE_NAMES) and feats.index.equals(short_frame.index)
    assert feats.iloc[:LOOKBACK - 1].isna().all().all()
    assert np.isfinite(feats.iloc[LOOKBACK - 1:].to_numpy()).all()


def test_features_do_not_look_ahead(short_frame):
    base = feature_matrix(short_frame).numpy()
    for t in probe_rows(short_frame):
        moved = feature_matrix(perturb_after(short_frame, t, seed=t)).numpy()
        np.testing.assert_array_equal(moved[:t + 1], base[:t + 1], err_msg=f"row {t}")
        assert not np.allclose(moved[t + 1], base[t + 1], equal_nan=True)  # the perturbation is visible


def test_daily_windows_do_not_look_ahead(short_frame):
    base = daily_windows(short_frame, 5, 7)
    for t in probe_rows(short_frame):
        moved = daily_windows(perturb_after(short_frame, t, seed=t), 5, 7)
        for b, m in zip(base, moved, strict=True):
            np.testing.assert_array_equal(m[:t + 1], b[:t + 1], err_msg=f"row {t}")


def test_daily_window_day_becomes_visible_at_its_last_bar(short_frame):
    closes, premiums = daily_windows(short_frame, 3, 2)
    idx = short_frame.index
    day_end = idx.get_loc(pd.Timestamp("2024-01-03 23:45", tz="UTC"))
    # at 23:30 the day of Jan 3 is not complete: the last window value is Jan 2's close
    assert closes[day_end - 1, -1] == short_frame["close"].iloc[day_end - 96]
    # at 23:45 (the bar closing at 00:00) it is
    assert closes[day_end, -1] == short_frame["close"].iloc[day_end]
    assert premiums[day_end, -1] == short_frame["premium"].iloc[day_end]
    assert closes[day_end + 1, -1] == short_frame["close"].iloc[day_end]
    np.testing.assert_array_equal(closes[day_end, :2], short_frame["close"].iloc[[day_end - 192, day_end - 96]])
    # before 3 days have completed the window is NaN-padded in front
    first_end = idx.get_loc(pd.Timestamp("2024-01-01 23:45", tz="UTC"))
    assert np.isnan(closes[:first_end]).all()
    assert np.isnan(closes[first_end, :2]).all() and closes[first_end, 2] == short_frame["close"].iloc[first_end]


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{"time": ts, **row._asdict()} for ts, row in zip(frame.index, frame.itertuples(index=False))]


def test_incremental_features_equal_batch(short_frame):
    frame = short_frame.iloc[:LOOKBACK + 1200]
    batch = feature_matrix(frame).numpy()
    inc = IncrementalFeatures()
    rows = np.array([inc.update(r) for r in _records(frame)])
    assert inc.ready
    np.testing.assert_allclose(rows, batch, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_incremental_daily_history_equals_batch(short_frame):
    frame = short_frame.iloc[:3000]
    closes, premiums = daily_windows(frame, 6, 4)
    hist = DailyHistory(6, 4)
    for i, r in enumerate(_records(frame)):
        hist.update(r["time"], r["close"], r["premium"])
        np.testing.assert_array_equal(hist.closes(), closes[i])
        np.testing.assert_array_equal(hist.premiums(), premiums[i])


def test_incremental_fills_gaps_like_validate_frame(short_frame):
    frame = short_frame.iloc[:LOOKBACK + 400]
    holes = frame.drop(index=frame.index[[700, 701, 702, 850, 95]])  # 95 is a day's last bar
    repaired, report = validate_frame(holes)
    assert report.gap_bars_inserted == 5
    batch = feature_matrix(repaired).numpy()
    closes, premiums = daily_windows(repaired, 4, 4)
    inc, hist = IncrementalFeatures(), DailyHistory(4, 4)
    for r in _records(holes):
        out = inc.update(r)
        hist.update(r["time"], r["close"], r["premium"])
        i = repaired.index.get_loc(r["time"])
        np.testing.assert_allclose(out, batch[i], rtol=1e-9, atol=1e-12, equal_nan=True)
        np.testing.assert_array_equal(hist.closes(), closes[i])
        np.testing.assert_array_equal(hist.premiums(), premiums[i])


def test_incremental_refuses_out_of_order_and_restores_state(short_frame):
    recs = _records(short_frame.iloc[:LOOKBACK + 20])
    inc = IncrementalFeatures()
    for r in recs[:-10]:
        inc.update(r)
    with pytest.raises(ValueError, match="not after"):
        inc.update(recs[5])
    clone = IncrementalFeatures()
    clone.load_state_dict(inc.state_dict())
    for r in recs[-10:]:
        np.testing.assert_array_equal(clone.update(r), inc.update(r))
