"""`test` keeps one report per (checkpoint, data, split): nothing is overwritten, and compare reads them all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kpremia
from kpremia.run.compare import compare_main

TINY = ["experiment=mlp_ppo", "data.days=40", "env.n_envs=8", "env.max_steps=100", "algo.n_steps=16",
        "algo.rollouts_per_epoch=1", "algo.update_epochs=2", "algo.n_minibatches=2", "algo.total_env_steps=256"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    return kpremia.fit([*TINY, f"paths.runs_dir={tmp_path_factory.mktemp('layout') / 'runs'}"])


def test_best_then_last_leaves_two_reports_and_compare_shows_both(run, capsys) -> None:
    best = kpremia.test(run.best_checkpoint, ["eval.test_markets=1"])
    last = kpremia.test(run.last_checkpoint, ["eval.test_markets=1", "eval.plots=false"])
    best_dir, last_dir = Path(best["report_dir"]), Path(last["report_dir"])
    assert best_dir == run.run_dir / "report" / run.best_checkpoint.stem / "synthetic-seed0" / "test"
    assert last_dir == run.run_dir / "report" / "last" / "synthetic-seed0" / "test"
    summaries = sorted((run.run_dir / "report").rglob("summary.json"))
    assert len(summaries) == 4  # 2 checkpoints x (own split + 1 unseen draw)
    best_summary = json.loads((best_dir / "summary.json").read_text())
    assert best_summary["checkpoint_name"] == run.best_checkpoint.stem and best_summary["split"] == "test"
    assert all(part in best_summary["stamp"] for part in ("mlp_ppo seed 0", "best-epoch", "synthetic", "test split",
                                                          "15m bars", "fee 0.1 %"))
    assert (best_dir / "equity.png").is_file() and not (last_dir / "equity.png").exists()
    assert (best_dir / "trades.csv").is_file() and (best_dir.parent.parent / "synthetic-seed1000000" / "test" /
                                                    "summary.json").is_file()
    assert best["paired"]["premium_threshold"]["n"] == 2 and len(best["markets"]) == 2

    # the same test again with plots off leaves no picture beside the new numbers
    kpremia.test(run.best_checkpoint, ["eval.test_markets=0", "eval.plots=false"])
    assert not (best_dir / "equity.png").exists() and (best_dir / "summary.json").is_file()

    capsys.readouterr()
    assert compare_main([str(run.run_dir), "--no-plot"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "mlp_ppo" in line]
    assert len(rows) == 2 and all(row.endswith("| 1 × 2 |") for row in rows), out
    assert "checkpoint best" in out and "checkpoint last" in out


def test_walk_forward_on_a_file_refits_the_rules_on_each_windows_past(run, tmp_path: Path, capsys, caplog) -> None:
    import logging
    import re

    from kpremia.core.registry import DATA_SOURCES

    caplog.set_level(logging.INFO, logger="kpremia")
    frame, _ = DATA_SOURCES.build({"name": "synthetic", "seed": 11, "days": 40, "start": "2025-02-01"}).load()
    path = tmp_path / "bars.csv"
    frame.rename_axis("time").reset_index()[["time", "open", "high", "low", "close", "volume", "fx"]].to_csv(
        path, index=False)
    summary = kpremia.test(run.last_checkpoint, ["data=csv", f"data.path={path}", "eval.walk_forward=3",
                                                 "eval.plots=false", "eval.baselines=[buy_and_hold,premium_threshold]"])
    file_dir = Path(summary["report_dir"]).parent
    assert file_dir.name.startswith("bars-") and Path(summary["report_dir"]).name == "test"
    windows = [json.loads((file_dir / f"walk{k}of3" / "summary.json").read_text()) for k in (1, 2, 3)]
    periods = [w["period"] for w in windows]
    assert periods[0][1] < periods[1][0] and periods[1][1] < periods[2][0]  # consecutive, not overlapping
    assert windows[-1]["period"][1] == summary["period"][1]  # the last window ends with the file
    assert all(w["split"] == "walk-forward" and w["setting_period"] == windows[0]["setting_period"] for w in windows)
    # each window's rules are fit on its own past: the own split's fit, then ever longer pasts, window by window
    fits = [int(m.group(1).replace(",", "")) for m in
            re.finditer(r"fitting the baselines on the train split \(([\d,]+) bars\)", caplog.text)]
    assert len(fits) == 4 and fits[1] < fits[2] < fits[3], fits
    bars = [w["bars"] for w in windows]
    assert fits[2] - fits[1] == bars[0] and fits[3] - fits[2] == bars[1]  # a window's past ends where it starts
    assert summary["paired"]["premium_threshold"]["n"] == 3 and len(summary["markets"]) == 3
    assert "3 walk-forward windows" in capsys.readouterr().out
    capsys.readouterr()
    assert compare_main([str(run.run_dir), "--no-plot"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "mlp_ppo" in line]
    assert any(row.endswith("| 1 × 3 |") for row in rows)  # the three windows of the file: one row
