"""Env steps per second of the batched simulator.

    python benchmarks/env_throughput.py [--steps 200] [--n-envs 1 256 4096] [--device cpu cuda]

For each device and N: reset, warm up, then time ``--steps`` steps with random
actions pre-generated on the device (so the loop measures the env alone), each
returning the full observation dict.  Reference rows in the same run put the
numbers in context:

* ``obs gather only`` — just gathering the market obs tables for N envs, the
  floor a step cannot beat;
* ``gymnasium loop`` — the single-env gymnasium wrapper stepped in a Python loop.

Each row times every call and reports the mean (what a run gets on this machine
now, waits for the CPU included), the median, and the mean of the fastest fifth
of the calls ("uncontended": what a step costs when no other process takes the
core away; on a shared machine the mean can be several times slower).  The load
average is printed before the run.

CPU rows are repeated with torch's default thread count and with one thread:
small ops (VML ``log``, ``index_select`` of a few thousand rows) open OpenMP
parallel regions, which stall for milliseconds when the cores are shared with
other work; a simulator-only process on a busy machine is faster with one thread.

Uses the default synthetic market's train split when the data layer is
available, otherwise a seeded random-walk market built here.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from kpremia.data.tensors import MarketTensors
from kpremia.envs.batched import BatchedEnv
from kpremia.envs.execution import ExecutionRules

log = logging.getLogger("benchmarks.env_throughput")


def random_walk_market(n_bars: int = 20_000, n_features: int = 16, seed: int = 0) -> MarketTensors:
    """A seeded random-walk market with tables of the standard shapes (fallback)."""
    g = torch.Generator().manual_seed(seed)
    close = 1400.0 * torch.exp(torch.cumsum(torch.randn(n_bars, generator=g, dtype=torch.float64) * 0.002, 0))
    open_ = torch.cat([close[:1], close[:-1]])
    fx = torch.full((n_bars,), 1380.0, dtype=torch.float64)
    obs = {k: torch.randn(n_bars, w, generator=g) for k, w in
           (("price_bars", 15), ("price_1d", 10), ("premium", 10), ("features", n_features))}
    times = (np.datetime64("2024-06-01") + np.arange(n_bars) * np.timedelta64(15, "m")).astype("datetime64[ns]")
    return MarketTensors(times=times, open=open_, high=torch.maximum(open_, close), low=torch.minimum(open_, close),
                         close=close, fx=fx, premium=close / fx - 1, obs=obs, valid_from=100,
                         feature_names=tuple(f"f{i}" for i in range(n_features)), name="train")


def load_market() -> tuple[MarketTensors, str]:
    """The default experiment's synthetic train split, or the random-walk fallback when the data layer is missing."""
    try:
        from kpremia.envs.experiment import experiment_market

        return experiment_market().tensors["train"], "synthetic (data layer)"
    except Exception as exc:  # noqa: BLE001 - any failure of the data layer falls back
        log.warning("default synthetic market unavailable (%s); using a random-walk market", exc)
        return random_walk_market(), "random walk (fallback)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[int], None], steps: int, warmup: int, device: torch.device) -> np.ndarray:
    """Seconds of each of ``steps`` calls of ``fn(i)`` after ``warmup`` calls."""
    for i in range(warmup):
        fn(i)
    _sync(device)
    times = np.empty(steps)
    for i in range(steps):
        start = time.perf_counter()
        fn(warmup + i)
        _sync(device)
        times[i] = time.perf_counter() - start
    return times


def bench_env(market: MarketTensors, n_envs: int, steps: int, warmup: int,
              rules: ExecutionRules = ExecutionRules(fee_rate=0.0005)) -> np.ndarray:
    """Seconds of each batched step (full obs dict, random actions pre-generated on the device)."""
    env = BatchedEnv(market, n_envs, rules=rules, max_steps=1000, seed=0)
    g = torch.Generator(device=market.device).manual_seed(1)
    actions = torch.randint(0, env.n_actions, (warmup + steps, n_envs), generator=g, device=market.device)
    env.reset()
    return _timed(lambda i: env.step(actions[i]), steps, warmup, market.device)


def bench_gather(market: MarketTensors, n_envs: int, steps: int, warmup: int) -> np.ndarray:
    """Seconds of each gather of the market obs rows alone (the floor of a step)."""
    tables = [v.contiguous() for v in market.obs.values()]
    idx = torch.randint(market.valid_from, market.n_bars - 1, (n_envs,), device=market.device)

    def fn(_: int) -> None:
        for table in tables:
            table.index_select(0, idx)

    return _timed(fn, steps, warmup, market.device)


def bench_gym(market: MarketTensors, steps: int, warmup: int) -> np.ndarray:
    """Seconds of each step of the gymnasium wrapper in a Python loop (one env)."""
    from kpremia.envs.gym_env import KPremiaGymEnv

    env = KPremiaGymEnv(market.to("cpu"), env={"max_steps": 1000, "fee_rate": 0.0005})
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    acts = rng.integers(0, env.action_space.n, warmup + steps)

    def fn(i: int) -> None:
        _, _, terminated, truncated, _ = env.step(acts[i])
        if terminated or truncated:
            env.reset()

    return _timed(fn, steps, warmup, torch.device("cpu"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps before timing")
    parser.add_argument("--n-envs", type=int, nargs="+", default=[1, 256, 4096])
    parser.add_argument("--device", nargs="+", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--spread-krw", type=float, default=ExecutionRules().spread_krw,
                        help="quoted spread of the BatchedEnv rows (default: the config's; 0 = no spread)")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="torch CPU thread counts to try (default: torch's default, then 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    default_threads = torch.get_num_threads()
    threads = args.threads or sorted({default_threads, 1}, reverse=True)
    market, source = load_market()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"market: {source}, {market.n_bars} bars, features {tuple(market.obs['features'].shape[1:])}; "
          f"torch {torch.__version__}, {os.cpu_count()} cores, load average {load:.2f} before the run")
    header = (f"{'device':<8}{'threads':>8}  {'what':<20}{'N':>6}{'ms/step':>10}{'median ms':>11}"
              f"{'env steps/s':>14}{'uncontended':>14}")
    print(header)
    print("-" * len(header))

    def row(device: str, what: str, n: int, times: np.ndarray) -> None:
        mean, median = float(times.mean()), float(np.median(times))
        fastest = float(np.sort(times)[: max(1, len(times) // 5)].mean())
        print(f"{device:<8}{torch.get_num_threads():>8}  {what:<20}{n:>6}{mean * 1e3:>10.3f}{median * 1e3:>11.3f}"
              f"{n / mean:>14,.0f}{n / fastest:>14,.0f}", flush=True)

    for device in devices:
        dev_market = market.to(device)
        for n_threads in threads if device == "cpu" else [default_threads]:
            torch.set_num_threads(n_threads)
            for n in args.n_envs:
                rules = ExecutionRules(fee_rate=0.0005, spread_krw=args.spread_krw)
                row(device, "BatchedEnv.step", n, bench_env(dev_market, n, args.steps, args.warmup, rules))
            n_max = max(args.n_envs)
            row(device, "obs gather only", n_max, bench_gather(dev_market, n_max, args.steps, args.warmup))
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        row("cpu", "gymnasium loop", 1, bench_gym(market, args.steps, args.warmup))
    torch.set_num_threads(default_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
