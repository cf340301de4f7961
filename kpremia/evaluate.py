"""`validate` / `test`: evaluate a checkpoint on a split beside the baselines.

The checkpoint carries its run's config; the command line may override the
evaluation options (``eval.*``) and, explicitly, data or env keys (e.g. to test
on another file).  ``test`` is the only command that reads the test split; it
writes ``report/`` into the checkpoint's run directory.
"""

from __future__ import annotations

import copy
import logging
import statistics
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from kpremia import training
from kpremia.bars import timeframe_label
from kpremia.envs.config import EnvConfig
from kpremia.envs.experiment import ALL_SPLITS, TRAIN_SPLITS, load_market
from kpremia.errors import UserError
from kpremia.eval.config import EvalConfig, rule_options
from kpremia.eval.backtest import run_baseline_backtests, run_policy_backtest, trace_metrics
from kpremia.eval.baselines import baseline_params, fit_baselines, make_baselines
from kpremia.eval.model_based import model_options
from kpremia.eval.compare import data_identity, inserted_bars

log = logging.getLogger(__name__)

_NOT_FROM_CLI = ("ckpt", "hydra", "eval", "experiment", "logger", "paths", "live")


def apply_overrides(run_cfg: dict[str, Any], cli_cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """The checkpoint's config with the user's explicit overrides (values taken from the composed CLI config)."""
    cfg = copy.deepcopy(run_cfg)
    cfg["eval"] = cli_cfg["eval"]
    for raw in overrides:
        key = raw.split("=", 1)[0].lstrip("+~").replace("/", ".")  # env/action_scheme=x is a node too
        if not key or key.split(".")[0].split("/")[0] in _NOT_FROM_CLI:
            continue
        if key.split(".")[0] not in cli_cfg:  # a preset writing other keys (debug=fast, hparams_search=...)
            raise UserError(f"`{raw}` cannot be applied when evaluating a checkpoint: it is a training preset that "
                            "changes several keys of the run, and validate/test use the checkpoint's own config; "
                            "drop it (override single keys such as eval.* or data.path instead)")
        if "." not in key and isinstance(cli_cfg.get(key), dict):  # a whole group, e.g. data=csv
            cfg[key] = copy.deepcopy(cli_cfg[key])
            continue
        node_src, node_dst = cli_cfg, cfg
        parts = key.split(".")
        for part in parts[:-1]:
            node_src, node_dst = node_src[part], node_dst.setdefault(part, {})
        node_dst[parts[-1]] = copy.deepcopy(node_src[parts[-1]])
    return cfg


def _policy_act(module: Any, eval_cfg: EvalConfig, n_actions: int, action_names: tuple[str, ...],
                seed: int) -> tuple[Any, int]:
    """(act function, number of envs) for the configured evaluation mode."""
    forced = eval_cfg.force_action
    if forced is not None:
        if str(forced) not in action_names:
            raise UserError(f"eval.force_action={forced!r} is not an action of this scheme; use one of: "
                            f"{', '.join(action_names)}")
        index = action_names.index(str(forced))
        return (lambda obs: torch.full((obs["account"].shape[0],), index, dtype=torch.long)), 1
    if eval_cfg.deterministic:
        return (lambda obs: module.act(obs, deterministic=True)), 1
    gen = torch.Generator().manual_seed(seed)
    temperature = eval_cfg.temperature
    n = eval_cfg.n_seeds
    return (lambda obs: module.act(obs, deterministic=False, temperature=temperature, generator=gen)), n


def _eval_split(requested: Any, default: str) -> str:
    """``eval.split`` (val, test or all) or the command's own split."""
    if requested in (None, ""):
        return default
    if requested not in ("val", "test", "all"):
        raise UserError(f"eval.split={requested!r}; use val, test or all (explicit dates: data.split.train_end/"
                        "val_end)")
    return str(requested)


def _data_label(data_cfg: dict[str, Any]) -> str:
    """What the bars came from, for the report: a file path or the source name."""
    return str(data_cfg.get("path") or data_cfg.get("name"))


def evaluate_checkpoint(ckpt: str, *, split: str, cli_cfg: dict[str, Any], overrides: list[str],
                        echo: bool = True) -> dict[str, Any]:
    """Run the policy and the baselines over ``split``; print the table (``echo``); ``test`` writes the report.

    The summary it returns has ``report_dir`` (None for ``validate``) beside what ``summary.json`` holds.
    """
    loaded = training.load_checkpoint(ckpt)
    module = loaded.module
    cfg = apply_overrides(module.cfg, cli_cfg, overrides)
    eval_cfg = EvalConfig.from_dict(cfg["eval"])
    split = _eval_split(eval_cfg.split, split)
    training.apply_threads(cfg)
    splits = {"test": ALL_SPLITS, "val": TRAIN_SPLITS, "all": ("train", "all")}[split]
    if loaded.normalizer is None:
        log.warning("%s has no saved normaliser (an old checkpoint); fitting one on this data's train split", ckpt)
    # The checkpoint's own normaliser: on another file the policy still sees its training statistics.
    market = load_market(cfg, splits, normalizer=loaded.normalizer)
    training.check_bar_size(loaded.bar_minutes, market, "validate" if split == "val" else "test")
    cfg = training.resolve_bar_settings(cfg, market)
    if market.spec.shapes != module.spec.shapes:
        raise UserError(f"the data gives observations {dict(market.spec.shapes)} but the checkpoint expects "
                        f"{dict(module.spec.shapes)}; use the env windows the checkpoint was trained with")
    target = market.tensors[split]
    env = EnvConfig.of(cfg["env"])
    scheme = env.scheme()
    act, n_envs = _policy_act(module, eval_cfg, scheme.n_actions, tuple(scheme.action_names), int(cfg["seed"]))
    log.info("%s %s on the %s split: %s %s bars (the policy, then %d baseline(s))", "testing" if split != "val"
             else "validating", ckpt, split, f"{int(target.n_bars - target.valid_from):,}",
             timeframe_label(market.bar), len(eval_cfg.baselines))
    traces = run_policy_backtest(act, target, env, n_envs=n_envs, seed=int(cfg["seed"]), progress="policy backtest")
    per_seed = [trace_metrics(t) for t in traces]
    policy = {k: statistics.fmean(m[k] for m in per_seed) for k in per_seed[0]}
    if len(per_seed) > 1:
        policy.update({f"{k}_std": statistics.stdev(m[k] for m in per_seed)
                       for k in ("return", "sharpe", "max_drawdown")})
        policy["n_seeds"] = len(per_seed)

    baselines = make_baselines(eval_cfg.baselines, env, seed=int(cfg["seed"]),
                               options={**rule_options(eval_cfg.rule_levels), **model_options(market.manifest)})
    fit_baselines(baselines, market.tensors["train"])
    baseline_traces = run_baseline_backtests(baselines, target, env, progress="baselines backtest") if baselines else {}
    run_dir = Path(ckpt).resolve().parent.parent
    period = [str(target.times[target.valid_from]), str(target.times[-1])]
    report_dir = run_dir / _report_name(module.cfg["data"], cfg["data"])
    extra = {"split": split, "checkpoint": str(Path(ckpt).resolve()), "experiment": cfg.get("experiment_name"),
             "seed": cfg.get("seed"), "data_seed": cfg["data"].get("seed"), "eval": eval_cfg.to_dict(),
             "baseline_params": baseline_params(baselines), "fee_rate": env.fee_rate,
             "data": data_identity(market.manifest), "data_source": _data_label(cfg["data"]), "period": period,
             "bars": int(target.n_bars - target.valid_from), "timeframe": timeframe_label(market.bar),
             "inserted_bars": inserted_bars(market.manifest),
             "normalizer": "checkpoint" if loaded.normalizer is not None else "fitted on this data's train split"}
    from kpremia.eval.report import format_table, summarise_traces, write_report

    if split in ("test", "all"):
        summary = write_report(report_dir, traces[0], baseline_traces, {**extra, "policy_metrics": policy},
                               plots=eval_cfg.plots)
        from kpremia.loggers import log_test_report  # no-op unless the run was trained with logger=wandb

        log_test_report(cfg, run_dir, summary, report_dir)
    else:
        summary = summarise_traces(traces[0], baseline_traces, {**extra, "policy_metrics": policy})
    summary = {**summary, "report_dir": str(report_dir) if split in ("test", "all") else None}
    if not echo:
        return summary
    first, last = (pd.Timestamp(t).strftime("%Y-%m-%d %H:%M") for t in period)
    print(f"tested {extra['bars']} {extra['timeframe']} bars of {extra['data_source']} ({split}): {first} .. {last} UTC "
          "(bar open times)")
    print(format_table(summary))
    if split in ("test", "all"):
        print(report_dir)
    return summary


def _report_name(trained_on: dict[str, Any], tested_on: dict[str, Any]) -> str:
    """``report`` for the run's own market; ``report_data_seed<S>`` for another synthetic draw.

    A generalisation check (``test ckpt=... data.seed=7``) must not overwrite the report of
    the training market's test split; other data changes get ``report_other_data``.
    """
    if tested_on == trained_on:
        return "report"
    if {k: v for k, v in tested_on.items() if k != "seed"} == {k: v for k, v in trained_on.items() if k != "seed"}:
        return f"report_data_seed{tested_on.get('seed')}"
    return "report_other_data"
