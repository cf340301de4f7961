"""The one set of fill, fee, slippage, tick and minimum-order rules.

The simulator (:mod:`kpremia.envs.batched`), the hindsight oracle and the paper
broker all call these functions, so a backtest, a training episode and a paper
trade can never disagree about what an order costs.  Everything here is a pure,
element-wise tensor function over a batch of accounts: no Python loop over
accounts, no host synchronisation, so it runs inside a step of thousands of
environments on any device.

Money conventions (see ``docs/architecture.md``):

* account = ``krw`` (KRW cash) and ``usdt`` (USDT units, negative = short), float64;
  value ``V = krw + usdt * price``;
* fees are taken from what you receive: ``K`` KRW buys ``K * (1 - fee) / fill`` USDT,
  ``Q`` USDT sells for ``Q * fill * (1 - fee)`` KRW; the fee in KRW is
  ``notional * fee`` either way;
* every fill crosses half of the quoted bid/ask spread: a buy pays the ask
  ``price + half``, a sell gets the bid ``price - half``, with
  ``half = (spread_krw + price * spread_bps / 1e4) / 2`` around the reference
  (mid) price; then slippage moves the fill further against the trader (buy
  higher, sell lower), then the fill is rounded to the exchange tick, again
  against the trader;
* an order whose KRW notional is below ``min_order_krw`` is not filled.

A *target weight* ``w`` means "hold ``w * V / p`` USDT after the trade", with
``V`` and ``p`` at the reference (pre-trade, mid) price.  Sells reach the target
exactly; buys spend ``units * fill / (1 - fee)`` KRW (the fee comes out of the
USDT received) and are capped by the KRW cash, so ``w = 1`` means "buy with all
KRW" and ``w = 0`` means "sell all USDT" (or buy back the whole short).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

MONEY_DTYPE = torch.float64
"""Money is float64: float32 loses whole KRW on a 1e9 KRW account and fees of 5e-4 drift."""

# Tolerance (in ticks) for float noise before rounding to the tick: 1400.0000000000002
# must round to 1400.0, not to the next tick.
_TICK_EPS = 1e-9
# Orders smaller than this fraction of the account value are rounding noise, not trades.
_DUST = 1e-12


class Fill(NamedTuple):
    """The result of :func:`rebalance` for a batch of accounts (all ``[N]``).

    Attributes:
        krw: KRW cash after the fill.
        usdt: USDT units after the fill (negative = short).
        fee_krw: fee paid, in KRW (0 where nothing traded).
        notional_krw: gross KRW value of the order (KRW spent on a buy, KRW
            proceeds before fee on a sell; 0 where nothing traded).
        fill_price: price the order filled at (NaN where nothing traded).
        traded: bool, whether an order was filled.
    """

    krw: Tensor
    usdt: Tensor
    fee_krw: Tensor
    notional_krw: Tensor
    fill_price: Tensor
    traded: Tensor


def portfolio_value(krw: Tensor, usdt: Tensor, price: Tensor) -> Tensor:
    """Value of the accounts in KRW, marked at ``price``: ``krw + usdt * price``."""
    return krw + usdt * price


def usdt_weight(krw: Tensor, usdt: Tensor, price: Tensor) -> Tensor:
    """Fraction of the value held in USDT (negative when short)."""
    return usdt * price / (krw + usdt * price)


def half_spread(price: Tensor, *, spread_krw: float = 0.0, spread_bps: float = 0.0) -> Tensor | float:
    """Half of the quoted bid/ask spread around the mid ``price``: what one fill pays, in KRW."""
    half = 0.5 * spread_krw
    if spread_bps:
        half = half + price * (0.5 * spread_bps * 1e-4)
    return half


def buy_fill_price(price: Tensor, *, slippage_bps: float = 0.0, tick_size_krw: float = 0.0,
                   spread_krw: float = 0.0, spread_bps: float = 0.0) -> Tensor:
    """Price a buy fills at: the ask (``price`` + half-spread) plus slippage, rounded UP to the tick."""
    if spread_krw or spread_bps:
        price = price + half_spread(price, spread_krw=spread_krw, spread_bps=spread_bps)
    fill = price * (1.0 + slippage_bps * 1e-4) if slippage_bps else price
    if tick_size_krw > 0:
        fill = torch.ceil(fill / tick_size_krw - _TICK_EPS) * tick_size_krw
    return fill


def sell_fill_price(price: Tensor, *, slippage_bps: float = 0.0, tick_size_krw: float = 0.0,
                    spread_krw: float = 0.0, spread_bps: float = 0.0) -> Tensor:
    """Price a sell fills at: the bid (``price`` - half-spread) minus slippage, rounded DOWN to the tick.

    A sell never fills below one tick (or, without a tick, below zero).
    """
    if spread_krw or spread_bps:
        price = price - half_spread(price, spread_krw=spread_krw, spread_bps=spread_bps)
    fill = price * (1.0 - slippage_bps * 1e-4) if slippage_bps else price
    if tick_size_krw > 0:
        fill = torch.floor(fill / tick_size_krw + _TICK_EPS).clamp_min(1.0) * tick_size_krw
    elif spread_krw or spread_bps:
        fill = fill.clamp_min(0.0)
    return fill


def fill_price(price: Tensor, buy: Tensor | bool, *, slippage_bps: float = 0.0,
               tick_size_krw: float = 0.0, spread_krw: float = 0.0, spread_bps: float = 0.0) -> Tensor:
    """Fill price of a buy (``buy`` true) or a sell (false), element-wise."""
    kw = dict(slippage_bps=slippage_bps, tick_size_krw=tick_size_krw, spread_krw=spread_krw,
              spread_bps=spread_bps)
    if isinstance(buy, bool):
        return buy_fill_price(price, **kw) if buy else sell_fill_price(price, **kw)
    return torch.where(buy, buy_fill_price(price, **kw), sell_fill_price(price, **kw))


def rebalance(
    krw: Tensor,
    usdt: Tensor,
    target_weight: Tensor,
    price: Tensor,
    *,
    fee_rate: float = 0.001,
    slippage_bps: float = 0.0,
    tick_size_krw: float = 0.0,
    min_order_krw: float = 0.0,
    allow_short: bool = False,
    spread_krw: float = 0.0,
    spread_bps: float = 0.0,
) -> Fill:
    """Trade each account towards a USDT target weight at reference price ``price``.

    Args:
        krw, usdt: the accounts, float64 ``[N]``.
        target_weight: wanted USDT weight ``[N]``; NaN = no trade.  Clipped to
            ``[0, 1]`` (long-only) or ``[-1, 1]`` (``allow_short``): no leverage.
        price: reference (mid) price the order is sent at, e.g. the next bar's open.
        fee_rate: fraction of what you receive kept by the exchange.
        slippage_bps: adverse move of the fill, in basis points.
        tick_size_krw: price tick the fill is rounded to against the trader (0 = off).
        min_order_krw: orders with a smaller KRW notional are skipped.
        spread_krw: quoted bid/ask spread in KRW; each fill pays half of it.
        spread_bps: quoted bid/ask spread in basis points of ``price`` (added to
            ``spread_krw``); each fill pays half of it.
        allow_short: allow negative USDT (a short; selling it grows the KRW cash).

    Buys are capped by the KRW cash (KRW is never borrowed); long-only sells by the
    USDT held.  Accounts that do not trade keep their exact ``krw`` and ``usdt``.
    """
    dtype = krw.dtype
    price = price.to(dtype)
    target = target_weight.to(dtype).clamp(-1.0 if allow_short else 0.0, 1.0)
    value = krw + usdt * price
    target_units = target * value / price
    delta_units = target_units - usdt  # NaN target -> NaN -> neither buy nor sell

    # Buys: gross up so the USDT received after the fee reaches the target, capped by cash.
    px_rules = dict(slippage_bps=slippage_bps, tick_size_krw=tick_size_krw, spread_krw=spread_krw,
                    spread_bps=spread_bps)
    buy_px = buy_fill_price(price, **px_rules)
    cash = krw.clamp_min(0.0)
    krw_needed = delta_units * buy_px / (1.0 - fee_rate)
    capped = (krw_needed >= cash) | (target >= 1.0)  # w = 1 is "buy with all KRW", exactly
    krw_spent = torch.where(capped, cash, krw_needed)
    usdt_after_buy = torch.where(capped, usdt + krw_spent * (1.0 - fee_rate) / buy_px, target_units)

    # Sells: reach the target units exactly (w >= 0 never sells more than is held).
    sell_px = sell_fill_price(price, **px_rules)
    sell_units = -delta_units
    sell_notional = sell_units * sell_px

    is_buy = delta_units > 0
    notional = torch.where(is_buy, krw_spent, sell_notional)
    # Float noise (a target of w = 1 when already all-in) must not count as a trade.
    ok = (notional > _DUST * value.abs()) & (notional >= min_order_krw)
    buy = is_buy & ok
    sell = (delta_units < 0) & ok
    traded = buy | sell

    zero = torch.zeros((), dtype=dtype, device=krw.device)
    new_krw = torch.where(buy, krw - krw_spent, torch.where(sell, krw + sell_notional * (1.0 - fee_rate), krw))
    new_usdt = torch.where(buy, usdt_after_buy, torch.where(sell, target_units, usdt))
    notional = torch.where(traded, notional, zero)
    px = torch.where(buy, buy_px, torch.where(sell, sell_px, torch.full_like(price, float("nan"))))
    return Fill(krw=new_krw, usdt=new_usdt, fee_krw=notional * fee_rate, notional_krw=notional,
                fill_price=px, traded=traded)
