"""Trading-performance formulas: pure tensor functions, the one place they live.

Every number kpremia reports about a trading path -- in the validation loop, the
torchmetrics classes of :mod:`kpremia.eval.metrics`, the backtest report and the
run comparison -- comes from these functions, so a formula can never disagree
with itself between training logs and reports.

Inputs describe one or more *equity paths* sampled at bar closes, shape ``[N, T]``
(or ``[T]`` for one path; the leading dimension is added for you):

* ``values_krw[:, t]``: portfolio value marked at the close of bar ``t``;
  ``values_krw[:, 0]`` is the starting value, before any fill.
* ``usdt_weight[:, t]``: fraction of the value held in USDT at that mark.
* ``traded[:, t]``: a fill happened between mark ``t - 1`` and mark ``t`` (at the
  open of bar ``t``); ``traded[:, 0]`` is ignored.
* ``fees_krw[:, t]``: fee paid on that fill (KRW).

Every function returns one value per path, ``[N]`` float64.  Definitions:

* ``return``: ``V[T-1] / V[0] - 1``.
* per-bar simple returns ``r_t = V[t] / V[t-1] - 1`` for ``t = 1..T-1``.
* ``sharpe``: ``mean(r) / std(r) * sqrt(P)`` (sample std, ``ddof=1``; risk-free
  rate 0: holding KRW is the riskless choice here), where ``P`` =
  :func:`periods_per_year` of the bar size (crypto trades 24/7: 365 days a year).
* ``sortino``: ``mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(P)`` (target 0, downside
  deviation over all bars).
* Sharpe and Sortino are 0 when their denominator is 0 (a flat path; a path with
  no losing bar), so reports and checkpoint monitors never see inf/NaN.
* ``max_drawdown``: ``max_t (1 - V[t] / max_{s<=t} V[s])``, a positive fraction.
* ``turnover``: ``sum_t traded[t] * |w[t] - w[t-1]|`` -- the fraction of the
  portfolio traded, summed over the period (buy all then sell all = 2.0).  Exact
  for the all-in/all-out schemes; for partial rebalances it includes one bar of
  price drift of the weight.
* ``n_trades``: number of fills.  ``fees_krw``: total fees paid (KRW).
* ``hit_rate``: fraction of *closed round trips* with a positive return.  A round
  trip opens at the first mark with ``w > eps`` after a mark with ``w <= eps`` and
  closes at the next mark with ``w <= eps``; its return is ``V[close] / V[open - 1]
  - 1`` (value before the entry fill to value after the exit fill, both fees
  included).  A position still open at the end is not counted.  With no closed
  round trip the hit rate is 0 (``round_trips`` says how many there were).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from kpremia.core.bars import DEFAULT_BAR_MINUTES

MINUTES_PER_YEAR = 365 * 24 * 60
POSITION_EPS = 1e-6


def periods_per_year(bar_minutes: float) -> float:
    """Bars in a year for a 24/7 market: ``365 * 24 * 60 / bar_minutes``."""
    if bar_minutes <= 0:
        raise ValueError(f"bar_minutes must be positive, got {bar_minutes}")
    return MINUTES_PER_YEAR / bar_minutes


def as_paths(x: Tensor) -> Tensor:
    """``[T]`` or ``[N, T]`` -> ``[N, T]`` float64 (weights and flags too)."""
    x = torch.as_tensor(x)
    if x.ndim == 1:
        x = x.unsqueeze(0)
    if x.ndim != 2:
        raise ValueError(f"expected a path [T] or paths [N, T], got shape {tuple(x.shape)}")
    return x.to(torch.float64)


def simple_returns(values_krw: Tensor) -> Tensor:
    """Per-bar simple returns ``V[t] / V[t-1] - 1``, ``[N, T-1]``."""
    v = as_paths(values_krw)
    return v[:, 1:] / v[:, :-1] - 1.0


def total_return(values_krw: Tensor) -> Tensor:
    """``V[T-1] / V[0] - 1`` per path."""
    v = as_paths(values_krw)
    return v[:, -1] / v[:, 0] - 1.0


def safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den > 0``, else 0 (no inf/NaN in reports or monitors)."""
    num = torch.as_tensor(num, dtype=torch.float64)
    den = torch.as_tensor(den, dtype=torch.float64, device=num.device)
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))


