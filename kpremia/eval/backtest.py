"""Backtests: play a policy or a baseline over a whole split through the BatchedEnv.

Why through the env: the agent is trained, validated and tested in
:class:`kpremia.envs.batched.BatchedEnv`; a baseline or a report that simulated
fills its own way could flatter one side.  Here every trader -- the policy, the
baselines, the oracle's action sequence -- runs in a sequential env
(``random_start=False``, ``max_steps=None``: from ``market.valid_from`` to the
split's last bar) with the run's market model: the :class:`~kpremia.envs.config.EnvConfig`
passed whole (its execution rules, reward rule and action scheme; a policy acts
on its decision clock and sends no order in between).

The trace is a pandas DataFrame with one row per bar ``t`` from ``valid_from`` to
the last bar (``n_bars - valid_from`` rows).  A row describes bar ``t``:

* ``time`` (bar open time, UTC), ``bar`` (index ``t``), ``price`` (close), ``premium``;
* ``fill_price``, ``fee_krw``, ``traded``: the fill at the OPEN of ``t`` (from the
  decision at the close of ``t - 1``; NaN / 0 / False when nothing filled);
* ``position`` (USDT weight) and ``portfolio_value_krw``: at the CLOSE of ``t``,
  after that fill; the first row is the starting account (all KRW);
* ``reward``: the env's reward of the step that ended at this close (0 on the first row);
* ``action``: the action decided at the close of ``t`` (``<NA>`` on the last row:
  there is no next open to fill at; ``-1`` = no order, e.g. between a policy's
  decisions when it acts every ``decision_every`` bars);
* ``ruined``: True from the first close at which the value fell under the run's
  ruin level (``ruin_fraction * initial``).

Every trace covers the whole split, so the rows of one table compare the same
period: a ruined trader is flagged (``ruined``, and its max drawdown says how
deep it went) but keeps trading to the end, whereas a training episode
terminates at ruin.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from kpremia.core.console import Progress
from kpremia.core.console import progress as console_progress
from kpremia.data.tensors import MarketTensors, concat_markets
from kpremia.envs.batched import BatchedEnv
from kpremia.envs.clock import DecisionClock
from kpremia.envs.config import EnvConfig
from kpremia.eval.metrics import compute_metrics

log = logging.getLogger(__name__)

ObsDict = dict[str, Tensor]
ActFn = Callable[[ObsDict, dict[str, Tensor]], Tensor]
PolicyActFn = Callable[[ObsDict], Tensor]
TRACE_COLUMNS = ("time", "bar", "price", "premium", "action", "position", "fill_price", "fee_krw", "traded",
                 "portfolio_value_krw", "reward", "ruined")
EnvLike = EnvConfig | Mapping[str, Any] | None


def env_config(env: EnvLike) -> EnvConfig:
    """``env`` as the typed config (``None``: the defaults)."""
    return EnvConfig() if env is None else EnvConfig.of(env)


def make_sequential_env(market: MarketTensors, env: EnvLike = None, *, n_envs: int = 1, seed: int = 0,
                        action_scheme: Any = None, starts: Sequence[int] | None = None) -> BatchedEnv:
    """A BatchedEnv whose envs all run ``market`` from ``valid_from`` to its last bar, one bar per step.

    The env config's execution rules, reward rule and action scheme (or
    ``action_scheme``), one bar per step: a policy that decides every
    ``decision_every`` bars is played by :func:`run_policy_backtest` with "no
    order" actions in between, so traces stay bar by bar.  Ruin is flagged
    (``info["ruined"]``) but does not end the run.  ``starts``: each env's first bar (markets
    stacked by :func:`kpremia.data.tensors.concat_markets`).
    """
    env = env_config(env)
    return BatchedEnv(market, n_envs, rules=env.execution, clock=DecisionClock(), reward=env.reward_rule,
                      action_scheme=env.action_scheme if action_scheme is None else action_scheme,
                      initial_krw=env.initial_krw, ruin_fraction=env.ruin_fraction, max_steps=None,
                      ruin_terminates=False, random_start=False, seed=seed, starts=starts)


def run_backtest(market: MarketTensors, act: ActFn | Tensor, env: EnvLike = None, *,
                 seed: int = 0) -> pd.DataFrame:
    """Trace of one env over the whole split.

    ``act`` is either a callable ``act(obs, info) -> LongTensor[1]`` (``info`` is
    the previous step's info dict, empty at the first step) or a precomputed
    action sequence ``LongTensor[T]`` indexed by bar (``act[t]`` is played at the
    close of bar ``t``), in the encoding of the env's action scheme.
    """
    if isinstance(act, Tensor):
        return run_action_sequences(market, act.reshape(1, -1), env, seed=seed)[0]
    sim = make_sequential_env(market, env, n_envs=1, seed=seed)
    return _run(sim, lambda k, obs, info: act(obs, info))[0]


def run_action_sequences(market: MarketTensors, actions: Tensor, env: EnvLike = None, *, seed: int = 0,
                         action_scheme: Any = None, progress: str | None = None,
                         names: list[str] | None = None) -> list[pd.DataFrame]:
    """One trace per row of ``actions`` ``[N, T]`` (indexed by bar), all N in one BatchedEnv.

    The envs are independent accounts stepped together, so N precomputed traders
    cost about one env loop.
    """
    if actions.ndim != 2 or actions.shape[1] != market.n_bars:
        raise ValueError(f"action sequences have shape {tuple(actions.shape)}; expected [N, {market.n_bars}] "
                         "(one action per bar of the split)")
    sim = make_sequential_env(market, env, n_envs=actions.shape[0], seed=seed, action_scheme=action_scheme)
    by_step = actions.to(device=sim.device, dtype=torch.long).t()[market.valid_from:]  # [steps, N]
    return _run(sim, lambda k, obs, info: by_step[k], progress=progress, names=names)


def run_policy_backtest(policy_act_fn: PolicyActFn, market: MarketTensors, env: EnvLike = None, *,
                        n_envs: int = 1, seed: int = 0, progress: str | None = None) -> list[pd.DataFrame]:
    """One trace per env for a torch policy ``act(obs) -> LongTensor[n_envs]``.

    All ``n_envs`` envs start at ``valid_from`` together; with a stochastic policy
    (sampling with its own seeded generator) they are ``n_envs`` seeds of the
    same policy.  Acting runs under ``torch.inference_mode``; putting the module
    in eval mode is the caller's job (the PPO module's ``act`` does it).

    The policy acts on the env's decision clock (every ``decision_every`` bars,
    as it was trained) and sends no order on the bars in between.  ``progress``: a label for
    :func:`kpremia.core.console.progress` (a bar on a terminal, a line in a log), None for silence.
    """
    config = env_config(env).in_bars(market.bar_minutes)  # a duration ("4h") becomes bars of this split's bar size
    clock = config.clock
    sim = make_sequential_env(market, config, n_envs=n_envs, seed=seed)
    no_order = torch.full((n_envs,), -1, dtype=torch.long, device=sim.device)

    def choose(k: int, obs: ObsDict, info: dict[str, Tensor]) -> Tensor:
        if not clock.decides(k):
            return no_order
        with torch.inference_mode():
            return policy_act_fn(obs)

    return _run(sim, choose, progress=progress)


def run_policy_backtests(policy_act_fn: PolicyActFn, markets: Sequence[MarketTensors], env: EnvLike = None, *,
                         progress: str | None = None) -> list[pd.DataFrame]:
    """One trace per market for a deterministic torch policy, the markets played side by side.

    The traces :func:`run_policy_backtest` gives on each market in turn (one env per market: the
    envs are independent accounts and the policy reads each row of its batch alone), for about the
    price of one market: the env loop, not the arithmetic, is what a backtest costs.  Validation
    over many market draws and ``test`` over many unseen markets go through here.  Markets of
    different lengths are played in groups of one length.
    """
    traces: list[pd.DataFrame | None] = [None] * len(markets)
    for group in _same_length_groups(markets):
        parts = [markets[i] for i in group]
        stacked, offsets = concat_markets(parts)
        config = env_config(env).in_bars(stacked.bar_minutes)  # a duration ("4h") becomes bars of this size
        clock = config.clock
        sim = make_sequential_env(stacked, config, n_envs=len(parts),
                                  starts=[o + m.valid_from for o, m in zip(offsets, parts, strict=True)])
        no_order = torch.full((len(parts),), -1, dtype=torch.long, device=sim.device)

        def choose(k: int, obs: ObsDict, info: dict[str, Tensor]) -> Tensor:
            if not clock.decides(k):
                return no_order
            with torch.inference_mode():
                return policy_act_fn(obs)

        for i, trace in zip(group, _run(sim, choose, parts=parts, progress=progress), strict=True):
            traces[i] = trace
    return [t for t in traces if t is not None]


def run_baseline_backtest(baseline: Any, market: MarketTensors, env: EnvLike = None) -> pd.DataFrame:
    """Trace of a (fitted) baseline: its ``hold_buy_sell`` actions under the run's execution rules."""
    return run_baseline_backtests({"baseline": baseline}, market, env)["baseline"]


