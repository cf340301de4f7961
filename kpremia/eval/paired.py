"""Paired statistics against a reference trader: is a policy ahead of the band rule, level, or behind?

Why: a trader's return on one draw of the market varies by several points from one draw to the
next, far more than the difference between two good traders.  Comparing each trader with the
band rule *on the same market* (a paired difference) removes the market's own luck; averaging
those differences over many markets and training seeds, with a confidence interval, tells
"better" from "luckier".

The method follows rliable (Agarwal et al., 2021, "Deep RL at the Edge of the Statistical
Precipice"): report the mean, the median, the interquartile mean (IQM: the mean of the middle
50 %, robust to one wild market) and the win rate, and a stratified bootstrap 95 % interval of the
mean.  The bootstrap is :func:`scipy.stats.bootstrap` (percentile method), one sample per stratum:
each stratum (by default a training seed) is resampled on its own, so every seed keeps its weight
in every resample.  Strata with a single value cannot be resampled on their own and are pooled.

The verdict says "ahead" or "behind" only when the interval excludes zero; an interval that
includes zero is "level" (the data cannot tell the two apart); fewer than two paired values give
no interval and "too few markets to tell".
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class PairedStats:
    """Summary of paired differences (policy minus reference) over markets × seeds."""

    n: int
    mean: float
    median: float
    iqm: float
    win_rate: float
    ci_low: float
    ci_high: float
    verdict: str
    reference: str

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and CSV."""
        return asdict(self)


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean after cutting 25 % of the values at each end (NaN for none)."""
    array = np.asarray(values, dtype=float)
    return float(stats.trim_mean(array, 0.25)) if array.size else math.nan


def win_rate(differences: Sequence[float]) -> float:
    """Share of markets where the policy did better than the reference (a tie counts half)."""
    array = np.asarray(differences, dtype=float)
    if not array.size:
        return math.nan
    return float(((array > 0).sum() + 0.5 * (array == 0).sum()) / array.size)


def paired_differences(policy: Mapping[Hashable, float], reference: Mapping[Hashable, float]) -> dict[Hashable, float]:
    """Per market, the policy's value minus the reference's, for the markets both were evaluated on."""
    out: dict[Hashable, float] = {}
    for market, value in policy.items():
        other = reference.get(market)
        if other is None or value is None:
            continue
        diff = float(value) - float(other)
        if math.isfinite(diff):
            out[market] = diff
    return out


def _strata_samples(values: np.ndarray, strata: Sequence[Hashable] | None) -> list[np.ndarray]:
    if strata is None:
        return [values]
    if len(strata) != len(values):
        raise ValueError(f"paired_stats: {len(values)} values but {len(strata)} strata labels")
    groups: dict[Hashable, list[float]] = {}
    for value, stratum in zip(values, strata, strict=True):
        groups.setdefault(stratum, []).append(float(value))
    samples = [np.asarray(g) for g in groups.values() if len(g) >= 2]
    singles = [g[0] for g in groups.values() if len(g) == 1]
    if len(singles) >= 2:
        samples.append(np.asarray(singles))
    elif singles:  # one lone value: add it to the smallest stratum rather than drop it
        if samples:
            smallest = min(range(len(samples)), key=lambda i: len(samples[i]))
            samples[smallest] = np.append(samples[smallest], singles[0])
        else:
            samples = [np.asarray(singles)]
    return samples


def _pooled_mean(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.concatenate(samples, axis=axis).mean(axis=axis)


def bootstrap_interval(values: Sequence[float], strata: Sequence[Hashable] | None = None, *,
                       confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Stratified percentile-bootstrap interval of the mean (NaNs for fewer than two values)."""
    array = np.asarray(values, dtype=float)
    if array.size < 2:
        return math.nan, math.nan
    if np.all(array == array[0]):  # no spread: the interval is the value itself
        return float(array[0]), float(array[0])
    samples = _strata_samples(array, strata)
    result = stats.bootstrap(tuple(samples), _pooled_mean, vectorized=True, axis=-1, method="percentile",
                             confidence_level=confidence, n_resamples=n_resamples,
                             random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def verdict(ci_low: float, ci_high: float, reference: str = "the band rule") -> str:
    """"ahead of"/"behind" only when the interval excludes zero; "level with" when it includes zero."""
    if math.isnan(ci_low) or math.isnan(ci_high):
        return "too few markets to tell"
    if ci_low > 0:
        return f"ahead of {reference}"
    if ci_high < 0:
        return f"behind {reference}"
    return f"level with {reference}"


def paired_stats(differences: Sequence[float], strata: Sequence[Hashable] | None = None, *,
                 reference: str = "the band rule", confidence: float = CONFIDENCE,
                 n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> PairedStats:
    """Mean, median, IQM, win rate and stratified bootstrap interval of paired differences, with the verdict."""
    array = np.asarray(differences, dtype=float)
    if strata is not None:
        keep = np.isfinite(array)
        strata = [s for s, k in zip(strata, keep, strict=True) if k]
        array = array[keep]
    else:
        array = array[np.isfinite(array)]
    low, high = bootstrap_interval(array, strata, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return PairedStats(n=int(array.size),
                       mean=float(array.mean()) if array.size else math.nan,
                       median=float(np.median(array)) if array.size else math.nan,
                       iqm=iqm(array), win_rate=win_rate(array), ci_low=low, ci_high=high,
                       verdict=verdict(low, high, reference), reference=reference)
