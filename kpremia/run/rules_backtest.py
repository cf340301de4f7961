"""`backtest`: the rules on a data file, no checkpoint -- the first thing to run on new data.

``python -m kpremia backtest data=csv data.path=... [data.fx_path=...]`` answers "what
would the band rule, buy-and-hold, ... have made on my file?" with the same report as
``test``: every baseline (``eval.baselines``: band rule and z-score band fit on the
file's train split, buy-and-hold, cash, random, the hindsight oracle) over the file's
test split, through the same simulator and fill rules (``env.*``) as an agent.

``eval.split=all`` runs the whole file after the warm-up instead; there is no train
split to fit levels on then, so the fitted rules take the user's levels
(``eval.rule_levels``) or are refused in one line.  ``eval.rule_levels`` on the test
split replaces the fit as well (the report says which levels were used and whether
they were fit or given).

Output: ``runs/<date>_<time>_backtest/`` with ``config.yaml``, ``meta.json``,
``data_manifest.json`` and ``report/`` (``summary.json``, ``equity.csv``, ``trace.csv``
of the band rule, plots), and the table on stdout.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from kpremia.core.bars import timeframe_label
from kpremia.core.errors import UserError
from kpremia.core.threads import apply_threads
from kpremia.envs.experiment import ALL_SPLITS, load_market
from kpremia.eval.backtest import run_baseline_backtests
from kpremia.eval.baselines import baseline_params, fit_baselines, make_baselines
from kpremia.eval.config import rule_options
from kpremia.eval.model_based import NAME as MODEL_BASED
from kpremia.eval.model_based import model_options
from kpremia.eval.report import format_table, write_report
from kpremia.run.compare import data_identity, inserted_bars
from kpremia.run.run_config import RunConfig, resolve_bar_settings
from kpremia.run.run_files import write_run_files

log = logging.getLogger(__name__)

FITTED_RULES = ("premium_threshold", "premium_zscore")


def run_rules_backtest(cfg: RunConfig | dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Every configured baseline over the test split (or the whole data); writes ``run_dir/report``."""
    run = RunConfig.of(cfg)
    apply_threads(run)
    eval_cfg = run.eval
    split = eval_cfg.split or "test"
    if split not in ("test", "all"):
        raise UserError(f"eval.split={split!r} in `backtest`: use test (the data's test split, rules fit on its "
                        "train split) or all (every bar, with eval.rule_levels)")
    options = rule_options(eval_cfg.rule_levels)
    if split == "all":
        unfit = [name for name in FITTED_RULES if name in eval_cfg.baselines and name not in options]
        if unfit:
            raise UserError(f"eval.split=all backtests the whole data, so {', '.join(unfit)} has no train split to fit "
                            "on: give its levels, e.g. eval.rule_levels='{buy_premium: 0.005, sell_premium: 0.02, "
                            "zscore_window: 7d, buy_z: 1.5, sell_z: 1.5}', or drop it from eval.baselines")
    if not eval_cfg.baselines:
        raise UserError("eval.baselines is empty: `backtest` has nothing to run; list the rules, e.g. "
                        "eval.baselines=[cash,buy_and_hold,premium_threshold]")
    market = load_market(run, ALL_SPLITS if split == "test" else ("train", "all"))
    run = resolve_bar_settings(run, market)
    cfg = run.raw
    target = market.tensors[split]
    env = run.env
    model = model_options(market.manifest)
    names = list(eval_cfg.baselines)
    if split == "all" and MODEL_BASED in names and not model:
        log.info("%s fits its model on a train split, which eval.split=all does not have: left out", MODEL_BASED)
        names.remove(MODEL_BASED)
    baselines = make_baselines(names, env, seed=int(cfg["seed"]), options={**options, **model})
    if split == "test":
        fit_baselines(baselines, market.tensors["train"])
    else:  # given levels (or the generator's model): nothing is learned (the window in bars needs the bar size)
        fit_baselines({n: b for n, b in baselines.items() if n in (*FITTED_RULES, MODEL_BASED)}, target,
                      what="given levels")
    traces = run_baseline_backtests(baselines, target, env, progress="backtest of the rules")
    period = [str(target.times[target.valid_from]), str(target.times[-1])]
    extra = {"command": "backtest", "split": split, "seed": cfg.get("seed"), "eval": eval_cfg.to_dict(),
             "baseline_params": baseline_params(baselines),
             "levels": {name: ("given" if name in options else "fit on the train split")
                        for name in FITTED_RULES if name in baselines},
             "fee_rate": env.fee_rate, "data": data_identity(market.manifest),
             "data_source": str(cfg["data"].get("path") or cfg["data"].get("name")), "period": period,
             "bars": int(target.n_bars - target.valid_from), "timeframe": timeframe_label(market.bar),
             "inserted_bars": inserted_bars(market.manifest)}
    write_run_files(run_dir, cfg, market.manifest)
    report_dir = run_dir / "report"
    stamp = (f"rules only (backtest) | {extra['data']} | {split} split, {extra['timeframe']} bars, "
             f"fee {100 * float(env.fee_rate):g} %")
    summary = write_report(report_dir, None, traces, extra, plots=eval_cfg.plots, stamp=stamp)
    first, last = (pd.Timestamp(t).strftime("%Y-%m-%d %H:%M") for t in period)
    print(f"backtest of {extra['bars']} {extra['timeframe']} bars of {extra['data_source']} ({split}): {first} .. "
          f"{last} UTC (bar open times); rules fit on {'the train split' if split == 'test' else 'nothing (given)'}; "
          f"{extra['inserted_bars']} no-trade bars inserted in the data")
    print(format_table(summary))
    for name, params in extra["baseline_params"].items():
        if name in extra["levels"]:  # the rules with levels; cash, buy-and-hold, random and the oracle have none
            print(f"{name}: {_levels_text(params)} ({extra['levels'][name]})")
    print(report_dir)
    return summary


def _levels_text(params: dict[str, Any]) -> str:
    keys = ("buy_premium_at_or_below", "sell_premium_at_or_above", "window_bars", "buy_z_at_or_below",
            "sell_z_at_or_above", "decision_every_bars")
    parts = []
    for key in keys:
        if key in params and params[key] is not None:
            value = params[key]
            parts.append(f"{key}={value * 100:+.3f} %" if "premium" in key and isinstance(value, float)
                         else f"{key}={value}")
    return ", ".join(parts) or "-"
