"""Seeded synthetic kimchi-premium market (registered data source ``synthetic``).

Why a simulator: training and tests need a market that runs offline, is
reproducible from a seed, and looks like the real one where it matters for a
trading agent (see docs/market.md).  The model, on a 15m grid:

* **USD/KRW** is an Ornstein-Uhlenbeck process on log FX around ``fx_mean`` with
  Student-t shocks, advancing only while the onshore market is open
  (09:00-02:00 KST, Mon-Fri session days, fixed-date Korean holidays off):
  FX is flat on weekends and overnight, exactly when premium gaps build.
* **Premium** = slow AR(1) (daily AR ``premium_daily_ar``) whose mean and shock
  size depend on a two-state Markov regime (calm / stress), + a fast intraday
  AR(1), + jumps that rise within hours and decay over a day or so (more
  frequent and larger in stress, mostly upward), + KST intraday seasonality,
  + an optional oscillation (used by the ``mean_reverting`` preset).
* **USDT/KRW** close = fx * (1 + premium + microstructure noise), on the 0.5 KRW
  tick; the open lies part of the way from the previous close to the close
  (sometimes one more tick off), so a fill at the next open is not a fill at
  the close the agent saw; high/low widen the
  open/close range by whole ticks; volume is lognormal with a KST seasonal
  profile, larger when the premium moves.

Everything is vectorised (``scipy.signal.lfilter`` for the AR recursions), so
two years of bars (~70k rows) take well under a second.

Bar size: the market is always generated on the 15m grid, then aggregated to
``timeframe`` (``1h``, ``4h``, ``1d``; :func:`kpremia.data.resample.aggregate_bars`), so
the same seed gives the same market at every bar size and a 1h bar is exactly its four
15m bars (OHLC, summed volume, fx and premium at its close).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from kpremia.core.bars import DEFAULT_BAR, DEFAULT_TIMEFRAME, NS_DAY, NS_HOUR, parse_timeframe, timeframe_label
from kpremia.core.errors import UserError
from kpremia.core.registry import DATA_SOURCES
from kpremia.data.frame import COLUMNS
from kpremia.data.resample import aggregate_bars

log = logging.getLogger(__name__)

# The generator's grid: the model's parameters are per step of this size (BARS_PER_DAY steps a day),
# so the market is always generated on it and then aggregated to ``data.timeframe``.
GRID = DEFAULT_BAR
BARS_PER_DAY = pd.Timedelta(days=1) // GRID
# Fixed-date Korean public holidays (month, day); lunar ones are left out.
KR_FIXED_HOLIDAYS = ((1, 1), (3, 1), (5, 5), (6, 6), (8, 15), (10, 3), (10, 9), (12, 25))


@dataclass
class SyntheticParams:
    """Parameters of the synthetic market (defaults reproduce docs/market.md)."""

    # --- grid ---
    start: str = "2024-01-01"
    """First bar open time (UTC; a date or ISO timestamp)."""
    days: float = 730.0
    """Length in calendar days (96 bars a day)."""

    # --- USD/KRW ---
    fx_mean: float = 1380.0
    """Long-run USD/KRW level (KRW per USD)."""
    fx_start: float | None = None
    """USD/KRW at the first bar (None = ``fx_mean``)."""
    fx_daily_vol: float = 0.0055
    """Log-return sd of USD/KRW per trading session (0.0055 = 0.55 %)."""
    fx_half_life_days: float = 40.0
    """Mean-reversion half-life of log FX, in trading sessions."""
    fx_tail_df: float = 4.0
    """Degrees of freedom of the Student-t FX shocks (lower = fatter tails; inf = normal)."""
    fx_holidays: bool = True
    """Keep FX flat on fixed-date Korean public holidays as well as weekends."""

    # --- premium: slow regime-switching AR(1) ---
    premium_mean: float = 0.0095
    """Calm-regime mean of the premium (0.0095 = +0.95 %; stress and upward jumps lift the overall mean to ~1.4 %)."""
    premium_sd: float = 0.0135
    """Stationary sd of the slow premium component in the calm regime."""
    premium_daily_ar: float = 0.955
    """Daily AR(1) of the slow component (half-life ~15 days; jumps and noise bring the measured daily AR to ~0.91)."""
    premium_tail_df: float = 5.0
    """Degrees of freedom of the Student-t premium shocks."""
    calm_days: float = 60.0
    """Mean duration of a calm regime, in days."""
    stress_days: float = 8.0
    """Mean duration of a stress regime, in days."""
    stress_mean_shift: float = 0.015
    """Added to the premium mean during stress (stress premia run hot)."""
    stress_vol_mult: float = 2.3
    """Shock-size multiplier during stress (wider swings both ways, dips below zero)."""

    # --- premium: fast intraday component ---
    fast_sd: float = 0.0015
    """Stationary sd of the fast intraday component."""
    fast_half_life_bars: float = 8.0
    """Half-life of the fast component, in 15m bars."""

    # --- premium: jumps ---
    jump_rate_per_day: float = 0.02
    """Calm-regime jump arrivals per day."""
    stress_jump_mult: float = 6.0
    """Jump-rate multiplier during stress."""
    jump_mean_size: float = 0.015
    """Mean absolute jump size (exponential); stress jumps are 1.5x larger."""
    jump_up_prob: float = 0.85
    """Probability that a jump is upward (premium spikes more than it dips)."""
    jump_rise_bars: float = 3.0
    """Time constant of a jump's rise, in bars (peaks within hours)."""
    jump_half_life_bars: float = 288.0
    """Half-life of a jump's decay, in bars."""

    # --- premium: seasonality / oscillation / noise ---
    season_amplitude: float = 0.001
    """Amplitude of the KST intraday premium cycle."""
    season_peak_hour_kst: float = 15.0
    """KST hour at which the intraday premium cycle peaks."""
    osc_amplitude: float = 0.0
    """Amplitude of a sinusoidal premium oscillation (0 = off; the mean_reverting preset uses it)."""
    osc_period_bars: float = 48.0
    """Period of the oscillation, in bars."""
    osc_phase_jitter: float = 0.0
    """Sd of the per-bar random walk on the oscillation's phase (radians)."""
    noise_bps: float = 1.0
    """Sd of microstructure noise on the premium, in basis points."""

    # --- bars ---
    tick_size_krw: float = 0.5
    """USDT/KRW price tick (Upbit: 0.5 KRW); 0 = no rounding."""
    open_move_frac: float = 0.25
    """Mean fraction of the bar's move (previous close -> close) already made at the open (0 = open at the previous close)."""
    open_offset_prob: float = 0.1
    """Probability that a bar's open is one more tick away (either side)."""
    range_ticks: float = 1.0
    """Mean extra high/low excursion beyond open/close, in ticks."""
    range_frac: float = 0.3
    """Extra high/low excursion as a fraction of |close - open|."""
    volume_median: float = 300_000.0
    """Median bar volume in USDT."""
    volume_sigma: float = 0.6
    """Sd of log volume noise."""
    volume_move_beta: float = 0.35
    """Log-volume increase per sd of |premium change| (volume follows moves)."""
    volume_season_amplitude: float = 0.5
    """Amplitude of the KST intraday log-volume cycle (busiest in Korean evening)."""

    def validate(self) -> None:
        """Refuse parameters that can't make a market, naming the fix."""
        checks = [
            (self.days > 0, "days must be > 0"),
            (self.fx_mean > 0 and (self.fx_start is None or self.fx_start > 0), "fx_mean/fx_start must be > 0"),
            (0 < self.premium_daily_ar < 1, "premium_daily_ar must be in (0, 1)"),
            (self.premium_mean > -0.5, "premium_mean must be > -0.5"),
            (min(self.fx_daily_vol, self.premium_sd, self.fast_sd, self.noise_bps, self.jump_rate_per_day,
                 self.jump_mean_size, self.osc_amplitude, self.osc_phase_jitter) >= 0,
             "volatilities, sizes and rates must be >= 0"),
            (min(self.fx_half_life_days, self.fast_half_life_bars, self.jump_rise_bars,
                 self.jump_half_life_bars, self.calm_days, self.stress_days, self.osc_period_bars) > 0,
             "half-lives, durations and periods must be > 0"),
            (self.jump_half_life_bars > self.jump_rise_bars, "jump_half_life_bars must exceed jump_rise_bars"),
            (0 <= self.jump_up_prob <= 1 and 0 <= self.open_offset_prob <= 1, "probabilities must be in [0, 1]"),
            (0 <= self.open_move_frac <= 0.5, "open_move_frac must be in [0, 0.5]"),
            (self.fx_tail_df > 2 and self.premium_tail_df > 2, "tail df must be > 2 (finite variance)"),
            (self.tick_size_krw >= 0 and self.volume_median > 0, "tick_size_krw >= 0 and volume_median > 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserError(f"bad synthetic data parameter: {msg}; fix it in configs/data/synthetic.yaml "
                                "or the data.* override")


# Presets: named parameter sets; explicit parameters override them.
PRESETS: dict[str, dict[str, Any]] = {
    # Calibrated to the real USDT/KRW premium (docs/market.md).
    "default": {},
    # A learnability test bed: the premium oscillates around +1 % with a 0.8 %
    # amplitude (peak to trough 1.6 %, 8x a 0.1 % fee round trip) over a 12 h
    # period, with little noise, no regimes, no jumps and a nearly still FX rate.
    # Buying low and selling high is clearly profitable after fees.
    "mean_reverting": {
        "premium_mean": 0.01, "premium_sd": 0.001, "premium_daily_ar": 0.5,
        "osc_amplitude": 0.008, "osc_period_bars": 48.0, "osc_phase_jitter": 0.02,
        "fast_sd": 0.0005, "fast_half_life_bars": 4.0,
        "jump_rate_per_day": 0.0, "stress_mean_shift": 0.0, "stress_vol_mult": 1.0,
        "season_amplitude": 0.0, "noise_bps": 0.5, "fx_daily_vol": 0.0005,
    },
}


def _student_t(rng: np.random.Generator, df: float, size: int) -> np.ndarray:
    """Unit-variance Student-t draws (normal when df is infinite)."""
    if not np.isfinite(df):
        return rng.standard_normal(size)
    return rng.standard_t(df, size) / np.sqrt(df / (df - 2.0))


def _ar1(x: np.ndarray, phi: float, y0: float = 0.0) -> np.ndarray:
    """y[t] = phi * y[t-1] + x[t] with y[-1] = y0 (vectorised)."""
    y, _ = lfilter([1.0], [1.0, -phi], x, zi=[phi * y0])
    return y


def _half_life_ar(half_life: float) -> float:
    return float(0.5 ** (1.0 / half_life))


def fx_session_open(times_ns: np.ndarray, holidays: bool = True) -> np.ndarray:
    """True for bars that open inside the onshore USD/KRW session (09:00-02:00 KST, Mon-Fri).

    A session belongs to the KST day it starts on: shifting KST by -2 h maps the
    session to 07:00-24:00 of one weekday (so Saturday 00:00-02:00 KST is still
    Friday's session).
    """
    shifted = times_ns + 7 * NS_HOUR  # UTC + 9 h (KST) - 2 h
    day = shifted // NS_DAY
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    hour = (shifted % NS_DAY) // NS_HOUR
    is_open = (weekday < 5) & (hour >= 7)
    if holidays:
        dates = pd.DatetimeIndex(day.astype("datetime64[D]"))
        md = dates.month * 100 + dates.day
        is_open &= ~np.isin(np.asarray(md), [m * 100 + d for m, d in KR_FIXED_HOLIDAYS])
    return is_open


def _regimes(rng: np.random.Generator, n: int, calm_bars: float, stress_bars: float) -> np.ndarray:
    """Two-state Markov chain (True = stress) from alternating geometric durations."""
    durations: list[np.ndarray] = []
    total = 0
    while total < n:  # a handful of iterations: each draws many regime spells
        k = max(8, int(2 * n / (calm_bars + stress_bars)) + 2)
        calm = rng.geometric(1.0 / calm_bars, k)
        stress = rng.geometric(1.0 / stress_bars, k)
        pair = np.stack([calm, stress], axis=1).ravel()
        durations.append(pair)
        total += int(pair.sum())
    runs = np.concatenate(durations)
    states = np.arange(len(runs)) % 2 == 1
    # start in the stationary distribution: in stress with probability stress/(calm+stress)
    if rng.random() < stress_bars / (calm_bars + stress_bars):
        states = ~states
    return np.repeat(states, runs)[:n]


def _jump_kernel(rise: float, half_life: float) -> tuple[float, float, float]:
    """AR coefficients of a rise-then-decay jump shape and the scale making its peak 1."""
    a_slow = _half_life_ar(half_life)
    a_fast = float(np.exp(-1.0 / rise))
    k = np.arange(int(20 * rise + 10 * half_life))
    peak = float(np.max(a_slow**k - a_fast**k))
    return a_slow, a_fast, 1.0 / peak


def generate(params: SyntheticParams, seed: int = 0) -> pd.DataFrame:
    """A MarketFrame drawn from the synthetic model (same params + seed = same frame)."""
    return generate_with_states(params, seed)[0]


def generate_with_states(params: SyntheticParams, seed: int = 0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """:func:`generate`'s frame and the hidden parts of its premium, per 15m bar.

    The parts (``stress`` regime flags, ``slow``, ``fast``, ``jumps``, ``season``) are what a
    filter of the observed premium is checked against; nothing that trades sees them.
    """
    p = params
    p.validate()
    rng = np.random.default_rng(seed)
    n = int(round(p.days * BARS_PER_DAY))
    if n < 2:
        raise UserError(f"synthetic data with days={p.days} has fewer than 2 bars; raise data.days")
    start = pd.Timestamp(p.start)
    start = start.tz_localize("UTC") if start.tz is None else start.tz_convert("UTC")
    start = start.floor(GRID)
    times = pd.date_range(start, periods=n, freq=GRID, unit="ns")
    t_ns = times.asi8
    hour_kst = ((t_ns + 9 * NS_HOUR) % NS_DAY) / NS_HOUR

    # --- FX: OU on log FX, advancing only in open session bars ---
    is_open = fx_session_open(t_ns, p.fx_holidays)
    n_open = int(is_open.sum())
    bars_per_session = 68.0  # 17 h x 4
    phi_fx = _half_life_ar(p.fx_half_life_days * bars_per_session)
    fx_start = p.fx_mean if p.fx_start is None else p.fx_start
    shocks = p.fx_daily_vol / np.sqrt(bars_per_session) * _student_t(rng, p.fx_tail_df, n_open)
    x0 = np.log(fx_start / p.fx_mean)
    log_dev = np.concatenate([[x0], _ar1(shocks, phi_fx, x0)])
    log_fx = log_dev[np.cumsum(is_open)] + np.log(p.fx_mean)  # value after the last open bar so far
    fx = np.round(np.exp(log_fx), 2)

    # --- premium ---
    stress = _regimes(rng, n, p.calm_days * BARS_PER_DAY, p.stress_days * BARS_PER_DAY)
    phi_s = p.premium_daily_ar ** (1.0 / BARS_PER_DAY)
    mu = np.where(stress, p.premium_mean + p.stress_mean_shift, p.premium_mean)
    vol = p.premium_sd * np.sqrt(1 - phi_s**2) * np.where(stress, p.stress_vol_mult, 1.0)
    slow = _ar1((1 - phi_s) * mu + vol * _student_t(rng, p.premium_tail_df, n), phi_s, p.premium_mean)

    phi_f = _half_life_ar(p.fast_half_life_bars)
    fast = _ar1(p.fast_sd * np.sqrt(1 - phi_f**2) * _student_t(rng, p.premium_tail_df, n), phi_f)

    rate = p.jump_rate_per_day / BARS_PER_DAY * np.where(stress, p.stress_jump_mult, 1.0)
    arrivals = rng.random(n) < rate
    sizes = rng.exponential(p.jump_mean_size, n) * np.where(stress, 1.5, 1.0)
    signs = np.where(rng.random(n) < p.jump_up_prob, 1.0, -1.0)
    impulses = np.where(arrivals, sizes * signs, 0.0)
    a_slow, a_fast, scale = _jump_kernel(p.jump_rise_bars, p.jump_half_life_bars)
    jumps = scale * (_ar1(impulses, a_slow) - _ar1(impulses, a_fast))

    season = p.season_amplitude * np.cos(2 * np.pi * (hour_kst - p.season_peak_hour_kst) / 24.0)
    phase = rng.uniform(0, 2 * np.pi) + np.cumsum(p.osc_phase_jitter * rng.standard_normal(n))
    osc = p.osc_amplitude * np.sin(2 * np.pi * np.arange(n) / p.osc_period_bars + phase)
    noise = p.noise_bps * 1e-4 * rng.standard_normal(n)
    premium = slow + fast + jumps + season + osc + noise

    # --- USDT/KRW bars ---
    tick = p.tick_size_krw
    to_tick = (lambda x: np.round(x / tick) * tick) if tick > 0 else (lambda x: x)  # noqa: E731
    unit = tick if tick > 0 else 0.01 * np.median(fx)
    close = to_tick(fx * (1.0 + premium))
    # The open is the first trade of the bar, some way along the path from the previous
    # close to this close (a fraction u ~ U(0, 2 * open_move_frac) of the move), plus an
    # occasional one-tick offset: an order sent at a close fills where the price has moved.
    prev_close = np.concatenate([close[:1], close[:-1]])
    along = rng.random(n) * (2.0 * p.open_move_frac)
    offset = (rng.random(n) < p.open_offset_prob) * np.where(rng.random(n) < 0.5, -unit, unit)
    open_ = to_tick(prev_close + along * (close - prev_close)) + offset
    open_[0] = close[0]
    body_hi, body_lo = np.maximum(open_, close), np.minimum(open_, close)
    excursion = p.range_ticks * unit + p.range_frac * (body_hi - body_lo)
    high = body_hi + unit * np.floor(rng.exponential(1.0, n) * excursion / unit)
    low = body_lo - unit * np.floor(rng.exponential(1.0, n) * excursion / unit)

    dprem = np.abs(np.diff(premium, prepend=premium[0]))
    move = dprem / (dprem.std() + 1e-12)
    log_vol = (np.log(p.volume_median)
               + p.volume_season_amplitude * np.cos(2 * np.pi * (hour_kst - 21.0) / 24.0)
               + p.volume_move_beta * move + p.volume_sigma * rng.standard_normal(n))
    volume = np.round(np.exp(log_vol), 2)

    frame = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume, "fx": fx},
        index=pd.DatetimeIndex(times, freq=None, name="time"),
    )
    frame["premium"] = frame["close"] / frame["fx"] - 1.0
    states = {"stress": stress, "slow": slow, "fast": fast, "jumps": jumps, "season": season}
    return frame[list(COLUMNS)].astype(np.float64), states


