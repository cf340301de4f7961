"""Build a BatchedEnv, and its action scheme, from the ``env`` config.

The one place that maps the config onto the simulator's arguments, so the
training loop, validation, ``test``, the baselines and the live runner all build
the same env and the same action scheme.  Each function takes the typed
:class:`~kpremia.envs.config.EnvConfig` or the resolved ``env`` dict (turned
into one, with its checks and old-key handling, on the way in).
``env.action_scheme`` is a node ``{name: <registered scheme>, ...options}``;
the options reach the scheme's constructor, a plug-in scheme's included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kpremia.data.tensors import MarketTensors
from kpremia.envs.action_schemes import build_action_scheme
from kpremia.envs.batched import BatchedEnv
from kpremia.envs.config import EnvConfig


def action_scheme_config(env_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The env's scheme node ``{name, **options}`` (old top-level option keys folded in, with a warning)."""
    return dict(EnvConfig.of(env_cfg).action_scheme)


def action_scheme_of(env_cfg: Mapping[str, Any]) -> Any:
    """The configured action scheme, built (for ``n_actions``, ``action_names`` and the env)."""
    env = EnvConfig.of(env_cfg)
    return build_action_scheme(env.action_scheme, allow_short=env.allow_short)


def env_kwargs(env_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """BatchedEnv keyword arguments (execution, reward, scheme node) from the env config."""
    return EnvConfig.of(env_cfg).batched_env_kwargs()


def make_env(market: MarketTensors, env_cfg: Mapping[str, Any], *, n_envs: int | None = None,
             seed: int = 0) -> BatchedEnv:
    """A training BatchedEnv over ``market``: episodes of ``env.max_steps`` from random starts.

    Sequential envs over a whole split (validation, test, backtests) are built by
    :func:`kpremia.eval.backtest.make_sequential_env` from the same :func:`env_kwargs`.
    """
    env = EnvConfig.of(env_cfg)
    return BatchedEnv(market, n_envs if n_envs is not None else env.n_envs, max_steps=env.max_steps,
                      random_start=True, seed=seed, **env.batched_env_kwargs())
