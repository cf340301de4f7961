"""Real data at its own bar size, end to end: the rules-only backtest, a daily file trained and tested,
synthetic runs at 1h, and checkpoints refusing bars of another size."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from kpremia.core.errors import UserError
from kpremia.envs.experiment import load_market
from kpremia.run import training
from kpremia.run.checkpoint import load_checkpoint
from kpremia.run.evaluate import evaluate_checkpoint
from kpremia.run.run_config import RunConfig, resolve_bar_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "real_formats"))
import formats  # noqa: E402

DAILY_ARGS = ["data=csv", "data.time_column=date_utc", "data.columns={usdt_krw_close: close, usd_krw: fx}"]
TINY = ["experiment=mlp_ppo", "debug=fast", "algo.total_env_steps=512", "algo.n_steps=16", "env.n_envs=8",
        "algo.rollouts_per_epoch=1", "eval.plots=false"]


@pytest.fixture(scope="module")
def daily_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("daily") / "researcher_daily.csv"
    formats.researcher_daily(path)
    return path


def test_backtest_on_a_daily_usdt_krw_file_writes_the_report(run_cli, daily_file, tmp_path):
    done = run_cli("backtest", *DAILY_ARGS, f"data.path={daily_file}", "eval.plots=false")
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "backtest of 75 1d bars of" in out and "rules fit on the train split" in out
    for name in ("cash", "buy_and_hold", "random", "premium_threshold", "premium_zscore", "oracle", "model_based"):
        assert f"\n{name} " in out
    report = Path(out.strip().splitlines()[-1])
    assert report.parent.name.endswith("_backtest") and report.parent.parent == tmp_path / "runs"
    summary = json.loads((report / "summary.json").read_text())
    assert "policy" not in summary and summary["focus"] == "premium_threshold" and summary["timeframe"] == "1d"
    assert set(summary["baselines"]) == {"cash", "buy_and_hold", "random", "premium_threshold", "premium_zscore",
                                         "model_based", "oracle"}
    assert summary["baseline_params"]["model_based"]["model"] == "fit"  # a file: its model is fit on train
    assert summary["inserted_bars"] == 0 and summary["levels"] == {"premium_threshold": "fit on the train split",
                                 "premium_zscore": "fit on the train split"}
    assert summary["baselines"]["oracle"]["return"] >= summary["baselines"]["premium_threshold"]["return"]
    manifest = json.loads((report.parent / "data_manifest.json").read_text())
    assert manifest["timeframe"] == "1d" and set(manifest["assumed"]) == {"open", "high", "low", "volume"}
    assert (report / "trace.csv").is_file() and (report / "equity.csv").is_file()


def test_backtest_over_the_whole_file_needs_the_rules_levels(run_cli, daily_file):
    done = run_cli("backtest", *DAILY_ARGS, f"data.path={daily_file}", "eval.split=all", "eval.plots=false")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "eval.split=all backtests the whole data, so premium_threshold, premium_zscore has no train split" \
        in done.stderr
    levels = "eval.rule_levels={buy_premium: 0.005, sell_premium: 0.02, zscore_window: 7d, buy_z: 1.5, sell_z: 1.5}"
    done = run_cli("backtest", *DAILY_ARGS, f"data.path={daily_file}", "eval.split=all", "eval.plots=false", levels)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((Path(done.stdout.strip().splitlines()[-1]) / "summary.json").read_text())
    assert summary["split"] == "all" and summary["levels"]["premium_threshold"] == "given"
    assert summary["baseline_params"]["premium_threshold"]["buy_premium_at_or_below"] == 0.005
    assert summary["baseline_params"]["premium_zscore"]["window_bars"] == 7  # 7 days of 1d bars
    assert summary["bars"] == 500 - 14  # the whole file after the warm-up (15 bars of price window)


def test_a_daily_file_trains_and_tests(compose_cfg, daily_file, tmp_path, capsys):
    cfg = compose_cfg(*TINY, *DAILY_ARGS, f"data.path={daily_file}")
    result = training.fit(cfg, tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "data_manifest.json").read_text())
    assert manifest["market"]["timeframe"] == "1d" and manifest["market"]["feature_lookback"] == 8
    # the experiment's durations in days: a decision every 4 h is every bar, 1,000 h episodes are 42 bars;
    # debug=fast's 200-bar episodes stay 200 bars (numbers are bars)
    assert manifest["bar_settings"]["decision_every"] == {"given": "4h", "bars": 1}
    assert manifest["bar_settings"]["max_steps"] == {"given": 200, "bars": 200}
    ckpt = result["last_model_path"]
    assert load_checkpoint(ckpt).bar_minutes == 1440.0
    cli = copy.deepcopy(cfg)
    cli["ckpt"] = ckpt
    summary = evaluate_checkpoint(ckpt, split="test", cli_cfg=cli, overrides=[])
    out = capsys.readouterr().out
    assert summary["timeframe"] == "1d" and summary["bars"] == 15 and "tested 15 1d bars of" in out
    assert {"policy", "baselines"} <= set(summary)


def test_a_file_too_short_for_the_warm_up_says_so_in_one_line(compose_cfg, tmp_path):
    path = tmp_path / "short.csv"
    formats.researcher_daily(path, days=20)
    cfg = compose_cfg(*TINY, *DAILY_ARGS, f"data.path={path}")
    with pytest.raises(UserError, match=r"too short: the train split has 14 1d bars \(14.0 days\) but the "
                                         r"observation needs 15 bars of warm-up before its first complete row \(features: 8 bars = 7 days \+ 1 bar; "
                                         r"price window: 15 bars; daily windows: 10 completed UTC days\)") as err:
        training.fit(cfg, tmp_path / "run")
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def checkpoint_15m(tmp_path_factory) -> tuple[str, dict]:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="kpremia.configs", version_base="1.3"):
        cfg = OmegaConf.to_container(compose(config_name="config", overrides=[*TINY, "data.days=30"]), resolve=True)
    result = training.fit(cfg, tmp_path_factory.mktemp("ckpt15") / "run")
    return result["last_model_path"], cfg


def test_a_15m_checkpoint_on_1h_bars_is_refused(checkpoint_15m):
    ckpt, cfg = checkpoint_15m
    assert load_checkpoint(ckpt).bar_minutes == 15.0
    cli = copy.deepcopy(cfg)
    cli["data"]["timeframe"] = "1h"
    cli["ckpt"] = ckpt
    with pytest.raises(UserError, match=r"^the checkpoint was trained on 15m bars but the data gives 1h bars; test it "
                                         r"on 15m bars \(data.timeframe=15m") as err:
        evaluate_checkpoint(ckpt, split="test", cli_cfg=cli, overrides=["data.timeframe=1h"])
    assert "\n" not in str(err.value)
    from kpremia.run.live_config import LiveConfig
    from kpremia.live.venues.feeds import ReplayFeed

    with pytest.raises(UserError, match="trained on 15m bars but the replayed data gives 1h bars"):
        ReplayFeed.from_config({**cfg, "data": cli["data"]}, LiveConfig.from_dict(cfg["live"]),
                               {"window_1d": 10, "window_premium": 10}, bar=pd.Timedelta("15min"))


def test_a_1h_synthetic_run_decides_every_4_hours(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "data.timeframe=1h", "data.days=60")
    market = load_market(cfg)
    resolved = resolve_bar_settings(RunConfig.from_dict(cfg), market)
    assert market.bar_minutes == 60.0 and market.tensors["train"].bar_minutes == 60.0
    assert resolved["env"]["decision_every"] == 4 == resolved.env.decision_every  # "4h" of the experiment, typed too
    assert cfg["env"]["decision_every"] == "4h"  # the composed config is not changed