def run_baseline_backtests(baselines: Mapping[str, Any], market: MarketTensors,
                           env: EnvLike = None, *, progress: str | None = None) -> dict[str, pd.DataFrame]:
    """Traces of several (fitted) baselines, played together in one BatchedEnv (one env each).

    Baselines act in ``hold_buy_sell`` whatever the run's scheme; the fills, fees
    and values depend only on the execution rules, which are the run's.
    """
    return run_baseline_backtests_on_markets(baselines, [market], env, progress=progress)[0]


def run_baseline_backtests_on_markets(baselines: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                                      markets: Sequence[MarketTensors], env: EnvLike = None, *,
                                      progress: str | None = None) -> list[dict[str, pd.DataFrame]]:
    """Traces of (fitted) baselines on each market, every (market, baseline) one env of one BatchedEnv.

    ``baselines``: the same traders on every market (a rule fit once), or one mapping per market
    (each draw's rules fit on its own train split).  The traces :func:`run_baseline_backtests` gives
    market by market, for about the price of one market (see :func:`run_policy_backtests`).
    """
    per_market = [baselines] * len(markets) if isinstance(baselines, Mapping) else list(baselines)
    if len(per_market) != len(markets):
        raise ValueError(f"{len(per_market)} sets of baselines for {len(markets)} markets; give one per market")
    out: list[dict[str, pd.DataFrame]] = [{} for _ in markets]
    for group in _same_length_groups(markets):
        group = [i for i in group if per_market[i]]
        if not group:
            continue
        parts = [markets[i] for i in group]
        stacked, offsets = concat_markets(parts)
        rows, starts, owners, names = [], [], [], []
        for i, market, offset in zip(group, parts, offsets, strict=True):
            for name, baseline in per_market[i].items():
                rows.append(baseline.actions(market).to(market.device)[market.valid_from:])
                starts.append(offset + market.valid_from)
                owners.append((i, name))
                names.append(name if len(markets) == 1 else f"{name} on {market.name or f'market {i}'}")
        sim = make_sequential_env(stacked, env, n_envs=len(rows), action_scheme="hold_buy_sell", starts=starts)
        by_step = torch.stack(rows).to(device=sim.device, dtype=torch.long).t()  # [steps, envs]
        traces = _run(sim, lambda k, obs, info: by_step[k], parts=[markets[i] for i, _ in owners],
                      progress=progress, names=names)
        for (i, name), trace in zip(owners, traces, strict=True):
            out[i][name] = trace
    return out


