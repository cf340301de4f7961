"""Cost of saving one model version as the number of versions already kept grows.

    python benchmarks/version_save.py [--counts 10 1000 6000] [--saves 50] [--keep-last none]

For each count it fills a fresh ``versions/`` folder with that many versions of a
~360 KB network (the size a live session writes), opens a new
:class:`~kpremia.live.learning.versions.VersionStore` on it (one scan, as a session start
does), then times ``--saves`` further saves (each with retention, as the host
applies it) and prints the median and p95 per save.  The save reads no other
version, so the figures should be flat across counts; the start-up scan is
printed separately (it is linear, once per start).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from kpremia.live.learning.versions import VersionStore, next_version


def _weights(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(300, 300, generator=g)}  # 360 KB of float32


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[10, 1000, 6000])
    ap.add_argument("--saves", type=int, default=50)
    ap.add_argument("--keep-last", default="none", help="retention during the timed saves (none: keep all)")
    args = ap.parse_args()
    keep = None if args.keep_last == "none" else int(args.keep_last)
    print(f"{'versions':>9}  {'open (s)':>9}  {'save median (ms)':>17}  {'save p95 (ms)':>14}")
    for count in args.counts:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "versions"
            store, issued = VersionStore(root), None
            for i in range(count):
                v = store.save(_weights(i % 7), name=next_version(issued, "update" if issued else "checkpoint"),
                               kind="update" if issued else "checkpoint", parent=None)
                issued = v.number
            t0 = time.perf_counter()
            store = VersionStore(root)
            store.list()
            opened = time.perf_counter() - t0
            times = []
            for i in range(args.saves):
                t0 = time.perf_counter()
                v = store.save(_weights(100 + i), name=next_version(issued, "update"), kind="update", parent=None)
                store.prune(keep, {v.name})
                times.append((time.perf_counter() - t0) * 1e3)
                issued = v.number
            p95 = sorted(times)[int(0.95 * (len(times) - 1))]
            print(f"{count:>9}  {opened:>9.3f}  {statistics.median(times):>17.2f}  {p95:>14.2f}")


if __name__ == "__main__":
    main()
