"""The one set of fill, fee, spread, slippage, tick and minimum-order rules.

:class:`ExecutionRules` holds the rules (one frozen value, validated when it is
made, one default per knob: the env config's keys are declared from it); the
functions below apply them.  The simulator (:mod:`kpremia.envs.batched`), the
backtests, the baselines, the hindsight oracle, the paper broker, the live
runner and the gap report all receive the same :class:`ExecutionRules` value
and call these functions, so a backtest, a training episode and a paper trade
can never disagree about what an order costs.  Everything here is a pure,
element-wise tensor function over a batch of accounts: no Python loop over
accounts, no host synchronisation, so it runs inside a step of thousands of
environments on any device.

Money conventions (see ``docs/architecture.md``):

* account = ``krw`` (KRW cash) and ``usdt`` (USDT units, negative = short), float64;
  value ``V = krw + usdt * price``;
* the fee convention is part of the rules (``fee_convention``), because exchanges differ:

  - ``from_received`` (the default): the fee is taken from what you receive: ``K`` KRW
    buys ``K * (1 - fee) / fill`` USDT, ``Q`` USDT sells for ``Q * fill * (1 - fee)`` KRW;
    a buy's notional is the KRW spent;
  - ``krw_on_top`` (Upbit's KRW market): the fee is always charged in KRW; a buy of
    ``N`` KRW (Upbit's ``price`` of a market bid) receives ``N / fill`` USDT and costs
    ``N * (1 + fee)`` KRW in all, a sell is as above; a buy's notional is ``N``;

  the fee in KRW is ``notional * fee`` either way;
* every fill crosses half of the quoted bid/ask spread: a buy pays the ask
  ``price + half``, a sell gets the bid ``price - half``, with
  ``half = (spread_krw + price * spread_bps / 1e4) / 2`` around the reference
  (mid) price; then slippage moves the fill further against the trader (buy
  higher, sell lower), then the fill is rounded to the exchange tick, again
  against the trader;
* an order whose KRW notional is below ``min_order_krw`` is not filled.

A *target weight* ``w`` means "hold ``w * V / p`` USDT after the trade", with
``V`` and ``p`` at the reference (pre-trade, mid) price.  Sells reach the target
exactly; buys spend ``units * fill / (1 - fee)`` KRW (``from_received``: the fee comes
out of the USDT received) or ``units * fill * (1 + fee)`` KRW (``krw_on_top``) and are
capped by the KRW cash, so ``w = 1`` means "buy with all
KRW" and ``w = 0`` means "sell all USDT" (or buy back the whole short).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from kpremia.core.config import ConfigPart, at_least, knob

if TYPE_CHECKING:
    from torch import Tensor

# torch is imported by the functions that fill orders, not by this module: the config check reads
# ExecutionRules (env.fee_rate ...) before torch is loaded, so a bad value is refused at once.


def __getattr__(name: str) -> Any:
    """``MONEY_DTYPE`` (``torch.float64``), resolved on first use so that importing the rules loads no torch.

    Money is float64: float32 loses whole KRW on a 1e9 KRW account and fees of 5e-4 drift.
    """
    if name == "MONEY_DTYPE":
        import torch

        return torch.float64
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# Tolerance (in ticks) for float noise before rounding to the tick: 1400.0000000000002
# must round to 1400.0, not to the next tick.
_TICK_EPS = 1e-9
# Orders smaller than this fraction of the account value are rounding noise, not trades.
_DUST = 1e-12

FROM_RECEIVED = "from_received"
KRW_ON_TOP = "krw_on_top"
FEE_CONVENTIONS = (FROM_RECEIVED, KRW_ON_TOP)


@dataclass(frozen=True)
class ExecutionRules(ConfigPart):
    """What a fill costs and which orders fill, as one value passed whole to whoever trades.

    The defaults are the run config's (``configs/env/default.yaml``; the env config
    declares these keys from here).  The rules are checked when the value is made,
    so no caller re-checks them.

    Attributes:
        fee_rate: fraction of each fill's notional the exchange keeps (0.0005 on Upbit).
        fee_convention: where the fee comes from: ``from_received`` (what the fill gives you) or
            ``krw_on_top`` (charged in KRW, on top of a buy's KRW amount: Upbit's KRW market).
        spread_krw: quoted bid/ask spread in KRW (one 0.5 KRW USDT/KRW tick); each fill pays half.
        spread_bps: quoted bid/ask spread in basis points of the price (added to ``spread_krw``).
        slippage_bps: adverse move of the fill beyond the spread, in basis points.
        tick_size_krw: fill prices rounded to this tick against the trader (0 = off; 0.5 on Upbit).
        min_order_krw: orders with a smaller KRW notional are not filled (5,000 on Upbit).
        allow_short: negative USDT (a short) may be held; else targets are clipped to [0, 1].
    """

    section: ClassVar[str] = "env"

    fee_rate: float = knob(0.001, ("a fraction in [0, 0.1), e.g. 0.001 for 0.1 %", lambda v: 0 <= v < 0.1))
    fee_convention: str = knob(FROM_RECEIVED, (" or ".join(FEE_CONVENTIONS), lambda v: v in FEE_CONVENTIONS))
    spread_krw: float = knob(0.5, at_least(0))
    spread_bps: float = knob(0.0, at_least(0))
    slippage_bps: float = knob(0.0, at_least(0))
    tick_size_krw: float = knob(0.0, at_least(0))
    min_order_krw: float = knob(0.0, at_least(0))
    allow_short: bool = knob(False)

    def __post_init__(self) -> None:
        self.check()

    def without_min_order(self) -> ExecutionRules:
        """The same rules without the minimum order (sizing at a close: the fill decides, not the order)."""
        return dataclasses.replace(self, min_order_krw=0.0)


class Fill(NamedTuple):
    """The result of :func:`rebalance` for a batch of accounts (all ``[N]``).

    Attributes:
        krw: KRW cash after the fill.
        usdt: USDT units after the fill (negative = short).
        fee_krw: fee paid, in KRW (0 where nothing traded).
        notional_krw: the order's KRW amount as the exchange books it (a buy: the KRW
            spent, or with ``krw_on_top`` the amount the fee is added to; a sell: the KRW
            proceeds before the fee; 0 where nothing traded).  The fee is ``notional_krw * fee_rate``.
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


