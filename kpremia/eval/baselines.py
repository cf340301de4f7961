"""Baseline traders: what a policy must beat to mean anything.

Every baseline has one interface (registry ``BASELINES``, base class :class:`Baseline`)::

    baseline = BASELINES.get(name)(rules, clock=clock, seed=0, initial_krw=1e6, **options)   # or make_baselines(names, env)
    baseline.fit(train)                           # train MarketTensors only
    actions = baseline.actions(market)            # LongTensor [T] on market.device

``rules`` is the run's :class:`~kpremia.envs.execution.ExecutionRules` and
``clock`` its :class:`~kpremia.envs.clock.DecisionClock`, passed whole to every
baseline: a rule fitted on train and the oracle price fills as the agent's
backtest does, and the band rules also try deciding on the agent's cadence.

A rule that decides on a cadence (the band rules) also has ``signals(market)``: its
action at every bar, before the cadence keeps every c-th (a warm-start teacher labels
decisions taken at any bar with it).

``actions[t]`` is the ``hold_buy_sell`` action decided at the close of bar ``t``
(0 hold, 1 buy USDT with all KRW, 2 sell all USDT), for every bar of the split;
the backtest plays rows ``valid_from .. T - 2`` through the same BatchedEnv and
execution rules as the agent (with the ``hold_buy_sell`` scheme; the fills, fees
and values do not depend on how actions are encoded).  All-in/all-out actions
are stateless here: a buy when already all USDT is no trade, so a baseline never
needs to track its own position.

* ``cash``: never trades.
* ``buy_and_hold``: buys at the first valid bar, then holds.
* ``random``: seeded coin flips: hold with ``1 - trade_prob``, else buy or sell
  with equal odds (default: uniform over the three actions, an untrained policy).
* ``premium_threshold`` (the band rule): mean reversion of the premium -- buy
  USDT when the premium is at or under ``buy_threshold``, sell when at or over
  ``sell_threshold``; the thresholds are fit on the train split only.
* ``premium_zscore``: the band rule on a rolling z-score of the premium (its
  distance from its own trailing mean, in trailing standard deviations), so the
  band follows a drifting premium level; window and z levels fit on train only.
* ``oracle``: the hindsight optimum (:mod:`kpremia.eval.oracle`), the ceiling.
* ``model_based`` (:mod:`kpremia.eval.model_based`): a causal regime-switching filter plus a
  dynamic programme over the premium's model; with the synthetic generator's parameters it is
  the achievable ceiling of a causal trader, on a file it fits the model on train.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from kpremia.core.bars import bar_of_minutes, bars_in, parse_duration
from kpremia.core.config import default_of
from kpremia.core.registry import BASELINES
from kpremia.data.tensors import MarketTensors
from kpremia.envs.action_schemes import BUY, HOLD, SELL
from kpremia.envs.clock import DecisionClock
from kpremia.envs.config import EnvConfig
from kpremia.envs.execution import ExecutionRules
from kpremia.eval.oracle import fill_factors, hindsight_oracle

log = logging.getLogger(__name__)


class Baseline:
    """Base of the baselines: every one is built with the run's execution rules, decision clock, seed and cash.

    A plug-in baseline subclasses it (or takes the same constructor arguments) and
    overrides :meth:`actions`, and :meth:`fit` / :meth:`params` where it learns something.
    """

    name = "baseline"

    def __init__(self, rules: ExecutionRules = ExecutionRules(), *, clock: DecisionClock = DecisionClock(),
                 seed: int = 0, initial_krw: float = default_of(EnvConfig, "initial_krw")) -> None:
        if not isinstance(rules, ExecutionRules):
            raise TypeError(f"{type(self).__name__} takes ExecutionRules, not {type(rules).__name__}")
        self.rules = rules
        self.clock = clock  # the run's decision interval (band rules also try deciding on it)
        self.seed = int(seed)
        self.initial_krw = float(initial_krw)

    def fit(self, train: MarketTensors) -> None:
        """Learn from the train split (and only from it)."""
        require_train(train, self.name)

    def actions(self, market: MarketTensors) -> Tensor:
        """``hold_buy_sell`` action at the close of every bar of ``market``, LongTensor ``[T]``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def params(self) -> dict[str, Any]:
        """What :meth:`fit` chose (thresholds, window, ...), for ``summary.json``; ``{}`` if nothing."""
        return {}


