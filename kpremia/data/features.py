"""Causal market features: ONE implementation for batch (training) and bar-by-bar (live).

Why this shape: a feature computed one way offline and another way live is a
silent train/serve skew.  Here every feature is a function of a *trailing window*
of bars, ``fn(window) -> Tensor[B]``, where :class:`Window` holds ``[B, L]``
tensors (oldest bar first, the current bar last).  The batch path unfolds the
frame into such windows (in chunks, so memory stays bounded) and the live path
(:class:`IncrementalFeatures`) keeps a ring buffer of the last L bars and calls
the very same functions on a ``[1, L]`` window.  A window ending at bar t holds
bars ``<= t`` only, so no feature can look ahead.

Warm-up: a bar with fewer than :data:`FEATURE_LOOKBACK` - 1 bars before it has no
full window; its features are NaN (batch) and :meth:`IncrementalFeatures.update`
returns NaN until it has seen :data:`FEATURE_LOOKBACK` bars.

Daily series (:func:`daily_windows`, :class:`DailyHistory`) use UTC days (Upbit's
daily candle starts 09:00 KST = 00:00 UTC).  A day becomes visible at its last
bar (open 23:45 UTC, closing at 00:00): at bar t only days whose last bar is
``<= t`` are in the window.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from kpremia.data.frame import BAR

SERIES = ("close", "high", "low", "volume", "fx", "premium")
_KST_OFFSET_S = 9 * 3600
_NS_DAY = 86_400 * 10**9
_EPS = 1e-12


class Window(NamedTuple):
    """Trailing windows of bars, ``[B, L]`` float64, oldest first, current bar last."""

    close: torch.Tensor
    high: torch.Tensor
    low: torch.Tensor
    volume: torch.Tensor
    fx: torch.Tensor
    premium: torch.Tensor
    time_s: torch.Tensor  # [B] open time of the current bar, epoch seconds (UTC)


FeatureFn = Callable[[Window], torch.Tensor]
_FEATURES: dict[str, tuple[int, FeatureFn]] = {}


def _feature(name: str, lookback: int) -> Callable[[FeatureFn], FeatureFn]:
    """Register a feature that needs the last ``lookback`` bars (current one included)."""

    def deco(fn: FeatureFn) -> FeatureFn:
        _FEATURES[name] = (lookback, fn)
        return fn

    return deco


def _zscore_last(x: torch.Tensor) -> torch.Tensor:
    """z-score of the last column against its row; 0 where the row is constant."""
    mean = x.mean(dim=1)
    std = x.std(dim=1, unbiased=False)
    z = (x[:, -1] - mean) / std.clamp_min(_EPS)
    return torch.where(std > 1e-9 * mean.abs().clamp_min(1.0), z, torch.zeros_like(z))


def _log_return(x: torch.Tensor, k: int) -> torch.Tensor:
    return torch.log(x[:, -1] / x[:, -1 - k])


def _make_ret(k: int) -> FeatureFn:
    return lambda w: _log_return(w.close, k)


for _k in (1, 4, 16, 96):
    _feature(f"ret_{_k}", _k + 1)(_make_ret(_k))


@_feature("mom_672", 673)
def _mom_672(w: Window) -> torch.Tensor:
    """Weekly momentum: log return over 672 bars (7 days)."""
    return _log_return(w.close, 672)


def _make_sma_ratio(n: int) -> FeatureFn:
    return lambda w: torch.log(w.close[:, -1] / w.close[:, -n:].mean(dim=1))


for _n in (16, 96):
    _feature(f"sma_ratio_{_n}", _n)(_make_sma_ratio(_n))


@_feature("rvol_96", 97)
def _rvol_96(w: Window) -> torch.Tensor:
    """Realised volatility: RMS of the last 96 one-bar log returns."""
    r = torch.diff(torch.log(w.close[:, -97:]), dim=1)
    return torch.sqrt((r * r).mean(dim=1))


@_feature("hl_range_16", 16)
def _hl_range_16(w: Window) -> torch.Tensor:
    """Mean log high/low range of the last 16 bars (a range-based volatility)."""
    return torch.log(w.high[:, -16:] / w.low[:, -16:]).mean(dim=1)


@_feature("rsi_14", 15)
def _rsi_14(w: Window) -> torch.Tensor:
    """RSI over 14 bars with simple averages (Cutler's RSI: exact on a finite window), in [-1, 1]."""
    d = torch.diff(w.close[:, -15:], dim=1)
    gain = d.clamp_min(0).sum(dim=1)
    loss = (-d).clamp_min(0).sum(dim=1)
    total = gain + loss
    rsi = torch.where(total > 0, gain / total.clamp_min(_EPS), torch.full_like(total, 0.5))
    return 2.0 * rsi - 1.0


@_feature("premium_pct", 1)
def _premium_pct(w: Window) -> torch.Tensor:
    """Current premium in percent."""
    return w.premium[:, -1] * 100.0


@_feature("premium_z_96", 96)
def _premium_z_96(w: Window) -> torch.Tensor:
    """z-score of the current premium against the last 96 bars (one day)."""
    return _zscore_last(w.premium[:, -96:])


@_feature("premium_z_672", 672)
def _premium_z_672(w: Window) -> torch.Tensor:
    """z-score of the current premium against the last 7 days, sampled hourly (every 4th bar
    ending at the current one: 168 samples, a quarter of the cost of all 672 bars)."""
    return _zscore_last(w.premium[:, -669::4])


def _make_premium_chg(k: int) -> FeatureFn:
    return lambda w: (w.premium[:, -1] - w.premium[:, -1 - k]) * 100.0


for _k in (4, 96):
    _feature(f"premium_chg_{_k}", _k + 1)(_make_premium_chg(_k))


# --- regime features: what a static band rule cannot see (calm vs stress, jumps) ---------------
# The premium alternates between a calm and a stress regime (stress: higher mean, wider swings,
# more and larger jumps; docs/market.md).  A band fit on train uses one pair of levels for both;
# these let a policy tell the regimes apart from the premium's own recent behaviour.


def _premium_rvol(w: Window, n: int) -> torch.Tensor:
    """RMS of the last ``n`` one-bar premium changes, in percentage points."""
    d = torch.diff(w.premium[:, -(n + 1):], dim=1) * 100.0
    return torch.sqrt((d * d).mean(dim=1))


def _make_premium_rvol(n: int) -> FeatureFn:
    return lambda w: _premium_rvol(w, n)


for _n in (16, 96, 672):
    _feature(f"premium_rvol_{_n}", _n + 1)(_make_premium_rvol(_n))


@_feature("premium_vol_ratio", 673)
def _premium_vol_ratio(w: Window) -> torch.Tensor:
    """log of the last day's premium volatility over the last week's (> 0: turbulence is rising)."""
    return torch.log((_premium_rvol(w, 96) + 1e-4) / (_premium_rvol(w, 672) + 1e-4))


@_feature("premium_jump_96", 100)
def _premium_jump_96(w: Window) -> torch.Tensor:
    """A jump detector: the largest one-hour premium move of the last day, in percentage points (signed)."""
    moves = (w.premium[:, -96:] - w.premium[:, -100:-4]) * 100.0  # four-bar changes ending in the last day
    i = moves.abs().argmax(dim=1, keepdim=True)
    return moves.gather(1, i).squeeze(1)


@_feature("premium_mean_672", 672)
def _premium_mean_672(w: Window) -> torch.Tensor:
    """The premium's level over the last week, in percent (stress runs hot)."""
    return w.premium[:, -672:].mean(dim=1) * 100.0


@_feature("fx_ret_96", 97)
def _fx_ret_96(w: Window) -> torch.Tensor:
    """USD/KRW log return over 96 bars (one day)."""
    return _log_return(w.fx, 96)


@_feature("volume_z_96", 96)
def _volume_z_96(w: Window) -> torch.Tensor:
    """z-score of log(1 + volume) over 96 bars (0 when volume was constant)."""
    return _zscore_last(torch.log1p(w.volume[:, -96:]))


def _hour_kst(w: Window) -> torch.Tensor:
    return torch.remainder(w.time_s + _KST_OFFSET_S, 86400.0) / 3600.0


@_feature("hour_sin", 1)
def _hour_sin(w: Window) -> torch.Tensor:
    return torch.sin(2 * math.pi * _hour_kst(w) / 24.0)


@_feature("hour_cos", 1)
def _hour_cos(w: Window) -> torch.Tensor:
    return torch.cos(2 * math.pi * _hour_kst(w) / 24.0)


@_feature("weekend_kst", 1)
def _weekend_kst(w: Window) -> torch.Tensor:
    """1 on Saturday and Sunday (KST), when the onshore USD/KRW market is shut and premium gaps build."""
    days = torch.floor((w.time_s + _KST_OFFSET_S) / 86400.0)
    weekday = torch.remainder(days + 3.0, 7.0)  # 1970-01-01 was a Thursday: Monday = 0
    return (weekday >= 5.0).to(torch.float64)


FEATURE_NAMES: tuple[str, ...] = tuple(_FEATURES)
FEATURE_LOOKBACK: int = max(lb for lb, _ in _FEATURES.values())
"""Bars a full feature window holds (the current bar included); row t is valid from t = FEATURE_LOOKBACK - 1."""


def apply_features(window: Window) -> torch.Tensor:
    """All features of a window batch, ``[B, F]`` float64 in :data:`FEATURE_NAMES` order."""
    return torch.stack([fn(window) for _, fn in _FEATURES.values()], dim=1)


def _frame_arrays(frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    series = torch.from_numpy(np.ascontiguousarray(frame[list(SERIES)].to_numpy(np.float64)))
    time_s = torch.from_numpy(frame.index.as_unit("ns").asi8 // 10**9).to(torch.float64)
    return series, time_s


def feature_matrix(frame: pd.DataFrame, chunk_rows: int = 4096) -> torch.Tensor:
    """Features of every bar of a MarketFrame, ``[T, F]`` float64; rows < FEATURE_LOOKBACK - 1 are NaN.

    The frame is unfolded into ``[chunk, L]`` windows (views, no copy), so memory
    stays ~``chunk_rows * L`` floats per temporary no matter how long the frame is.
    """
    series, time_s = _frame_arrays(frame)
    n, lookback = series.shape[0], FEATURE_LOOKBACK
    out = torch.full((n, len(FEATURE_NAMES)), float("nan"), dtype=torch.float64)
    with _one_thread():
        for start in range(lookback - 1, n, chunk_rows):
            end = min(n, start + chunk_rows)
            win = series[start - lookback + 1:end].unfold(0, lookback, 1)  # [end-start, S, L]
            window = Window(*(win[:, i] for i in range(len(SERIES))), time_s=time_s[start:end])
            out[start:end] = apply_features(window)
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


def compute_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Causal features of a MarketFrame as a DataFrame (columns :data:`FEATURE_NAMES`).

    Rows before ``FEATURE_LOOKBACK - 1`` (the warm-up) are NaN.
    """
    return pd.DataFrame(feature_matrix(frame).numpy(), index=frame.index, columns=list(FEATURE_NAMES))


def utc_timestamp(value: Any) -> pd.Timestamp:
    """A bar time as a UTC Timestamp (naive input is taken as UTC)."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


class IncrementalFeatures:
    """Bar-by-bar features for live use: the batch feature functions on a ring buffer.

    Bars must come in time order on the 15m grid.  A missing bar is filled as a
    no-trade bar (close carried, volume 0, fx carried), exactly as
    :func:`kpremia.data.frame.validate_frame` does offline.
    """

    def __init__(self) -> None:
        self.lookback = FEATURE_LOOKBACK
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
            missing = int((time - self._last_time) / BAR) - 1
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
            return np.full(len(FEATURE_NAMES), np.nan)
        return apply_features(self._window(time))[0].numpy()

    def state_dict(self) -> dict:
        """Everything needed to continue after a restart."""
        return {"buf": self._buf.copy(), "count": self._count,
                "last_time": None if self._last_time is None else self._last_time.isoformat()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._buf = np.array(state["buf"], dtype=np.float64)
        self._count = int(state["count"])
        self._last_time = None if state["last_time"] is None else utc_timestamp(state["last_time"])


# --------------------------------------------------------------------------- daily series

def day_end_mask(index: pd.DatetimeIndex) -> np.ndarray:
    """True at the last bar of each UTC day (the bar that closes at 00:00 UTC)."""
    close_time = index + BAR
    return np.asarray((close_time.hour == 0) & (close_time.minute == 0))


def daily_windows(frame: pd.DataFrame, window_1d: int, window_premium: int) -> tuple[np.ndarray, np.ndarray]:
    """Last completed-day closes and premiums at every bar.

    Returns:
        ``(closes [T, window_1d], premiums [T, window_premium])`` float64, oldest day
        first; a day is in row t once its last bar (23:45 UTC) is ``<= t``; NaN
        where fewer days have completed.  A day's close/premium is that of its last
        bar (the value at 09:00 KST).
    """
    is_end = day_end_mask(frame.index)
    day_close = frame["close"].to_numpy(np.float64)[is_end]
    day_prem = frame["premium"].to_numpy(np.float64)[is_end]
    completed = np.cumsum(is_end)  # days completed at or before each bar

    def gather(values: np.ndarray, width: int) -> np.ndarray:
        idx = completed[:, None] - width + np.arange(width)[None, :]
        padded = np.concatenate([[np.nan], values])
        return padded[np.where(idx >= 0, idx + 1, 0)]

    return gather(day_close, window_1d), gather(day_prem, window_premium)


class DailyHistory:
    """Incremental counterpart of :func:`daily_windows` for live use."""

    def __init__(self, window_1d: int, window_premium: int) -> None:
        self.window_1d, self.window_premium = window_1d, window_premium
        size = max(window_1d, window_premium)
        self._closes: deque[float] = deque(maxlen=size)
        self._premiums: deque[float] = deque(maxlen=size)
        self._last: tuple[pd.Timestamp, float, float] | None = None

    def update(self, time: Any, close: float, premium: float) -> None:
        """Add one bar (OPEN time, close, premium); a day is recorded at its last bar.

        Days whose last bar was skipped (a gap) are recorded with the carried
        close/premium of the bar before the gap, as a filled no-trade bar would be.
        """
        time = utc_timestamp(time)
        if self._last is not None and time - self._last[0] > BAR:
            last_time, last_close, last_prem = self._last
            day_ends = pd.date_range(last_time + BAR, time - BAR, freq="15min")
            for _ in day_ends[day_end_mask(day_ends)][-self._closes.maxlen:]:
                self._closes.append(last_close)
                self._premiums.append(last_prem)
        if (time.value + BAR.value) % _NS_DAY == 0:  # the bar closing at 00:00 UTC
            self._closes.append(float(close))
            self._premiums.append(float(premium))
        self._last = (time, float(close), float(premium))

    @staticmethod
    def _tail(values: deque[float], width: int) -> np.ndarray:
        out = np.full(width, np.nan)
        tail = list(values)[-width:]
        if tail:
            out[width - len(tail):] = tail
        return out

    def closes(self) -> np.ndarray:
        """Last ``window_1d`` completed-day closes, oldest first, NaN-padded in front."""
        return self._tail(self._closes, self.window_1d)

    def premiums(self) -> np.ndarray:
        """Last ``window_premium`` completed-day premiums, oldest first, NaN-padded in front."""
        return self._tail(self._premiums, self.window_premium)

    def state_dict(self) -> dict:
        last = None if self._last is None else (self._last[0].isoformat(), self._last[1], self._last[2])
        return {"closes": list(self._closes), "premiums": list(self._premiums), "last": last}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._closes.clear()
        self._closes.extend(state["closes"])
        self._premiums.clear()
        self._premiums.extend(state["premiums"])
        last = state["last"]
        self._last = None if last is None else (utc_timestamp(last[0]), float(last[1]), float(last[2]))
