"""Build a BatchedEnv from the ``env`` config group.

The config keeps user-facing names (``fee``, ``signal_sell_threshold``, ...);
this is the one place that maps them onto the simulator's arguments, so the
training loop, validation, ``test`` and the live runner all build the same env.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kpremia.data.tensors import MarketTensors
from kpremia.envs.batched import BatchedEnv


def action_scheme_kwargs(env_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of the configured action scheme."""
    name = env_cfg.get("action_scheme", "signal")
    if name == "signal":
        return {"sell_threshold": float(env_cfg.get("signal_sell_threshold", 0.10))}
    if name == "target_weight":
        return {"weights": tuple(float(w) for w in env_cfg.get("target_weights", (0.0, 0.5, 1.0)))}
    return {}


def env_kwargs(env_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """BatchedEnv keyword arguments (execution, reward, scheme) from the env config."""
    return dict(
        fee_rate=float(env_cfg.get("fee", 0.001)),
        slippage_bps=float(env_cfg.get("slippage_bps", 0.0)),
        initial_krw=float(env_cfg.get("initial_krw", 1_000_000.0)),
        action_scheme=env_cfg.get("action_scheme", "signal"),
        action_scheme_kwargs=action_scheme_kwargs(env_cfg),
        turnover_penalty=float(env_cfg.get("turnover_penalty", 0.0)),
        flat_penalty=float(env_cfg.get("flat_penalty", 0.0)),
        ruin_fraction=float(env_cfg.get("ruin_fraction", 0.5)),
        tick_size_krw=float(env_cfg.get("tick_size_krw", 0.0)),
        min_order_krw=float(env_cfg.get("min_order_krw", 0.0)),
        allow_short=bool(env_cfg.get("allow_short", False)),
    )


def make_env(market: MarketTensors, env_cfg: Mapping[str, Any], *, n_envs: int | None = None,
             seed: int = 0) -> BatchedEnv:
    """A training BatchedEnv over ``market``: episodes of ``env.max_steps`` from random starts.

    Sequential envs over a whole split (validation, test, backtests) are built by
    :func:`kpremia.eval.backtest.make_sequential_env` from the same :func:`env_kwargs`.
    """
    return BatchedEnv(
        market,
        int(n_envs if n_envs is not None else env_cfg.get("n_envs", 64)),
        max_steps=int(env_cfg.get("max_steps", 1000)),
        random_start=True,
        seed=seed,
        **env_kwargs(env_cfg),
    )
