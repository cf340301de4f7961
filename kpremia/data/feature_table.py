"""The feature table: the formulas of :mod:`kpremia.data.feature_formulas` over a frame or bar by bar.

Why this shape: a feature computed one way offline and another way live is a
silent train/serve skew.  The batch path (:func:`feature_matrix`) unfolds the
frame into ``[B, L]`` windows (in chunks, so memory stays bounded) and the live path
(:class:`IncrementalFeatures`) keeps a ring buffer of the last L bars and calls
the very same functions on a ``[1, L]`` window.  L, the look-back of the longest
feature at the run's bar size, is assembled here (:func:`feature_lookback`).

Warm-up: a bar with fewer than :func:`feature_lookback` - 1 bars before it has no
full window; its features are NaN (batch) and :meth:`IncrementalFeatures.update`
returns NaN until it has seen that many bars.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from kpremia.core.bars import DEFAULT_BAR, frame_bar, utc_timestamp
from kpremia.data.feature_formulas import FEATURE_NAMES, FEATURE_REGISTRY, SERIES, FeatureFn, Window


@functools.lru_cache(maxsize=32)
def _plan(bar: pd.Timedelta, names: tuple[str, ...] | None = None) -> tuple[tuple[tuple[FeatureFn, int], ...], int]:
    """``((fn, n) per feature in ``names`` order (default FEATURE_NAMES), lookback)`` at bar size ``bar``."""
    feats = [FEATURE_REGISTRY[name] for name in (names or FEATURE_NAMES)]
    return tuple((f.fn, f.bars(bar)) for f in feats), max(f.lookback(bar) for f in feats)


def feature_bars(bar: pd.Timedelta = DEFAULT_BAR, names: tuple[str, ...] | None = None) -> dict[str, int]:
    """``{feature: n}``: each feature's look-back in bars of size ``bar`` (for manifests and docs)."""
    return {name: FEATURE_REGISTRY[name].bars(bar) for name in (names or FEATURE_NAMES)}


def feature_lookback(bar: pd.Timedelta = DEFAULT_BAR, names: tuple[str, ...] | None = None) -> int:
    """Bars a full feature window holds at bar size ``bar`` (the current bar included).

    Row t is valid from t = ``feature_lookback(bar) - 1``: 673 at 15m (7 days + 1 bar), 169 at 1h, 8 at 1d.
    """
    return _plan(bar, names)[1]


def apply_features(window: Window, bar: pd.Timedelta = DEFAULT_BAR,
                   names: tuple[str, ...] | None = None) -> torch.Tensor:
    """The features ``names`` (default :data:`FEATURE_NAMES`) of a window batch, ``[B, F]`` float64."""
    return torch.stack([fn(window, n) for fn, n in _plan(bar, names)[0]], dim=1)


