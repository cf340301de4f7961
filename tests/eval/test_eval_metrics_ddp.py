"""The metric states really reduce across processes: 2 ranks, gloo, half the paths each."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from kpremia.eval.metrics import PortfolioMetrics, SharpeRatio

N_PATHS = 6
T_LEN = 300


def make_paths() -> dict[str, torch.Tensor]:
    """Deterministic random paths [N_PATHS, T_LEN] (every rank builds the same ones)."""
    rng = np.random.default_rng(11)
    weight = np.repeat((rng.random((N_PATHS, T_LEN // 6)) < 0.5).astype(float), 6, axis=1)
    weight[:, 0] = 0.0
    traded = np.zeros_like(weight, dtype=bool)
    traded[:, 1:] = weight[:, 1:] != weight[:, :-1]
    log_ret = rng.normal(0, 0.01, weight.shape) * (0.2 + weight)
    log_ret[:, 0] = 0
    values = 1e6 * np.exp(np.cumsum(log_ret, axis=1))
    return {"values_krw": torch.from_numpy(values), "usdt_weight": torch.from_numpy(weight),
            "traded": torch.from_numpy(traded), "fees_krw": torch.from_numpy(np.where(traded, 0.001 * values, 0.0))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size, init_method=f"tcp://127.0.0.1:{port}")
    try:
        paths = make_paths()
        mine = {k: v[rank::world_size] for k, v in paths.items()}  # a different half on each rank
        metric, sharpe = PortfolioMetrics(), SharpeRatio()
        metric.update(**mine)
        sharpe.update(mine["values_krw"])
        result = {k: float(v) for k, v in metric.compute().items()}
        result["sharpe_single"] = float(sharpe.compute())
        result["local_n_paths"] = float(metric.n_paths)  # restored to the local state after compute
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned interpreters: ~10-20 s
def test_two_process_gloo_reduction_equals_single_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    single = PortfolioMetrics()
    single.update(**make_paths())
    want = {k: float(v) for k, v in single.compute().items()}
    for rank in range(2):
        got = json.loads(Path(tmp_path, f"rank{rank}.json").read_text())
        assert got["local_n_paths"] == N_PATHS / 2
        assert abs(got["sharpe_single"] - want["sharpe"]) <= 1e-12 * abs(want["sharpe"])  # one-key class syncs too
        for key, value in want.items():
            assert abs(got[key] - value) <= 1e-12 * max(1.0, abs(value)), key
