"""Forward latency and throughput of every registered encoder, in one table.

* ``B=1 us``: one forward on a single observation in eval mode under ``torch.inference_mode``
  -- the live runner's single-bar acting case (median of ``--reps`` calls).
* ``B=N ms`` / ``B=N obs/s``: eval forward under ``inference_mode`` on a large batch
  (``--batch``, default 4096) -- rollout and validation throughput.
* ``train ms``: train-mode forward + backward on the same batch -- what a PPO minibatch costs.
* ``x mlp``: B=1 latency relative to the ``mlp`` reference row.

    python benchmarks/encoder_latency.py [--threads 2] [--batch 4096] [--reps 200] [--rounds 3]
        [--encoders gru_attn,mlp]

Encoders are built with their default settings for ``ObsSpec.default()``.  Timings are
the best of ``--rounds`` interleaved rounds of median wall-clock times on CPU; shared
machines still make them noisy, so compare rows of one run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import kpremia.encoders  # noqa: F401  (registers the built-in encoders)
from kpremia.core.registry import ENCODERS
from kpremia.core.spec import ObsSpec

REFERENCE = "mlp"


def median_seconds(fn: Callable[[], object], reps: int, warmup: int = 3) -> float:
    """Median wall-clock seconds of ``reps`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(encoder: torch.nn.Module, one: dict[str, torch.Tensor], big: dict[str, torch.Tensor],
            reps: int) -> dict[str, float]:
    """One round of timings (seconds) for one encoder."""
    big_reps = max(3, reps // 40)
    encoder.eval()
    with torch.inference_mode():
        b1 = median_seconds(lambda: encoder(one), reps)
        bn = median_seconds(lambda: encoder(big), big_reps)
    encoder.train()

    def train_step() -> None:
        encoder.zero_grad(set_to_none=True)
        encoder(big).sum().backward()

    return {"b1": b1, "bn": bn, "train": median_seconds(train_step, big_reps, warmup=1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--reps", type=int, default=200, help="B=1 repetitions (large batches use reps/40)")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds; the best round is kept")
    parser.add_argument("--encoders", default="", help="comma-separated names (default: all registered)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    names = [n for n in args.encoders.split(",") if n] or ENCODERS.names()
    names = sorted(names, key=lambda n: (n != REFERENCE, n))  # reference row first
    spec = ObsSpec.default()
    torch.manual_seed(0)
    encoders = {name: ENCODERS.build(name, spec) for name in names}
    one, big = spec.sample(1), spec.sample(args.batch)
    # Rounds interleave the encoders so a burst of load from elsewhere hits them alike;
    # each figure is the best round's median.
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for name, encoder in encoders.items():
            timings = measure(encoder, one, big, args.reps)
            best[name] = {k: min(v, best.get(name, {}).get(k, v)) for k, v in timings.items()}
    ref = best[REFERENCE]["b1"] if REFERENCE in best else None

    n = args.batch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, spec {dict(spec.shapes)}")
    header = f"{'encoder':<10} {'params':>8} {'out':>4} {'B=1 us':>8} {'x mlp':>6} " \
             f"{f'B={n} ms':>10} {f'B={n} obs/s':>13} {'train ms':>9}"
    print(header)
    print("-" * len(header))
    for name, encoder in encoders.items():
        t = best[name]
        params = sum(p.numel() for p in encoder.parameters())
        ratio = f"{t['b1'] / ref:.1f}" if ref else "-"
        print(f"{name:<10} {params:>8,} {encoder.out_dim:>4} {t['b1'] * 1e6:>8.0f} {ratio:>6} "
              f"{t['bn'] * 1e3:>10.1f} {n / t['bn']:>13,.0f} {t['train'] * 1e3:>9.1f}")


if __name__ == "__main__":
    main()
