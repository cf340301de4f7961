"""Fixtures for the simulator tests: small hand-built markets.

``make_market(close, ...)`` builds a :class:`MarketTensors` directly, so the env
tests do not depend on the data layer.  Every obs table holds the bar index in
column 0 (and the bar index plus the column number elsewhere), so a test can
read which bar an observation was gathered from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
import torch

from kpremia.data.tensors import MarketTensors

WINDOWS = {"price_bars": 15, "price_1d": 10, "premium": 10, "features": 4}


def build_market(
    close: Sequence[float] | np.ndarray,
    open: Sequence[float] | np.ndarray | None = None,
    *,
    valid_from: int = 0,
    fx: float = 1400.0,
    windows: dict[str, int] | None = None,
    name: str = "train",
) -> MarketTensors:
    """A market whose bars close at ``close`` and open at ``open`` (default: the previous close)."""
    close_t = torch.as_tensor(np.asarray(close, dtype=np.float64))
    n = close_t.shape[0]
    if open is None:
        open_t = torch.cat([close_t[:1], close_t[:-1]])
    else:
        open_t = torch.as_tensor(np.asarray(open, dtype=np.float64))
    fx_t = torch.full((n,), fx, dtype=torch.float64)
    bar = torch.arange(n, dtype=torch.float32)[:, None]
    obs = {k: bar + torch.arange(w, dtype=torch.float32)[None, :] / 100.0 for k, w in (windows or WINDOWS).items()}
    times = np.datetime64("2024-06-01T00:00") + np.arange(n) * np.timedelta64(15, "m")
    return MarketTensors(
        times=times.astype("datetime64[ns]"), open=open_t, high=torch.maximum(open_t, close_t),
        low=torch.minimum(open_t, close_t), close=close_t, fx=fx_t, premium=close_t / fx_t - 1,
        obs=obs, valid_from=valid_from, feature_names=tuple(f"f{i}" for i in range(obs["features"].shape[1])),
        name=name,
    )


def random_walk_close(n: int, seed: int = 0, start: float = 1400.0, sd: float = 0.002) -> np.ndarray:
    """A seeded geometric random walk of closes."""
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0.0, sd, n)))


@pytest.fixture
def make_market() -> Callable[..., MarketTensors]:
    """The :func:`build_market` helper as a fixture."""
    return build_market


@pytest.fixture
def walk_market() -> MarketTensors:
    """500 bars of a random walk, windows complete from bar 20."""
    return build_market(random_walk_close(500), valid_from=20)
