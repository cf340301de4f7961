"""The hindsight oracle: the best final value any all-in/all-out trader could reach.

Why: a return means little without a ceiling.  The oracle knows the whole
period in advance and trades under exactly the simulator's rules -- the decision
taken at the close of bar ``t`` fills at the open of ``t + 1``, with the fee
taken from what you receive, the half-spread, slippage, tick rounding and the minimum order, all
from :func:`kpremia.envs.execution.rebalance` -- so ``policy return / oracle
return`` (the *oracle capture*) says how much of what was there to take a policy
took.

Method: dynamic programming over two positions, all KRW and all USDT.  The state
is the log of what is held (log KRW, or log USDT units); holding keeps it, a buy
adds ``log((1 - fee) / buy_fill)``, a sell adds ``log(sell_fill * (1 - fee))``.
Per-bar fill factors come from one vectorised call of ``rebalance`` per side, so
the fee/slippage/tick rules are the env's own; the Python loop over bars only
takes maxima of floats.  The DP compares logs (a year of compounding neither
overflows nor loses precision); the reported path is multiplied out once the
optimal positions are known.

Exactness: for the ``signal`` and ``hold_buy_sell`` schemes (every reachable
account is all KRW or all USDT) the result is the exact optimum over all action
sequences -- the tests check it against brute force.  For ``target_weight`` with
long-only weights and no minimum order it is still the optimum: with proportional
costs the hindsight value is linear in the holdings, so a bang-bang policy is
optimal.  Shorts are not modelled.  With a minimum order, having more money never
makes an order infeasible, so keeping only the larger value per state stays exact.
"""

from __future__ import annotations

import logging
import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from kpremia.core.config import default_of
from kpremia.data.tensors import MarketTensors
from kpremia.envs import execution
from kpremia.envs.action_schemes import BUY, SELL
from kpremia.envs.config import EnvConfig
from kpremia.envs.execution import ExecutionRules

log = logging.getLogger(__name__)

KRW, USDT = 0, 1  # positions


class OracleResult(NamedTuple):
    """The optimal all-in/all-out path over a split (all tensors ``[T]``, indexed by bar).

    Attributes:
        final_value_krw: best achievable value at the close of the last bar.
        values_krw: value of the optimal path at each close (NaN before ``start``).
        actions: ``hold_buy_sell`` action decided at each close (0 hold, 1 buy all,
            2 sell all); 0 outside ``[start, T - 2]``.
        positions: 1 where the optimal path holds USDT at the close, else 0.
        start: the bar the path starts at (all KRW), usually ``market.valid_from``.
    """

    final_value_krw: float
    values_krw: Tensor
    actions: Tensor
    positions: Tensor
    start: int

    @property
    def total_return(self) -> float:
        return self.final_value_krw / float(self.values_krw[self.start]) - 1.0


def fill_factors(open_krw: Tensor, rules: ExecutionRules) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bar: USDT bought per KRW, KRW received per USDT sold, and the sell fill price.

    Computed by :func:`execution.rebalance` itself on unit accounts (one per bar),
    without the minimum order: fills are linear in the amount, so the factors
    scale to any account.
    """
    price = open_krw.to(execution.MONEY_DTYPE)
    ones, zeros = torch.ones_like(price), torch.zeros_like(price)
    unit_rules = rules.without_min_order()
    buy = execution.rebalance(ones, zeros, ones, price, unit_rules)  # 1 KRW, target all USDT
    sell = execution.rebalance(zeros, ones, zeros, price, unit_rules)  # 1 USDT, target all KRW
    return buy.usdt.cpu().numpy(), sell.krw.cpu().numpy(), sell.fill_price.cpu().numpy()


def hindsight_oracle(market: MarketTensors, rules: ExecutionRules = ExecutionRules(), *,
                     initial_krw: float = default_of(EnvConfig, "initial_krw"),
                     start: int | None = None) -> OracleResult:
    """Best final value over all all-in/all-out action sequences, with the env's execution rules.

    ``hindsight_oracle(market, env.execution, initial_krw=env.initial_krw)`` matches a
    backtest of the same env.  Starts all KRW at the close of ``start`` (default
    ``market.valid_from``), like an env with ``random_start=False``, and ends at the
    split's last close.
    """
    min_order_krw = rules.min_order_krw
    if rules.allow_short:
        log.warning("hindsight oracle: shorts are not modelled; with allow_short it is not a ceiling")
    start = int(market.valid_from if start is None else start)
    n_bars = market.n_bars
    if not 0 <= start <= n_bars - 2:
        raise ValueError(f"oracle start {start} leaves no step in a split of {n_bars} bars")
    usdt_per_krw, krw_per_usdt, sell_px = fill_factors(market.open, rules)
    log_buy = np.log(usdt_per_krw).tolist()
    log_sell = np.log(krw_per_usdt).tolist()
    log_min_order = math.log(min_order_krw) if min_order_krw > 0 else -math.inf
    log_sell_px = np.log(sell_px).tolist()

    # hold_k / hold_u: log of the KRW (all-KRW state) or USDT units (all-USDT state).
    hold_k, hold_u = math.log(initial_krw), -math.inf
    came_from = np.zeros((n_bars, 2), dtype=np.int8)  # previous position of each state after bar s
    for s in range(start + 1, n_bars):  # s: the bar whose open fills the decision taken at s - 1
        # Orders below the minimum are not filled (notional: KRW spent / KRW proceeds before fee).
        can_buy = hold_k >= log_min_order
        can_sell = hold_u + log_sell_px[s] >= log_min_order
        via_sell = hold_u + log_sell[s] if can_sell else -math.inf
        via_buy = hold_k + log_buy[s] if can_buy else -math.inf
        came_from[s, KRW] = USDT if via_sell > hold_k else KRW  # ties: no trade
        came_from[s, USDT] = KRW if via_buy > hold_u else USDT
        hold_k, hold_u = max(hold_k, via_sell), max(hold_u, via_buy)

    close = market.close.to(torch.float64).cpu().numpy()
    log_close = np.log(close)
    position = KRW if hold_k >= hold_u + log_close[-1] else USDT
    positions = np.zeros(n_bars, dtype=np.int64)
    actions = np.zeros(n_bars, dtype=np.int64)
    for s in range(n_bars - 1, start, -1):
        positions[s] = position
        prev = int(came_from[s, position])
        if prev != position:
            actions[s - 1] = BUY if position == USDT else SELL
        position = prev
    positions[start] = position

    values = _path_values(positions, start, initial_krw, usdt_per_krw, krw_per_usdt, close)
    dev = market.device
    return OracleResult(
        final_value_krw=float(values[-1]),
        values_krw=torch.as_tensor(values, device=dev),
        actions=torch.as_tensor(actions, device=dev),
        positions=torch.as_tensor(positions, device=dev),
        start=start,
    )


def _path_values(positions: np.ndarray, start: int, initial_krw: float, usdt_per_krw: np.ndarray,
                 krw_per_usdt: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Value at each close of the path that holds ``positions``.

    Multiplied out in linear space (a holding period with no trade is then exact,
    and the error grows by about one ulp per trade), unlike the DP's comparisons.
    """
    held = float(initial_krw)  # KRW or USDT units, by position
    values = np.full(len(positions), np.nan)
    values[start] = held
    for s in range(start + 1, len(positions)):
        if positions[s] != positions[s - 1]:
            held *= usdt_per_krw[s] if positions[s] == USDT else krw_per_usdt[s]
        values[s] = held * close[s] if positions[s] == USDT else held
    return values