@DATA_SOURCES.register("synthetic")
class SyntheticSource:
    """Data source ``synthetic``: a seeded synthetic market (see :class:`SyntheticParams`).

    Args:
        seed: seed of the numpy Generator; the same seed and params give the same frame.
        preset: a name in :data:`PRESETS` ("default", "mean_reverting"); explicit
            params override the preset's values.
        timeframe: bar size of the frame ("15m" default; "1h", "4h", "1d", ...): generated
            at 15m and aggregated.
        **params: any field of :class:`SyntheticParams` (e.g. ``days=60``).
    """

    def __init__(self, seed: int = 0, preset: str = "default", timeframe: str = DEFAULT_TIMEFRAME, **params: Any) -> None:
        if preset not in PRESETS:
            raise UserError(f"unknown synthetic preset {preset!r}; use one of: {', '.join(PRESETS)}")
        known = {f.name for f in dataclasses.fields(SyntheticParams)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise UserError(f"unknown synthetic data parameter(s) {', '.join(unknown)}; known: "
                            f"{', '.join(sorted(known))}")
        self.seed = int(seed)
        self.preset = preset
        self.bar = parse_timeframe(timeframe)
        if self.bar < GRID or self.bar % GRID != pd.Timedelta(0):
            raise UserError(f"data.timeframe={timeframe!r}: the synthetic market is generated at "
                            f"{timeframe_label(GRID)} and can only be aggregated to a multiple of it (e.g. 30m, 1h, "
                            "4h, 1d)")
        self.params = dataclasses.replace(SyntheticParams(), **{**PRESETS[preset], **params})
        self.params.validate()

    def load(self) -> tuple[pd.DataFrame, dict]:
        """Generate the frame (at 15m, aggregated to the timeframe) and its manifest."""
        frame = generate(self.params, self.seed)
        dropped = 0
        if self.bar != GRID:
            frame, dropped = aggregate_bars(frame, self.bar, GRID)
            if len(frame) < 2:
                raise UserError(f"synthetic data with days={self.params.days} has fewer than 2 "
                                f"{timeframe_label(self.bar)} bars; raise data.days")
            frame["premium"] = frame["close"] / frame["fx"] - 1.0
            frame = frame[list(COLUMNS)]
        manifest = {
            "source": "synthetic",
            "synthetic": True,
            "timeframe": timeframe_label(self.bar),
            "bar_minutes": self.bar.total_seconds() / 60.0,
            "generated_at": timeframe_label(GRID),
            "partial_edge_bars_dropped": dropped,
            "preset": self.preset,
            "params": dataclasses.asdict(self.params),
            "seed": self.seed,
            "premium_basis": "usdt",
            "rows": len(frame),
            "first_bar": frame.index[0].isoformat(),
            "last_bar": frame.index[-1].isoformat(),
        }
        log.info("synthetic market: %d %s bars %s .. %s (preset %s, seed %d)", len(frame), manifest["timeframe"],
                 manifest["first_bar"], manifest["last_bar"], self.preset, self.seed)
        return frame, manifest


__all__ = ["PRESETS", "SyntheticParams", "SyntheticSource", "fx_session_open", "generate", "generate_with_states"]
