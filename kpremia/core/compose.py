"""The run config as the CLI composes it: Hydra over the shipped config tree, resolved to a dict.

One function, so the CLI's pre-check, the gym and VecEnv adapters (``experiment=...``),
the benchmarks and the tests all build exactly the config ``fit`` runs with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def compose_config(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The resolved config for Hydra ``overrides`` (e.g. ``["experiment=mlp_ppo", "env.n_envs=8"]``).

    Hydra's own exceptions propagate (the CLI turns them into one line).
    """
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="kpremia.configs", version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return plain(cfg)


def plain(node: Any) -> Any:
    """A Hydra/OmegaConf node as plain, resolved Python (dicts, lists, values): what the code reads."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True)