def trace_bar_minutes(trace: pd.DataFrame) -> float:
    """The bar size of a trace, in minutes: what :func:`_run` recorded (``trace.attrs``), else its time step.

    Sharpe and Sortino are annualised with it (a 1d trace has 365 bars a year, a 15m one 35,040).
    """
    if "bar_minutes" in trace.attrs:
        return float(trace.attrs["bar_minutes"])
    times = pd.to_datetime(trace["time"], utc=True) if "time" in trace and len(trace) > 1 else None
    if times is not None:
        step = times.diff().dropna().min()
        if pd.notna(step) and step > pd.Timedelta(0):
            return step.total_seconds() / 60.0
    return 15.0  # a one-row trace has no step and no Sharpe to annualise


def trace_metrics(trace: pd.DataFrame, bar_minutes: float | None = None) -> dict[str, float]:
    """The metrics (:func:`kpremia.eval.metrics.compute_metrics`) of one trace, and ``ruined`` (1.0 or 0.0).

    ``bar_minutes`` (None: :func:`trace_bar_minutes`) annualises Sharpe and Sortino.
    """
    bar_minutes = trace_bar_minutes(trace) if bar_minutes is None else float(bar_minutes)

    def col(name: str) -> Tensor:
        return torch.from_numpy(trace[name].to_numpy(dtype=np.float64, copy=True))

    metrics = compute_metrics(col("portfolio_value_krw"), usdt_weight=col("position"), traded=col("traded"),
                              fees_krw=col("fee_krw"), bar_minutes=bar_minutes)
    metrics["ruined"] = float(bool(trace["ruined"].any())) if "ruined" in trace else 0.0
    return metrics


def report_metrics(trace: pd.DataFrame, bar_minutes: float | None = None) -> dict[str, float]:
    """:func:`trace_metrics` for a report: the hit rate is NaN (n/a) when the trace closed no round trip.

    A hit rate of 0 would read as "lost every trade" for a trader that never traded.  Validation and
    checkpoint monitors keep :func:`trace_metrics` (0 there: a monitor never sees NaN).
    """
    metrics = trace_metrics(trace, bar_minutes)
    if not metrics.get("round_trips"):
        metrics["hit_rate"] = math.nan
    return metrics


