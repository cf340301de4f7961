"""MarketTensors: one split of the market as torch tensors on the training device.

This is the contract between the data layer and the simulator.  Everything that
depends only on time (prices, premium, the normalised market part of the
observation) is computed once per split and stored here as tables indexed by
bar; the simulator only gathers rows (``table[t]``) per step, which is what
makes a step of thousands of envs cost a few tensor ops.

Row ``t`` of every table describes the market *at the close of bar t*: it may
use bars ``<= t`` only (no look-ahead; tests perturb the future and check).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from kpremia.core.bars import DEFAULT_BAR_MINUTES


@dataclass
class MarketTensors:
    """A split of the market as tensors.

    Attributes:
        times: bar open times (UTC, ``datetime64[ns]``), length ``T``.
        open, high, low, close: USDT/KRW prices of each bar, float64 ``[T]``.
        fx: USD/KRW known at the close of each bar, float64 ``[T]``.
        premium: the source's premium (``close / fx - 1`` under ``premium_basis=usdt``), float64 ``[T]``.
        obs: market part of the observation, float32 tables ``{key: [T, W]}`` for
            ``price_bars``, ``price_1d``, ``premium`` and ``features``; already
            normalised with statistics fitted on the train split.
        valid_from: first row whose windows are complete (episodes start at or after it).
        feature_names: names of the columns of ``obs["features"]``.
        name: which split ("train", "val", "test", or "live").
        bar_minutes: the bar size in minutes (15 by default; ``data.timeframe``): what the
            metrics annualise with and checkpoints record.
    """

    times: np.ndarray
    open: torch.Tensor
    high: torch.Tensor
    low: torch.Tensor
    close: torch.Tensor
    fx: torch.Tensor
    premium: torch.Tensor
    obs: dict[str, torch.Tensor]
    valid_from: int = 0
    feature_names: tuple[str, ...] = field(default=())
    name: str = ""
    bar_minutes: float = DEFAULT_BAR_MINUTES

    @property
    def n_bars(self) -> int:
        return int(self.close.shape[0])

    @property
    def device(self) -> torch.device:
        return self.close.device

    def to(self, device: torch.device | str) -> "MarketTensors":
        """A copy on ``device`` (tensors moved; times stay on the host)."""
        mv = lambda t: t.to(device)  # noqa: E731
        return MarketTensors(
            times=self.times, open=mv(self.open), high=mv(self.high), low=mv(self.low),
            close=mv(self.close), fx=mv(self.fx), premium=mv(self.premium),
            obs={k: mv(v) for k, v in self.obs.items()}, valid_from=self.valid_from,
            feature_names=self.feature_names, name=self.name, bar_minutes=self.bar_minutes,
        )


def concat_markets(markets: Sequence[MarketTensors]) -> tuple[MarketTensors, list[int]]:
    """The markets' rows one after another in one :class:`MarketTensors`, and the row where each begins.

    Why: the simulator only gathers rows by bar index, so N markets become N envs of one
    BatchedEnv, each started at its own market's first valid row
    (:func:`kpremia.eval.backtest.run_policy_backtests`): N backtests for the price of one env
    loop.  Every table row still describes its own market at the close of that bar; an env
    that runs no further than its own market's last bar never reads another market's rows.
    The markets must share the observation layout and the bar size.
    """
    if not markets:
        raise ValueError("concat_markets needs at least one market")
    first = markets[0]
    for market in markets[1:]:
        shapes = {k: tuple(v.shape[1:]) for k, v in market.obs.items()}
        if shapes != {k: tuple(v.shape[1:]) for k, v in first.obs.items()}:
            raise ValueError(f"market {market.name!r} has obs tables {shapes}, unlike {first.name!r}; "
                             "stack markets built with the same env windows and features")
        if market.bar_minutes != first.bar_minutes or market.device != first.device:
            raise ValueError(f"market {market.name!r} has {market.bar_minutes}-minute bars on {market.device}, "
                             f"{first.name!r} {first.bar_minutes} on {first.device}; stack markets of one bar size "
                             "on one device")
    offsets = [0]
    for market in markets[:-1]:
        offsets.append(offsets[-1] + market.n_bars)
    cat = lambda name: torch.cat([getattr(m, name) for m in markets])  # noqa: E731
    stacked = MarketTensors(
        times=np.concatenate([np.asarray(m.times) for m in markets]),
        open=cat("open"), high=cat("high"), low=cat("low"), close=cat("close"), fx=cat("fx"), premium=cat("premium"),
        obs={k: torch.cat([m.obs[k] for m in markets]) for k in first.obs},
        valid_from=first.valid_from, feature_names=first.feature_names,
        name="+".join(m.name for m in markets), bar_minutes=first.bar_minutes)
    return stacked, offsets