def _frame_arrays(frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    series = torch.from_numpy(np.ascontiguousarray(frame[list(SERIES)].to_numpy(np.float64)))
    time_s = torch.from_numpy(frame.index.as_unit("ns").asi8 // 10**9).to(torch.float64)
    return series, time_s


def feature_matrix(frame: pd.DataFrame, chunk_rows: int = 4096, bar: pd.Timedelta | None = None,
                   names: tuple[str, ...] | None = None) -> torch.Tensor:
    """Features of every bar of a MarketFrame, ``[T, F]`` float64; rows < ``feature_lookback(bar) - 1`` are NaN.

    ``bar``: the frame's bar size (None: its index's step, see :func:`kpremia.core.bars.frame_bar`).
    The frame is unfolded into ``[chunk, L]`` windows (views, no copy), so memory
    stays ~``chunk_rows * L`` floats per temporary no matter how long the frame is.
    """
    bar = bar if bar is not None else frame_bar(frame.index)
    series, time_s = _frame_arrays(frame)
    names = names or FEATURE_NAMES
    n, lookback = series.shape[0], feature_lookback(bar, names)
    out = torch.full((n, len(names)), float("nan"), dtype=torch.float64)
    with _one_thread():
        for start in range(lookback - 1, n, chunk_rows):
            end = min(n, start + chunk_rows)
            win = series[start - lookback + 1:end].unfold(0, lookback, 1)  # [end-start, S, L]
            window = Window(*(win[:, i] for i in range(len(SERIES))), time_s=time_s[start:end])
            out[start:end] = apply_features(window, bar, names)
    return out


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch ops single-threaded: the ops here are many and small, and intra-op
    threads cost more in synchronisation than they save (several times slower on a
    busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def compute_features(frame: pd.DataFrame, bar: pd.Timedelta | None = None,
                     names: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Causal features of a MarketFrame as a DataFrame (columns ``names``, default :data:`FEATURE_NAMES`).

    Rows before ``feature_lookback(bar) - 1`` (the warm-up) are NaN.
    """
    names = names or FEATURE_NAMES
    return pd.DataFrame(feature_matrix(frame, bar=bar, names=names).numpy(), index=frame.index, columns=list(names))


class IncrementalFeatures:
    """Bar-by-bar features for live use: the batch feature functions on a ring buffer.

    Bars must come in time order on the grid of the bar size ``bar``.  A missing bar is
    filled as a no-trade bar (close carried, volume 0, fx carried), exactly as
    :func:`kpremia.data.repair.validate_frame` does offline.
    """

    def __init__(self, bar: pd.Timedelta = DEFAULT_BAR, names: tuple[str, ...] | None = None) -> None:
        self.bar = bar
        self.names = names or FEATURE_NAMES
        self.lookback = feature_lookback(bar, self.names)
        # Each value is stored twice (slots i and i + L) so the last L bars are
        # always one contiguous slice: no copy and no roll per bar.
        self._buf = np.zeros((len(SERIES), 2 * self.lookback), dtype=np.float64)
        self._count = 0
        self._last_time: pd.Timestamp | None = None

    @property
    def ready(self) -> bool:
        """True once a full window of bars has been seen (features are not NaN)."""
        return self._count >= self.lookback

    def _push(self, values: np.ndarray) -> None:
        i = self._count % self.lookback
        self._buf[:, i] = values
        self._buf[:, i + self.lookback] = values
        self._count += 1

    def _window(self, time: pd.Timestamp) -> Window:
        i = (self._count - 1) % self.lookback
        w = torch.from_numpy(self._buf[:, i + 1:i + 1 + self.lookback])[:, None, :]  # [S, 1, L]
        return Window(*w, time_s=torch.tensor([time.value // 10**9], dtype=torch.float64))

    def update(self, bar: Mapping[str, Any]) -> np.ndarray:
        """Add one closed bar and return its features, ``[F]`` float64 (NaN until :attr:`ready`).

        ``bar`` holds ``time`` (the bar's OPEN time; Timestamp/datetime/ISO string,
        naive = UTC), ``close``, ``high``, ``low``, ``volume``, ``fx`` and optionally
        ``premium`` (default ``close / fx - 1``).
        """
        time = utc_timestamp(bar["time"])
        if self._last_time is not None:
            if time <= self._last_time:
                raise ValueError(f"bar at {time} is not after the previous bar at {self._last_time}")
            missing = int((time - self._last_time) / self.bar) - 1
            if missing > 0:  # no-trade bars at the previous close, carried fx
                prev = self._buf[:, (self._count - 1) % self.lookback].copy()
                close = prev[SERIES.index("close")]
                prev[SERIES.index("high")] = prev[SERIES.index("low")] = close
                prev[SERIES.index("volume")] = 0.0
                prev[SERIES.index("premium")] = close / prev[SERIES.index("fx")] - 1.0
                for _ in range(min(missing, self.lookback)):
                    self._push(prev)
        values = {k: float(bar[k]) for k in SERIES if k != "premium"}
        values["premium"] = float(bar["premium"]) if bar.get("premium") is not None \
            else values["close"] / values["fx"] - 1.0
        self._push(np.array([values[k] for k in SERIES]))
        self._last_time = time
        if not self.ready:
            return np.full(len(self.names), np.nan)
        return apply_features(self._window(time), self.bar, self.names)[0].numpy()

    def state_dict(self) -> dict:
        """Everything needed to continue after a restart."""
        return {"buf": self._buf.copy(), "count": self._count,
                "last_time": None if self._last_time is None else self._last_time.isoformat()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._buf = np.array(state["buf"], dtype=np.float64)
        self._count = int(state["count"])
        self._last_time = None if state["last_time"] is None else utc_timestamp(state["last_time"])
