"""torchmetrics metrics of trading paths, correct under DDP.

Why per-path sufficient statistics: a validation or test run evaluates whole
equity paths (one per env, all starting at the split's first valid bar).  Each
path is reduced to a handful of numbers the moment it arrives (its return,
Sharpe, drawdown, ...); the metric states are *sums* of those numbers plus the
path count, so ``dist_reduce_fx="sum"`` merges ranks exactly, in any order, and
no rank ever needs another rank's raw path.  ``compute`` reports the mean over
paths (one path: its own value) -- the average over seeds of a stochastic
policy -- except the hit rate, which pools round trips over all paths.

The formulas live in :mod:`kpremia.eval.formulas`.  Every reported number
(validation, ``test``, ``validate``, the baselines) comes from a
:class:`PortfolioMetrics` instance: :func:`compute_metrics` is a one-shot
``update`` + ``compute`` of that class with ``sync_on_compute=False`` (each
caller passes the paths it has; the validation loop reduces across ranks through
``self.log(sync_dist=True)``).

Metric keys: ``return``, ``sharpe``, ``sortino``, ``max_drawdown``, ``turnover``,
``hit_rate``, ``n_trades``, ``fees_krw`` (+ ``round_trips``, the mean number of
closed round trips per path, so a hit rate of 0 with no trips is readable).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor
from torchmetrics import Metric

from kpremia.core.bars import DEFAULT_BAR_MINUTES
from kpremia.eval import formulas as F

METRIC_KEYS = ("return", "sharpe", "sortino", "max_drawdown", "turnover", "hit_rate", "n_trades", "fees_krw")

class _Paths:
    """The inputs of one update, as ``[N, T]`` float64, with round trips computed once."""

    def __init__(self, bar_minutes: float, position_eps: float, **inputs: Tensor | None) -> None:
        self.bar_minutes = bar_minutes
        self.position_eps = position_eps
        self.given = {k: F.as_paths(v) for k, v in inputs.items() if v is not None}
        shapes = {k: tuple(v.shape) for k, v in self.given.items()}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"paths must share one shape [N, T]; got {shapes}")
        self._trips: tuple[Tensor, Tensor] | None = None

    def __getitem__(self, key: str) -> Tensor:
        return self.given[key]

    def trips(self) -> tuple[Tensor, Tensor]:
        if self._trips is None:
            self._trips = F.round_trips(self["values_krw"], self["usdt_weight"], self.position_eps)
        return self._trips


# Per-path statistic -> (inputs it needs, how to compute it).  Summed over paths
# (and ranks); :func:`summarise` turns the sums into the reported metrics.
_STATISTICS: dict[str, tuple[tuple[str, ...], Callable[[_Paths], Tensor]]] = {
    "return": (("values_krw",), lambda p: F.total_return(p["values_krw"])),
    "sharpe": (("values_krw",), lambda p: F.sharpe_ratio(p["values_krw"], p.bar_minutes)),
    "sortino": (("values_krw",), lambda p: F.sortino_ratio(p["values_krw"], p.bar_minutes)),
    "max_drawdown": (("values_krw",), lambda p: F.max_drawdown(p["values_krw"])),
    "turnover": (("usdt_weight", "traded"), lambda p: F.turnover(p["usdt_weight"], p["traded"])),
    "n_trades": (("traded",), lambda p: F.n_trades(p["traded"])),
    "fees_krw": (("fees_krw",), lambda p: F.fees_paid(p["fees_krw"])),
    "wins": (("values_krw", "usdt_weight"), lambda p: p.trips()[0]),
    "round_trips": (("values_krw", "usdt_weight"), lambda p: p.trips()[1]),
}
_MEAN_KEYS = ("return", "sharpe", "sortino", "max_drawdown", "turnover", "n_trades", "fees_krw", "round_trips")
# Reported metric -> the per-path statistics it is made of.
_NEEDS = {**{k: (k,) for k in _MEAN_KEYS}, "hit_rate": ("wins", "round_trips")}


def path_statistics(
    stats: tuple[str, ...] | None = None,
    *,
    values_krw: Tensor | None = None,
    usdt_weight: Tensor | None = None,
    traded: Tensor | None = None,
    fees_krw: Tensor | None = None,
    bar_minutes: float = DEFAULT_BAR_MINUTES,
    position_eps: float = F.POSITION_EPS,
) -> dict[str, Tensor]:
    """Per-path statistics ``{name: Tensor[N]}`` (all of them when ``stats`` is None)."""
    paths = _Paths(bar_minutes, position_eps, values_krw=values_krw, usdt_weight=usdt_weight, traded=traded,
                   fees_krw=fees_krw)
    out: dict[str, Tensor] = {}
    for name in stats or tuple(_STATISTICS):
        needs, fn = _STATISTICS[name]
        missing = [k for k in needs if k not in paths.given]
        if missing:
            raise ValueError(f"statistic {name!r} needs {', '.join(missing)}; pass it to update()/compute_metrics()")
        out[name] = fn(paths)
    return out


def summarise(sums: Mapping[str, Tensor], n_paths: Tensor, keys: tuple[str, ...] | None = None) -> dict[str, Tensor]:
    """Reported metrics from statistics summed over paths: means, and the pooled hit rate."""
    out: dict[str, Tensor] = {}
    for key in keys or (*METRIC_KEYS, "round_trips"):
        if key == "hit_rate":
            out[key] = F.hit_rate(sums["wins"], sums["round_trips"])
        else:
            out[key] = F.safe_div(sums[key], n_paths)  # a mean; 0 before any path
    return out


def compute_metrics(
    values_krw: Tensor,
    *,
    usdt_weight: Tensor,
    traded: Tensor,
    fees_krw: Tensor,
    bar_minutes: float = DEFAULT_BAR_MINUTES,
    position_eps: float = F.POSITION_EPS,
) -> dict[str, float]:
    """All metrics of one path ``[T]`` (or the mean over paths ``[N, T]``) as floats.

    Computed by a :class:`PortfolioMetrics` (local: no cross-process sync).
    ``values_krw[0]`` is the value at the start, before any fill; see
    :mod:`kpremia.eval.formulas` for the meaning of each input and metric.
    """
    metric = PortfolioMetrics(bar_minutes=bar_minutes, position_eps=position_eps, sync_on_compute=False)
    metric.update(values_krw, usdt_weight=usdt_weight, traded=traded, fees_krw=fees_krw)
    return {k: float(v) for k, v in metric.compute().items()}


class PortfolioMetrics(Metric):
    """All trading metrics at once; ``compute()`` returns ``{key: scalar tensor}``.

    ``update(values_krw, usdt_weight=..., traded=..., fees_krw=...)`` with whole
    paths ``[T]`` or ``[N, T]``.  States are float64 sums (``dist_reduce_fx="sum"``).
    """

    is_differentiable = False
    full_state_update = False
    higher_is_better: bool | None = None
    keys: tuple[str, ...] = (*METRIC_KEYS, "round_trips")

    def __init__(self, bar_minutes: float = DEFAULT_BAR_MINUTES, position_eps: float = F.POSITION_EPS,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        F.periods_per_year(bar_minutes)  # validate early
        self.bar_minutes = float(bar_minutes)
        self.position_eps = float(position_eps)
        self._stats = tuple(dict.fromkeys(s for k in self.keys for s in _NEEDS[k]))
        for name in self._stats:
            self.add_state(f"sum_{name}", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n_paths", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self,
        values_krw: Tensor | None = None,
        usdt_weight: Tensor | None = None,
        traded: Tensor | None = None,
        fees_krw: Tensor | None = None,
    ) -> None:
        stats = path_statistics(self._stats, values_krw=values_krw, usdt_weight=usdt_weight, traded=traded,
                                fees_krw=fees_krw, bar_minutes=self.bar_minutes, position_eps=self.position_eps)
        for name, per_path in stats.items():
            state = getattr(self, f"sum_{name}")
            setattr(self, f"sum_{name}", state + per_path.sum().to(state.device))
        self.n_paths = self.n_paths + next(iter(stats.values())).shape[0]

    def compute(self) -> dict[str, Tensor]:
        sums = {name: getattr(self, f"sum_{name}") for name in self._stats}
        return summarise(sums, self.n_paths, self.keys)


class _SingleMetric(PortfolioMetrics):
    """One key of :class:`PortfolioMetrics`; only the states that key needs."""

    key: str = ""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.keys = (cls.key,)

    def compute(self) -> Tensor:
        return super().compute()[self.key]


class TotalReturn(_SingleMetric):
    """Mean total return ``V_end / V_start - 1``.  Needs ``values_krw``."""

    key = "return"
    higher_is_better = True


class SharpeRatio(_SingleMetric):
    """Mean annualised Sharpe ratio of per-bar returns.  Needs ``values_krw``."""

    key = "sharpe"
    higher_is_better = True


class SortinoRatio(_SingleMetric):
    """Mean annualised Sortino ratio (target 0).  Needs ``values_krw``."""

    key = "sortino"
    higher_is_better = True


class MaxDrawdown(_SingleMetric):
    """Mean maximum drawdown, a positive fraction.  Needs ``values_krw``."""

    key = "max_drawdown"
    higher_is_better = False


class Turnover(_SingleMetric):
    """Mean fraction of the portfolio traded over the period.  Needs ``usdt_weight``, ``traded``."""

    key = "turnover"


class HitRate(_SingleMetric):
    """Fraction of closed round trips with a positive return, pooled over paths.

    Needs ``values_krw`` and ``usdt_weight``.
    """

    key = "hit_rate"
    higher_is_better = True


class NumTrades(_SingleMetric):
    """Mean number of fills per path.  Needs ``traded``."""

    key = "n_trades"


class FeesPaid(_SingleMetric):
    """Mean total fees per path (KRW).  Needs ``fees_krw``."""

    key = "fees_krw"
    higher_is_better = False
