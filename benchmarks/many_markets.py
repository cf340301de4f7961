"""Backtests of many markets: one market at a time against all of them side by side in one simulator.

    python benchmarks/many_markets.py [--markets 4 16] [--threads 2]

What validation during ``fit`` (the run's val split and ``eval.val_draws - 1`` further draws) and
``test`` (the own test split and ``eval.test_markets`` unseen draws) pay for their backtests.  For
each count N it builds N draws of the default synthetic market (the main job's validation split:
10,512 15m bars each), then times, in the same run:

* ``policy, one at a time``: :func:`kpremia.eval.backtest.run_policy_backtest` market by market (the
  reference: what validation did before);
* ``policy, side by side``: :func:`kpremia.eval.backtest.run_policy_backtests` (every market one env of
  one simulator);
* the same two rows for the band rule (fit once on a train split), through
  :func:`kpremia.eval.backtest.run_baseline_backtests` and ``run_baseline_backtests_on_markets``.

The policy is the main job's network (GRU + attention, deciding every 4 h), untrained: a backtest costs
the same whatever the weights.  It also checks that both ways give the same traces (bit for bit).
The load average is printed before and after: on a shared machine the seconds are not results.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from kpremia.eval.backtest import (
    run_baseline_backtests,
    run_baseline_backtests_on_markets,
    run_policy_backtest,
    run_policy_backtests,
)
from kpremia.eval.baselines import make_baselines
from kpremia.run import training
from kpremia.run.checkpoint import build_module
from kpremia.run.run_config import RunConfig, resolve_bar_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load before: {os.getloadavg()[0]:.2f} (1 min); {os.cpu_count()} CPUs; torch {torch.__version__}, "
          f"{args.threads} thread(s)")
    most = max(args.markets)
    with initialize_config_module(config_module="kpremia.configs", version_base="1.3"):
        raw = OmegaConf.to_container(compose(config_name="config", overrides=[
            "experiment=gru_attn_ppo", f"eval.val_draws={most}"]), resolve=True)
    market = training.load_market(raw, ("train", "val"))
    cfg = resolve_bar_settings(RunConfig.of(raw), market)
    env = cfg.env
    draws = [market.tensors["val"], *training.load_val_draws(raw, market)]
    torch.manual_seed(0)
    module = build_module(raw, market.spec, market=None).eval()
    act = lambda obs: module.act(obs, deterministic=True)  # noqa: E731
    band = make_baselines(["premium_threshold"], env)
    band["premium_threshold"].fit(market.tensors["train"])

    print(f"{'markets':>7}  {'trader':<8} {'one at a time s':>16} {'side by side s':>15} {'speed-up':>9}  same traces")
    for n in sorted(args.markets):
        played = draws[:n]
        t0 = time.perf_counter()
        alone = [run_policy_backtest(act, m, env)[0] for m in played]
        t1 = time.perf_counter()
        together = run_policy_backtests(act, played, env)
        t2 = time.perf_counter()
        same = all(a.equals(b) for a, b in zip(alone, together, strict=True))
        print(f"{n:>7}  {'policy':<8} {t1 - t0:>16.1f} {t2 - t1:>15.1f} {(t1 - t0) / (t2 - t1):>8.1f}x  {same}")
        t0 = time.perf_counter()
        alone_band = [run_baseline_backtests(band, m, env)["premium_threshold"] for m in played]
        t1 = time.perf_counter()
        together_band = [t["premium_threshold"] for t in run_baseline_backtests_on_markets(band, played, env)]
        t2 = time.perf_counter()
        same = all(a.equals(b) for a, b in zip(alone_band, together_band, strict=True))
        print(f"{n:>7}  {'band':<8} {t1 - t0:>16.1f} {t2 - t1:>15.1f} {(t1 - t0) / (t2 - t1):>8.1f}x  {same}")
    print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
