"""``trainer=ddp`` from the command line: Lightning re-launches ``python -m kpremia`` per rank.

The re-launched child gets the overrides but not the command name (the CLI passes
it through ``KPREMIA_COMMAND``) and Hydra's run dir of rank 0 (Lightning adds
``hydra.run.dir=...``), so both ranks share one run directory and only rank 0
writes files and prints it.
"""

from __future__ import annotations

import json

import pytest

from .conftest import TINY


@pytest.mark.slow
def test_fit_with_strategy_ddp_two_cpu_processes_from_the_cli(run_cli, tmp_path):
    proc = run_cli("fit", *TINY, "trainer=ddp", "trainer.devices=2", "algo.total_env_steps=512", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = tmp_path / "runs"
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]  # one run directory for both ranks
    printed = [line for line in proc.stdout.splitlines() if line.strip() == str(run_dir)]
    assert len(printed) == 1, proc.stdout[-2000:]  # rank 0 only
    meta = json.loads((run_dir / "meta.json").read_text())
    assert [r["rank"] for r in meta["ranks"]] == [0, 1]
    assert meta["ranks"][0]["env_seed"] != meta["ranks"][1]["env_seed"]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    import torch

    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["kpremia"]["env_steps"] == 512 and len(ckpt["kpremia"]["per_rank"]) == 2
