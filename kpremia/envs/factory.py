"""Build a BatchedEnv, and its action scheme, from the ``env`` config group.

The one place that maps the config onto the simulator's arguments, so the
training loop, validation, ``test``, the baselines and the live runner all build
the same env and the same action scheme.  ``env.action_scheme`` is a node
``{name: <registered scheme>, ...options}`` (or just a name); the options reach
the scheme's constructor, a plug-in scheme's included.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from kpremia.data.tensors import MarketTensors
from kpremia.envs.action_schemes import build_action_scheme, scheme_node
from kpremia.envs.batched import BatchedEnv

# Keys of the env config from before the scheme became a node: (old key, scheme, option).
_LEGACY_SCHEME_KEYS = (("signal_sell_threshold", "signal", "sell_threshold"),
                       ("target_weights", "target_weight", "weights"))


def action_scheme_config(env_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The env's scheme node ``{name, **options}``; old top-level option keys are folded in (with a warning)."""
    node = scheme_node(env_cfg.get("action_scheme", "signal"))
    for old, scheme, option in _LEGACY_SCHEME_KEYS:
        if old in env_cfg:
            warnings.warn(f"config key env.{old} is deprecated and will be removed; use "
                          f"env.action_scheme.{option} (with env/action_scheme={scheme})", FutureWarning,
                          stacklevel=2)
            if node["name"] == scheme:
                node.setdefault(option, env_cfg[old])
    return node


def action_scheme_of(env_cfg: Mapping[str, Any]) -> Any:
    """The configured action scheme, built (for ``n_actions``, ``action_names`` and the env)."""
    return build_action_scheme(action_scheme_config(env_cfg), allow_short=bool(env_cfg.get("allow_short", False)))


def env_kwargs(env_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """BatchedEnv keyword arguments (execution, reward, scheme node) from the env config."""
    return dict(
        fee_rate=float(env_cfg.get("fee", 0.001)),
        slippage_bps=float(env_cfg.get("slippage_bps", 0.0)),
        initial_krw=float(env_cfg.get("initial_krw", 1_000_000.0)),
        action_scheme=action_scheme_config(env_cfg),
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