def _hold_all(market: MarketTensors) -> Tensor:
    return torch.full((market.n_bars,), HOLD, dtype=torch.long, device=market.device)


def require_train(train: MarketTensors, who: str) -> None:
    """Refuse to fit on anything but the train split (val/test must stay unseen)."""
    if train.name != "train":
        raise ValueError(f"{who}.fit() got the {train.name or 'unnamed'!r} split; baselines fit on the train split "
                         "only (MarketTensors.name == 'train')")


@BASELINES.register("cash")
class Cash(Baseline):
    """Holds KRW throughout: return 0 minus nothing; the floor a policy must clear."""

    name = "cash"

    def actions(self, market: MarketTensors) -> Tensor:
        return _hold_all(market)


@BASELINES.register("buy_and_hold")
class BuyAndHold(Baseline):
    """Buys USDT with all KRW at the first valid bar and holds to the end (pays one fee)."""

    name = "buy_and_hold"

    def actions(self, market: MarketTensors) -> Tensor:
        out = _hold_all(market)
        out[market.valid_from] = BUY
        return out


@BASELINES.register("random")
class RandomTrader(Baseline):
    """Seeded random actions: hold with ``1 - trade_prob``, else buy or sell with equal odds.

    Actions depend only on ``seed`` and the number of bars, never on prices, so a
    rerun gives the same trades.
    """

    name = "random"

    def __init__(self, rules: ExecutionRules = ExecutionRules(), *, clock: DecisionClock = DecisionClock(),
                 seed: int = 0, initial_krw: float = default_of(EnvConfig, "initial_krw"),
                 trade_prob: float = 2.0 / 3.0) -> None:
        super().__init__(rules, clock=clock, seed=seed, initial_krw=initial_krw)
        if not 0.0 <= trade_prob <= 1.0:
            raise ValueError(f"random baseline trade_prob={trade_prob} must be in [0, 1]")
        self.trade_prob = float(trade_prob)

    def actions(self, market: MarketTensors) -> Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        p = self.trade_prob
        probs = torch.tensor([1.0 - p, p / 2, p / 2], dtype=torch.float64)
        draws = torch.multinomial(probs, market.n_bars, replacement=True, generator=gen)
        return draws.to(device=market.device, dtype=torch.long)


