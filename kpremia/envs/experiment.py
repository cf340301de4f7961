"""An experiment's market and market model, for ``fit`` and for the adapters other libraries use.

``fit experiment=mlp_ppo`` trains on the train split of the experiment's data with
the experiment's :class:`~kpremia.envs.config.EnvConfig` (execution rules, decision
clock, reward, action scheme, episode length).  The gymnasium env, the gymnasium
VectorEnv and the Stable-Baselines3 VecEnv take the same ``experiment=`` (and Hydra
``overrides=``) and build their simulator from this module, so a policy trained by
another library sees exactly the market and rules ``fit`` trains on.

:data:`DEFAULT_EXPERIMENT` (the main job's experiment) is what the adapters use
when no experiment is named.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from kpremia.core.bars import bar_of_minutes, frame_bar
from kpremia.core.compose import compose_config
from kpremia.core.errors import UserError
from kpremia.core.registry import DATA_SOURCES
from kpremia.data.market import MarketData, Normalizer, build_market
from kpremia.envs.config import EnvConfig

DEFAULT_EXPERIMENT = "gru_attn_ppo"
TRAIN_SPLITS = ("train", "val")
ALL_SPLITS = ("train", "val", "test")


def load_market(cfg: Mapping[str, Any], splits: tuple[str, ...] = TRAIN_SPLITS,
                normalizer: Normalizer | None = None) -> MarketData:
    """Load the run config's data source and build the requested splits as tensors (on the CPU).

    ``cfg`` is a run config (``data`` and ``env`` nodes).  ``normalizer`` (a
    checkpoint's) replaces the one otherwise fitted on the train split.
    """
    data_cfg = {k: v for k, v in cfg["data"].items() if k != "split"}
    source = DATA_SOURCES.build(data_cfg)
    frame, manifest = source.load()
    # The source says its bar size; a plug-in source that does not is read from its frame's index.
    bar = bar_of_minutes(manifest["bar_minutes"]) if manifest.get("bar_minutes") else frame_bar(frame.index)
    try:
        market = build_market(frame, split_cfg=cfg["data"].get("split") or {}, **EnvConfig.of(cfg["env"]).observation,
                              splits=splits, device="cpu", normalizer=normalizer, bar=bar)
    except UserError as exc:  # name the file the frame came from (a split or warm-up problem is about it)
        if not manifest.get("path") or str(manifest["path"]) in str(exc):
            raise
        raise UserError(f"data file {manifest['path']}: {exc}") from None
    market.manifest = {**manifest, **(market.manifest or {})}
    return market


@functools.lru_cache(maxsize=8)
def _config(experiment: str | None, overrides: tuple[str, ...]) -> dict[str, Any]:
    head = [f"experiment={experiment}"] if experiment else []
    try:
        return compose_config([*head, *overrides])
    except Exception as exc:  # Hydra's errors (unknown experiment, bad override) as one line
        raise UserError(f"cannot compose experiment={experiment!r} with overrides {list(overrides)}: "
                        f"{' '.join(str(exc).split())}; name an experiment of configs/experiment/") from None


def experiment_config(experiment: str | None = DEFAULT_EXPERIMENT, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The resolved run config of ``experiment`` with Hydra ``overrides`` (cached per process)."""
    return _config(experiment, tuple(overrides))


@functools.lru_cache(maxsize=4)
def _market(experiment: str | None, overrides: tuple[str, ...]) -> MarketData:
    return load_market(_config(experiment, overrides), TRAIN_SPLITS)


def experiment_market(experiment: str | None = DEFAULT_EXPERIMENT, overrides: Sequence[str] = ()) -> MarketData:
    """The train and validation splits ``fit`` builds for ``experiment`` (cached per process)."""
    return _market(experiment, tuple(overrides))


def adapter_setup(experiment: str | None, overrides: Sequence[str], env: EnvConfig | Mapping[str, Any] | None,
                  market: Any) -> tuple[EnvConfig, Any]:
    """The env config and train split an adapter simulates: the experiment's, unless given.

    ``env`` (an :class:`EnvConfig` or an ``env`` node) replaces the experiment's market
    model; ``market`` (a ``MarketTensors``) replaces the experiment's train split.
    """
    config = EnvConfig.of(env if env is not None else experiment_config(experiment, overrides)["env"])
    if market is None:
        market = experiment_market(experiment, overrides).tensors["train"]
    return config, market