def sharpe_ratio(values_krw: Tensor, bar_minutes: float = DEFAULT_BAR_MINUTES) -> Tensor:
    """Annualised Sharpe ratio of the per-bar simple returns (0 when flat)."""
    r = simple_returns(values_krw)
    if r.shape[1] < 2:
        return torch.zeros(r.shape[0], dtype=torch.float64, device=r.device)
    std = r.std(dim=1, correction=1)
    return safe_div(r.mean(dim=1), std) * math.sqrt(periods_per_year(bar_minutes))


def sortino_ratio(values_krw: Tensor, bar_minutes: float = DEFAULT_BAR_MINUTES) -> Tensor:
    """Annualised Sortino ratio (target 0; 0 when no bar lost money)."""
    r = simple_returns(values_krw)
    if r.shape[1] < 1:
        return torch.zeros(r.shape[0], dtype=torch.float64, device=r.device)
    downside = r.clamp(max=0.0).square().mean(dim=1).sqrt()
    return safe_div(r.mean(dim=1), downside) * math.sqrt(periods_per_year(bar_minutes))


def max_drawdown(values_krw: Tensor) -> Tensor:
    """Largest peak-to-trough loss as a positive fraction of the peak."""
    v = as_paths(values_krw)
    peak = torch.cummax(v, dim=1).values
    return (1.0 - v / peak).amax(dim=1).clamp(min=0.0)


def turnover(usdt_weight: Tensor, traded: Tensor) -> Tensor:
    """Fraction of the portfolio traded, summed over the period."""
    w = as_paths(usdt_weight)
    fills = as_paths(traded)[:, 1:] > 0
    return ((w[:, 1:] - w[:, :-1]).abs() * fills).sum(dim=1)


def n_trades(traded: Tensor) -> Tensor:
    """Number of fills per path (``traded[:, 0]`` ignored)."""
    return (as_paths(traded)[:, 1:] > 0).sum(dim=1).to(torch.float64)


def fees_paid(fees_krw: Tensor) -> Tensor:
    """Total fees per path (``fees_krw[:, 0]`` ignored: nothing fills before the start)."""
    return as_paths(fees_krw)[:, 1:].sum(dim=1)


def round_trips(values_krw: Tensor, usdt_weight: Tensor, eps: float = POSITION_EPS) -> tuple[Tensor, Tensor]:
    """(winning, closed) round-trip counts per path; see the module docstring.

    Vectorised over time: the value before each entry is carried forward with a
    cumulative max over entry indices, so there is no Python loop over bars.
    """
    v = as_paths(values_krw)
    in_pos = as_paths(usdt_weight) > eps
    n, t_len = v.shape
    prev = torch.zeros_like(in_pos)
    prev[:, 1:] = in_pos[:, :-1]
    opens = in_pos & ~prev  # first mark in position
    closes = ~in_pos & prev  # first mark out again
    # Index of the mark before the latest entry, carried forward in time.
    idx = torch.arange(t_len, device=v.device).expand(n, t_len)
    entry_before = torch.where(opens, idx - 1, torch.full_like(idx, -1))
    entry_before = torch.cummax(entry_before, dim=1).values
    # A position held since mark 0 has no entry fill to measure from: skip it.
    valid = closes & (entry_before >= 0)
    start_value = torch.gather(v, 1, entry_before.clamp(min=0))
    wins = valid & (v > start_value)
    return wins.sum(dim=1).to(torch.float64), valid.sum(dim=1).to(torch.float64)


def hit_rate(wins: Tensor, trips: Tensor) -> Tensor:
    """``wins / trips``, 0 where there were no closed round trips."""
    return safe_div(wins, trips)
