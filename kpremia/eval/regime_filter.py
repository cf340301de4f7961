"""A causal regime-switching filter over the observed premium (the model-based trader's eyes).

Why: the premium is a sum of parts that revert at very different speeds (a slow
level, a fast component, decaying jumps, a time-of-day term); a trader that sees
only the level acts like a band.  The filter separates them, bar by bar, using
bars ``<= t`` only.

Method: an interacting-multiple-model Kalman filter (one Gaussian per regime,
mixed through the regime chain every bar) whose prediction also branches over
"a jump arrived": no jump, or an upward / downward impulse in one of a few size
bins of the exponential size law (each bin's mean, with the bin's variance added).
The branches are collapsed back to one Gaussian per regime by moment matching.
State ``x = [slow, fast, A, B]`` with the jump ``scale * (A - B)``; the impulse of
bar ``t - 1`` enters ``A`` and ``B`` with the loadings ``(a_slow, a_fast)``, so it is
already visible (at ~30 % of its size) at bar ``t`` and a jump is not mistaken for
the fast component for long.

Everything is vectorised over a batch of markets (the Python loop is over bars
only), so many test splits filter in one pass.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from kpremia.eval.premium_model import PremiumModel

N_SIZE_BINS = 4
PRUNE = 0.01  # branches less likely than this after the update are dropped


class FilterOutput(NamedTuple):
    """Filtered estimates at the close of every bar, arrays ``[T, D]`` (``[T, D, 2]`` per regime).

    Attributes:
        p_stress: probability of the stress regime.
        slow, fast, jump, rise: per-regime means of the slow level, the fast component, the
            jump's settled level (``scale * A``) and the part of a jump still to rise
            (``-scale * B``, negative after an upward jump; it is gone within hours), ``[T, D, 2]``.
        p_regime: regime probabilities ``[T, D, 2]`` (calm, stress).
        log_lik: log-likelihood of the observations, ``[D]``.
    """

    p_stress: np.ndarray
    slow: np.ndarray
    fast: np.ndarray
    jump: np.ndarray
    rise: np.ndarray
    p_regime: np.ndarray
    log_lik: np.ndarray

    def mean_of(self, part: str) -> np.ndarray:
        """A part's estimate mixed over the regimes, ``[T, D]``."""
        return (getattr(self, part) * self.p_regime).sum(axis=-1)


