"""EnvConfig: the ``env`` part of the run config, typed and checked in one place.

Every knob of the simulator and the observation windows, with its default and
its rule; ``configs/env/default.yaml`` holds the same defaults (a test keeps
them equal).  The keys that belong to a value object are declared from it
(:func:`~kpremia.core.config.knob_of`), so each default and rule has one home:

* fee (rate and convention), spread, slippage, tick, minimum order, shorting -> :attr:`EnvConfig.execution`
  (:class:`~kpremia.envs.execution.ExecutionRules`);
* ``decision_every`` -> :attr:`EnvConfig.clock` (:class:`~kpremia.envs.clock.DecisionClock`);
* ``reward``, ``turnover_penalty``, ``flat_penalty`` -> :attr:`EnvConfig.reward_rule`
  (:class:`~kpremia.envs.reward.RewardRule`).

Those objects, not loose keyword arguments, are what the simulator, the
backtests, the baselines, the oracle, the brokers, the live runner and the gym
adapters receive.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, ClassVar

from kpremia.core.bars import bar_of_minutes, bars_setting
from kpremia.core.config import ConfigPart, at_least, bars_or_duration, between, knob, knob_of, positive
from kpremia.envs.action_schemes import build_action_scheme
from kpremia.envs.clock import DecisionClock
from kpremia.envs.execution import ExecutionRules
from kpremia.envs.reward import RewardRule


def _optional_feature_names() -> tuple[str, ...]:
    """The optional feature names, imported when a config names one: the feature code loads torch and
    pandas, and a config check (``fit env.n_envs=0``) must be refused before either is loaded."""
    from kpremia.data.feature_formulas import OPTIONAL_FEATURE_NAMES

    return OPTIONAL_FEATURE_NAMES


@dataclass(frozen=True)
class EnvConfig(ConfigPart):
    """``env``: the market model (execution, decisions, reward, action scheme), episode shape and windows."""

    section: ClassVar[str] = "env"
    # Settings given in bars or as durations ("4h"): bars of the run's bar size once the data is known (in_bars).
    BAR_SETTINGS: ClassVar[tuple[str, ...]] = ("decision_every", "max_steps")

    n_envs: int = knob(64, at_least(1))  # parallel envs per rank (training)
    # Episode length (truncation, in decisions) and the decision interval: a number of bars of the run's
    # bar size, or a duration ("4h", "1000h") that the run turns into bars of its bar size (kpremia.core.bars).
    max_steps: int | str | None = knob(1000, bars_or_duration(allow_none=True))
    fee_rate: float = knob_of(ExecutionRules, "fee_rate")
    fee_convention: str = knob_of(ExecutionRules, "fee_convention")
    slippage_bps: float = knob_of(ExecutionRules, "slippage_bps")
    spread_krw: float = knob_of(ExecutionRules, "spread_krw")
    spread_bps: float = knob_of(ExecutionRules, "spread_bps")
    tick_size_krw: float = knob_of(ExecutionRules, "tick_size_krw")
    min_order_krw: float = knob_of(ExecutionRules, "min_order_krw")
    allow_short: bool = knob_of(ExecutionRules, "allow_short")
    initial_krw: float = knob(1_000_000.0, positive())
    decision_every: int | str = knob_of(DecisionClock, "decision_every")
    reward: str = knob_of(RewardRule, "reward")
    turnover_penalty: float = knob_of(RewardRule, "turnover_penalty")
    flat_penalty: float = knob_of(RewardRule, "flat_penalty")
    action_scheme: dict[str, Any] = knob({"name": "signal", "sell_threshold": 0.10})
    ruin_fraction: float = knob(0.5, between(0, 1, high_open=True))
    window_bars: int = knob(15, at_least(1))
    window_1d: int = knob(10, at_least(1))
    window_premium: int = knob(10, at_least(1))
    # optional features added to the observation (off by default; kpremia.data.feature_formulas.OPTIONAL_FEATURE_NAMES)
    extra_features: tuple[str, ...] = knob((), ("a list of optional feature names (docs/market.md)",
                                                lambda v: all(name in _optional_feature_names() for name in v)))

    @classmethod
    def normalise(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """A scheme given by name (``env.action_scheme=hold_buy_sell``) becomes its node ``{name: ...}``."""
        scheme = raw.get("action_scheme")
        if isinstance(scheme, str):
            raw["action_scheme"] = {"name": scheme}
        return raw

    @functools.cached_property
    def execution(self) -> ExecutionRules:
        """The fill rules of this env (fee, spread, slippage, tick, minimum order, shorting)."""
        return ExecutionRules(**{k: getattr(self, k) for k in ExecutionRules.field_names()})

    @functools.cached_property
    def clock(self) -> DecisionClock:
        """When the policy decides (``decision_every``: bars, or a duration :meth:`DecisionClock.at` resolves)."""
        return DecisionClock(decision_every=self.decision_every)

    @functools.cached_property
    def reward_rule(self) -> RewardRule:
        """What a bar pays (``reward`` and the penalties)."""
        return RewardRule(**{k: getattr(self, k) for k in RewardRule.field_names()})

    def in_bars(self, bar_minutes: float) -> EnvConfig:
        """This env with its durations as bars of ``bar_minutes``-minute bars.

        The one place a duration (``env.decision_every="4h"``, ``env.max_steps="1000h"``) becomes
        bars (:func:`kpremia.core.bars.bars_setting`: numbers are bars already, a duration is
        ``round(duration / bar)`` bars, at least one); everything that runs on a market's bars
        (``fit``, ``test``, the backtests, the simulator, ``live``) uses its result.
        """
        bar = bar_of_minutes(bar_minutes)
        return dataclasses.replace(self, decision_every=bars_setting(self.decision_every, bar, "env.decision_every"),
                                   max_steps=bars_setting(self.max_steps, bar, "env.max_steps"))

    def scheme(self) -> Any:
        """The configured action scheme, built (``n_actions``, ``action_names``, ``target_weight``)."""
        return build_action_scheme(self.action_scheme, allow_short=self.allow_short)

    @property
    def windows(self) -> dict[str, int]:
        """The observation windows, as :func:`kpremia.data.market.build_market` takes them."""
        return {"window_bars": self.window_bars, "window_1d": self.window_1d, "window_premium": self.window_premium}

    @property
    def observation(self) -> dict[str, Any]:
        """The windows and the optional features, as :func:`~kpremia.data.market.build_market` and the
        live :class:`~kpremia.data.market.ObservationBuilder` take them."""
        return {**self.windows, "extra_features": tuple(self.extra_features)}