@contextlib.contextmanager
def progress_of(total: int, label: str | None) -> Iterator[Progress | _Silent]:
    """:func:`kpremia.core.console.progress` for ``label``; a silent counter for None (validation inside ``fit``)."""
    if label is None:
        yield _Silent()
        return
    with console_progress(total, label, logger=log) as shown:
        yield shown


class _Silent:
    def update(self, n: int = 1) -> None:
        """Nothing to show."""


def _same_length_groups(markets: Sequence[MarketTensors]) -> list[list[int]]:
    """Indices of the markets with the same number of steps (bars after ``valid_from``), in first-seen order."""
    groups: dict[int, list[int]] = {}
    for i, market in enumerate(markets):
        groups.setdefault(market.n_bars - market.valid_from, []).append(i)
    return list(groups.values())


def _run(env: BatchedEnv, choose: Callable[[int, ObsDict, dict[str, Tensor]], Tensor], *,
         parts: Sequence[MarketTensors] | None = None, progress: str | None = None,
         names: list[str] | None = None) -> list[pd.DataFrame]:
    """Step every env to its market's end, collecting on the device; one DataFrame per env (``names``: who each is).

    ``parts``: the market each env plays (markets stacked in ``env.market``, all with the same number
    of steps); None: every env plays ``env.market`` from its ``valid_from``.
    """
    n = env.n_envs
    parts = list(parts) if parts is not None else [env.market] * n
    n_steps = parts[0].n_bars - 1 - parts[0].valid_from
    dev = env.device
    f64 = dict(dtype=torch.float64, device=dev)
    buf = {name: torch.zeros((n_steps, n), **f64)
           for name in ("reward", "portfolio_value_krw", "usdt_weight", "fee_krw", "fill_price")}
    actions = torch.zeros((n_steps, n), dtype=torch.long, device=dev)
    traded = torch.zeros((n_steps, n), dtype=torch.bool, device=dev)
    ruined = torch.zeros((n_steps, n), dtype=torch.bool, device=dev)
    obs = env.reset()
    info: dict[str, Tensor] = {}
    with progress_of(n_steps, progress) as shown:
        for k in range(n_steps):
            a = choose(k, obs, info).to(device=dev, dtype=torch.long).reshape(n)
            obs, reward, _term, _trunc, info = env.step(a)
            actions[k] = a
            buf["reward"][k] = reward
            for name in ("portfolio_value_krw", "usdt_weight", "fee_krw", "fill_price"):
                buf[name][k] = info[name]
            traded[k] = info["traded"]
            ruined[k] = info["ruined"]
            shown.update()
    host = {name: t.cpu().numpy() for name, t in buf.items()}
    acts, fills = actions.cpu().numpy(), traded.cpu().numpy()
    ever_ruined = torch.cummax(ruined.to(torch.uint8), dim=0).values.bool().cpu().numpy()
    bases: dict[int, pd.DataFrame] = {}
    traces = []
    for i in range(n):
        market = parts[i]
        if id(market) not in bases:
            bars = np.arange(market.valid_from, market.n_bars)
            bases[id(market)] = pd.DataFrame({
                "time": pd.to_datetime(np.asarray(market.times)[bars], utc=True),
                "bar": bars,
                "price": market.close.to(torch.float64).cpu().numpy()[bars],
                "premium": market.premium.to(torch.float64).cpu().numpy()[bars],
            })
        base = bases[id(market)]
        bars = base["bar"].to_numpy()
        trace = base.copy()
        trace["action"] = pd.array(np.append(acts[:, i], 0), dtype="Int64")
        trace.loc[trace.index[-1], "action"] = pd.NA
        trace["position"] = np.append(0.0, host["usdt_weight"][:, i])
        trace["fill_price"] = np.append(np.nan, host["fill_price"][:, i])
        trace["fee_krw"] = np.append(0.0, host["fee_krw"][:, i])
        trace["traded"] = np.append(False, fills[:, i])
        trace["portfolio_value_krw"] = np.append(env.initial_krw, host["portfolio_value_krw"][:, i])
        trace["reward"] = np.append(0.0, host["reward"][:, i])
        trace["ruined"] = np.append(False, ever_ruined[:, i])
        if ever_ruined[-1, i]:
            first = int(np.argmax(ever_ruined[:, i])) + 1
            log.warning("backtest of %s fell under the ruin level at bar %d (value %.0f KRW); flagged, "
                        "its trace runs to the end of the split", names[i] if names else f"env {i}", int(bars[first]),
                        trace["portfolio_value_krw"].iloc[first])
        trace = trace[list(TRACE_COLUMNS)]
        trace.attrs["bar_minutes"] = float(market.bar_minutes)
        traces.append(trace)
    return traces
