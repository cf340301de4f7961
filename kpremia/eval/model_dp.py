"""Dynamic programming over the premium model's state x position: the model-based trader's plan.

Why: with a fee on every fill, when to switch depends on where each part of the
premium is heading (the fast part reverts in hours, a jump in days, the slow
level in weeks) and on the hour of day; a value function over those states says
it directly.

State: regime (calm / stress) x slow level x transient part (fast component plus a
jump's part still to rise) x settled jump level x hour of the day (KST) x position
(all KRW / all USDT).  One step is one decision interval (``hours`` hours of bars).
Transitions are per part, given the regime (the parts are independent given it):
Gaussian moves of the slow and fast parts and a jump arrival (up or down, a few
size bins) are spread onto the grid by linear interpolation, which keeps every
conditional mean exact.  Holding USDT over a step earns the premium's change;
switching costs the fill's log cost from the execution rules (fee and half the
spread, :func:`kpremia.eval.oracle.fill_factors`).  Relative value iteration
(the value's mean subtracted every step) runs until the buy/sell advantage stops
changing.

The result is :class:`Plan`: the advantage of holding USDT over KRW after a
decision, ``Q_usdt - Q_krw``, on the grid for every regime and hour; the trader
buys where it exceeds the buy cost and sells where it is below minus the sell cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kpremia.eval.premium_model import PremiumModel
from kpremia.eval.regime_filter import _size_bins

_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.hermite_e.hermegauss(9)
_GAUSS_WEIGHTS = _GAUSS_WEIGHTS / _GAUSS_WEIGHTS.sum()


@dataclass(frozen=True)
class Grid:
    """Grid points of the slow level, the transient part and the settled jump level."""

    slow: np.ndarray
    fast: np.ndarray
    jump: np.ndarray

    @classmethod
    def for_model(cls, model: PremiumModel, n_slow: int = 25, n_fast: int = 13, n_jump: int = 14) -> Grid:
        lo = model.mean[0] - 3.5 * model.slow_sd[0]
        hi = model.mean[1] + 3.0 * model.slow_sd[1]
        fast = 3.5 * model.fast_sd * np.linspace(-1.0, 1.0, n_fast)
        n_down = max(1, n_jump // 4)
        ups = np.geomspace(0.1 * model.jump_mean[0], 6.0 * model.jump_mean[1], n_jump - n_down - 1)
        downs = -np.geomspace(0.1 * model.jump_mean[0], 3.0 * model.jump_mean[1], n_down)[::-1]
        jump = np.concatenate([downs, [0.0], ups])
        return cls(slow=np.linspace(lo, hi, n_slow), fast=fast, jump=jump)


def interp_weights(grid: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices ``i`` and weights ``(1 - w, w)`` of ``x`` between ``grid[i]`` and ``grid[i + 1]`` (clamped)."""
    x = np.clip(x, grid[0], grid[-1])
    i = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, len(grid) - 2)
    w = (x - grid[i]) / (grid[i + 1] - grid[i])
    return i, 1.0 - w, w


