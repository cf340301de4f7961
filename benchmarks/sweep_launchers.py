"""The same sweep through Hydra's basic launcher, joblib (2 at a time) and submitit's local executor.

Prints, per launcher, the wall time of the whole multirun (imports included: each launcher pays
its own process starts), the 1-minute load average before and after it, and whether every seed's
weights (``last.ckpt``) and best validation score are identical to the basic launcher's (bitwise:
CPU training is deterministic at a fixed thread count, so ``torch_threads`` is fixed for all three).

    python benchmarks/sweep_launchers.py                      # 4 seeds, debug=fast, experiment=gru_attn_ppo
    python benchmarks/sweep_launchers.py --seeds 4 --jobs 2 -- algo.total_env_steps=16384

Run it on a quiet machine (``uptime`` first): the point is the wall time of N trials side by side
against one after the other, and another process's load blurs exactly that.  The markdown rows
it prints go under docs/scale.md's "Trials side by side: measured" table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

LAUNCHERS = {  # name -> (overrides, trials at once in words)
    "basic": ([], "1"),
    "joblib": (["hydra/launcher=cores", "hydra.launcher.n_jobs={jobs}"], "{jobs}"),
    "submitit_local": (["hydra/launcher=local", "hydra.sweeper.max_batch_size={jobs}"], "{jobs}"),
}


def run_sweep(name: str, sweep_dir: Path, seeds: int, jobs: int, threads: int, extra: list[str]) -> dict:
    overrides, _ = LAUNCHERS[name]
    cmd = [sys.executable, "-m", "kpremia", "fit", "-m", f"seed={','.join(str(s) for s in range(seeds))}",
           f"torch_threads={threads}", f"hydra.sweep.dir={sweep_dir}", *extra,
           *(o.format(jobs=jobs) for o in overrides)]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{name}: the sweep failed (exit code {proc.returncode}):\n{proc.stderr[-3000:]}")
    jobs_done = json.loads((sweep_dir / "sweep.json").read_text())["jobs"]
    return {"name": name, "wall_s": wall, "load_before": load_before, "load_after": os.getloadavg()[0],
            "runs": {Path(j["run_dir"]).name: (Path(j["run_dir"]), j.get("value")) for j in jobs_done}}


def same_as(base: dict, other: dict) -> str:
    """``yes`` when every seed's weights and best score equal the basic launcher's, bitwise."""
    if base["runs"].keys() != other["runs"].keys():
        return "no (other jobs)"
    for name, (run, value) in base["runs"].items():
        other_run, other_value = other["runs"][name]
        a = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
        b = torch.load(other_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
        if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a) or value != other_value:
            return f"no ({name} differs)"
    return "yes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4, help="jobs in the sweep (seeds 0..N-1)")
    parser.add_argument("--jobs", type=int, default=2, help="trials at once under joblib and submitit")
    parser.add_argument("--threads", type=int, default=1, help="torch_threads of every trial")
    parser.add_argument("--launchers", default="basic,joblib,submitit_local")
    parser.add_argument("--keep", type=Path, default=None, help="keep the sweeps in this folder")
    parser.add_argument("overrides", nargs="*", help="fit overrides (default: debug=fast)")
    args = parser.parse_args()
    extra = args.overrides or ["debug=fast"]
    root = args.keep or Path(tempfile.mkdtemp(prefix="kpremia_sweep_bench_"))
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"{args.seeds} jobs of `fit {' '.join(extra)}`, torch_threads={args.threads}", flush=True)
    print("| launcher | trials at once | wall time | load (1 min) before → after | same results as basic |")
    print("|---|---:|---:|---|---|")
    results = []
    try:
        for name in args.launchers.split(","):
            result = run_sweep(name, root / name, args.seeds, args.jobs, args.threads, extra)
            results.append(result)
            same = same_as(results[0], result) if results[0] is not result else "(reference)"
            at_once = LAUNCHERS[name][1].format(jobs=args.jobs)
            print(f"| {name} | {at_once} | {result['wall_s']:.1f} s | {result['load_before']:.2f} → "
                  f"{result['load_after']:.2f} | {same} |", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
