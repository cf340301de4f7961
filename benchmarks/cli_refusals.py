"""CPU seconds of six CLI refusals, this checkout against a reference checkout, in the same run.

    python benchmarks/cli_refusals.py [--ref <another checkout, e.g. the main branch>] [--repeat 3]

Each refusal is ``python -m kpremia ...`` in a fresh subprocess (a temporary working directory,
its own runs folder); its cost is the CPU time (user + system) of the child, from
``resource.getrusage(RUSAGE_CHILDREN)`` before and after, the best of ``--repeat`` runs.  The six
mistakes a newcomer makes first:

* ``typo'd encoder``     ``fit encoder=grux``
* ``typo'd experiment``  ``fit experiment=gru_atn_ppo``
* ``bad value``          ``fit env.n_envs=0``
* ``missing file``       ``fit data=csv data.path=missing.csv``
* ``missing path``       ``fit data=csv`` (no data.path)
* ``bad checkpoint``     ``test ckpt=not_a_checkpoint.ckpt`` (a text file)

With ``--ref`` the same commands run from the other checkout (``PYTHONPATH`` set to it) in the
same sitting, so the two columns share the machine's load; each run must end with exit code 2 and
one ``error:`` line (the script says which did not).  The goal is <= 1 s of CPU per refusal.
Timings are only comparable within one run of this script; quote the machine's load beside them.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
REFUSALS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("typo'd encoder", ("fit", "encoder=grux")),
    ("typo'd experiment", ("fit", "experiment=gru_atn_ppo")),
    ("bad value", ("fit", "env.n_envs=0")),
    ("missing file", ("fit", "data=csv", "data.path=missing.csv")),
    ("missing path", ("fit", "data=csv")),
    ("bad checkpoint", ("test", "ckpt=not_a_checkpoint.ckpt")),
)


def cpu_seconds(checkout: Path, args: tuple[str, ...], workdir: Path) -> tuple[float, str]:
    """CPU time (user + system) of one ``python -m kpremia <args>`` child, and its first stderr line."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "KPREMIA_RUNS_DIR": str(workdir / "runs"),
           "PYTHONWARNINGS": "ignore"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "kpremia", *args], capture_output=True, text=True, env=env,
                          cwd=workdir, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    ok = proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    return cpu, (lines[0][:100] if ok else f"NOT A ONE-LINE REFUSAL (exit {proc.returncode}): "
                 f"{(lines or ['<no stderr>'])[-1][:80]}")


def measure(checkout: Path, repeat: int) -> list[tuple[float, str]]:
    out = []
    with tempfile.TemporaryDirectory(prefix="kpremia-refusals-") as tmp:
        workdir = Path(tmp)
        (workdir / "not_a_checkpoint.ckpt").write_text("not a checkpoint\n")
        for _, args in REFUSALS:
            runs = [cpu_seconds(checkout, args, workdir) for _ in range(repeat)]
            out.append((min(cpu for cpu, _ in runs), runs[-1][1]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", type=Path, default=None, help="another checkout to compare with (e.g. main)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per refusal; the best counts (default 3)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    this = measure(HERE, args.repeat)
    ref = measure(args.ref.resolve(), args.repeat) if args.ref else None
    print(f"CPU seconds per refusal (best of {args.repeat}; load average {load:.2f} at the start, "
          f"{os.cpu_count()} cores)")
    header = f"{'refusal':<20}{'this':>8}" + (f"{'ref':>8}{'ratio':>8}" if ref else "") + "  message (this checkout)"
    print(header)
    for i, (name, _) in enumerate(REFUSALS):
        cpu, message = this[i]
        row = f"{name:<20}{cpu:>8.2f}"
        if ref:
            row += f"{ref[i][0]:>8.2f}{ref[i][0] / cpu if cpu else float('nan'):>7.1f}x"
        print(f"{row}  {message}")
    worst = max(cpu for cpu, _ in this)
    print(f"worst: {worst:.2f} s (goal <= 1 s)" + (f"; this checkout: {HERE}; ref: {args.ref.resolve()}" if ref
                                                     else f"; this checkout: {HERE}"))


if __name__ == "__main__":
    main()