@BASELINES.register("premium_threshold")
class PremiumThreshold(Baseline):
    """Premium mean reversion: buy USDT when the premium is low, sell when it is high.

    ``method="grid"`` (default) tries every pair of train-premium quantiles
    ``buy < sell`` from ``quantiles`` and keeps the pair with the best train return
    net of fees and slippage (fills priced by the env's execution rules); if no
    pair beats holding cash on train, the baseline stays in cash.
    ``method="quantile"`` uses the train quantiles ``buy_quantile`` /
    ``sell_quantile`` directly.  Either way :meth:`fit` sees only the train split:
    the thresholds are plain numbers, and ``actions`` on val/test uses the premium
    at the close of each bar only (causal).  ``method="given"`` takes the levels
    ``buy_level`` / ``sell_level`` from the user and fits nothing (a backtest over a
    whole file, which has no train split).

    Cadence: the rule decides every ``c`` bars, ``c`` tuned on train together with the
    levels over ``cadences`` (default: every bar and the run's decision interval, its
    ``clock``), so an agent that decides every k bars is compared with the best rule,
    including at its own cadence (deciding less often also trades less often: fewer
    fees).  A clock given as a duration (``"4h"``) becomes bars of the split's bar size
    at :meth:`fit`.
    """

    name = "premium_threshold"

    def __init__(
        self,
        rules: ExecutionRules = ExecutionRules(),
        *,
        clock: DecisionClock = DecisionClock(),
        seed: int = 0,
        initial_krw: float = default_of(EnvConfig, "initial_krw"),
        method: str = "grid",
        buy_quantile: float = 0.2,
        sell_quantile: float = 0.8,
        quantiles: Sequence[float] = tuple(np.round(np.linspace(0.02, 0.98, 25), 4)),
        buy_level: float | None = None,
        sell_level: float | None = None,
        cadences: Sequence[int] | None = None,
    ) -> None:
        super().__init__(rules, clock=clock, seed=seed, initial_krw=initial_krw)
        if method not in ("grid", "quantile", "given"):
            raise ValueError(f"premium_threshold method={method!r}; use 'grid', 'quantile' or 'given'")
        if method == "given" and (buy_level is None or sell_level is None or not buy_level < sell_level):
            raise ValueError(f"premium_threshold method='given' needs buy_level < sell_level, got {buy_level}, "
                             f"{sell_level}")
        if not 0.0 <= buy_quantile < sell_quantile <= 1.0:
            raise ValueError(f"premium_threshold needs 0 <= buy_quantile < sell_quantile <= 1, "
                             f"got {buy_quantile}, {sell_quantile}")
        self.method = method
        self.buy_quantile, self.sell_quantile = float(buy_quantile), float(sell_quantile)
        self.quantiles = tuple(float(q) for q in quantiles)
        self._cadences_given = cadences
        self.cadence, self.cadences = _cadences(clock, cadences)  # the run's interval until fit tunes it
        self.buy_threshold: float | None = float(buy_level) if method == "given" else None
        self.sell_threshold: float | None = float(sell_level) if method == "given" else None
        self.train_return: float | None = None

    def fit(self, train: MarketTensors) -> None:
        self.cadence, self.cadences = _cadences(self.clock.at(train.bar_minutes), self._cadences_given)
        if self.method == "given":
            return  # the user's levels: nothing is learned, from any split
        require_train(train, "premium_threshold")
        premium = train.premium[train.valid_from:].to(torch.float64).cpu().numpy()
        if self.method == "quantile":
            self.buy_threshold, self.sell_threshold = (float(x) for x in np.quantile(
                premium, [self.buy_quantile, self.sell_quantile]))
            self.train_return = float(math.expm1(_threshold_log_returns(
                train, np.array([self.buy_threshold]), np.array([self.sell_threshold]), self.rules,
                self.cadence)[0]))
        else:
            levels = np.unique(np.quantile(premium, self.quantiles))
            buy, sell = np.meshgrid(levels, levels, indexing="ij")
            pairs = buy < sell
            buy, sell = buy[pairs], sell[pairs]
            best = (0.0, None)
            for cadence in self.cadences:
                log_ret = _threshold_log_returns(train, buy, sell, self.rules, cadence)
                i = int(np.argmax(log_ret)) if len(log_ret) else -1
                if i >= 0 and log_ret[i] > best[0]:
                    best = (float(log_ret[i]), (float(buy[i]), float(sell[i]), cadence))
            if best[1] is None:
                log.info("premium_threshold: no threshold pair beats cash on train; the baseline holds cash")
                self.buy_threshold, self.sell_threshold, self.train_return = -math.inf, math.inf, 0.0
            else:
                self.buy_threshold, self.sell_threshold, self.cadence = best[1]
                self.train_return = float(math.expm1(best[0]))
        log.info("premium_threshold fit on train: buy at premium <= %.4f, sell at >= %.4f, deciding every %d "
                 "bar(s) (train return %.4f)", self.buy_threshold, self.sell_threshold, self.cadence,
                 self.train_return)

    def signals(self, market: MarketTensors) -> Tensor:
        """The rule's action at every bar, whatever its cadence (what a teacher labels any decision with)."""
        if self.buy_threshold is None or self.sell_threshold is None:
            raise RuntimeError("premium_threshold used before fit(); call fit(train) first")
        return band_actions(market.premium, self.buy_threshold, self.sell_threshold)

    def decide(self, premium: float) -> int:
        """The action at one close whose premium is ``premium`` (the live rule's decision; float64, NaN holds)."""
        if self.buy_threshold is None or self.sell_threshold is None:
            raise RuntimeError("premium_threshold used before fit(); call fit(train) first")
        premium_now = torch.tensor([float(premium)], dtype=torch.float64)
        return int(band_actions(premium_now, self.buy_threshold, self.sell_threshold)[0])

    @property
    def decision_clock(self) -> DecisionClock:
        """The clock the rule decides on: every :attr:`cadence` bars (tuned on train with the levels)."""
        return DecisionClock(decision_every=int(self.cadence))

    def actions(self, market: MarketTensors) -> Tensor:
        return _on_cadence(self.signals(market), market.valid_from, self.decision_clock)

    def params(self) -> dict[str, Any]:
        """The levels fit on train (premium as a fraction; +-inf = never, i.e. cash) and the cadence."""
        return {"buy_premium_at_or_below": _json_float(self.buy_threshold),
                "sell_premium_at_or_above": _json_float(self.sell_threshold),
                "decision_every_bars": self.cadence, "train_return": self.train_return, "method": self.method}


