"""trades.csv, the validation curve and the hit rate without round trips, against hand-made traces."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kpremia.eval.backtest import report_metrics, trace_metrics
from kpremia.eval.curves import validation_curve
from kpremia.eval.trades import trade_list


def _trace(position: list[float], value: list[float], fill: list[float], premium: list[float]) -> pd.DataFrame:
    n = len(position)
    traded = [i > 0 and position[i] != position[i - 1] for i in range(n)]
    return pd.DataFrame({"time": pd.date_range("2025-01-01", periods=n, freq="15min", tz="UTC"), "bar": range(n),
                         "price": fill, "premium": premium, "action": [0] * n, "position": position,
                         "fill_price": [f if t else np.nan for f, t in zip(fill, traded, strict=True)],
                         "fee_krw": [1.0 if t else 0.0 for t in traded], "traded": traded,
                         "portfolio_value_krw": value, "reward": [0.0] * n, "ruined": [False] * n})


def test_one_closed_and_one_open_holding() -> None:
    trace = _trace(position=[0, 1, 1, 0, 0, 1, 1],
                   value=[1000.0, 999.0, 1010.0, 1020.0, 1020.0, 1019.0, 1005.0],
                   fill=[1400, 1401, 1405, 1410, 1410, 1412, 1400],
                   premium=[0.010, 0.011, 0.015, 0.020, 0.019, 0.012, 0.008])
    trades = trade_list(trace)
    assert len(trades) == 2
    first, second = trades.iloc[0], trades.iloc[1]
    # entry at bar 1 (decided at bar 0's close), exit at bar 3 (decided at bar 2's close)
    assert first["entry_time"] == trace["time"][1] and first["exit_time"] == trace["time"][3]
    assert (first["entry_price"], first["exit_price"]) == (1401, 1410)
    assert (first["entry_premium"], first["exit_premium"]) == (0.010, 0.015)
    assert first["holding_hours"] == pytest.approx(0.5)
    assert first["pnl_krw"] == pytest.approx(20.0) and first["pnl_pct"] == pytest.approx(2.0)
    assert not first["open"]
    # still open at the end: marked at the last close, from the value before its entry fill (bar 4)
    assert second["open"] and pd.isna(second["exit_time"]) and math.isnan(second["exit_price"])
    assert second["pnl_krw"] == pytest.approx(1005.0 - 1020.0)
    assert second["holding_hours"] == pytest.approx(0.25)


def test_no_trade_means_an_empty_list_and_no_hit_rate() -> None:
    trace = _trace(position=[0.0] * 5, value=[1000.0] * 5, fill=[1400] * 5, premium=[0.01] * 5)
    assert trade_list(trace).empty and list(trade_list(trace).columns)[:2] == ["entry_time", "exit_time"]
    metrics = report_metrics(trace)
    assert math.isnan(metrics["hit_rate"]) and metrics["n_trades"] == 0.0
    assert trace_metrics(trace)["hit_rate"] == 0.0  # validation and checkpoint monitors never see NaN
    held = _trace(position=[0, 1, 1, 1], value=[1000.0, 999.0, 1005.0, 1010.0], fill=[1400] * 4, premium=[0.01] * 4)
    assert math.isnan(report_metrics(held)["hit_rate"])  # bought and held: no round trip closed
    closed = _trace(position=[0, 1, 0], value=[1000.0, 999.0, 1002.0], fill=[1400] * 3, premium=[0.01] * 3)
    assert report_metrics(closed)["hit_rate"] == 1.0


def test_validation_curve_reads_metrics_csv(tmp_path: Path) -> None:
    assert validation_curve(tmp_path) is None
    pd.DataFrame({"env_steps": [512, 1024, 1024, 1536, 2048, 2048],
                  "train/loss": [0.1, 0.2, None, 0.3, 0.4, None],
                  "val/return": [None, None, 0.01, None, None, -0.02],
                  "val/band_return": [None, None, 0.005, None, None, 0.003]}).to_csv(tmp_path / "metrics.csv",
                                                                                    index=False)
    curve = validation_curve(tmp_path)
    assert curve["env_steps"].tolist() == [1024, 2048]
    assert curve["policy"].tolist() == [0.01, -0.02] and curve["band_rule"].tolist() == [0.005, 0.003]