def _spread(grid: np.ndarray, points: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Transition matrix ``[n, n]``: from grid point ``a`` to the law ``points[a, q]`` with ``probs[q]``."""
    n = len(grid)
    out = np.zeros((n, n))
    i, w0, w1 = interp_weights(grid, points)
    rows = np.broadcast_to(np.arange(n)[:, None], points.shape)
    np.add.at(out, (rows, i), w0 * probs)
    np.add.at(out, (rows, i + 1), w1 * probs)
    return out


@dataclass
class Plan:
    """The planner's output: ``advantage[h, r, s, f, j]`` = ``Q_usdt - Q_krw`` after a decision at KST hour ``h``."""

    grid: Grid
    advantage: np.ndarray
    hours: int
    iterations: int

    def lookup(self, hour: np.ndarray, p_regime: np.ndarray, slow: np.ndarray, fast: np.ndarray,
               jump: np.ndarray) -> np.ndarray:
        """Advantage at filtered states (``[N]`` hours; ``[N, 2]`` per-regime probabilities and means)."""
        h = np.asarray(hour, dtype=np.int64) % 24
        out = np.zeros(len(h))
        for r in range(2):
            si, s0, s1 = interp_weights(self.grid.slow, slow[:, r])
            fi, f0, f1 = interp_weights(self.grid.fast, fast[:, r])
            ji, j0, j1 = interp_weights(self.grid.jump, jump[:, r])
            val = np.zeros(len(h))
            for ds, ws in ((0, s0), (1, s1)):
                for df, wf in ((0, f0), (1, f1)):
                    for dj, wj in ((0, j0), (1, j1)):
                        val += ws * wf * wj * self.advantage[h, r, si + ds, fi + df, ji + dj]
            out += p_regime[:, r] * val
        return out


def plan(model: PremiumModel, step_bars: int, buy_cost: float, sell_cost: float, *, grid: Grid | None = None,
         max_days: float = 60.0, tol: float = 1e-7) -> Plan:
    """Value iteration for deciding every ``step_bars`` bars (rounded to whole hours for the hour phase).

    ``buy_cost`` / ``sell_cost``: log cost of a fill (positive), e.g. ``-log(usdt_per_krw * price)``.
    """
    grid = grid or Grid.for_model(model)
    hours = min(24, max(1, int(round(step_bars * model.bar_minutes / 60.0))))
    n = max(1.0, hours * 60.0 / model.bar_minutes)  # bars per planning step
    s, f, j = grid.slow, grid.fast, grid.jump

    # regime chain over one step
    up, down = model.switch
    one = np.array([[1.0 - up, up], [down, 1.0 - down]])
    chain = np.linalg.matrix_power(one, int(round(n))) if n >= 1 else one

    # slow level: Gaussian around the regime mean's reversion
    phi = model.phi_slow**n
    t_slow = []
    mean_slow = []
    for r in range(2):
        mu = model.mean[r] + phi * (s - model.mean[r])
        sd = model.slow_sd[r] * math.sqrt(1.0 - phi**2)
        t_slow.append(_spread(s, mu[:, None] + sd * _GAUSS_NODES[None], _GAUSS_WEIGHTS))
        mean_slow.append(mu)
    t_slow = np.array(t_slow)
    # transient part: the fast AR(1) (a rising jump's rest is gone within a step of hours)
    phi_f = model.phi_fast**n
    mu_f = phi_f * f
    t_fast = _spread(f, mu_f[:, None] + model.fast_sd * math.sqrt(1 - phi_f**2) * _GAUSS_NODES[None], _GAUSS_WEIGHTS)
    # settled jump: decays; a new one arrives with the regime's rate (up or down, size bins)
    decay = model.jump_a_slow**n
    m1, _, mass = _size_bins(4)
    t_jump, mean_jump = [], []
    for r in range(2):
        arrive = 1.0 - (1.0 - model.jump_rate[r]) ** n
        size = model.jump_mean[r] * m1 * model.jump_a_slow ** (n / 2)
        imp = np.concatenate([[0.0], size, -size])
        prob = np.concatenate([[1.0 - arrive], arrive * model.jump_up_prob * mass,
                               arrive * (1 - model.jump_up_prob) * mass])
        points = decay * j[:, None] + imp[None]
        t_jump.append(_spread(j, points, prob))
        mean_jump.append(points @ prob)
    t_jump = np.array(t_jump)

    season = model.season(np.arange(24) + 0.0)
    d_season = np.roll(season, -hours) - season  # [24]: change over a step started at hour h
    # expected premium change while holding USDT over one step, [24, 2, S, F, J]
    reward = (d_season[:, None, None, None, None]
              + (np.array(mean_slow) - s)[None, :, :, None, None]
              + (mu_f - f)[None, None, None, :, None]
              + (np.array(mean_jump) - j)[None, :, None, None, :])

    value = np.zeros((24, 2, 2, len(s), len(f), len(j)))  # [hour, position, regime, S, F, J]
    max_iter = int(max_days * 24 / hours)
    prev = None
    it = 0
    for it in range(1, max_iter + 1):
        nxt = np.roll(value, -hours, axis=0)  # the value at the hour one step later
        ev = np.einsum("rq,hpqsfj->hprsfj", chain, nxt)
        ev = np.einsum("rsa,hprafj->hprsfj", t_slow, ev)
        ev = np.einsum("fb,hprsbj->hprsfj", t_fast, ev)
        ev = np.einsum("rjc,hprsfc->hprsfj", t_jump, ev)
        q_krw, q_usdt = ev[:, 0], ev[:, 1] + reward
        value = np.stack([np.maximum(q_krw, q_usdt - buy_cost), np.maximum(q_usdt, q_krw - sell_cost)], axis=1)
        value -= value.mean()
        adv = q_usdt - q_krw
        if prev is not None and np.max(np.abs(adv - prev)) < tol:
            break
        prev = adv
    return Plan(grid=grid, advantage=adv, hours=hours, iterations=it)