@BASELINES.register("premium_zscore")
class PremiumZScore(Baseline):
    """The band rule on a rolling z-score of the premium.

    ``z_t = (premium_t - mean) / sd`` over the trailing ``window`` bars of the split
    being traded (bars ``<= t`` only; no order until the window is full).  Buy USDT
    when ``z <= -buy_z``, sell when ``z >= sell_z``.  :meth:`fit` tries every
    ``window`` x ``buy_z`` x ``sell_z`` of the grids on the train split, with the
    env's fill rules, and keeps the best train return (cash if none beats it).  Like the
    band rule it decides every ``c`` bars, ``c`` tuned on train over ``cadences``.
    Windows are durations (1, 3, 7 and 14 days), in bars of the split's bar size
    (96 ... 1,344 at 15m; 2 bars at least), or bar counts when given as numbers.
    With ``window``, ``buy_z`` and ``sell_z`` all given, nothing is fitted (the cadence is
    the run's decision interval).
    """

    name = "premium_zscore"

    def __init__(self, rules: ExecutionRules = ExecutionRules(), *, clock: DecisionClock = DecisionClock(),
                 seed: int = 0, initial_krw: float = default_of(EnvConfig, "initial_krw"),
                 windows: Sequence[int | str] = ("1d", "3d", "7d", "14d"),
                 z_levels: Sequence[float] = (0.5, 1.0, 1.5, 2.0, 2.5),
                 cadences: Sequence[int] | None = None, window: int | str | None = None,
                 buy_z: float | None = None, sell_z: float | None = None) -> None:
        super().__init__(rules, clock=clock, seed=seed, initial_krw=initial_krw)
        if not windows:
            raise ValueError("premium_zscore needs at least one window")
        for w in windows:
            if isinstance(w, str):
                parse_duration(w, "premium_zscore window")
            elif int(w) < 2:
                raise ValueError(f"premium_zscore windows={windows!r} must be durations or bar counts >= 2")
        self.windows = tuple(w if isinstance(w, str) else int(w) for w in windows)
        self.given = None if window is None or buy_z is None or sell_z is None else (window, float(buy_z), float(sell_z))
        self.z_levels = tuple(float(z) for z in z_levels)
        self._cadences_given = cadences
        self.cadence, self.cadences = _cadences(clock, cadences)  # the run's interval until fit tunes it
        self.window: int | None = None
        self.buy_z: float | None = None
        self.sell_z: float | None = None
        self.train_return: float | None = None

    @staticmethod
    def _bars(window: int | str, market: MarketTensors) -> int:
        return bars_in(window, bar_of_minutes(market.bar_minutes), 2) if isinstance(window, str) else int(window)

    def fit(self, train: MarketTensors) -> None:
        self.cadence, self.cadences = _cadences(self.clock.at(train.bar_minutes), self._cadences_given)
        if self.given is not None:  # the user's window and levels: nothing is learned
            window, self.buy_z, self.sell_z = self.given
            self.window = self._bars(window, train)
            return
        require_train(train, "premium_zscore")
        best = (0.0, None)
        combos = [(b, s) for b in self.z_levels for s in self.z_levels]
        for window in sorted({self._bars(w, train) for w in self.windows}):
            z = rolling_zscore(train.premium, window)[train.valid_from:-1]
            signals = [np.where(z <= -b, 1, np.where(z >= s, 0, -1)) for b, s in combos]
            for cadence in self.cadences:
                log_ret = _signal_log_returns(train, signals, self.rules, cadence)
                i = int(np.argmax(log_ret))
                if log_ret[i] > best[0]:
                    best = (float(log_ret[i]), (window, *combos[i], cadence))
        if best[1] is None:
            log.info("premium_zscore: no window / z levels beat cash on train; the baseline holds cash")
            self.window, self.buy_z, self.sell_z, self.train_return = (self._bars(self.windows[0], train), math.inf,
                                                                       math.inf, 0.0)
        else:
            self.window, self.buy_z, self.sell_z, self.cadence = best[1]
            self.train_return = float(math.expm1(best[0]))
        log.info("premium_zscore fit on train: window %d bars, buy at z <= -%.2f, sell at z >= %.2f, deciding "
                 "every %d bar(s) (train return %.4f)", self.window, self.buy_z, self.sell_z, self.cadence,
                 self.train_return)

    def signals(self, market: MarketTensors) -> Tensor:
        """The rule's action at every bar, whatever its cadence (what a teacher labels any decision with)."""
        if self.window is None:
            raise RuntimeError("premium_zscore used before fit(); call fit(train) first")
        z = rolling_zscore(market.premium, self.window)
        out = np.full(z.shape, HOLD, dtype=np.int64)
        out[z <= -self.buy_z] = BUY  # NaN (window not full yet) compares False: hold
        out[z >= self.sell_z] = SELL
        return torch.as_tensor(out, device=market.device)

    def actions(self, market: MarketTensors) -> Tensor:
        return _on_cadence(self.signals(market), market.valid_from, DecisionClock(decision_every=int(self.cadence)))

    def params(self) -> dict[str, Any]:
        """The window (bars), z levels (inf = never, i.e. cash) and cadence fit on train."""
        return {"window_bars": self.window, "buy_z_at_or_below": _json_float(-self.buy_z if self.buy_z is not None else None),
                "sell_z_at_or_above": _json_float(self.sell_z), "decision_every_bars": self.cadence,
                "train_return": self.train_return}


