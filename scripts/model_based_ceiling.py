"""The achievable ceiling on the synthetic market: band rule vs the model-based trader, paired over many draws.

Why: one test split cannot tell a 3-point edge from luck (a trader's return varies by ~6
points from one draw of the market to the next).  This script draws fresh synthetic markets,
fits the band rule on each draw's own train split, runs every trader over that draw's test
split (the default data split: 70 / 15 / 15 % of 730 days, a 110-day test) through the same
BatchedEnv and execution rules as the agent, and prints the mean return of each trader and its
paired difference from the band rule with a bootstrap 95 % interval
(:mod:`kpremia.eval.paired`).

Traders: the band rule fit on train (``premium_threshold``); the model-based trader with the
generator's parameters (``model_based``: filter + dynamic programme, causal); the same
planner fed the generator's hidden state (not causal: what the filter could at best reach);
the hindsight oracle.

    nice -n 10 python scripts/model_based_ceiling.py --draws 60

Options: ``--draws N`` markets (data seeds ``--first-seed`` .. + N - 1), ``--decision-every``
(bars or a duration; default 4h, the main job's), ``--no-oracle``, ``--csv PATH`` for the
per-draw returns, ``--ablate`` for the model-based trader with one part of its model removed
at a time (time of day, regimes, jumps, the fast part), each paired with the band rule
(``--ablate plan``: removed from the plan only, the filter keeping the whole model).  It trains nothing; a draw takes a few seconds on one core.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

# kpremia, torch and pandas are imported after the arguments are checked: a refusal is immediate.

SPLIT = {"train_frac": 0.7, "val_frac": 0.15}  # configs/data/synthetic.yaml
BAND = "premium_threshold"
MODEL = "model_based"
KNOWS = "model_based_knows_state"
ORACLE = "oracle"
LABELS = {BAND: "band rule, fit on train", MODEL: "model-based: filter + DP (causal)",
          KNOWS: "the same DP knowing the hidden state (not causal)", ORACLE: "hindsight oracle"}
# --ablate: the model-based trader with one part of its model removed (the market keeps it)
ABLATIONS = {
    "without_time_of_day": {"season_amplitude": 0.0},
    "without_regimes": {"stress_mean_shift": 0.0, "stress_vol_mult": 1.0, "stress_jump_mult": 1.0},
    "without_jumps": {"jump_rate_per_day": 0.0},
    "without_fast_part": {"fast_sd": 1e-6},
}
LABELS.update({f"{MODEL}_{k}": f"model-based, {k.replace('_', ' ')} in its model" for k in ABLATIONS})
LABELS.update({f"{MODEL}_plan_{k}": f"model-based, {k.replace('_', ' ')} in its plan only" for k in ABLATIONS})


class KnowsState:
    """The model-based trader's plan fed the generator's hidden state instead of the filter's (a bound)."""

    name = KNOWS

    def __init__(self, trader: Any, states: dict[str, Any], offset: int) -> None:
        self.trader, self.states, self.offset, self.rules = trader, states, offset, trader.rules

    def actions(self, market: Any) -> Any:
        import numpy as np
        import torch

        from kpremia.envs.action_schemes import BUY, HOLD, SELL
        from kpremia.envs.clock import DecisionClock
        from kpremia.eval.baselines import _on_cadence
        from kpremia.eval.model_based import fill_costs
        from kpremia.eval.premium_model import sample_hours_kst

        n = market.n_bars
        part = {k: v[self.offset:self.offset + n] for k, v in self.states.items()}
        stress = part["stress"].astype(np.float64)
        p_regime = np.stack([1.0 - stress, stress], axis=1)
        both = lambda x: np.repeat(x[:, None], 2, axis=1)  # noqa: E731
        hours = np.floor(sample_hours_kst(market.times, market.bar_minutes)).astype(np.int64)
        adv = self.trader.plan.lookup(hours, p_regime, both(part["slow"]), both(part["fast"]), both(part["jumps"]))
        close = market.close.to(torch.float64).cpu().numpy()
        buy_cost, sell_cost = fill_costs(close, self.rules)
        signals = np.where(adv > buy_cost, BUY, np.where(adv < -sell_cost, SELL, HOLD))
        return _on_cadence(torch.as_tensor(signals), market.valid_from,
                           DecisionClock(decision_every=int(self.trader.cadence)))