def half_spread(price: Tensor, rules: ExecutionRules) -> Tensor | float:
    """Half of the quoted bid/ask spread around the mid ``price``: what one fill pays, in KRW."""
    half = 0.5 * rules.spread_krw
    if rules.spread_bps:
        half = half + price * (0.5 * rules.spread_bps * 1e-4)
    return half


def buy_fill_price(price: Tensor, rules: ExecutionRules) -> Tensor:
    """Price a buy fills at: the ask (``price`` + half-spread) plus slippage, rounded UP to the tick."""
    import torch

    if rules.spread_krw or rules.spread_bps:
        price = price + half_spread(price, rules)
    fill = price * (1.0 + rules.slippage_bps * 1e-4) if rules.slippage_bps else price
    if rules.tick_size_krw > 0:
        fill = torch.ceil(fill / rules.tick_size_krw - _TICK_EPS) * rules.tick_size_krw
    return fill


def sell_fill_price(price: Tensor, rules: ExecutionRules) -> Tensor:
    """Price a sell fills at: the bid (``price`` - half-spread) minus slippage, rounded DOWN to the tick.

    A sell never fills below one tick (or, without a tick, below zero).
    """
    import torch

    if rules.spread_krw or rules.spread_bps:
        price = price - half_spread(price, rules)
    fill = price * (1.0 - rules.slippage_bps * 1e-4) if rules.slippage_bps else price
    if rules.tick_size_krw > 0:
        fill = torch.floor(fill / rules.tick_size_krw + _TICK_EPS).clamp_min(1.0) * rules.tick_size_krw
    elif rules.spread_krw or rules.spread_bps:
        fill = fill.clamp_min(0.0)
    return fill