def rolling_zscore(premium: Tensor, window: int) -> np.ndarray:
    """Trailing z-score of ``premium`` over ``window`` bars (current bar included); NaN until full."""
    series = pd.Series(premium.to(torch.float64).cpu().numpy())
    roll = series.rolling(window, min_periods=window)
    sd = roll.std(ddof=0)
    z = (series - roll.mean()) / sd.where(sd > 1e-12)
    return z.to_numpy()


def _json_float(x: float | None) -> float | str | None:
    """A level for JSON: +-inf as the strings "inf" / "-inf" (JSON has no infinity)."""
    if x is None or math.isfinite(x):
        return x
    return "inf" if x > 0 else "-inf"


def _cadences(clock: DecisionClock, cadences: Sequence[int] | None) -> tuple[int, tuple[int, ...]]:
    """The run's decision interval and the cadences a rule is tuned over (default: 1 and the run's).

    A clock given as a duration (``"4h"``) is not known in bars before :meth:`fit` sees the bar size: 1 until then.
    """
    every = clock.bars_per_decision if clock.resolved else 1
    if every < 1:
        raise ValueError(f"decision_every={every} must be >= 1")
    tried = tuple(sorted({int(c) for c in cadences})) if cadences else tuple(sorted({1, every}))
    if min(tried) < 1:
        raise ValueError(f"cadences={cadences!r} must be bar counts >= 1")
    return every, tried


def _on_cadence(actions: Tensor, valid_from: int, clock: DecisionClock) -> Tensor:
    """``actions`` kept on the bars ``clock`` decides on, counted from ``valid_from`` (a policy's decision bars);
    hold elsewhere."""
    if clock.bars_per_decision == 1:
        return actions
    bars = torch.arange(actions.shape[0], device=actions.device)
    off = ~clock.decides(bars - valid_from) | (bars < valid_from)
    return torch.where(off, torch.full_like(actions, HOLD), actions)


def band_actions(premium: Tensor, buy_threshold: float, sell_threshold: float) -> Tensor:
    """The band rule's decision -- its one home: buy at a premium at or below ``buy_threshold``, sell at or above
    ``sell_threshold``, hold otherwise (and on NaN); stateless, from the premium at each close.

    The backtest, the grid of the fit and the live rule (:class:`~kpremia.live.loop.policy.PremiumThresholdRule`,
    through :meth:`PremiumThreshold.decide`) all ask it.
    """
    out = torch.full(premium.shape, HOLD, dtype=torch.long, device=premium.device)
    out[premium <= buy_threshold] = BUY
    out[premium >= sell_threshold] = SELL
    return out


def _threshold_log_returns(train: MarketTensors, buy: np.ndarray, sell: np.ndarray,
                           rules: ExecutionRules, cadence: int = 1) -> np.ndarray:
    """Log return on ``train`` of each premium threshold pair (see :func:`_signal_log_returns`)."""
    premium = train.premium.to(torch.float64).cpu()[train.valid_from:-1]  # decisions at closes start .. T-2
    signals = [_as_signal(band_actions(premium, float(b), float(s)).numpy()) for b, s in zip(buy, sell)]
    return _signal_log_returns(train, signals, rules, cadence)


