"""Feature formulas: every market feature as one function of a trailing window of bars.

Every feature is a function of a *trailing window* of bars, ``fn(window, n) -> Tensor[B]``,
where :class:`Window` holds ``[B, L]`` tensors (oldest bar first, the current bar last).  A
window ending at bar t holds bars ``<= t`` only, so no feature can look ahead.  How windows are
cut from a frame (training) or kept bar by bar (live) is :mod:`kpremia.data.feature_table`;
both call these same functions, so training and serving cannot compute a feature two ways.

Look-backs are time, not bars: a feature is registered with a span (``"1d"``) and
gets ``n`` = the span in bars of the run's bar size (:func:`kpremia.core.bars.bars_in`,
at least ``min_bars``).  ``ret_96`` is the one-day return: 96 bars at 15m, 24 at 1h,
1 at 1d.  Names keep the 15m bar counts they were born with, so a model's feature
list reads the same at every bar size, and at 15m every feature is the number it
always was.  A new feature is one decorated function::

    @feature("premium_range_6h", span="6h", min_bars=2)
    def _premium_range(w: Window, n: int) -> torch.Tensor: ...
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd
import torch

from kpremia.core.bars import bars_in, parse_duration
from kpremia.core.errors import UserError

SERIES = ("close", "high", "low", "volume", "fx", "premium")
_KST_OFFSET_S = 9 * 3600
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


FEATURE_REGISTRY: dict[str, Feature] = {}


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
        if name in FEATURE_REGISTRY:
            raise ValueError(f"feature {name!r} is registered twice")
        FEATURE_REGISTRY[name] = Feature(name, span_td, fn, extra, int(min_bars), bool(optional))
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


FEATURE_NAMES: tuple[str, ...] = tuple(name for name, f in FEATURE_REGISTRY.items() if not f.optional)
"""The default observation's features."""
OPTIONAL_FEATURE_NAMES: tuple[str, ...] = tuple(name for name, f in FEATURE_REGISTRY.items() if f.optional)
"""Features a run can add by name (``env.extra_features``), off by default."""


def feature_names(extra: tuple[str, ...] | list[str] = ()) -> tuple[str, ...]:
    """The default features plus the optional ones named in ``extra`` (in the given order), checked."""
    unknown = [name for name in extra if name not in OPTIONAL_FEATURE_NAMES]
    if unknown:
        raise UserError(f"unknown extra feature(s) {', '.join(map(str, unknown))} in env.extra_features; "
                        f"optional features: {', '.join(OPTIONAL_FEATURE_NAMES)}")
    return FEATURE_NAMES + tuple(dict.fromkeys(extra))
