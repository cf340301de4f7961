"""The premium's state-space model, per bar: what the model-based trader believes about the market.

Why one value: the filter (:mod:`kpremia.eval.regime_filter`) and the planner
(:mod:`kpremia.eval.model_dp`) must agree on the process they filter and plan for.
The process is the synthetic generator's (:mod:`kpremia.data.synthetic`), written
per bar of the market being traded:

* a **slow** AR(1) level whose mean and shock size depend on a two-state Markov
  regime (calm / stress);
* a **fast** AR(1) component (an 8-bar half-life at the defaults);
* **jumps**: impulses (rate and size by regime, mostly upward) through a
  rise-then-decay kernel ``scale * (a_slow^k - a_fast^k)``;
* a KST **time-of-day** cosine and white measurement noise (the generator's
  microstructure noise plus the 0.5 KRW tick's rounding).

Student-t shocks are treated as Gaussian with the same variance.  On the synthetic
market the values come from the generator's own parameters
(:meth:`PremiumModel.from_synthetic`); on a user's file :meth:`PremiumModel.fit`
estimates them from the train split by moments (see its docstring for what is
estimated and what is kept at the generator's defaults).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kpremia.core.bars import DEFAULT_BAR_MINUTES, NS_DAY, NS_HOUR
from kpremia.data.synthetic import BARS_PER_DAY, GRID, SyntheticParams

_BASE_MINUTES = GRID.total_seconds() / 60.0  # the generator's grid, in minutes


@dataclass(frozen=True)
class PremiumModel:
    """The premium process per bar of ``bar_minutes`` minutes (all rates and sds per bar).

    Attributes:
        bar_minutes: bar size the per-bar values are for.
        phi_slow: AR(1) coefficient of the slow level per bar.
        mean: slow level's mean in (calm, stress).
        slow_sd: stationary sd of the slow level in (calm, stress).
        phi_fast: AR(1) coefficient of the fast component per bar.
        fast_sd: stationary sd of the fast component.
        jump_a_slow, jump_a_fast, jump_scale: the jump kernel ``scale * (a_slow^k - a_fast^k)``.
        jump_rate: probability of a jump arriving in a bar in (calm, stress).
        jump_mean: mean absolute jump size (exponential) in (calm, stress).
        jump_up_prob: probability that a jump is upward.
        switch: probability per bar of leaving (calm, stress).
        season_amp, season_peak_hour_kst: the time-of-day cosine.
        noise_sd: sd of the white measurement noise on the observed premium.
    """

    bar_minutes: float
    phi_slow: float
    mean: tuple[float, float]
    slow_sd: tuple[float, float]
    phi_fast: float
    fast_sd: float
    jump_a_slow: float
    jump_a_fast: float
    jump_scale: float
    jump_rate: tuple[float, float]
    jump_mean: tuple[float, float]
    jump_up_prob: float
    switch: tuple[float, float]
    season_amp: float
    season_peak_hour_kst: float
    noise_sd: float

    @classmethod
    def from_synthetic(cls, params: SyntheticParams | Mapping[str, Any],
                       bar_minutes: float = DEFAULT_BAR_MINUTES) -> PremiumModel:
        """The generator's process at ``bar_minutes`` (a multiple of 15: ``k`` generator steps per bar)."""
        if isinstance(params, Mapping):
            known = {f.name for f in dataclasses.fields(SyntheticParams)}
            params = SyntheticParams(**{k: v for k, v in params.items() if k in known})
        p = params
        k = float(bar_minutes) / _BASE_MINUTES
        phi1 = p.premium_daily_ar ** (1.0 / BARS_PER_DAY)
        a_s1 = 0.5 ** (1.0 / p.jump_half_life_bars)
        a_f1 = math.exp(-1.0 / p.jump_rise_bars)
        lags = np.arange(int(20 * p.jump_rise_bars + 10 * p.jump_half_life_bars))
        scale = 1.0 / float(np.max(a_s1**lags - a_f1**lags))
        rate1 = p.jump_rate_per_day / BARS_PER_DAY
        tick_var = (p.tick_size_krw / p.fx_mean) ** 2 / 12.0 if p.tick_size_krw > 0 else 0.0

        def per_bar(prob: float) -> float:
            return 1.0 - (1.0 - min(prob, 1.0)) ** k

        return cls(
            bar_minutes=float(bar_minutes), phi_slow=phi1**k,
            mean=(p.premium_mean, p.premium_mean + p.stress_mean_shift),
            slow_sd=(p.premium_sd, p.premium_sd * p.stress_vol_mult),
            phi_fast=0.5 ** (k / p.fast_half_life_bars), fast_sd=p.fast_sd,
            jump_a_slow=a_s1**k, jump_a_fast=a_f1**k, jump_scale=scale,
            jump_rate=(per_bar(rate1), per_bar(rate1 * p.stress_jump_mult)),
            jump_mean=(p.jump_mean_size, 1.5 * p.jump_mean_size), jump_up_prob=p.jump_up_prob,
            switch=(per_bar(1.0 / (p.calm_days * BARS_PER_DAY)), per_bar(1.0 / (p.stress_days * BARS_PER_DAY))),
            season_amp=p.season_amplitude, season_peak_hour_kst=p.season_peak_hour_kst,
            noise_sd=math.sqrt((p.noise_bps * 1e-4) ** 2 + tick_var),
        )

    @classmethod
    def fit(cls, premium: np.ndarray, times: np.ndarray,
            bar_minutes: float = DEFAULT_BAR_MINUTES) -> PremiumModel:
        """Estimate the model from a train split's premium by moments (no hidden state is seen).

        Estimated: the time-of-day cosine (regression of the premium minus its centred
        one-day mean on the KST hour), the fast component and the noise (lag-1 and
        lag-2 autocovariances of what is left), and the slow level (AR(1) and sd of the
        daily means, its mean the median premium).  Kept in the shape of the generator's
        defaults, scaled to the fitted slow sd: the regimes (durations, the stress mean
        shift and volatility multiplier) and the jumps (rate, kernel, up-probability;
        mean size in slow sds).  Fitting the regime and jump parts by likelihood is left
        for later (docs/model_based.md).
        """
        y = np.asarray(premium, dtype=np.float64)
        per_day = max(1, int(round(1440.0 / bar_minutes)))
        defaults = cls.from_synthetic(SyntheticParams(), bar_minutes)
        if len(y) < 4 * per_day:
            raise ValueError(f"the model-based trader needs at least 4 days of train bars to fit, got {len(y)}")
        series = pd.Series(y)
        trend = series.rolling(per_day, center=True, min_periods=max(1, per_day // 2)).mean().to_numpy()
        detr = y - trend
        angle = 2 * np.pi * sample_hours_kst(times, bar_minutes) / 24.0
        design = np.stack([np.cos(angle), np.sin(angle), np.ones_like(angle)], axis=1)
        ok = np.isfinite(detr)
        coef = np.linalg.lstsq(design[ok], detr[ok], rcond=None)[0] if per_day > 1 else np.zeros(3)
        amp = float(math.hypot(coef[0], coef[1]))
        peak = float(math.degrees(math.atan2(coef[1], coef[0])) / 15.0) % 24.0
        resid = detr - design[:, :2] @ coef[:2]
        resid = resid[ok] - np.mean(resid[ok])
        g = [float(np.mean(resid[lag:] * resid[:len(resid) - lag])) for lag in (0, 1, 2)]
        phi_fast = float(np.clip(g[2] / g[1], 0.05, 0.99)) if g[1] > 0 and g[2] > 0 else defaults.phi_fast
        fast_var = max(g[1] / phi_fast, 1e-12) if g[1] > 0 else defaults.fast_sd**2
        noise_var = max(g[0] - fast_var, (1e-5) ** 2)
        days = len(y) // per_day
        daily = y[:days * per_day].reshape(days, per_day).mean(axis=1)
        d = daily - daily.mean()
        ar_day = float(np.clip(np.dot(d[1:], d[:-1]) / max(np.dot(d[:-1], d[:-1]), 1e-18), 0.5, 0.995))
        slow_sd = float(np.std(daily))
        ratio = slow_sd / defaults.slow_sd[0]
        shift = ratio * (defaults.mean[1] - defaults.mean[0])
        calm_mean = float(np.mean(y)) - float(defaults.stationary_regime()[1]) * shift
        return dataclasses.replace(
            defaults, phi_slow=ar_day ** (1.0 / per_day),
            mean=(calm_mean, calm_mean + shift),
            slow_sd=(slow_sd, slow_sd * defaults.slow_sd[1] / defaults.slow_sd[0]),
            phi_fast=phi_fast, fast_sd=math.sqrt(fast_var),
            jump_mean=(defaults.jump_mean[0] * ratio, defaults.jump_mean[1] * ratio),
            season_amp=amp, season_peak_hour_kst=peak, noise_sd=math.sqrt(noise_var),
        )

    def stationary_regime(self) -> np.ndarray:
        """Long-run probabilities of (calm, stress)."""
        up, down = self.switch
        return np.array([down, up]) / (up + down)

    def slow_step_sd(self) -> np.ndarray:
        """Innovation sd of the slow level per bar in (calm, stress)."""
        return np.array(self.slow_sd) * math.sqrt(1.0 - self.phi_slow**2)

    def fast_step_sd(self) -> float:
        """Innovation sd of the fast component per bar."""
        return self.fast_sd * math.sqrt(1.0 - self.phi_fast**2)

    def season(self, hours_kst: np.ndarray) -> np.ndarray:
        """The time-of-day term at KST hours (floats)."""
        return self.season_amp * np.cos(2 * np.pi * (np.asarray(hours_kst) - self.season_peak_hour_kst) / 24.0)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


def sample_hours_kst(times: np.ndarray, bar_minutes: float) -> np.ndarray:
    """KST hour (float) at which each bar's premium is sampled: the last 15m step of the bar.

    ``times`` are bar open times (``datetime64[ns]``, UTC); the generator's
    time-of-day term uses the open time of the 15m bar whose close ends the bar.
    """
    t_ns = np.asarray(times, dtype="datetime64[ns]").astype(np.int64)
    t_ns = t_ns + int((bar_minutes - _BASE_MINUTES) * 60 * 10**9) if bar_minutes > _BASE_MINUTES else t_ns
    return ((t_ns + 9 * NS_HOUR) % NS_DAY) / NS_HOUR
