"""Run a policy over a whole split, bar by bar, keeping everything on the device.

Used by validation (every epoch), ``test`` and backtests: a sequential
BatchedEnv (every env starts at the split's first valid bar and runs to its
end), a policy that acts on one bar at a time, and a trace of tensors collected
without any host sync inside the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from kpremia.envs.batched import BatchedEnv

ActFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]


class PolicyTrace(NamedTuple):
    """Per-step tensors ``[T, N]`` of a sequential run (row t = the step taken at bar t)."""

    t: torch.Tensor  # bar index the decision was taken at
    actions: torch.Tensor
    rewards: torch.Tensor
    portfolio_value_krw: torch.Tensor  # after the step, marked at the close of bar t+1
    usdt_weight: torch.Tensor
    fee_krw: torch.Tensor
    fill_price: torch.Tensor
    traded: torch.Tensor
    initial_value_krw: float


def run_sequential(env: BatchedEnv, act: ActFn, seed: int = 0) -> PolicyTrace:
    """Step ``env`` (built with ``random_start=False``) until its first episode ends.

    All envs start together at the first valid bar and end together at the
    split's last bar, so the number of steps is known up front.
    """
    obs = env.reset(seed=seed)
    n_steps = env.market.n_bars - 1 - env.market.valid_from
    n, dev = env.n_envs, env.device
    out = {name: torch.zeros((n_steps, n), dtype=torch.float64, device=dev)
           for name in ("rewards", "portfolio_value_krw", "usdt_weight", "fee_krw", "fill_price")}
    actions = torch.zeros((n_steps, n), dtype=torch.long, device=dev)
    bars = torch.zeros((n_steps, n), dtype=torch.long, device=dev)
    traded = torch.zeros((n_steps, n), dtype=torch.bool, device=dev)
    for step in range(n_steps):
        a = act(obs)
        bars[step] = env.t
        obs, reward, _terminated, _truncated, info = env.step(a)
        actions[step] = a
        out["rewards"][step] = reward
        for name in ("portfolio_value_krw", "usdt_weight", "fee_krw", "fill_price"):
            out[name][step] = info[name]
        traded[step] = info["traded"]
    return PolicyTrace(t=bars, actions=actions, traded=traded, initial_value_krw=float(env.initial_krw), **out)


def trace_paths(trace: PolicyTrace) -> dict[str, torch.Tensor]:
    """The trace as ``[N, T + 1]`` paths for :func:`kpremia.eval.metrics.compute_metrics`.

    Mark 0 is the start (all KRW, no fill); mark t+1 is the close after step t.
    """
    n = trace.portfolio_value_krw.shape[1]
    dev = trace.portfolio_value_krw.device
    start = torch.full((1, n), trace.initial_value_krw, dtype=torch.float64, device=dev)
    zeros = torch.zeros((1, n), dtype=torch.float64, device=dev)
    return {
        "values_krw": torch.cat([start, trace.portfolio_value_krw]).T,
        "usdt_weight": torch.cat([zeros, trace.usdt_weight]).T,
        "traded": torch.cat([zeros.bool(), trace.traded]).T,
        "fees_krw": torch.cat([zeros, trace.fee_krw]).T,
    }
