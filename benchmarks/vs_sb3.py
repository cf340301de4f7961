"""kpremia against Stable-Baselines3 on the same market, in one process and one run.

    python benchmarks/vs_sb3.py                          # throughput race + the batched VecEnv rows (~5 min)
    python benchmarks/vs_sb3.py --learning               # + equal wall-clock learning, 3 seeds
    python benchmarks/vs_sb3.py --only learning --budget-s 300

Needs the ``bench`` extra (``pip install -e '.[bench]'``: stable-baselines3, sb3-contrib).

**Throughput** (env steps per second of wall time, training included): SB3 PPO
(``MultiInputPolicy``, 8 envs in a ``DummyVecEnv`` from ``make_vec_env``),
sb3-contrib RecurrentPPO (``MultiInputLstmPolicy``, 8 envs) and SB3 DQN
(``MultiInputPolicy``, one env) train on ``kpremia/KPremia-v0`` -- each with its
library's default hyperparameters, the way a user starts -- and kpremia trains
``mlp_ppo``, ``gru_attn_ppo``, ``lstm_ppo`` and ``mlp_dqn`` as ``fit`` runs them
(``benchmarks/train_throughput.py``).  Like with like: each SB3 run trains on
``gymnasium.make("kpremia/KPremia-v0", experiment=<the kpremia experiment of its
pair>)``, i.e. the same market, execution rules, action scheme, decision interval
and reward as ``fit experiment=<it>`` (a test checks the two envs step alike), with
the same torch thread count.  An env step is one decision on both sides (16 bars
for the default experiments).  Each pair prints its ratio.

**VecEnv**: SB3 PPO (same hyperparameters) on :class:`kpremia.envs.sb3.KPremiaVecEnv`
(the batched simulator) against the same PPO on ``DummyVecEnv``, and the bare
env step rate of each with random actions.

**Learning** (``--learning``): SB3 PPO (8 envs, defaults) on
``gymnasium.make("kpremia/KPremia-v0", experiment=E)`` and kpremia ``fit
experiment=E`` (``--experiment``, default the main job ``gru_attn_ppo``, with all
its settings: encoder, critic, warm start) each get the same wall-clock budget per
seed (seed = the synthetic market's seed, as in ``fit``; the warm start, if any,
counts in kpremia's budget).  Their final weights then play, deterministically and
through the same backtest, the seed's validation split and the test splits of
``--markets`` unseen draws of the market (data seeds 1000000 + j, the draws ``test
eval.test_markets`` plays), each beside the band rule fit on that draw's own train
split.  Printed: per seed the validation return and the mean test return; over all
seeds x markets each trainer's paired difference to the band rule and the two
trainers' difference, with stratified bootstrap 95 % intervals
(:mod:`kpremia.eval.paired`).

Ratios from one run are what count: both sides share the machine's load at
the same moment (the load average is printed before and after).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_throughput  # noqa: E402  (compose + time_fit: kpremia's side, as `fit` runs it)

from kpremia.envs.experiment import load_market

ENV_ID = "kpremia/KPremia-v0"
SB3_PPO_ENVS = 8


# ---------------------------------------------------------------------------- shared setup
def quiet() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("kpremia").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")


def base_overrides(threads: int) -> list[str]:
    return ["trainer.enable_progress_bar=false", f"torch_threads={threads}", "logger=csv"]


def gym_kwargs(experiment: str, seed: int) -> dict[str, Any]:
    """KPremiaGymEnv / KPremiaVecEnv arguments: ``fit experiment=<experiment> seed=<seed>``'s market and rules."""
    return {"experiment": experiment, "overrides": (f"seed={seed}",)}


def sb3_budget(steps_per_s_guess: float, seconds: float, multiple: int) -> int:
    """A step budget of about ``seconds``, rounded up to a whole number of ``multiple``."""
    return max(multiple, int(math.ceil(steps_per_s_guess * seconds / multiple)) * multiple)


def timed_learn(model: Any, steps: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, progress_bar=False)
    return int(model.num_timesteps), time.perf_counter() - t0


# ---------------------------------------------------------------------------- SB3 side
def sb3_ppo(kw: dict[str, Any], steps: int, seed: int, venv: Any = None, **ppo_kw: Any) -> tuple[int, float]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    venv = venv if venv is not None else make_vec_env(ENV_ID, n_envs=SB3_PPO_ENVS, seed=seed, env_kwargs=kw)
    model = PPO("MultiInputPolicy", venv, seed=seed, device="cpu", verbose=0, **ppo_kw)
    return timed_learn(model, steps)


