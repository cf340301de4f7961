"""Fixtures for the data tests: synthetic frames and a small hand-made bar factory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kpremia.data.synthetic import SyntheticParams, generate


@pytest.fixture(scope="session")
def synthetic_frame() -> pd.DataFrame:
    """The default synthetic market (2 years of 15m bars, seed 0)."""
    return generate(SyntheticParams(), seed=0)


@pytest.fixture(scope="session")
def short_frame() -> pd.DataFrame:
    """20 days of the default synthetic market starting at a UTC midnight (seed 1)."""
    return generate(SyntheticParams(days=20), seed=1)


def make_bars(n: int = 8, start: str = "2024-01-01", close: float = 1400.0, fx: float = 1380.0) -> pd.DataFrame:
    """``n`` clean 15m bars with a gentle ramp (a valid MarketFrame minus premium)."""
    idx = pd.date_range(start, periods=n, freq="15min", tz="UTC", name="time")
    c = close + np.arange(n, dtype=float)
    return pd.DataFrame({"open": c - 0.5, "high": c + 1.0, "low": c - 1.0, "close": c,
                         "volume": 10.0 + np.arange(n), "fx": fx}, index=idx)


@pytest.fixture
def bars():
    """Factory for small clean bar frames: ``bars(n, start=...)``."""
    return make_bars


@pytest.fixture
def data_sources():
    """DATA_SOURCES (each source module is imported when its name is asked for; nothing else is)."""
    from kpremia.core import registry

    return registry.DATA_SOURCES
