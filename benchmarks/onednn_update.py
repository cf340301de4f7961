"""Training throughput with the gradient update run with oneDNN on (default) and off.

    python benchmarks/onednn_update.py                                  # lstm_ppo, gru_attn_ppo
    python benchmarks/onednn_update.py --experiments dnn_lstm_ppo mlp_ppo --steps 32768

torch runs CPU RNN layers through oneDNN.  For the update's forward + backward
the native kernels can be faster, while acting one bar at a time is faster with
oneDNN; ``trainer.onednn_update=false`` switches oneDNN off around the update
only.  Each experiment is trained with both settings back to back, in
alternating order over ``--repeats``, as ``fit`` runs it (validation off), and
the table gives env steps/s and the speed-up of ``off`` over ``on``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_throughput  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", nargs="+", default=["lstm_ppo", "gru_attn_ppo"])
    parser.add_argument("--steps", type=int, default=16_384, help="env steps per run (whole rollouts)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting (order alternates)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("kpremia").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)

    before = "/".join(f"{x:.2f}" for x in os.getloadavg())
    rows = []
    for exp in args.experiments:
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
    print(f"| {'experiment':<14} | {'oneDNN on (steps/s)':>19} | {'update oneDNN off':>17} | {'speed-up':>8} |")
    print(f"|{'-' * 16}|{'-' * 20}:|{'-' * 18}:|{'-' * 9}:|")
    for exp, on, off in rows:
        print(f"| {exp:<14} | {on:>19,.0f} | {off:>17,.0f} | {off / on - 1:>+7.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
