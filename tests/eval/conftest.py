"""Fixtures for the evaluation tests: small hand-built markets.

Markets are built directly as :class:`MarketTensors` (obs tables filled with the
bar index), so these tests depend only on the data contract and the simulator,
not on the data layer.  ``premium_market`` has a mean-reverting premium over a
random-walk FX rate, the structure the threshold baseline trades.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from kpremia.data.tensors import MarketTensors

WINDOWS = {"price_bars": 15, "price_1d": 10, "premium": 10, "features": 4}


def build_market(
    close: Sequence[float] | np.ndarray,
    open: Sequence[float] | np.ndarray | None = None,
    fx: Sequence[float] | np.ndarray | None = None,
    *,
    valid_from: int = 0,
    name: str = "test",
    start: str = "2024-06-01T00:00",
) -> MarketTensors:
    """A market closing at ``close``, opening at ``open`` (default: the previous close)."""
    close_t = torch.as_tensor(np.asarray(close, dtype=np.float64))
    n = close_t.shape[0]
    open_t = torch.cat([close_t[:1], close_t[:-1]]) if open is None else torch.as_tensor(
        np.asarray(open, dtype=np.float64))
    fx_t = torch.full((n,), 1400.0, dtype=torch.float64) if fx is None else torch.as_tensor(
        np.asarray(fx, dtype=np.float64))
    bar = torch.arange(n, dtype=torch.float32)[:, None]
    obs = {k: bar + torch.arange(w, dtype=torch.float32)[None, :] / 100.0 for k, w in WINDOWS.items()}
    times = np.datetime64(start) + np.arange(n) * np.timedelta64(15, "m")
    return MarketTensors(
        times=times.astype("datetime64[ns]"), open=open_t, high=torch.maximum(open_t, close_t),
        low=torch.minimum(open_t, close_t), close=close_t, fx=fx_t, premium=close_t / fx_t - 1,
        obs=obs, valid_from=valid_from, feature_names=tuple(f"f{i}" for i in range(WINDOWS["features"])),
        name=name,
    )


def premium_market(n: int = 600, seed: int = 0, *, valid_from: int = 5, name: str = "test",
                   start: str = "2024-06-01T00:00") -> MarketTensors:
    """``n`` bars: FX random walk around 1,400; premium AR(1) around +1.4 %; noisy opens."""
    rng = np.random.default_rng(seed)
    fx = 1400.0 * np.exp(np.cumsum(rng.normal(0, 0.0004, n)))
    premium = np.empty(n)
    premium[0] = 0.014
    for t in range(1, n):
        premium[t] = 0.014 + 0.95 * (premium[t - 1] - 0.014) + rng.normal(0, 0.003)
    close = fx * (1 + premium)
    open_ = np.concatenate([[close[0]], close[:-1]]) * np.exp(rng.normal(0, 0.0005, n))
    return build_market(close, open_, fx, valid_from=valid_from, name=name, start=start)


@pytest.fixture
def market() -> MarketTensors:
    """600 bars of a mean-reverting premium, windows complete from bar 5."""
    return premium_market()