def one_draw(seed: int, env: Any, oracle: bool, ablate: str | None = None, days: float = 730.0) -> dict[str, float]:
    """Test-split returns of every trader on the draw with data seed ``seed`` (``env``: an EnvConfig)."""
    from kpremia.data.market import build_market
    from kpremia.data.synthetic import SyntheticSource, generate_with_states
    from kpremia.eval.backtest import run_baseline_backtests, trace_metrics
    from kpremia.eval.baselines import make_baselines
    from kpremia.eval.model_based import ModelBased, model_options

    source = SyntheticSource(seed=seed, days=days)
    frame, manifest = source.load()
    _, states = generate_with_states(source.params, seed)
    market = build_market(frame, SPLIT, splits=("train", "val", "test"), source_manifest=manifest)
    names = [BAND, MODEL] + ([ORACLE] if oracle else [])
    traders = make_baselines(names, env, options=model_options(market.manifest))
    for trader in traders.values():
        trader.fit(market.tensors["train"])
    traders[KNOWS] = KnowsState(traders[MODEL], states, market.split_bounds["test"][0])
    for name, change in (ABLATIONS.items() if ablate else ()):
        trader = ModelBased(env.execution, clock=env.clock, model="synthetic",
                            synthetic={**manifest["params"], **change})
        trader.fit(market.tensors["train"])
        if ablate == "plan":  # the filter keeps the whole model; only the plan lacks the part
            full = ModelBased(env.execution, clock=env.clock, model="synthetic", synthetic=manifest["params"])
            full.fit(market.tensors["train"])
            full.plan = trader.plan
            traders[f"{MODEL}_plan_{name}"] = full
        else:
            traders[f"{MODEL}_{name}"] = trader
    traces = run_baseline_backtests(traders, market.tensors["test"], env)
    return {name: trace_metrics(trace)["return"] for name, trace in traces.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=60)
    parser.add_argument("--first-seed", type=int, default=10_000, help="data seed of the first draw")
    parser.add_argument("--decision-every", default="4h", help="bars per decision or a duration (default 4h)")
    parser.add_argument("--no-oracle", action="store_true", help="leave the hindsight oracle out")
    parser.add_argument("--csv", type=Path, default=None, help="write the per-draw returns here")
    parser.add_argument("--days", type=float, default=730.0, help="days per draw (default 730, the default market)")
    parser.add_argument("--ablate", nargs="?", const="model", choices=("model", "plan"), default=None,
                        help="also the model-based trader with one part removed at a time: from its whole model "
                             "(model, the default) or from its plan only, the filter keeping it (plan)")
    args = parser.parse_args(argv)
    if args.draws < 2:
        print("model_based_ceiling: --draws must be at least 2 (a paired interval needs two markets); "
              "e.g. --draws 60", file=sys.stderr)
        return 2
    if args.days < 30:
        print(f"model_based_ceiling: --days {args.days:g} leaves splits too short for the band rule's warm-up; "
              "use --days 30 or more (730 is the default market)", file=sys.stderr)
        return 2
    import pandas as pd
    import torch

    from kpremia.envs.config import EnvConfig
    from kpremia.eval.paired import paired_stats

    torch.set_num_threads(1)
    every = int(args.decision_every) if str(args.decision_every).isdigit() else args.decision_every
    env = EnvConfig(decision_every=every)
    rows = []
    started = time.perf_counter()
    for i in range(args.draws):
        seed = args.first_seed + i
        rows.append({"seed": seed, **one_draw(seed, env, not args.no_oracle, args.ablate, args.days)})
        print(f"draw {i + 1}/{args.draws} (seed {seed}): "
              + ", ".join(f"{k} {100 * v:+.2f} %" for k, v in rows[-1].items() if k != "seed"), flush=True)
    table = pd.DataFrame(rows).set_index("seed")
    if args.csv:
        tmp = args.csv.with_suffix(args.csv.suffix + ".tmp")
        table.to_csv(tmp)
        os.replace(tmp, args.csv)
    print(f"\n{args.draws} synthetic draws (seeds {args.first_seed}..{args.first_seed + args.draws - 1}), test splits "
          f"of {0.15 * args.days:.0f} days, deciding every {args.decision_every}; {time.perf_counter() - started:.0f} s; load "
          f"{os.getloadavg()[0]:.2f}\n")
    print("| trader | mean return per test split | vs band rule, paired [95 % CI] | ahead on |")
    print("|---|---:|---:|---:|")
    ablated = [f"{MODEL}_{k}" for k in ABLATIONS] + [f"{MODEL}_plan_{k}" for k in ABLATIONS]
    for name in [BAND, MODEL, *ablated, KNOWS, ORACLE]:
        if name not in table:
            continue
        mean = 100 * table[name].mean()
        if name == BAND:
            print(f"| {LABELS[name]} | {mean:+.2f} % | 0 | — |")
            continue
        diff = 100 * (table[name] - table[BAND])
        stats = paired_stats(diff.to_numpy())
        print(f"| {LABELS[name]} | {mean:+.2f} % | {stats.mean:+.2f} [{stats.ci_low:+.2f}, {stats.ci_high:+.2f}] | "
              f"{int(round(stats.win_rate * len(diff)))} of {len(diff)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
