"""`validate`/`test` on another data file scale observations with the checkpoint's own normaliser.

Before, `test` refitted the normaliser on the new file's train split, so the policy saw
differently scaled inputs than it was trained on.  The reference here is computed
independently: the new file's raw observation tables scaled by the statistics saved in
the checkpoint, played through the backtest; `eval.split=all` reports which bars it tested.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kpremia.core.registry import DATA_SOURCES
from kpremia.data.market import build_market
from kpremia.eval.backtest import run_policy_backtest
from kpremia.run.checkpoint import load_checkpoint
from kpremia.run.evaluate import evaluate_checkpoint


def test_test_on_another_file_uses_the_checkpoint_normaliser(live_cfg, checkpoint, tmp_path, capsys):
    other = {**{k: v for k, v in live_cfg["data"].items() if k != "split"}, "seed": 11, "days": 30,
             "start": "2025-02-01"}
    frame, _ = DATA_SOURCES.build(other).load()
    frame = frame.assign(volume=frame["volume"] * 40.0)  # another venue: very different volume statistics
    path = tmp_path / "other.csv"
    frame.rename_axis("time").reset_index()[["time", "open", "high", "low", "close", "volume", "fx"]].to_csv(
        path, index=False)

    cli = copy.deepcopy(live_cfg)
    cli["data"] = {"name": "csv", "path": str(path), "columns": None, "time_column": "time", "timezone": "UTC",
                   "fx_path": None, "premium_basis": "usdt", "repair": True, "split": live_cfg["data"]["split"]}
    cli["eval"] = {**cli["eval"], "split": "all", "plots": False, "baselines": ["cash"]}
    cli["ckpt"] = str(checkpoint)
    summary = evaluate_checkpoint(str(checkpoint), split="test", cli_cfg=cli,
                                  overrides=["data=csv", f"data.path={path}", "eval.split=all"])
    out = capsys.readouterr().out

    loaded = load_checkpoint(checkpoint)
    csv_frame, _ = DATA_SOURCES.build({k: v for k, v in cli["data"].items() if k != "split"}).load()
    windows = {k: loaded.cfg["env"][k] for k in ("window_bars", "window_1d", "window_premium")}
    ours = build_market(csv_frame, windows=windows, splits=("all",), normalizer=loaded.normalizer)
    refit = build_market(csv_frame, {}, windows, splits=("train", "all"))
    market = ours.tensors["all"]
    assert not torch.allclose(refit.tensors["all"].obs["features"], market.obs["features"]), \
        "the new file's statistics must differ, or this test proves nothing"

    act = lambda obs: loaded.module.act(obs, deterministic=True)  # noqa: E731
    expected = run_policy_backtest(act, market, loaded.cfg["env"])[0]
    assert summary["normalizer"] == "checkpoint" and summary["split"] == "all"
    assert summary["bars"] == market.n_bars - market.valid_from
    first, last = str(market.times[market.valid_from]), str(market.times[-1])
    assert summary["period"] == [first, last]
    shown = " .. ".join(pd.Timestamp(t).strftime("%Y-%m-%d %H:%M") for t in (first, last))
    assert f"tested {summary['bars']} 15m bars of {path} (all): {shown} UTC" in out
    final = float(expected["portfolio_value_krw"].iloc[-1]) / float(expected["portfolio_value_krw"].iloc[0]) - 1
    assert np.isclose(summary["policy"]["return"], final, rtol=1e-9, atol=1e-12)
    # another data file gets its own report folder: the run's own test report is not overwritten
    report = Path(summary["report_dir"])
    assert report.parent.parent.parent == checkpoint.parent.parent / "report" and report.name == "all"
    trace = pd.read_csv(report / "trace.csv")
    assert len(trace) == len(expected)
    np.testing.assert_array_equal(trace["action"].to_numpy()[:-1], expected["action"].to_numpy()[:-1].astype(int))
