"""`validate` / `test`: evaluate a checkpoint on a split beside the baselines.

The checkpoint carries its run's config; the command line may override the
evaluation options (``eval.*``) and, explicitly, data or env keys (e.g. to test
on another file).  ``test`` is the only command that reads the test split; it
writes one report per (checkpoint, data, split) into the checkpoint's run directory,
``report/<checkpoint>/<data>/<split>/`` (:mod:`kpremia.eval.layout`), so a test of another
checkpoint, market or fee never overwrites an earlier one.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from kpremia.core.bars import timeframe_label
from kpremia.core.errors import UserError
from kpremia.core.identity import identity_digest
from kpremia.core.threads import apply_threads
from kpremia.envs.experiment import ALL_SPLITS, TRAIN_SPLITS, load_market
from kpremia.data.tensors import MarketTensors
from kpremia.eval.backtest import (
    report_metrics,
    run_baseline_backtests_on_markets,
    run_policy_backtest,
    run_policy_backtests,
)
from kpremia.eval.baselines import baseline_params, fit_baselines, make_baselines
from kpremia.eval.config import EvalConfig, rule_options
from kpremia.eval.layout import checkpoint_label, report_dir_for, report_stamp
from kpremia.eval.model_based import model_options
from kpremia.run.checkpoint import apply_overrides, check_bar_size, load_checkpoint
from kpremia.run.compare import data_identity, inserted_bars
from kpremia.run.run_config import RunConfig, resolve_bar_settings

log = logging.getLogger(__name__)

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


# Unseen markets for `test`: data seeds TEST_MARKET_SEED_BASE + j, the same for every run (so runs over
# training seeds are paired on the same markets), far from training seeds and from the validation
# draws (data.seed * 1000 + 500 + j).
TEST_MARKET_SEED_BASE = 1_000_000


def test_market_seeds(cfg: dict[str, Any], split: str) -> list[int]:
    """Data seeds of the further market draws ``test`` evaluates (none off the test split or on a file)."""
    count = int((cfg.get("eval") or {}).get("test_markets", 0) or 0)
    if count <= 0 or split != "test" or cfg["data"].get("name") != "synthetic":
        return []
    own = cfg["data"].get("seed")
    return [s for s in (TEST_MARKET_SEED_BASE + j for j in range(count)) if s != own]


def evaluate_checkpoint(ckpt: str, *, split: str, cli_cfg: dict[str, Any], overrides: list[str],
                        echo: bool = True) -> dict[str, Any]:
    """Run the policy and the baselines over ``split``; print the table (``echo``); ``test`` writes the reports.

    ``test`` on a generated market also evaluates ``eval.test_markets`` further draws of it (unseen
    data seeds), each beside the baselines fit on that draw's own train split, and prints the policy's
    paired difference to the band rule over all of them (:mod:`kpremia.eval.paired`).
    The summary it returns (the own split's) has ``report_dir`` (None for ``validate``) and, after
    further markets, ``markets`` (one line each) and ``paired`` (the statistics).
    """
    loaded = load_checkpoint(ckpt)
    module = loaded.module
    cfg = apply_overrides(module.cfg, cli_cfg, overrides)  # parsed once: a RunConfig
    eval_cfg = cfg.eval
    split = _eval_split(eval_cfg.split, split)
    apply_threads(cfg)
    if loaded.normalizer is None:
        log.warning("%s has no saved normaliser (an old checkpoint); fitting one on this data's train split", ckpt)
    windows = walk_forward_configs(cfg, loaded, split, eval_cfg.walk_forward)
    seeds = [] if windows else test_market_seeds(cfg, split)
    cases = [_prepare_market(loaded, cfg, eval_cfg, split, ckpt, market_label=f"own {split} split")]
    for i, seed in enumerate(seeds, start=1):
        log.info("market %d/%d: data seed %d", i, len(seeds), seed)
        cases.append(_prepare_market(loaded, cfg.with_groups(data={**cfg["data"], "seed": seed}), eval_cfg, split,
                                     ckpt, market_label=f"unseen market {i} of {len(seeds)}"))
    for window, window_cfg in windows:
        log.info("walk-forward window %d/%d", window[0], window[1])
        cases.append(_prepare_market(loaded, window_cfg, eval_cfg, split, ckpt, window=window,
                                     market_label=f"walk-forward window {window[0]} of {window[1]}"))
    summaries = _evaluate_markets(loaded, cases, eval_cfg, split, ckpt, with_curve=True)
    summary = summaries[0]
    writes = split in ("test", "all")
    if echo:
        first, last = (pd.Timestamp(t).strftime("%Y-%m-%d %H:%M") for t in summary["period"])
        print(f"tested {summary['bars']} {summary['timeframe']} bars of {summary['data_source']} ({split}): "
              f"{first} .. {last} UTC (bar open times)")
        from kpremia.eval.report import format_table

        print(format_table(summary))
        if writes:
            print(summary["report_dir"])
    if not seeds and not windows:
        return summary
    # the windows cover the own test split: pair over them alone
    markets = summaries[1:] if windows else summaries
    from kpremia.eval.paired import paired_stats

    lines = [(f"window {m['window']} ({m['period'][0][:10]} .. {m['period'][1][:10]})" if "window" in m
              else f"data seed {m.get('data_seed')}") + f": {market_line(m)}" for m in markets]
    paired = {}
    for reference, label in (("premium_threshold", "the band rule"), ("buy_and_hold", "buy-and-hold"),
                             ("model_based", "the model-based trader")):
        diffs = [float(m["policy"]["return"]) - float(m["baselines"][reference]["return"])
                 for m in markets if reference in m.get("baselines", {})]
        if diffs:
            paired[reference] = paired_stats(diffs, reference=label).as_dict()
    if echo:
        print(f"\n{len(markets)} walk-forward windows of the validation and test bars (eval.walk_forward; rules "
              "refit on each window's past):" if windows else
              f"\n{len(markets)} markets (the own test split and {len(seeds)} unseen draws, eval.test_markets):")
        print("\n".join(f"  {line}" for line in lines))
        for stats in paired.values():
            print(paired_line(stats))
    return {**summary, "markets": lines, "paired": paired}


def walk_forward_configs(cfg: RunConfig, loaded: Any, split: str,
                         count: int) -> list[tuple[tuple[int, int, list[str]], RunConfig]]:
    """``count`` walk-forward windows over the data's validation and test bars, as run configs.

    Window k's config splits the data at the window's first bar (train: everything before it, where
    the rules are refit) and after its last (val: the window).  Only for ``test`` on the test split;
    the window bounds are equal shares of the bars after the train split.  When the checkpoint was
    trained on this data, its validation bars chose the checkpoint: the windows over them flatter it.
    """
    if count <= 0 or split != "test":
        return []
    market = load_market(cfg, ALL_SPLITS, normalizer=loaded.normalizer)
    times = pd.DatetimeIndex([*market.tensors["val"].times[market.tensors["val"].valid_from:],
                              *market.tensors["test"].times[market.tensors["test"].valid_from:]])
    if len(times) < 2 * count:
        raise UserError(f"eval.walk_forward={count} windows need at least {2 * count} bars after the train split; "
                        f"the data has {len(times)}: use fewer windows or a longer file")
    step = times[-1] - times[-2]
    edges = [round(i * len(times) / count) for i in range(count + 1)]
    region = [str(times[0]), str(times[-1])]
    out = []
    for k in range(count):
        start = times[edges[k]]
        end = times[edges[k + 1]] if edges[k + 1] < len(times) else times[-1] + step
        split_cfg = {**(cfg["data"].get("split") or {}), "train_end": start.isoformat(), "val_end": end.isoformat(),
                     "embargo_bars": 0}
        out.append(((k + 1, count, region), cfg.with_groups(data={**cfg["data"], "split": split_cfg})))
    return out


def market_line(summary: dict[str, Any]) -> str:
    """The policy's return and trades beside the band rule's and buy-and-hold's on one market."""
    def ret(name: str) -> str:
        metrics = summary["baselines"].get(name)
        return "-" if not metrics else f"{100 * float(metrics['return']):+.2f} %"

    policy = summary["policy"]
    return (f"policy {100 * float(policy['return']):+.2f} % ({int(round(float(policy.get('n_trades', 0)))):,} trades), "
            f"band rule {ret('premium_threshold')}, buy-and-hold {ret('buy_and_hold')}")


def paired_line(stats: dict[str, Any]) -> str:
    """``policy - band rule over n markets: mean +x.xx % [low, high], ... -> verdict`` for a person."""
    def pct(value: float) -> str:
        return "n/a" if value != value else f"{100 * value:+.2f} %"

    return (f"policy - {stats['reference']} over {stats['n']} markets: mean {pct(stats['mean'])} "
            f"[95 % interval {pct(stats['ci_low'])} .. {pct(stats['ci_high'])}], median {pct(stats['median'])}, "
            f"IQM {pct(stats['iqm'])}, win rate {100 * stats['win_rate']:.0f} % -> {stats['verdict']}")


@dataclass
class _Case:
    """One market of a ``validate`` / ``test``: its split, its fitted baselines and what its report says."""
    cfg: RunConfig  # in bars of this market's bar size
    asked_cfg: RunConfig  # as asked (the report directory is named from it)
    target: MarketTensors
    baselines: dict[str, Any]
    manifest: Any
    bar: pd.Timedelta
    label: str
    report_split: str
    window: tuple[int, int, list[str]] | None


def _prepare_market(loaded: Any, cfg: RunConfig, eval_cfg: EvalConfig, split: str, ckpt: str, *,
                    market_label: str, window: tuple[int, int, list[str]] | None = None) -> _Case:
    """One market's ``split`` and its baselines fit on its own train split (only what the backtests need is kept).

    ``window`` (k, of n, the region's first and last bar): a walk-forward window, given as ``cfg``'s
    split dates (its past is the train split the rules are fit on, the window is the val split).
    """
    module = loaded.module
    splits = {"test": ALL_SPLITS, "val": TRAIN_SPLITS, "all": ("train", "all")}[split]
    tensor_split, report_split = split, split
    if window is not None:
        splits, tensor_split, report_split = ("train", "val"), "val", f"walk{window[0]}of{window[1]}"
    # The checkpoint's own normaliser: on another file the policy still sees its training statistics.
    market = load_market(cfg, splits, normalizer=loaded.normalizer)
    check_bar_size(loaded.bar_minutes, market, "validate" if split == "val" else "test")
    asked_cfg, cfg = cfg, resolve_bar_settings(cfg, market)
    if market.spec.shapes != module.spec.shapes:
        raise UserError(f"the data gives observations {dict(market.spec.shapes)} but the checkpoint expects "
                        f"{dict(module.spec.shapes)}; use the env windows the checkpoint was trained with")
    target = market.tensors[tensor_split]
    log.info("%s %s on the %s split (%s): %s %s bars (the policy, then %d baseline(s))",
             "testing" if split != "val" else "validating", ckpt, split, market_label,
             f"{int(target.n_bars - target.valid_from):,}", timeframe_label(market.bar), len(eval_cfg.baselines))
    baselines = make_baselines(eval_cfg.baselines, cfg.env, seed=int(cfg["seed"]),
                               options={**rule_options(eval_cfg.rule_levels), **model_options(market.manifest)})
    fit_baselines(baselines, market.tensors["train"])
    return _Case(cfg=cfg, asked_cfg=asked_cfg, target=target, baselines=baselines, manifest=market.manifest,
                 bar=market.bar, label=market_label, report_split=report_split, window=window)


def _evaluate_markets(loaded: Any, cases: list[_Case], eval_cfg: EvalConfig, split: str, ckpt: str, *,
                      with_curve: bool = False) -> list[dict[str, Any]]:
    """The policy and the baselines over every case's market, played side by side; one summary per market.

    The deterministic policy (the default) and the baselines run every market in one simulator
    (:func:`kpremia.eval.backtest.run_policy_backtests`): the same traces as one market at a time,
    at about the cost of one.  A sampled policy (``eval.deterministic=false``) plays its seeds market
    by market, each from the same seed.  ``with_curve``: the first case is the run's own split (its
    report gets the plots and the validation curve).
    """
    module = loaded.module
    env = cases[0].cfg.env  # one run, one bar size: the same market model on every market
    scheme = env.scheme()
    seed = int(cases[0].cfg["seed"])
    def policy() -> tuple[Any, int]:  # a sampled policy's generator starts from the seed on every market
        return _policy_act(module, eval_cfg, scheme.n_actions, tuple(scheme.action_names), seed)

    act, n_envs = policy()
    targets = [case.target for case in cases]
    if n_envs == 1:
        policy_traces = [[trace] for trace in run_policy_backtests(act, targets, env, progress="policy backtest")]
    else:
        policy_traces = []
        for case in cases:
            act, n_envs = policy()
            policy_traces.append(run_policy_backtest(act, case.target, env, n_envs=n_envs, seed=seed,
                                                     progress="policy backtest"))
    baseline_traces = run_baseline_backtests_on_markets([case.baselines for case in cases], targets, env,
                                                        progress="baselines backtest")
    return [_market_summary(loaded, case, traces, baselines, eval_cfg, split, ckpt, with_curve=with_curve and i == 0)
            for i, (case, traces, baselines) in enumerate(zip(cases, policy_traces, baseline_traces, strict=True))]


def _market_summary(loaded: Any, case: _Case, traces: list[pd.DataFrame], baseline_traces: dict[str, pd.DataFrame],
                    eval_cfg: EvalConfig, split: str, ckpt: str, *, with_curve: bool) -> dict[str, Any]:
    """One market's metrics and, for ``test``, its report directory."""
    module, cfg, target, window = loaded.module, case.cfg, case.target, case.window
    per_seed = [report_metrics(t) for t in traces]
    policy = {k: statistics.fmean(m[k] for m in per_seed) for k in per_seed[0]}
    if len(per_seed) > 1:
        policy.update({f"{k}_std": statistics.stdev(m[k] for m in per_seed)
                       for k in ("return", "sharpe", "max_drawdown")})
        policy["n_seeds"] = len(per_seed)
    run_dir = Path(ckpt).resolve().parent.parent
    period = [str(target.times[target.valid_from]), str(target.times[-1])]
    report_dir = report_dir_for(run_dir, ckpt, module.cfg, case.asked_cfg.raw, case.manifest, case.report_split)
    extra = {"split": "walk-forward" if window else split, "market": case.label,
             "checkpoint": str(Path(ckpt).resolve()),
             "checkpoint_name": checkpoint_label(ckpt), "experiment": cfg.get("experiment_name"),
             "identity": identity_digest(module.cfg), "seed": cfg.get("seed"), "data_seed": cfg["data"].get("seed"),
             "eval": eval_cfg.to_dict(), "baseline_params": baseline_params(case.baselines),
             "fee_rate": cfg.env.fee_rate, "data": data_identity(case.manifest), "data_source": _data_label(cfg["data"]),
             "period": period, "bars": int(target.n_bars - target.valid_from),
             "timeframe": timeframe_label(case.bar),
             "inserted_bars": inserted_bars(case.manifest),
             "normalizer": "checkpoint" if loaded.normalizer is not None else "fitted on this data's train split"}
    if window is not None:  # the windows are one setting: compare reads the region, not each window's dates
        extra.update({"window": window[0], "windows": window[1], "setting_period": window[2]})
    from kpremia.eval.report import summarise_traces, write_report

    if split in ("test", "all"):
        # Pictures of the run's own split only: an unseen draw is one number among many (its trace and trades
        # are still written, and `test ... data.seed=<its seed>` draws its pictures).
        summary = write_report(report_dir, traces[0], baseline_traces, {**extra, "policy_metrics": policy},
                               plots=eval_cfg.plots and with_curve, stamp=report_stamp(extra),
                               curve=_validation_curve(run_dir) if with_curve else None)
        if with_curve:  # the run's own split only: an unseen draw must not replace its test/* numbers
            from kpremia.run.loggers import (
                log_test_report,  # no-op unless the run was trained with logger=wandb
            )

            log_test_report(cfg, run_dir, summary, report_dir)
    else:
        summary = summarise_traces(traces[0], baseline_traces, {**extra, "policy_metrics": policy})
    return {**summary, "report_dir": str(report_dir) if split in ("test", "all") else None}


def _validation_curve(run_dir: Path) -> pd.DataFrame | None:
    """The run's validation curve from its ``metrics.csv`` (None when it logged none)."""
    from kpremia.eval.curves import validation_curve

    return validation_curve(run_dir)