def fill_price(price: Tensor, buy: Tensor | bool, rules: ExecutionRules) -> Tensor:
    """Fill price of a buy (``buy`` true) or a sell (false), element-wise."""
    import torch

    if isinstance(buy, bool):
        return buy_fill_price(price, rules) if buy else sell_fill_price(price, rules)
    return torch.where(buy, buy_fill_price(price, rules), sell_fill_price(price, rules))


def rebalance(
    krw: Tensor,
    usdt: Tensor,
    target_weight: Tensor,
    price: Tensor,
    rules: ExecutionRules,
) -> Fill:
    """Trade each account towards a USDT target weight at reference price ``price``.

    Args:
        krw, usdt: the accounts, float64 ``[N]``.
        target_weight: wanted USDT weight ``[N]``; NaN = no trade.  Clipped to
            ``[0, 1]`` (long-only) or ``[-1, 1]`` (``allow_short``): no leverage.
        price: reference (mid) price the order is sent at, e.g. the next bar's open.
        rules: fee, spread, slippage, tick, minimum order and shorting (:class:`ExecutionRules`).

    Buys are capped by the KRW cash (KRW is never borrowed); long-only sells by the
    USDT held.  Accounts that do not trade keep their exact ``krw`` and ``usdt``.
    """
    import torch

    fee_rate = rules.fee_rate
    dtype = krw.dtype
    price = price.to(dtype)
    target = target_weight.to(dtype).clamp(-1.0 if rules.allow_short else 0.0, 1.0)
    value = krw + usdt * price
    target_units = target * value / price
    delta_units = target_units - usdt  # NaN target -> NaN -> neither buy nor sell

    # Buys: gross up so the USDT received reaches the target after the fee, capped by cash.
    buy_px = buy_fill_price(price, rules)
    cash = krw.clamp_min(0.0)
    if rules.fee_convention == KRW_ON_TOP:  # the fee is added to the KRW amount; the USDT is not touched
        krw_needed = delta_units * buy_px * (1.0 + fee_rate)
        capped = (krw_needed >= cash) | (target >= 1.0)
        krw_spent = torch.where(capped, cash, krw_needed)
        buy_notional = torch.where(capped, cash / (1.0 + fee_rate), delta_units * buy_px)
        usdt_after_buy = torch.where(capped, usdt + buy_notional / buy_px, target_units)
    else:
        krw_needed = delta_units * buy_px / (1.0 - fee_rate)
        capped = (krw_needed >= cash) | (target >= 1.0)  # w = 1 is "buy with all KRW", exactly
        krw_spent = torch.where(capped, cash, krw_needed)
        buy_notional = krw_spent
        usdt_after_buy = torch.where(capped, usdt + krw_spent * (1.0 - fee_rate) / buy_px, target_units)

    # Sells: reach the target units exactly (w >= 0 never sells more than is held).
    sell_px = sell_fill_price(price, rules)
    sell_units = -delta_units
    sell_notional = sell_units * sell_px

    is_buy = delta_units > 0
    notional = torch.where(is_buy, buy_notional, sell_notional)
    # Float noise (a target of w = 1 when already all-in) must not count as a trade.
    ok = (notional > _DUST * value.abs()) & (notional >= rules.min_order_krw)
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


def money(x: float) -> Tensor:
    """One amount or price as a ``[1]`` float64 tensor (the live side's accounts are single floats)."""
    import torch

    return torch.tensor([float(x)], dtype=torch.float64)


def rebalance_one(krw: float, usdt: float, target_weight: float, price: float, rules: ExecutionRules) -> Fill:
    """:func:`rebalance` of one account given in floats (paper broker, live sizing, challenger, gap report).

    The same function as the simulator's, on a batch of one: the live side cannot price a fill
    differently from the backtest.
    """
    return rebalance(money(krw), money(usdt), money(target_weight), money(price), rules)
