"""EnvConfig: the ``env`` part of the run config, typed and checked in one place.

Every knob of the simulator and the observation windows, with its default and
its rule; ``configs/env/default.yaml`` holds the same defaults (a test keeps
them equal).  :class:`~kpremia.envs.batched.BatchedEnv` checks its arguments
with these same rules, so a value is never accepted by one and refused by the other.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any, ClassVar

from kpremia.config import ConfigPart, at_least, bars_or_duration, between, deprecated_key, knob, positive

_EPISODE_SHAPE = ("n_envs", "max_steps", "random_start", "seed")
# Option keys of the env config from before the scheme became a node: (old key, scheme, option).
LEGACY_SCHEME_KEYS = (("signal_sell_threshold", "signal", "sell_threshold"),
                      ("target_weights", "target_weight", "weights"))


@dataclass(frozen=True)
class EnvConfig(ConfigPart):
    """``env``: the batched simulator's execution and reward rules, episode shape and windows."""

    section: ClassVar[str] = "env"
    renamed: ClassVar[dict[str, str]] = {"fee": "fee_rate"}

    n_envs: int = knob(64, at_least(1))  # parallel envs per rank (training)
    # Episode length (truncation) and bars per decision: a number of bars of the run's bar size, or a
    # duration ("4h", "1000h") that the run turns into bars of its bar size (kpremia.bars.bars_setting).
    max_steps: int | str | None = knob(1000, bars_or_duration(allow_none=True))
    fee_rate: float = knob(0.001, ("a fraction in [0, 0.1), e.g. 0.001 for 0.1 %", lambda v: 0 <= v < 0.1))
    slippage_bps: float = knob(0.0, at_least(0))
    spread_krw: float = knob(0.5, at_least(0))  # quoted bid/ask spread (one 0.5 KRW tick); every fill pays half
    spread_bps: float = knob(0.0, at_least(0))  # quoted bid/ask spread in basis points, added to spread_krw
    tick_size_krw: float = knob(0.0, at_least(0))
    min_order_krw: float = knob(0.0, at_least(0))
    initial_krw: float = knob(1_000_000.0, positive())
    decision_every: int | str = knob(1, bars_or_duration())  # per decision: rewards summed, gamma per decision
    reward: str = knob("log_return", ("log_return or fx_hedged", lambda v: v in ("log_return", "fx_hedged")))
    action_scheme: dict[str, Any] = knob({"name": "signal", "sell_threshold": 0.10})
    allow_short: bool = knob(False)
    turnover_penalty: float = knob(0.0, at_least(0))
    flat_penalty: float = knob(0.0, at_least(0))
    ruin_fraction: float = knob(0.5, between(0, 1, high_open=True))
    window_15m: int = knob(15, at_least(1))
    window_1d: int = knob(10, at_least(1))
    window_premium: int = knob(10, at_least(1))

    @classmethod
    def upgrade(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """Renamed keys, a scheme given by name, and the old top-level scheme options, into today's form."""
        raw = super().upgrade(raw)
        scheme = raw.get("action_scheme", cls.defaults()["action_scheme"])
        node = {"name": scheme} if isinstance(scheme, str) else dict(scheme)
        for old, name, option in LEGACY_SCHEME_KEYS:
            if old in raw:
                deprecated_key(f"env.{old}", f"env.action_scheme.{option} (with env/action_scheme={name})")
                value = raw.pop(old)
                if node.get("name") == name:
                    node.setdefault(option, value)
        raw["action_scheme"] = node
        return raw

    def batched_env_kwargs(self) -> dict[str, Any]:
        """The BatchedEnv keyword arguments these settings give (execution, reward, scheme node).

        Every field that is an argument of :class:`BatchedEnv` goes through, so a new
        simulator knob needs no line here; the episode shape (``n_envs``, ``max_steps``)
        is the caller's, since training and backtests differ in it.
        """
        from kpremia.envs.batched import BatchedEnv  # the simulator's own signature decides

        params = inspect.signature(BatchedEnv).parameters
        return {name: copy.deepcopy(getattr(self, name)) for name in self.__dataclass_fields__
                if name in params and name not in _EPISODE_SHAPE}

    @property
    def windows(self) -> dict[str, int]:
        """The observation windows, as :func:`kpremia.data.market.build_market` takes them."""
        return {"window_15m": self.window_15m, "window_1d": self.window_1d, "window_premium": self.window_premium}
