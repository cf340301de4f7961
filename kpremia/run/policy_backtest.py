"""Any policy through kpremia's own report: a Stable-Baselines3 model, a kpremia ``Policy`` or a function.

Why: a policy trained with another library on kpremia's gym env (``kpremia/KPremia-v0``) had no way
into ``test``'s report, so it could not be compared with an agent or the rules on equal terms.
:func:`run_policy_report` plays it over the test split of the market the config describes (the
one ``fit`` and the gym env build for the same overrides: the same train-fit normaliser, fills,
fees, action scheme and decision interval), beside the same baselines, and writes the same report
files as ``test`` (``trace.csv``, ``equity.csv``, ``summary.json``, plots) with the run files of a
``backtest`` (``config.yaml``, ``meta.json``, ``data_manifest.json``).

A policy is one of: an object with SB3's ``predict(obs, deterministic=True) -> (actions, state)``;
an object with ``act(obs) -> actions`` (:class:`kpremia.app.api.Policy`); a callable ``policy(obs) ->
actions``.  ``obs`` is the observation dict of a batch (NumPy arrays ``[n, ...]``, as a gymnasium
vector env gives); the actions are integers of the experiment's action scheme.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from kpremia.core.bars import timeframe_label
from kpremia.core.errors import UserError
from kpremia.core.threads import apply_threads
from kpremia.envs.experiment import ALL_SPLITS, load_market
from kpremia.eval.backtest import run_baseline_backtests, run_policy_backtest, trace_metrics
from kpremia.eval.baselines import baseline_params, fit_baselines, make_baselines
from kpremia.eval.config import rule_options
from kpremia.eval.model_based import model_options
from kpremia.eval.report import format_table, write_report
from kpremia.run.compare import data_identity, inserted_bars
from kpremia.run.run_config import RunConfig, resolve_bar_settings
from kpremia.run.run_files import write_run_files

log = logging.getLogger(__name__)


def policy_name(policy: Any) -> str:
    """What the report calls the policy: its class (``PPO``, ``Policy``) or function name."""
    return getattr(policy, "__name__", None) or type(policy).__name__


def as_act(policy: Any, n_actions: int) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """The simulator's ``act(obs tensors) -> LongTensor[n]`` for any supported policy (see the module docstring)."""
    if hasattr(policy, "predict"):
        def decide(obs: dict[str, np.ndarray]) -> Any:
            return policy.predict(obs, deterministic=True)[0]
    elif hasattr(policy, "act"):
        decide = policy.act
    elif callable(policy):
        decide = policy
    else:
        raise UserError(f"backtest(policy=...) takes an SB3 model (predict), a kpremia Policy (act) or a function "
                        f"obs -> actions; got a {type(policy).__name__}")

    def act(obs: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = {k: v.detach().cpu().numpy() for k, v in obs.items()}
        actions = np.asarray(decide(batch)).reshape(-1)
        n = next(iter(batch.values())).shape[0]
        if actions.shape[0] != n or not np.issubdtype(actions.dtype, np.integer) and not np.all(
                np.equal(np.mod(actions, 1), 0)):
            raise UserError(f"the policy returned {actions!r} for {n} observation(s); it must return {n} whole "
                            f"action number(s) in 0..{n_actions - 1}")
        out = torch.as_tensor(actions.astype(np.int64))
        if out.min() < 0 or out.max() >= n_actions:
            raise UserError(f"the policy chose action {int(out.max() if out.max() >= n_actions else out.min())}, "
                            f"outside this scheme's 0..{n_actions - 1}; train it on the same experiment's env")
        return out

    return act


def run_policy_report(policy: Any, cfg: RunConfig | dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """``policy`` and the baselines over the test split of ``cfg``'s market; writes ``run_dir/report``."""
    run = RunConfig.of(cfg)
    apply_threads(run)
    eval_cfg = run.eval
    if (eval_cfg.split or "test") != "test":
        raise UserError(f"eval.split={eval_cfg.split!r}: a policy is backtested on the test split (the rules and "
                        "the normaliser are fit on the train split)")
    market = load_market(run, ALL_SPLITS)
    run = resolve_bar_settings(run, market)
    cfg = run.raw
    target = market.tensors["test"]
    env = run.env
    act = as_act(policy, env.scheme().n_actions)
    name = policy_name(policy)
    log.info("backtest of %s on the test split: %s %s bars (the policy, then %d baseline(s))", name,
             f"{int(target.n_bars - target.valid_from):,}", timeframe_label(market.bar), len(eval_cfg.baselines))
    traces = run_policy_backtest(act, target, env, n_envs=1, seed=int(cfg["seed"]), progress="policy backtest")
    baselines = make_baselines(eval_cfg.baselines, env, seed=int(cfg["seed"]),
                               options={**rule_options(eval_cfg.rule_levels), **model_options(market.manifest)})
    fit_baselines(baselines, market.tensors["train"])
    baseline_traces = run_baseline_backtests(baselines, target, env, progress="baselines backtest") if baselines else {}
    period = [str(target.times[target.valid_from]), str(target.times[-1])]
    extra = {"command": "backtest", "split": "test", "policy": name, "experiment": cfg.get("experiment_name"),
             "seed": cfg.get("seed"), "data_seed": cfg["data"].get("seed"), "eval": eval_cfg.to_dict(),
             "baseline_params": baseline_params(baselines), "fee_rate": env.fee_rate,
             "data": data_identity(market.manifest),
             "data_source": str(cfg["data"].get("path") or cfg["data"].get("name")), "period": period,
             "bars": int(target.n_bars - target.valid_from), "timeframe": timeframe_label(market.bar),
             "inserted_bars": inserted_bars(market.manifest), "policy_metrics": trace_metrics(traces[0])}
    write_run_files(run_dir, cfg, market.manifest)
    report_dir = run_dir / "report"
    stamp = (f"{name} (backtest) | {extra['data']} | test split, {extra['timeframe']} bars, "
             f"fee {100 * float(env.fee_rate):g} %")
    summary = write_report(report_dir, traces[0], baseline_traces, extra, plots=eval_cfg.plots, stamp=stamp)
    first, last = (pd.Timestamp(t).strftime("%Y-%m-%d %H:%M") for t in period)
    print(f"backtest of {name} over {extra['bars']} {extra['timeframe']} bars of {extra['data_source']} (test): "
          f"{first} .. {last} UTC (bar open times)")
    print(format_table(summary))
    print(report_dir)
    return {**summary, "report_dir": str(report_dir)}
