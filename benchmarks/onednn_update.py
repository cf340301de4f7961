"""Training throughput with the gradient update run with oneDNN on (default) and off.

    python benchmarks/onednn_update.py                                  # lstm_ppo, gru_attn_ppo
    python benchmarks/onednn_update.py --experiments dnn_lstm_ppo mlp_ppo --steps 32768

torch runs CPU RNN layers through oneDNN.  For the update's forward + backward
the native kernels can be faster, while acting one bar at a time is faster with
oneDNN; ``trainer.onednn_update=false`` switches oneDNN off around the update
only.  Two measurements per experiment:

* the parts, timed call by call and summarised by the mean of the fastest fifth
  (robust to other processes on a shared machine): one update minibatch (forward
  + backward of the network on ``n_envs * n_steps / n_minibatches`` observations)
  and one rollout step (forward of ``n_envs`` observations under inference mode),
  each with oneDNN on and off;
* whole training runs as ``fit`` runs them (validation off) with
  ``trainer.onednn_update`` true and false back to back, alternating the order
  over ``--repeats`` (best run per setting); skip with ``--parts-only``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_throughput  # noqa: E402

from kpremia.envs.experiment import load_market


def fastest_fifth(fn: Callable[[], None], calls: int) -> float:
    """Mean seconds of the fastest fifth of ``calls`` calls (after two warm-up calls)."""
    fn(), fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.mean(sorted(times)[: max(1, calls // 5)]))


def parts(exp: str, threads: int) -> tuple[float, float, float, float]:
    """(update on, update off, rollout step on, rollout step off) seconds for ``exp``'s network."""
    from kpremia.run.checkpoint import build_module

    cfg = train_throughput.compose([f"experiment={exp}", f"torch_threads={threads}"])
    market = load_market(cfg)
    module = build_module(cfg, market.spec, market)
    net = module.net.eval()
    algo, n_envs = cfg["algo"], int(cfg["env"]["n_envs"])
    batch = n_envs * int(algo.get("n_steps", 4)) // int(algo.get("n_minibatches", 1))
    g = torch.Generator().manual_seed(0)
    rows = torch.randint(market.tensors["train"].valid_from, market.tensors["train"].n_bars - 1, (batch,), generator=g)
    obs = {k: v[rows] for k, v in market.tensors["train"].obs.items()}
    obs["account"] = torch.rand(batch, *market.spec.shapes["account"], generator=g)
    small = {k: v[:n_envs] for k, v in obs.items()}

    def update() -> None:
        out = net(obs)
        loss = sum(o.float().mean() for o in (out if isinstance(out, tuple) else (out,)))
        net.zero_grad(set_to_none=True)
        loss.backward()

    def act() -> None:
        with torch.inference_mode():
            net(small)

    out = []
    for fn, calls in ((update, 15), (act, 100)):
        for on in (True, False):
            with torch.backends.mkldnn.flags(enabled=on):
                out.append(fastest_fifth(fn, calls))
    return out[0], out[1], out[2], out[3]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", nargs="+", default=["lstm_ppo", "gru_attn_ppo"])
    parser.add_argument("--steps", type=int, default=16_384, help="env steps per run (whole rollouts)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting (order alternates)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parts-only", action="store_true", help="skip the whole training runs")
    args = parser.parse_args(argv)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("kpremia").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)

    before = "/".join(f"{x:.2f}" for x in os.getloadavg())
    part_rows = [(exp, *parts(exp, args.threads)) for exp in args.experiments]
    rows = []
    for exp in ([] if args.parts_only else args.experiments):
        rates: dict[bool, list[float]] = {True: [], False: []}
        for r in range(args.repeats):
            for on in ((True, False) if r % 2 == 0 else (False, True)):
                cfg = train_throughput.compose([
                    f"experiment={exp}", "trainer.enable_progress_bar=false", f"torch_threads={args.threads}",
                    f"trainer.onednn_update={str(on).lower()}", f"algo.total_env_steps={args.steps}",
                    f"algo.rollouts_per_epoch={max(1, args.steps // 8192)}"])
                with tempfile.TemporaryDirectory() as tmp:
                    seconds, steps, rate = train_throughput.time_fit(cfg, Path(tmp) / exp)
                rates[on].append(rate)
                print(f"  .. {exp} oneDNN {'on ' if on else 'off'}: {steps:,} env steps in {seconds:.1f} s",
                      file=sys.stderr, flush=True)
        rows.append((exp, max(rates[True]), max(rates[False])))
    after = "/".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} cores, oneDNN available: "
          f"{torch.backends.mkldnn.is_available()}; load average {before} before, {after} after; "
          f"best of {args.repeats} runs per setting, {args.steps:,} env steps each")
    print(f"| {'experiment':<14} | {'update, oneDNN on':>17} | {'off':>8} | {'off faster':>10} "
          f"| {'rollout step, on':>16} | {'off':>8} | {'off faster':>10} |")
    print(f"|{'-' * 16}|{'-' * 18}:|{'-' * 9}:|{'-' * 11}:|{'-' * 17}:|{'-' * 9}:|{'-' * 11}:|")
    for exp, u_on, u_off, a_on, a_off in part_rows:
        print(f"| {exp:<14} | {u_on * 1e3:>14.2f} ms | {u_off * 1e3:>5.2f} ms | {u_on / u_off - 1:>+9.0%} "
              f"| {a_on * 1e3:>13.2f} ms | {a_off * 1e3:>5.2f} ms | {a_on / a_off - 1:>+9.0%} |")
    if not rows:
        return 0
    print(f"| {'experiment':<14} | {'oneDNN on (steps/s)':>19} | {'update oneDNN off':>17} | {'speed-up':>8} |")
    print(f"|{'-' * 16}|{'-' * 20}:|{'-' * 18}:|{'-' * 9}:|")
    for exp, on, off in rows:
        print(f"| {exp:<14} | {on:>19,.0f} | {off:>17,.0f} | {off / on - 1:>+7.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
