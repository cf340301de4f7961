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

from dataclasses import dataclass, field

import numpy as np
import torch

from kpremia.core.bars import DEFAULT_BAR, bar_minutes

DEFAULT_BAR_MINUTES = bar_minutes(DEFAULT_BAR)


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