def _size_bins(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal-probability bins of Exp(1): their means, variances and probabilities."""
    edges = -np.log1p(-np.linspace(0.0, 1.0, n + 1)[:-1])
    lo, hi = edges, np.append(edges[1:], np.inf)
    e_lo, e_hi = np.exp(-lo), np.exp(-hi)
    mass = e_lo - e_hi
    hi_f = np.where(np.isfinite(hi), hi, 0.0)  # the last bin is open: hi * e^-hi -> 0
    hi_e, hi2_e = hi_f * e_hi, hi_f**2 * e_hi
    m1 = (lo * e_lo - hi_e + mass) / mass  # E[X | bin]
    m2 = (lo**2 * e_lo - hi2_e + 2 * (lo * e_lo - hi_e + mass)) / mass  # E[X^2 | bin]
    return m1, m2 - m1**2, mass


def _branches(model: PremiumModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per regime: impulse means, variances and log prior probabilities of the branches ``[2, K]``."""
    m1, var, mass = _size_bins(N_SIZE_BINS)
    sizes, variances, logp = [], [], []
    for r in range(2):
        rate, size, up = model.jump_rate[r], model.jump_mean[r], model.jump_up_prob
        imp = np.concatenate([[0.0], size * m1, -size * m1])
        v = np.concatenate([[0.0], size**2 * var, size**2 * var])
        with np.errstate(divide="ignore"):
            p = np.log(np.concatenate([[1.0 - rate], rate * up * mass, rate * (1 - up) * mass]))
        sizes.append(imp), variances.append(v), logp.append(p)
    return np.array(sizes), np.array(variances), np.array(logp)


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.squeeze(top, axis) + np.log(np.sum(np.exp(x - top), axis=axis))


def run_filter(model: PremiumModel, premium: np.ndarray, hours_kst: np.ndarray) -> FilterOutput:
    """Filter observed premia ``[T]`` or ``[T, D]`` (D markets, same bar times) with ``model``.

    ``hours_kst`` ``[T]``: KST hour each premium is sampled at
    (:func:`kpremia.eval.premium_model.sample_hours_kst`).  NaN premia are skipped
    (predicted, not updated).  Starts from the model's stationary law.
    """
    y = np.asarray(premium, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    n_bars, n_mk = y.shape
    season = model.season(hours_kst)
    a_s, a_f, scale = model.jump_a_slow, model.jump_a_fast, model.jump_scale
    H = np.array([1.0, 1.0, scale, -scale])
    F = np.array([model.phi_slow, model.phi_fast, a_s, a_f])
    g = np.array([0.0, 0.0, a_s, a_f])
    hg = float(H @ g)
    u = np.zeros((2, 4))
    u[:, 0] = (1.0 - model.phi_slow) * np.array(model.mean)
    Q = np.zeros((2, 4, 4))
    Q[:, 0, 0] = model.slow_step_sd() ** 2
    Q[:, 1, 1] = model.fast_step_sd() ** 2
    Q[:, 2, 2] = Q[:, 3, 3] = 1e-14
    R = model.noise_sd**2
    imp, imp_var, log_prior = _branches(model)  # [2, K]
    ggT = np.outer(g, g)
    up, down = model.switch
    Pi = np.array([[1.0 - up, up], [down, 1.0 - down]])  # Pi[i, j] = P(j at t | i at t-1)

    # stationary start: per regime the slow level at its regime mean, the rest at zero
    mu = np.tile(model.stationary_regime(), (n_mk, 1))
    m = np.zeros((n_mk, 2, 4))
    m[:, :, 0] = np.array(model.mean)
    P = np.zeros((n_mk, 2, 4, 4))
    P[:, :, 0, 0] = np.array(model.slow_sd) ** 2
    P[:, :, 1, 1] = model.fast_sd**2
    P[:, :, 2, 2] = P[:, :, 3, 3] = (2 * model.jump_mean[1]) ** 2 * 0.05

    out_p = np.empty((n_bars, n_mk, 2))
    out_slow = np.empty((n_bars, n_mk, 2))
    out_fast = np.empty((n_bars, n_mk, 2))
    out_jump = np.empty((n_bars, n_mk, 2))
    out_rise = np.empty((n_bars, n_mk, 2))
    log_lik = np.zeros(n_mk)
    for t in range(n_bars):
        # IMM mixing: each regime's prior is the mixture over where the chain came from
        c = mu @ Pi  # [D, j]
        w = mu[:, :, None] * Pi[None] / np.maximum(c[:, None, :], 1e-300)  # [D, i, j]
        m0 = np.einsum("dij,dix->djx", w, m)
        dm = m[:, :, None, :] - m0[:, None, :, :]
        P0 = np.einsum("dij,dixy->djxy", w, P) + np.einsum("dij,dijx,dijy->djxy", w, dm, dm)
        mp = m0 * F + u
        Pp = P0 * F[:, None] * F[None, :] + Q
        obs = y[t]
        seen = np.isfinite(obs)  # a NaN premium (a no-trade bar): predicted, not updated
        mk = mp[:, :, None, :] + imp[None, :, :, None] * g  # [D, j, K, 4]
        PH = np.einsum("djxy,y->djx", Pp, H)
        S = (PH @ H)[:, :, None] + R + imp_var[None] * hg**2  # [D, j, K]
        cross = PH[:, :, None, :] + (imp_var[None, :, :, None] * hg) * g  # P_jk H^T
        e = np.where(seen, obs, 0.0)[:, None, None] - season[t] - mk @ H  # [D, j, K]
        logw = -0.5 * (np.log(2 * np.pi * S) + e**2 / S) + log_prior[None]
        gain = cross / S[..., None]
        m_post = mk + gain * e[..., None]
        P_post = (Pp[:, :, None] + imp_var[None, :, :, None, None] * ggT
                  - gain[..., :, None] * gain[..., None, :] * S[..., None, None])
        lse = _logsumexp(logw, axis=2)  # [D, j]
        wk = np.exp(logw - lse[..., None])
        # Prune unlikely branches before collapsing: a jump branch kept at its prior weight on
        # every bar would add its spread to the state's covariance each bar, turning the jump
        # into a random walk that soaks up the noise.
        wk = np.where(wk < PRUNE, 0.0, wk)
        wk /= wk.sum(axis=2, keepdims=True)
        m_new = np.einsum("djk,djkx->djx", wk, m_post)
        dk = m_post - m_new[:, :, None, :]
        P_new = np.einsum("djk,djkxy->djxy", wk, P_post) + np.einsum("djk,djkx,djky->djxy", wk, dk, dk)
        total = np.log(np.maximum(c, 1e-300)) + lse
        norm = _logsumexp(total, axis=1)
        log_lik += np.where(seen, norm, 0.0)
        m = np.where(seen[:, None, None], m_new, mp)
        P = np.where(seen[:, None, None, None], P_new, Pp)
        mu = np.where(seen[:, None], np.exp(total - norm[:, None]), c)
        P = 0.5 * (P + np.swapaxes(P, -1, -2))
        out_p[t] = mu
        out_slow[t] = m[..., 0]
        out_fast[t] = m[..., 1]
        out_jump[t] = scale * m[..., 2]
        out_rise[t] = -scale * m[..., 3]
    return FilterOutput(p_stress=out_p[..., 1], slow=out_slow, fast=out_fast, jump=out_jump, rise=out_rise, p_regime=out_p,
                        log_lik=log_lik)
