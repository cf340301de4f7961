"""RunConfig: the whole run's config, parsed and checked once, then passed whole.

Why: the run config used to be parsed at every boundary.  The fee rate went YAML -> the config
check (an ``EnvConfig`` built and thrown away) -> the module (parsed again) -> the evaluation
(again) -> the live policy (again); ``eval`` and ``live`` were parsed by each command that read
them.  Now the entry (the CLI's config check, :func:`kpremia.run.checkpoint.apply_overrides` for a
checkpoint's config, the Python API) builds one :class:`RunConfig`, and what runs reads its typed
parts: ``run.env`` (:class:`~kpremia.envs.config.EnvConfig`), ``run.algo`` (the algorithm's
:class:`~kpremia.algos.config.AlgoConfig`, None for a plug-in algorithm without one), ``run.eval``
(:class:`~kpremia.eval.config.EvalConfig`) and ``run.live``
(:class:`~kpremia.run.live_config.LiveConfig`).  ``data``, ``encoder``, ``trainer`` and the other
groups are read from the resolved dict, which a RunConfig also is (a read-only mapping), so code
that reads ``cfg["data"]`` takes either.

The resolved dict (``run.raw``) is what a checkpoint saves (``RLModule`` writes its ``env`` and
``algo`` under today's key names, ``hyper_parameters["cfg"]``); :func:`kpremia.run.checkpoint.saved_run_config`
reads it back.  Durations (``env.decision_every="4h"``) become bars in one place,
:meth:`EnvConfig.in_bars`, once the data's bar size is known (:func:`resolve_bar_settings`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kpremia.algos.config import AlgoConfig, algo_config_class
from kpremia.core.bars import timeframe_label
from kpremia.core.config import ConfigPart
from kpremia.envs.config import EnvConfig
from kpremia.eval.config import EvalConfig
from kpremia.run.live_config import LiveConfig

if TYPE_CHECKING:
    from kpremia.data.market import MarketData

log = logging.getLogger(__name__)

REQUIRED = ("env", "algo")  # groups every run config has; eval and live take their defaults where absent


@dataclass(frozen=True, eq=False)
class RunConfig(Mapping[str, Any]):
    """The resolved run config (a read-only mapping of ``raw``) with its typed parts, each checked once."""

    raw: Mapping[str, Any]
    env: EnvConfig
    algo: AlgoConfig | None
    eval: EvalConfig
    live: LiveConfig

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> RunConfig:
        """Parse and check every typed part of ``cfg`` (a resolved dict); one :class:`UserError` line if invalid.

        ``env``, the algorithm's own ``algo`` part (checked with the env: sizes in env steps of all
        envs), ``eval`` and ``live`` (their defaults where the config has no such group).
        """
        parts: dict[str, type[ConfigPart] | None] = {
            "env": EnvConfig, "algo": algo_config_class(str((cfg.get("algo") or {}).get("name"))),
            "eval": EvalConfig, "live": LiveConfig}
        nodes = {name: cfg[name] if name in REQUIRED else cfg.get(name) or {} for name in parts}
        typed: dict[str, Any] = {name: part and part.from_dict(nodes[name]) for name, part in parts.items()}
        if typed["algo"] is not None:
            typed["algo"].check_with_env(typed["env"])
        return cls(raw=cfg, **typed)

    @classmethod
    def of(cls, cfg: Mapping[str, Any]) -> RunConfig:
        """``cfg`` itself when it is parsed already (passed whole from the entry), else :meth:`from_dict` of it."""
        return cfg if isinstance(cfg, RunConfig) else cls.from_dict(cfg)

    def with_groups(self, **groups: Any) -> RunConfig:
        """This run with other untyped groups (``data=...``: another market draw, split or file); nothing reparsed."""
        typed = sorted({"env", "algo", "eval", "live"} & set(groups))
        if typed:
            raise ValueError(f"{typed} are typed parts: build a new RunConfig with RunConfig.from_dict")
        return dataclasses.replace(self, raw={**self.raw, **groups})

    # ------------------------------------------------------------ read like the dict it was built from
    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


def resolve_bar_settings(run: RunConfig, market: MarketData) -> RunConfig:
    """``run`` with ``env.decision_every`` / ``env.max_steps`` in bars of the market's bar size.

    The one rule (docs/data.md): a number is bars of the run's bar size, a duration
    (``"4h"``, ``"1000h"``) is ``round(duration / bar)`` bars, at least one
    (:meth:`EnvConfig.in_bars`, the one place it is computed).  What was given and what it
    became go into the market's manifest (``bar_settings``).
    """
    env = dict(run.raw["env"])
    in_bars = run.env.in_bars(market.bar_minutes)
    record = {}
    for key in EnvConfig.BAR_SETTINGS:
        given = env.get(key)
        bars = None if given is None else getattr(in_bars, key)
        if isinstance(given, str) and bars is not None:
            log.info("env.%s=%s is %d bar%s of %s", key, given, bars, "" if bars == 1 else "s",
                     timeframe_label(market.bar))
        env[key] = bars
        record[key] = {"given": given, "bars": bars}
    market.manifest = {**(market.manifest or {}), "bar_settings": record}
    typed = dataclasses.replace(in_bars, **{key: env[key] for key in EnvConfig.BAR_SETTINGS})
    return dataclasses.replace(run, raw={**run.raw, "env": env}, env=typed)
