"""The model-based trader (baseline ``model_based``): a causal filter plus a dynamic programme.

Why: the band rule sees only the premium's level; the premium is a sum of parts
that revert at different speeds (:mod:`kpremia.eval.premium_model`).  A trader
that filters those parts (:mod:`kpremia.eval.regime_filter`) and plans with
them under the run's fees and spread (:mod:`kpremia.eval.model_dp`) says how much
a causal trader can take from the market: on the synthetic market, with the
generator's own parameters, it is the *achievable ceiling* beside the hindsight
oracle; on a user's file it fits the model on the train split (a strong classical
baseline).

Decisions: at the close of bar ``t`` the filter's state (bars ``<= t`` only) gives the
advantage of holding USDT over KRW after the decision; it buys where that exceeds
the log cost of a buy at the close's price, and sells where it is below minus the
cost of a sell (costs from :func:`kpremia.eval.oracle.fill_factors`, i.e. the env's
execution rules).  Like the band rule its actions are stateless all-in / all-out
signals, kept on every ``c``-th bar (the run's decision interval); the order fills
at the next bar's open through the same BatchedEnv as every trader.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kpremia.core.config import default_of
from kpremia.core.registry import BASELINES
from kpremia.data.tensors import MarketTensors
from kpremia.envs.action_schemes import BUY, HOLD, SELL
from kpremia.envs.clock import DecisionClock
from kpremia.envs.config import EnvConfig
from kpremia.envs.execution import ExecutionRules
from kpremia.eval.baselines import Baseline, _cadences, _on_cadence, require_train
from kpremia.eval.model_dp import Grid, Plan, plan
from kpremia.eval.oracle import fill_factors
from kpremia.eval.premium_model import PremiumModel, sample_hours_kst
from kpremia.eval.regime_filter import run_filter

log = logging.getLogger(__name__)

NAME = "model_based"
MODEL_SOURCES = ("auto", "synthetic", "fit")


def fill_costs(price: np.ndarray, rules: ExecutionRules) -> tuple[np.ndarray, np.ndarray]:
    """Log cost of a buy and of a sell at ``price`` (positive numbers), from the execution rules."""
    usdt_per_krw, krw_per_usdt, _ = fill_factors(torch.as_tensor(np.asarray(price, dtype=np.float64)), rules)
    return -np.log(usdt_per_krw * price), -np.log(krw_per_usdt / price)


def model_signals(model: PremiumModel, the_plan: Plan, premium: np.ndarray, times: np.ndarray, close: np.ndarray,
                  rules: ExecutionRules) -> np.ndarray:
    """``hold_buy_sell`` signals at every bar for premia ``[T]`` or ``[T, D]`` (D markets on the same bar times).

    Causal: the filter runs forward, and the decision at bar ``t`` uses its state at
    ``t`` and the close of ``t`` (for the fill's cost) only.
    """
    premium = np.asarray(premium, dtype=np.float64)
    squeeze = premium.ndim == 1
    premium = premium[:, None] if squeeze else premium
    close = np.asarray(close, dtype=np.float64).reshape(premium.shape)
    hours = sample_hours_kst(times, model.bar_minutes)
    out = run_filter(model, premium, hours)
    n_bars, n_mk = premium.shape
    flat = lambda a: a.reshape(n_bars * n_mk, *a.shape[2:])  # noqa: E731
    transient = out.fast + out.rise
    adv = the_plan.lookup(np.repeat(np.floor(hours).astype(np.int64), n_mk), flat(out.p_regime), flat(out.slow),
                          flat(transient), flat(out.jump)).reshape(n_bars, n_mk)
    buy_cost, sell_cost = fill_costs(close.ravel(), rules)
    buy_cost, sell_cost = buy_cost.reshape(close.shape), sell_cost.reshape(close.shape)
    signals = np.where(adv > buy_cost, BUY, np.where(adv < -sell_cost, SELL, HOLD)).astype(np.int64)
    return signals[:, 0] if squeeze else signals


@functools.lru_cache(maxsize=16)
def _plan_for(model: PremiumModel, cadence: int, buy_cost: float, sell_cost: float,
              grid_sizes: tuple[tuple[str, int], ...]) -> Plan:
    """The plan for a model, cadence and costs, computed once per process (a test of many draws of one
    market, or a teacher and a report on the same market, reuse it)."""
    return plan(model, cadence, buy_cost, sell_cost, grid=Grid.for_model(model, **dict(grid_sizes)))


def model_options(manifest: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``make_baselines`` options for ``model_based``: the generator's parameters when the data is synthetic."""
    manifest = manifest or {}
    if manifest.get("source") == "synthetic" and isinstance(manifest.get("params"), Mapping):
        return {NAME: {"synthetic": dict(manifest["params"])}}
    return {}


@BASELINES.register(NAME)
class ModelBased(Baseline):
    """Regime-switching filter + dynamic programme over the premium model (see the module docstring).

    Args:
        model: ``"synthetic"`` (the generator's parameters, given as ``synthetic``), ``"fit"``
            (estimated on the train split) or ``"auto"`` (synthetic when given, else fit).
        synthetic: the synthetic generator's parameters (the data manifest's ``params``).
        grid: sizes of the planner's grid ``{n_slow, n_fast, n_jump}``.
    """

    name = NAME

    def __init__(self, rules: ExecutionRules = ExecutionRules(), *, clock: DecisionClock = DecisionClock(),
                 seed: int = 0, initial_krw: float = default_of(EnvConfig, "initial_krw"), model: str = "auto",
                 synthetic: Mapping[str, Any] | None = None, grid: Mapping[str, int] | None = None) -> None:
        super().__init__(rules, clock=clock, seed=seed, initial_krw=initial_krw)
        if model not in MODEL_SOURCES:
            raise ValueError(f"model_based model={model!r}; use one of {', '.join(MODEL_SOURCES)}")
        if model == "synthetic" and synthetic is None:
            raise ValueError("model_based model='synthetic' needs the generator's parameters (synthetic=...)")
        self.source = "synthetic" if model == "synthetic" or (model == "auto" and synthetic is not None) else "fit"
        self.synthetic = dict(synthetic) if synthetic is not None else None
        self.grid_sizes = dict(grid or {})
        self.cadence = 1
        self.model: PremiumModel | None = None
        self.plan: Plan | None = None

    def fit(self, train: MarketTensors) -> None:
        """Resolve the cadence, get the model (generator's or fitted on train) and plan."""
        self.cadence, _ = _cadences(self.clock.at(train.bar_minutes), None)
        if self.source == "synthetic":
            self.model = PremiumModel.from_synthetic(self.synthetic or {}, train.bar_minutes)
        else:
            require_train(train, NAME)
            start = train.valid_from
            self.model = PremiumModel.fit(train.premium[start:].to(torch.float64).cpu().numpy(), train.times[start:],
                                          train.bar_minutes)
        price = float(np.median(train.close.to(torch.float64).cpu().numpy()))
        # costs to 1e-7 (a thousandth of a basis point): draws of one market share a plan
        buy_cost, sell_cost = (round(float(c[0]), 7) for c in fill_costs(np.array([price]), self.rules))
        self.plan = _plan_for(self.model, self.cadence, buy_cost, sell_cost, tuple(sorted(self.grid_sizes.items())))
        log.info("model_based (%s model): planned every %d h over %d value iterations", self.source, self.plan.hours,
                 self.plan.iterations)

    def signals(self, market: MarketTensors) -> Tensor:
        """The trader's action at every bar, whatever its cadence (what a teacher labels any decision with)."""
        if self.model is None or self.plan is None:
            raise RuntimeError("model_based used before fit(); call fit(train) first")
        out = model_signals(self.model, self.plan, market.premium.to(torch.float64).cpu().numpy(), market.times,
                            market.close.to(torch.float64).cpu().numpy(), self.rules)
        out[: market.valid_from] = HOLD
        return torch.as_tensor(out, device=market.device)

    def actions(self, market: MarketTensors) -> Tensor:
        return _on_cadence(self.signals(market), market.valid_from, DecisionClock(decision_every=int(self.cadence)))

    def params(self) -> dict[str, Any]:
        """Where the model came from, its values, and the planner's step."""
        if self.model is None:
            return {"model": self.source}
        return {"model": self.source, "decision_every_bars": self.cadence,
                "plan_step_hours": self.plan.hours if self.plan else None,
                "premium_model": {k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                                  for k, v in self.model.to_dict().items()}}