def _as_signal(actions: np.ndarray) -> np.ndarray:
    """``hold_buy_sell`` actions as a signal path: 1 buy (all in), 0 sell (all out), -1 hold."""
    return np.where(actions == BUY, 1, np.where(actions == SELL, 0, -1))


def _signal_log_returns(train: MarketTensors, signals: Sequence[np.ndarray],
                        rules: ExecutionRules, cadence: int = 1) -> np.ndarray:
    """Log return on ``train`` of each signal path (vectorised over bars; no minimum order).

    A signal path has one entry per decision at closes ``valid_from .. T - 2``:
    1 buy (all in), 0 sell (all out), -1 hold.  The position after the decision
    at close ``t`` is the latest non-hold signal up to ``t``; it is held from the
    open of ``t + 1``.  With ``cadence`` c only every c-th entry (from the first)
    is a decision; the others hold.  Fill factors come from
    :func:`kpremia.eval.oracle.fill_factors`, i.e. from the env's execution rules.
    """
    if cadence > 1:
        keep = DecisionClock(decision_every=int(cadence)).decides(np.arange(len(signals[0]) if len(signals) else 0))
        signals = [np.where(keep, signal, -1) for signal in signals]
    start = train.valid_from
    usdt_per_krw, krw_per_usdt, _ = fill_factors(train.open, rules)
    log_buy, log_sell = np.log(usdt_per_krw[start + 1:]), np.log(krw_per_usdt[start + 1:])
    log_close = np.log(train.close.to(torch.float64).cpu().numpy()[start:])
    step_hold = np.diff(log_close)  # USDT held over bar s: close[s-1] -> close[s]
    out = np.empty(len(signals))
    for i, signal in enumerate(signals):
        idx = np.arange(len(signal))
        last = np.maximum.accumulate(np.where(signal >= 0, idx, -1))
        pos = np.where(last >= 0, signal[np.maximum(last, 0)], 0)  # position during bar s = pos[s-1]
        prev = np.concatenate([[0], pos[:-1]])
        inc = np.where(pos == 1, np.where(prev == 1, step_hold, log_buy + log_close[1:]),
                       np.where(prev == 1, log_sell - log_close[:-1], 0.0))
        out[i] = inc.sum()
    return out


@BASELINES.register("oracle")
class Oracle(Baseline):
    """The hindsight oracle: it sees the whole split it is asked to act on (a ceiling, not a trader)."""

    name = "oracle"

    def actions(self, market: MarketTensors) -> Tensor:
        return hindsight_oracle(market, self.rules, initial_krw=self.initial_krw).actions


def fit_baselines(baselines: Mapping[str, Baseline], train: MarketTensors, *, what: str = "the train split") -> None:
    """Fit every baseline on ``train``, saying so first (the rules' grids take seconds on a long split)."""
    if not baselines:
        return
    started = time.perf_counter()
    log.info("fitting the baselines on %s (%s bars): %s ...", what, f"{int(train.n_bars - train.valid_from):,}",
             ", ".join(baselines))
    for baseline in baselines.values():
        baseline.fit(train)
    log.info("baselines fit in %.1f s", time.perf_counter() - started)


def baseline_params(baselines: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{name: params}`` of fitted baselines that chose something on train (for ``summary.json``)."""
    out = {}
    for name, baseline in baselines.items():
        params = getattr(baseline, "params", None)
        if callable(params):
            out[name] = params()
    return out


def make_baselines(names: Iterable[str], env: EnvConfig | Mapping[str, Any] | None = None, seed: int = 0,
                   options: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Baseline]:
    """Build baselines by name with the run's execution rules, decision clock, starting cash and seed.

    ``env`` is the run's env config (its :attr:`~EnvConfig.execution` and
    :attr:`~EnvConfig.clock` reach every baseline, so fitted thresholds and the oracle
    price fills as the agent's backtest does); ``options[name]`` adds per-baseline options.
    """
    env = EnvConfig() if env is None else EnvConfig.of(env)
    return {name: BASELINES.get(name)(env.execution, clock=env.clock, seed=seed, initial_krw=env.initial_krw,
                                      **dict((options or {}).get(name, {})))
            for name in names}
