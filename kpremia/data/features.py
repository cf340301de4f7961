"""Causal market features: ONE implementation for batch (training) and bar-by-bar (live).

Why this shape: a feature computed one way offline and another way live is a
silent train/serve skew.  Here every feature is a function of a *trailing window*
of bars, ``fn(window, n) -> Tensor[B]``, where :class:`Window` holds ``[B, L]``
tensors (oldest bar first, the current bar last).  The batch path unfolds the
frame into such windows (in chunks, so memory stays bounded) and the live path
(:class:`IncrementalFeatures`) keeps a ring buffer of the last L bars and calls
the very same functions on a ``[1, L]`` window.  A window ending at bar t holds
bars ``<= t`` only, so no feature can look ahead.

Look-backs are time, not bars: a feature is registered with a span (``"1d"``) and
gets ``n`` = the span in bars of the run's bar size (:func:`kpremia.core.bars.bars_in`,
at least ``min_bars``).  ``ret_96`` is the one-day return: 96 bars at 15m, 24 at 1h,
1 at 1d.  Names keep the 15m bar counts they were born with, so a model's feature
list reads the same at every bar size, and at 15m every feature is the number it
always was.  A new feature is one decorated function::

    @feature("premium_range_6h", span="6h", min_bars=2)
    def _premium_range(w: Window, n: int) -> torch.Tensor: ...

Warm-up: a bar with fewer than :func:`feature_lookback` - 1 bars before it has no
full window; its features are NaN (batch) and :meth:`IncrementalFeatures.update`
returns NaN until it has seen that many bars.

Daily series (:func:`daily_windows`, :class:`DailyHistory`) use UTC days (Upbit's
daily candle starts 09:00 KST = 00:00 UTC).  Day D's value is that of the last bar
that closed at or before the end of D (00:00 UTC); it becomes visible at the bar
whose close reaches that midnight, so at bar t only days that ended by t's close are
in the window -- at 15m the day's last bar (open 23:45), at 1d the day's own bar.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from kpremia.core.bars import DEFAULT_BAR, bars_in, frame_bar, parse_duration
from kpremia.core.errors import UserError

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


FeatureFn = Callable[[Window, int], torch.Tensor]


@dataclass(frozen=True)
class Feature:
    """A registered feature: its look-back as time and the function of a window."""

    name: str
    span: pd.Timedelta  # the look-back as time; n = span in bars
    fn: FeatureFn  # fn(window, n) -> [B]
    extra_bars: int | pd.Timedelta = 0  # read beyond n: bars (a return over n bars reads n + 1) or a duration
    min_bars: int = 1  # n is at least this (a z-score needs two values)
    optional: bool = False  # off unless a run names it (env.extra_features)

    def bars(self, bar: pd.Timedelta) -> int:
        """``n``: the span in bars of size ``bar``."""
        return bars_in(self.span, bar, self.min_bars)

    def lookback(self, bar: pd.Timedelta) -> int:
        """Bars a full window of this feature holds (the current bar included)."""
        extra = bars_in(self.extra_bars, bar, 1) if isinstance(self.extra_bars, pd.Timedelta) else self.extra_bars
        return self.bars(bar) + extra


_FEATURES: dict[str, Feature] = {}


def feature(name: str, span: str | pd.Timedelta, *, extra_bars: int | str = 0,
            min_bars: int = 1, optional: bool = False) -> Callable[[FeatureFn], FeatureFn]:
    """Register ``fn(window, n)`` as feature ``name`` looking back ``span`` (``"1d"``; ``"0s"`` = the current bar).

    ``extra_bars``: what the feature reads before its span, in bars (``1`` for a change over n bars)
    or as a duration (``"1h"``: an hour of bars, at least one).  ``optional``: not in the
    default observation; a run adds it by name (``env.extra_features``).
    """
    span_td = pd.Timedelta(0) if str(span) in ("0", "0s") else parse_duration(span, f"feature {name} span")
    extra = parse_duration(extra_bars, f"feature {name} extra_bars") if isinstance(extra_bars, str) \
        else int(extra_bars)

    def deco(fn: FeatureFn) -> FeatureFn:
        if name in _FEATURES:
            raise ValueError(f"feature {name!r} is registered twice")
        _FEATURES[name] = Feature(name, span_td, fn, extra, int(min_bars), bool(optional))
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


def _ret(w: Window, n: int) -> torch.Tensor:
    """Log return of the close over n bars."""
    return _log_return(w.close, n)


for _k, _span in ((1, "15m"), (4, "1h"), (16, "4h"), (96, "1d")):
    feature(f"ret_{_k}", _span, extra_bars=1)(_ret)


@feature("mom_672", "7d", extra_bars=1)
def _mom_672(w: Window, n: int) -> torch.Tensor:
    """Weekly momentum: log return over 7 days."""
    return _log_return(w.close, n)


def _sma_ratio(w: Window, n: int) -> torch.Tensor:
    """Log of the close over its mean of the last n bars."""
    return torch.log(w.close[:, -1] / w.close[:, -n:].mean(dim=1))


for _n, _span in ((16, "4h"), (96, "1d")):
    feature(f"sma_ratio_{_n}", _span, min_bars=2)(_sma_ratio)


@feature("rvol_96", "1d", extra_bars=1, min_bars=2)
def _rvol_96(w: Window, n: int) -> torch.Tensor:
    """Realised volatility: RMS of the one-bar log returns of the last day."""
    r = torch.diff(torch.log(w.close[:, -(n + 1):]), dim=1)
    return torch.sqrt((r * r).mean(dim=1))


@feature("hl_range_16", "4h")
def _hl_range_16(w: Window, n: int) -> torch.Tensor:
    """Mean log high/low range of the bars of the last 4 hours (a range-based volatility)."""
    return torch.log(w.high[:, -n:] / w.low[:, -n:]).mean(dim=1)


@feature("rsi_14", "210min", extra_bars=1, min_bars=2)
def _rsi_14(w: Window, n: int) -> torch.Tensor:
    """RSI over 14 bars at 15m (3.5 h) with simple averages (Cutler's RSI: exact on a finite window), in [-1, 1]."""
    d = torch.diff(w.close[:, -(n + 1):], dim=1)
    gain = d.clamp_min(0).sum(dim=1)
    loss = (-d).clamp_min(0).sum(dim=1)
    total = gain + loss
    rsi = torch.where(total > 0, gain / total.clamp_min(_EPS), torch.full_like(total, 0.5))
    return 2.0 * rsi - 1.0


@feature("premium_pct", "0s")
def _premium_pct(w: Window, n: int) -> torch.Tensor:
    """Current premium in percent."""
    return w.premium[:, -1] * 100.0


@feature("premium_z_96", "1d", min_bars=2)
def _premium_z_96(w: Window, n: int) -> torch.Tensor:
    """z-score of the current premium against the last day."""
    return _zscore_last(w.premium[:, -n:])


@feature("premium_z_672", "7d", min_bars=2)
def _premium_z_672(w: Window, n: int) -> torch.Tensor:
    """z-score of the current premium against the last 7 days, sampled hourly (at 15m: every 4th bar
    ending at the current one, 168 samples, a quarter of the cost of all 672 bars; at 1h and coarser
    every bar)."""
    step = max(1, n // 168)
    count = n // step
    return _zscore_last(w.premium[:, -(step * (count - 1) + 1)::step])


def _premium_chg(w: Window, n: int) -> torch.Tensor:
    """Change of the premium over n bars, in percentage points."""
    return (w.premium[:, -1] - w.premium[:, -1 - n]) * 100.0


for _k, _span in ((4, "1h"), (96, "1d")):
    feature(f"premium_chg_{_k}", _span, extra_bars=1)(_premium_chg)


# --- regime features: what a static band rule cannot see (calm vs stress, jumps) ---------------
# The premium alternates between a calm and a stress regime (stress: higher mean, wider swings,
# more and larger jumps; docs/market.md).  A band fit on train uses one pair of levels for both;
# these let a policy tell the regimes apart from the premium's own recent behaviour.


def _premium_rvol(w: Window, n: int) -> torch.Tensor:
    """RMS of the last ``n`` one-bar premium changes, in percentage points."""
    d = torch.diff(w.premium[:, -(n + 1):], dim=1) * 100.0
    return torch.sqrt((d * d).mean(dim=1))


for _n, _span in ((16, "4h"), (96, "1d"), (672, "7d")):
    feature(f"premium_rvol_{_n}", _span, extra_bars=1, min_bars=2)(_premium_rvol)


@feature("premium_vol_ratio", "7d", extra_bars=1, min_bars=2)
def _premium_vol_ratio(w: Window, n: int) -> torch.Tensor:
    """log of the last day's premium volatility over the last week's (> 0: turbulence is rising).

    ``n`` is the week in bars; the day is a seventh of it (96 of 672 at 15m), at least 2 bars
    like ``premium_rvol_96``.
    """
    day = max(2, (n + 3) // 7)
    return torch.log((_premium_rvol(w, day) + 1e-4) / (_premium_rvol(w, n) + 1e-4))


@feature("premium_jump_96", "1d", extra_bars="1h")
def _premium_jump_96(w: Window, n: int) -> torch.Tensor:
    """A jump detector: the largest one-hour premium move of the last day, in percentage points (signed).

    ``n`` is the day in bars; an hour is a 24th of it (4 bars at 15m), one bar at least (at 1d bars:
    the largest one-day move of the last day).
    """
    hour = max(1, n // 24)
    moves = (w.premium[:, -n:] - w.premium[:, -(n + hour):-hour]) * 100.0  # one-hour changes ending in the day
    i = moves.abs().argmax(dim=1, keepdim=True)
    return moves.gather(1, i).squeeze(1)


@feature("premium_mean_672", "7d")
def _premium_mean_672(w: Window, n: int) -> torch.Tensor:
    """The premium's level over the last week, in percent (stress runs hot)."""
    return w.premium[:, -n:].mean(dim=1) * 100.0


@feature("fx_ret_96", "1d", extra_bars=1)
def _fx_ret_96(w: Window, n: int) -> torch.Tensor:
    """USD/KRW log return over one day."""
    return _log_return(w.fx, n)


@feature("volume_z_96", "1d", min_bars=2)
def _volume_z_96(w: Window, n: int) -> torch.Tensor:
    """z-score of log(1 + volume) over one day (0 when volume was constant)."""
    return _zscore_last(torch.log1p(w.volume[:, -n:]))


def _hour_kst(w: Window) -> torch.Tensor:
    return torch.remainder(w.time_s + _KST_OFFSET_S, 86400.0) / 3600.0


@feature("hour_sin", "0s")
def _hour_sin(w: Window, n: int) -> torch.Tensor:
    return torch.sin(2 * math.pi * _hour_kst(w) / 24.0)


@feature("hour_cos", "0s")
def _hour_cos(w: Window, n: int) -> torch.Tensor:
    return torch.cos(2 * math.pi * _hour_kst(w) / 24.0)


@feature("weekend_kst", "0s")
def _weekend_kst(w: Window, n: int) -> torch.Tensor:
    """1 on Saturday and Sunday (KST), when the onshore USD/KRW market is shut and premium gaps build."""
    days = torch.floor((w.time_s + _KST_OFFSET_S) / 86400.0)
    weekday = torch.remainder(days + 3.0, 7.0)  # 1970-01-01 was a Thursday: Monday = 0
    return (weekday >= 5.0).to(torch.float64)


# --- edge features (optional): causal proxies of what the model-based trader filters -------------
# The premium is a slow level + a fast part reverting in hours + jumps decaying over days + a
# time-of-day term (docs/market.md); the model-based trader (docs/model_based.md) separates them
# with a filter.  These are simple causal proxies of the same parts.  They are off by default (the
# default observation changes only on evidence); a run adds them with env.extra_features=[...].


def _ema_gap(w: Window, n: int) -> torch.Tensor:
    """Premium minus its EMA (span ``n / 4`` bars, truncated to the last ``n`` bars), in percentage points."""
    span = max(1.0, n / 4.0)
    alpha = 2.0 / (span + 1.0)
    x = w.premium[:, -n:]
    weights = (1.0 - alpha) ** torch.arange(x.shape[1] - 1, -1, -1, dtype=torch.float64)
    ema = (x * weights).sum(dim=1) / weights.sum()
    return (x[:, -1] - ema) * 100.0


for _hours in (2, 4, 8):  # the EMA's span; the window holds four spans (weights beyond are < 2 %)
    feature(f"premium_ema_gap_{_hours}h", f"{4 * _hours}h", optional=True)(_ema_gap)


def _hour_angle(w: Window) -> torch.Tensor:
    return 2 * math.pi * _hour_kst(w) / 24.0


@feature("premium_ema_gap_4h_x_hour_sin", "16h", optional=True)
def _ema_gap_x_sin(w: Window, n: int) -> torch.Tensor:
    """The 4 h EMA gap times sin(KST hour): a fast deviation reads differently by time of day."""
    return _ema_gap(w, n) * torch.sin(_hour_angle(w))


@feature("premium_ema_gap_4h_x_hour_cos", "16h", optional=True)
def _ema_gap_x_cos(w: Window, n: int) -> torch.Tensor:
    """The 4 h EMA gap times cos(KST hour)."""
    return _ema_gap(w, n) * torch.cos(_hour_angle(w))


JUMP_THRESHOLD_PP = 0.5
"""A one-hour premium move of at least this many percentage points counts as a jump (~4 sd of the
fast part's hourly move in the synthetic market; a jump averages 1.5 points)."""


def _last_jump(w: Window, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Over the last ``n`` bars: bars since the last one-hour move >= the threshold, its size (pp), its end.

    ``n`` is 7 days in bars; an hour is ``n / 168`` bars (one at least).  No jump: age ``n``, size 0.
    """
    hour = max(1, n // 168)
    p = w.premium[:, -(n + hour):]
    moves = (p[:, hour:] - p[:, :-hour]) * 100.0  # [B, n], the move ending at each of the last n bars
    big = moves.abs() >= JUMP_THRESHOLD_PP
    idx = torch.arange(n, dtype=torch.long).expand_as(moves)
    last = torch.where(big, idx, torch.full_like(idx, -1)).max(dim=1).values  # -1: none
    found = last >= 0
    at = last.clamp_min(0)[:, None]
    size = torch.where(found, moves.gather(1, at).squeeze(1), torch.zeros_like(moves[:, 0]))
    age = torch.where(found, (n - 1 - last).to(torch.float64), torch.full_like(size, float(n)))
    end_level = p[:, hour:].gather(1, at).squeeze(1)
    return age, size, end_level


@feature("jump_age_days", "7d", extra_bars="1h", optional=True)
def _jump_age_days(w: Window, n: int) -> torch.Tensor:
    """Days since the last jump (a one-hour move >= 0.5 points) in the last week; 7 when none."""
    age, _, _ = _last_jump(w, n)
    return age * (7.0 / n)


@feature("jump_size_pct", "7d", extra_bars="1h", optional=True)
def _jump_size_pct(w: Window, n: int) -> torch.Tensor:
    """Size of the last jump of the last week, in percentage points (signed; 0 when none)."""
    return _last_jump(w, n)[1]


@feature("jump_decayed_frac", "7d", extra_bars="1h", optional=True)
def _jump_decayed_frac(w: Window, n: int) -> torch.Tensor:
    """Share of the last jump already given back: (level at its end - premium now) / size, in [-1, 2]; 0 when none."""
    _, size, end_level = _last_jump(w, n)
    given_back = (end_level - w.premium[:, -1]) * 100.0 / torch.where(size != 0, size, torch.ones_like(size))
    return torch.where(size != 0, given_back.clamp(-1.0, 2.0), torch.zeros_like(size))


FEATURE_NAMES: tuple[str, ...] = tuple(name for name, f in _FEATURES.items() if not f.optional)
"""The default observation's features."""
OPTIONAL_FEATURE_NAMES: tuple[str, ...] = tuple(name for name, f in _FEATURES.items() if f.optional)
"""Features a run can add by name (``env.extra_features``), off by default."""


def feature_names(extra: tuple[str, ...] | list[str] = ()) -> tuple[str, ...]:
    """The default features plus the optional ones named in ``extra`` (in the given order), checked."""
    unknown = [name for name in extra if name not in OPTIONAL_FEATURE_NAMES]
    if unknown:
        raise UserError(f"unknown extra feature(s) {', '.join(map(str, unknown))} in env.extra_features; "
                        f"optional features: {', '.join(OPTIONAL_FEATURE_NAMES)}")
    return FEATURE_NAMES + tuple(dict.fromkeys(extra))


@functools.lru_cache(maxsize=32)
def _plan(bar: pd.Timedelta, names: tuple[str, ...] | None = None) -> tuple[tuple[tuple[FeatureFn, int], ...], int]:
    """``((fn, n) per feature in ``names`` order (default FEATURE_NAMES), lookback)`` at bar size ``bar``."""
    feats = [_FEATURES[name] for name in (names or FEATURE_NAMES)]
    return tuple((f.fn, f.bars(bar)) for f in feats), max(f.lookback(bar) for f in feats)


def feature_bars(bar: pd.Timedelta = DEFAULT_BAR, names: tuple[str, ...] | None = None) -> dict[str, int]:
    """``{feature: n}``: each feature's look-back in bars of size ``bar`` (for manifests and docs)."""
    return {name: _FEATURES[name].bars(bar) for name in (names or FEATURE_NAMES)}


def feature_lookback(bar: pd.Timedelta = DEFAULT_BAR, names: tuple[str, ...] | None = None) -> int:
    """Bars a full feature window holds at bar size ``bar`` (the current bar included).

    Row t is valid from t = ``feature_lookback(bar) - 1``: 673 at 15m (7 days + 1 bar), 169 at 1h, 8 at 1d.
    """
    return _plan(bar, names)[1]


def apply_features(window: Window, bar: pd.Timedelta = DEFAULT_BAR, names: tuple[str, ...] | None = None) -> torch.Tensor:
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


def utc_timestamp(value: Any) -> pd.Timestamp:
    """A bar time as a UTC Timestamp (naive input is taken as UTC)."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


class IncrementalFeatures:
    """Bar-by-bar features for live use: the batch feature functions on a ring buffer.

    Bars must come in time order on the grid of the bar size ``bar``.  A missing bar is
    filled as a no-trade bar (close carried, volume 0, fx carried), exactly as
    :func:`kpremia.data.frame.validate_frame` does offline.
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


# --------------------------------------------------------------------------- daily series

def daily_windows(frame: pd.DataFrame, window_1d: int, window_premium: int,
                  bar: pd.Timedelta | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Last completed-day closes and premiums at every bar.

    Returns:
        ``(closes [T, window_1d], premiums [T, window_premium])`` float64, oldest day
        first.  Day D ends at the midnight M = 00:00 UTC after it; its value is that of
        the last bar closing at or before M, and it is in row t once bar t's close has
        reached M.  Only midnights between the first and the last bar's close count
        (a day that ended before the data began is not known).  NaN where fewer days
        have completed.
    """
    bar = bar if bar is not None else frame_bar(frame.index)
    closes_ns = (frame.index + bar).as_unit("ns").asi8
    close = frame["close"].to_numpy(np.float64)
    premium = frame["premium"].to_numpy(np.float64)
    if len(closes_ns):
        first = -(-int(closes_ns[0]) // _NS_DAY) * _NS_DAY  # first midnight at or after the first close
        # integer arithmetic: np.arange over epoch nanoseconds would count in float64 and lose a day
        count = max(0, (int(closes_ns[-1]) - first) // _NS_DAY + 1)
        midnights = first + _NS_DAY * np.arange(count, dtype=np.int64)
    else:
        midnights = np.array([], dtype=np.int64)
    last_bar = np.searchsorted(closes_ns, midnights, side="right") - 1  # the day's value: its last closed bar
    day_close, day_prem = close[last_bar], premium[last_bar]
    completed = np.searchsorted(midnights, closes_ns, side="right")  # days ended by each bar's close

    def gather(values: np.ndarray, width: int) -> np.ndarray:
        idx = completed[:, None] - width + np.arange(width)[None, :]
        padded = np.concatenate([[np.nan], values])
        return padded[np.where(idx >= 0, idx + 1, 0)]

    return gather(day_close, window_1d), gather(day_prem, window_premium)


class DailyHistory:
    """Incremental counterpart of :func:`daily_windows` for live use."""

    def __init__(self, window_1d: int, window_premium: int, bar: pd.Timedelta = DEFAULT_BAR) -> None:
        self.window_1d, self.window_premium = window_1d, window_premium
        self.bar = bar
        size = max(window_1d, window_premium)
        self._closes: deque[float] = deque(maxlen=size)
        self._premiums: deque[float] = deque(maxlen=size)
        self._last: tuple[pd.Timestamp, float, float] | None = None

    def update(self, time: Any, close: float, premium: float) -> None:
        """Add one bar (OPEN time, close, premium); every midnight its close reaches ends a day.

        A midnight passed between the previous bar's close and this one's (a gap, or
        bars that do not close at midnight, e.g. daily bars opening 00:00 KST) records
        the previous bar's close/premium, as :func:`daily_windows` does offline.
        """
        time = utc_timestamp(time)
        close_ns = (time + self.bar).value
        if self._last is None:
            lo = close_ns  # only a midnight exactly at this close
        else:
            lo = (self._last[0] + self.bar).value + 1
        first = -(-lo // _NS_DAY) * _NS_DAY
        n_days = 0 if first > close_ns else (close_ns - first) // _NS_DAY + 1
        ends_here = close_ns % _NS_DAY == 0 and n_days > 0
        carried = n_days - int(ends_here)
        if self._last is not None and carried > 0:
            _, last_close, last_prem = self._last
            for _ in range(min(carried, self._closes.maxlen)):
                self._closes.append(last_close)
                self._premiums.append(last_prem)
        if ends_here:
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