def sb3_recurrent_ppo(kw: dict[str, Any], steps: int, seed: int) -> tuple[int, float]:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(ENV_ID, n_envs=SB3_PPO_ENVS, seed=seed, env_kwargs=kw)
    model = RecurrentPPO("MultiInputLstmPolicy", venv, seed=seed, device="cpu", verbose=0)
    return timed_learn(model, steps)


def sb3_dqn(kw: dict[str, Any], steps: int, seed: int) -> tuple[int, float]:
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(ENV_ID, n_envs=1, seed=seed, env_kwargs=kw)
    # buffer_size: SB3's default of 1M dict transitions would need ~0.5 GB; 100k is kpremia's default
    model = DQN("MultiInputPolicy", venv, seed=seed, device="cpu", verbose=0, buffer_size=100_000)
    return timed_learn(model, steps)


# ---------------------------------------------------------------------------- kpremia side
def kpremia_fit(experiment: str, steps: int, threads: int, overrides: list[str]) -> tuple[int, float]:
    """Env steps and seconds of ``trainer.fit`` for ``experiment`` over about ``steps`` env steps."""
    cfg = train_throughput.compose([f"experiment={experiment}", *base_overrides(threads), *overrides])
    algo = cfg["algo"]
    per_round = int(cfg["env"]["n_envs"]) * int(algo["n_steps"] if algo["name"] == "ppo" else algo["collect_steps"])
    rounds = max(1, steps // per_round)
    cfg = train_throughput.compose([f"experiment={experiment}", *base_overrides(threads), *overrides,
                                    f"algo.total_env_steps={rounds * per_round}",
                                    f"algo.rollouts_per_epoch={rounds}"])
    with tempfile.TemporaryDirectory() as tmp:
        seconds, env_steps, _ = train_throughput.time_fit(cfg, Path(tmp) / experiment)
    return env_steps, seconds


# ---------------------------------------------------------------------------- sections
def throughput(args: argparse.Namespace) -> list[tuple]:
    s, seed = args.scale, args.seed
    pairs = [
        ("PPO (MLP)", "SB3 PPO, 8 envs", lambda: sb3_ppo(gym_kwargs("mlp_ppo", seed), int(16_384 * s), seed),
         "mlp_ppo", int(131_072 * s), 15.0),
        ("recurrent PPO", "RecurrentPPO (LSTM), 8 envs",
         lambda: sb3_recurrent_ppo(gym_kwargs("gru_attn_ppo", seed), int(2_048 * s), seed),
         "gru_attn_ppo", int(16_384 * s), 10.0),
        ("recurrent PPO", "RecurrentPPO (LSTM), 8 envs", None, "lstm_ppo", int(16_384 * s), None),
        ("DQN (MLP)", "SB3 DQN, 1 env", lambda: sb3_dqn(gym_kwargs("mlp_dqn", seed), int(4_096 * s), seed),
         "mlp_dqn", int(65_536 * s), 10.0),
    ][:args.pairs]
    rows, last_sb3 = [], None
    for what, sb3_name, sb3_fn, experiment, kp_steps, target in pairs:
        if sb3_fn is not None:
            n, sec = sb3_fn()
            last_sb3 = (sb3_name, n, sec)
            log_row(f"{sb3_name}: {n:,} env steps in {sec:.1f} s")
        kp_n, kp_sec = kpremia_fit(experiment, kp_steps, args.threads, [f"seed={args.seed}"])
        log_row(f"kpremia {experiment}: {kp_n:,} env steps in {kp_sec:.1f} s")
        name, n, sec = last_sb3
        rows.append((what, name, n / sec, experiment, kp_n / kp_sec, (kp_n / kp_sec) / (n / sec), target))
    return rows


def vecenv(args: argparse.Namespace, kw: dict[str, Any]) -> tuple[list[tuple], list[tuple]]:
    """SB3 PPO on KPremiaVecEnv vs DummyVecEnv, and the bare env step rates."""
    from stable_baselines3.common.env_util import make_vec_env

    from kpremia.envs.sb3 import KPremiaVecEnv

    s, seed = args.scale, args.seed
    steps = int(16_384 * s)
    train_rows = []
    for label, make, n_steps in (
        ("DummyVecEnv, 8 envs (make_vec_env)", lambda: make_vec_env(ENV_ID, n_envs=8, seed=seed, env_kwargs=kw), 2048),
        ("KPremiaVecEnv, 8 envs", lambda: KPremiaVecEnv(8, seed=seed, **kw), 2048),
        ("KPremiaVecEnv, 64 envs", lambda: KPremiaVecEnv(64, seed=seed, **kw), 256),
    ):
        n, sec = sb3_ppo(kw, steps, seed, venv=make(), n_steps=n_steps)
        log_row(f"SB3 PPO on {label}: {n:,} env steps in {sec:.1f} s")
        train_rows.append((f"SB3 PPO (n_steps {n_steps}) on {label}", n / sec))
    env_rows = []
    for label, make, n_envs, calls in (
        ("DummyVecEnv, 8 envs (make_vec_env)", lambda: make_vec_env(ENV_ID, n_envs=8, seed=seed, env_kwargs=kw), 8,
         1000),
        ("KPremiaVecEnv, 8 envs", lambda: KPremiaVecEnv(8, seed=seed, **kw), 8, 1000),
        ("KPremiaVecEnv, 64 envs", lambda: KPremiaVecEnv(64, seed=seed, **kw), 64, 500),
        ("KPremiaVecEnv, 1024 envs", lambda: KPremiaVecEnv(1024, seed=seed, **kw), 1024, 200),
    ):
        venv = make()
        venv.reset()
        actions = np.random.default_rng(seed).integers(0, venv.action_space.n, (max(10, int(calls * s)), n_envs))
        t0 = time.perf_counter()
        for a in actions:
            venv.step(a)
        env_rows.append((f"random actions, {label}", actions.size / (time.perf_counter() - t0)))
    return train_rows, env_rows


def learning(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Equal wall-clock budget: SB3 PPO vs kpremia on one experiment, scored on validation and unseen markets."""
    import lightning as L
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from kpremia.core.threads import apply_threads
    from kpremia.envs.experiment import ALL_SPLITS
    from kpremia.eval.backtest import (
        run_baseline_backtests,
        run_baseline_backtests_on_markets,
        run_policy_backtests,
        trace_metrics,
    )
    from kpremia.eval.baselines import make_baselines
    from kpremia.run import training
    from kpremia.run.checkpoint import build_module
    from kpremia.run.evaluate import TEST_MARKET_SEED_BASE

    budget = float(args.budget_s)

    class StopAfter(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            return time.perf_counter() - self.t0 < budget

    class StopAfterL(L.Callback):
        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            # Before the module's own on_fit_start, so a warm start counts in the budget.
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer: Any, *a: Any) -> None:
            if time.perf_counter() - self.t0 >= budget:
                trainer.should_stop = True

    experiment = args.experiment
    data_seeds = [TEST_MARKET_SEED_BASE + j for j in range(args.markets)]
    band_on: dict[int, float] = {}  # data seed -> the band rule's test return (fit on that draw's train split)
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        cfg = train_throughput.compose([f"experiment={experiment}", *base_overrides(args.threads), f"seed={seed}",
                                        "algo.total_env_steps=100000000"])
        market = load_market(cfg)
        ekw = cfg["env"]
        # The unseen draws through the seed's own normaliser (what a checkpoint of this run would see there).
        draws = [load_market({**cfg, "data": {**cfg["data"], "seed": s}}, ALL_SPLITS, normalizer=market.normalizer)
                 for s in data_seeds]
        targets = [market.tensors["val"], *(d.tensors["test"] for d in draws)]
        missing = [(s, d) for s, d in zip(data_seeds, draws, strict=True) if s not in band_on]
        if missing:
            bands = []
            for _, draw in missing:
                rule = make_baselines(["premium_threshold"], ekw)
                rule["premium_threshold"].fit(draw.tensors["train"])
                bands.append(rule)
            traces = run_baseline_backtests_on_markets(bands, [d.tensors["test"] for _, d in missing], ekw)
            band_on.update({s: float(trace_metrics(t["premium_threshold"])["return"])
                            for (s, _), t in zip(missing, traces, strict=True)})
        band = make_baselines(["premium_threshold"], ekw)["premium_threshold"]
        band.fit(market.tensors["train"])
        m = trace_metrics(run_baseline_backtests({"band": band}, targets[0], ekw)["band"])
        rows.append({"trainer": "band rule (fit on train)", "seed": seed, "steps": 0, "seconds": 0.0,
                     "val_return": m["return"], "val_trades": m["n_trades"],
                     "test_returns": [band_on[s] for s in data_seeds], "test_trades": math.nan})

        def score(trainer: str, act: Any, steps: int, sec: float) -> None:
            traces = run_policy_backtests(act, targets, ekw)
            metrics = [trace_metrics(t) for t in traces]
            rows.append({"trainer": trainer, "seed": seed, "steps": steps, "seconds": sec,
                         "val_return": metrics[0]["return"], "val_trades": metrics[0]["n_trades"],
                         "test_returns": [x["return"] for x in metrics[1:]],
                         "test_trades": float(np.mean([x["n_trades"] for x in metrics[1:]]))})
            r = rows[-1]
            log_row(f"seed {seed} {trainer}: {steps:,} steps in {sec:.0f} s, val return {100 * r['val_return']:+.2f} %, "
                    f"mean test return on {len(data_seeds)} unseen markets {100 * np.mean(r['test_returns']):+.2f} %")

        # SB3 PPO, defaults, 8 envs, on the experiment's market model
        kw = gym_kwargs(experiment, seed)
        torch.manual_seed(seed)
        venv = make_vec_env(ENV_ID, n_envs=SB3_PPO_ENVS, seed=seed, env_kwargs=kw)
        model = PPO("MultiInputPolicy", venv, seed=seed, device="cpu", verbose=0)
        t0 = time.perf_counter()
        model.learn(total_timesteps=10**9, callback=StopAfter(), progress_bar=False)
        sec = time.perf_counter() - t0

        def sb3_act(obs: dict[str, torch.Tensor]) -> torch.Tensor:
            a, _ = model.predict({k: v.cpu().numpy() for k, v in obs.items()}, deterministic=True)
            return torch.as_tensor(a, dtype=torch.long).reshape(-1)

        score("SB3 PPO, 8 envs", sb3_act, int(model.num_timesteps), sec)

        # kpremia, the experiment as `fit` runs it (64 envs), same budget
        L.seed_everything(seed, verbose=False)
        apply_threads(cfg)
        module = build_module(cfg, market.spec, market)
        with tempfile.TemporaryDirectory() as tmp:
            trainer, _ = training.build_trainer(cfg, Path(tmp), module, extra_callbacks=[StopAfterL()])
            trainer.limit_val_batches = 0
            trainer.fit_loop.max_epochs = module.max_epochs(1)
            t0 = time.perf_counter()
            trainer.fit(module)
            sec = time.perf_counter() - t0
        score(f"kpremia {experiment}, 64 envs", lambda obs: module.act(obs, deterministic=True), int(module.env_steps),
              sec)
    return rows


def paired_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Each trainer against the band rule, and the two trainers against each other, over seeds x markets."""
    from kpremia.eval.paired import paired_stats

    by = {(r["trainer"], r["seed"]): np.asarray(r["test_returns"]) * 100 for r in rows}
    trainers = list(dict.fromkeys(r["trainer"] for r in rows))
    seeds = list(dict.fromkeys(r["seed"] for r in rows))
    band, others = trainers[0], trainers[1:]
    pairs = [(t, band) for t in others] + ([(others[-1], others[0])] if len(others) == 2 else [])
    out = []
    for a, b in pairs:
        diffs = np.concatenate([by[(a, s)] - by[(b, s)] for s in seeds])
        strata = [s for s in seeds for _ in range(len(by[(a, s)]))]
        st = paired_stats(diffs, strata, reference="the band rule" if b == band else b)
        out.append(f"| {a + ' − ' + b:<64} | {st.mean:>+6.2f} | {st.ci_low:+.2f} .. {st.ci_high:+.2f} "
                   f"| {100 * st.win_rate:>4.0f} % | {st.n:>4} | {st.verdict} |")
    return out


# ---------------------------------------------------------------------------- output
def log_row(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=("throughput", "vecenv", "learning"), default=None)
    parser.add_argument("--learning", action="store_true", help="add the equal wall-clock learning comparison")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every throughput step budget")
    parser.add_argument("--budget-s", type=float, default=60.0, help="wall-clock seconds per learning run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="learning seeds")
    parser.add_argument("--markets", type=int, default=100,
                        help="learning: unseen market draws whose test splits score the final weights")
    parser.add_argument("--experiment", default="gru_attn_ppo",
                        help="learning: the experiment both libraries train on (market, rules, decision interval)")
    parser.add_argument("--seed", type=int, default=0, help="throughput seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both libraries")
    parser.add_argument("--pairs", type=int, default=4, help="throughput: only the first N pairs (1 = PPO (MLP))")
    args = parser.parse_args(argv)
    sections = args.only or ["throughput", "vecenv", *(["learning"] if args.learning else [])]
    try:
        import sb3_contrib
        import stable_baselines3
    except ImportError as exc:
        print(f"error: {exc.name} is not installed; run `pip install -e '.[bench]'`", file=sys.stderr)
        return 2
    quiet()
    torch.set_num_threads(args.threads)
    import kpremia  # noqa: F401  (registers kpremia/KPremia-v0)

    kw = gym_kwargs("mlp_ppo", args.seed)
    before = load()
    t_start = time.perf_counter()
    out: dict[str, Any] = {}
    if "throughput" in sections:
        out["throughput"] = throughput(args)
    if "vecenv" in sections:
        out["vecenv"] = vecenv(args, kw)
    if "learning" in sections:
        out["learning"] = learning(args)

    print(f"machine: {platform.machine()} {os.cpu_count()}-core CPU, {platform.system()}; torch {torch.__version__} "
          f"({args.threads} thread{'s' * (args.threads > 1)} for both), stable-baselines3 {stable_baselines3.__version__}, "
          f"sb3-contrib {sb3_contrib.__version__}; load average (1/5/15 min) {before} before, {load()} after; "
          f"{time.perf_counter() - t_start:.0f} s")
    if "throughput" in out:
        print("\nthroughput: env steps (decisions) per second of training (rollout + update); each SB3 run on its "
              "kpremia experiment's market, rules and decision interval")
        print(f"| {'pair':<14} | {'Stable-Baselines3':<28} | {'steps/s':>8} | {'kpremia':<13} | {'steps/s':>8} "
              f"| {'ratio':>6} | {'target':>6} |")
        print(f"|{'-' * 16}|{'-' * 30}|{'-' * 9}:|{'-' * 15}|{'-' * 9}:|{'-' * 7}:|{'-' * 7}:|")
        for what, sb3_name, sb3_rate, exp, kp_rate, ratio, target in out["throughput"]:
            tgt = f"{target:.0f}x" if target else ""
            print(f"| {what:<14} | {sb3_name:<28} | {sb3_rate:>8,.0f} | {exp:<13} | {kp_rate:>8,.0f} "
                  f"| {ratio:>5.1f}x | {tgt:>6} |")
    if "vecenv" in out:
        train_rows, env_rows = out["vecenv"]
        base = train_rows[0][1]
        print("\nthe batched simulator under SB3: SB3 PPO (MultiInputPolicy, defaults; rollout 16,384 steps) "
              "and the bare env")
        print(f"| {'run':<62} | {'env steps/s':>11} | {'vs DummyVecEnv':>14} |")
        print(f"|{'-' * 64}|{'-' * 12}:|{'-' * 15}:|")
        for label, rate in train_rows:
            print(f"| {label:<62} | {rate:>11,.0f} | {rate / base:>13.2f}x |")
        env_base = env_rows[0][1]
        for label, rate in env_rows:
            print(f"| {label:<62} | {rate:>11,.0f} | {rate / env_base:>13.2f}x |")
    if "learning" in out:
        rows = out["learning"]
        print(f"\nlearning at equal wall-clock ({args.budget_s:.0f} s per run) on experiment={args.experiment}'s "
              f"market and rules; final weights, deterministic; test = the test splits of {args.markets} unseen "
              "draws (data seeds 1000000 + j), the band rule fit on each draw's own train split")
        print(f"| {'trainer':<38} | {'seed':>4} | {'env steps':>10} | {'seconds':>7} | {'val return':>10} "
              f"| {'trades':>6} | {'mean test return':>16} | {'test trades':>11} |")
        print(f"|{'-' * 40}|{'-' * 5}:|{'-' * 11}:|{'-' * 8}:|{'-' * 11}:|{'-' * 7}:|{'-' * 17}:|{'-' * 12}:|")
        for r in rows:
            trades = "—" if math.isnan(r["test_trades"]) else f"{r['test_trades']:.1f}"
            print(f"| {r['trainer']:<38} | {r['seed']:>4} | {r['steps']:>10,} | {r['seconds']:>7.0f} "
                  f"| {100 * r['val_return']:>+9.2f}% | {r['val_trades']:>6.0f} "
                  f"| {100 * np.mean(r['test_returns']):>+15.2f}% | {trades:>11} |")
        print(f"\npaired per market over {len(dict.fromkeys(r['seed'] for r in rows))} seeds x {args.markets} markets "
              "(95 % bootstrap interval stratified by seed)")
        print(f"| {'difference of test returns, points':<64} | {'mean':>6} | {'95 % interval':<14} | {'wins':>6} "
              f"| {'n':>4} | verdict |")
        print(f"|{'-' * 66}|{'-' * 7}:|{'-' * 16}|{'-' * 7}:|{'-' * 5}:|{'-' * 9}|")
        print("\n".join(paired_lines(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
