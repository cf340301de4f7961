"""Fill, fee, slippage, tick and min-order rules checked against hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch

from kpremia.envs.execution import (
    ExecutionRules,
    buy_fill_price,
    fill_price,
    portfolio_value,
    rebalance,
    sell_fill_price,
    usdt_weight,
)

f64 = torch.float64


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=f64)


def test_round_trip_at_constant_price_costs_exactly_two_fees() -> None:
    krw, usdt, price = t(1_000_000.0), t(0.0), t(1000.0)
    buy = rebalance(krw, usdt, t(1.0), price, ExecutionRules(fee_rate=0.001, spread_krw=0.0))
    assert buy.krw.tolist() == [0.0]
    assert buy.usdt.tolist() == [999.0]  # 1e6 * 0.999 / 1000
    assert buy.fee_krw.tolist() == [1000.0] and buy.notional_krw.tolist() == [1_000_000.0]
    assert buy.fill_price.tolist() == [1000.0] and buy.traded.tolist() == [True]
    sell = rebalance(buy.krw, buy.usdt, t(0.0), price, ExecutionRules(fee_rate=0.001, spread_krw=0.0))
    assert sell.usdt.tolist() == [0.0]
    assert sell.krw.item() == pytest.approx(998_001.0, rel=1e-15, abs=1e-9)  # 1e6 * 0.999^2
    assert sell.fee_krw.item() == pytest.approx(999.0, rel=1e-15)


@pytest.mark.parametrize("price", [1393.7, 1412.35, 1.0])
def test_round_trip_any_price_is_value_times_one_minus_fee_squared(price: float) -> None:
    value = 2_345_678.0
    buy = rebalance(t(value), t(0.0), t(1.0), t(price), ExecutionRules(fee_rate=0.0005, spread_krw=0.0))
    sell = rebalance(buy.krw, buy.usdt, t(0.0), t(price), ExecutionRules(fee_rate=0.0005, spread_krw=0.0))
    assert sell.krw.item() == pytest.approx(value * (1 - 0.0005) ** 2, rel=1e-14)


def test_slippage_and_tick_round_against_the_trader() -> None:
    price = t(1400.3)
    # buy: 1400.3 * 1.001 = 1401.7003 -> up to 1402.0 ; sell: 1400.3 * 0.999 = 1398.8997 -> down to 1398.5
    assert buy_fill_price(price, ExecutionRules(slippage_bps=10, tick_size_krw=0.5, spread_krw=0.0)).tolist() == [1402.0]
    assert sell_fill_price(price, ExecutionRules(slippage_bps=10, tick_size_krw=0.5, spread_krw=0.0)).tolist() == [1398.5]
    # no slippage: a price already on the tick stays; one between ticks goes against the trader
    assert buy_fill_price(t(1400.0, 1400.2), ExecutionRules(tick_size_krw=0.5, spread_krw=0.0)).tolist() == [1400.0, 1400.5]
    assert sell_fill_price(t(1400.0, 1400.2), ExecutionRules(tick_size_krw=0.5, spread_krw=0.0)).tolist() == [1400.0, 1400.0]
    # slippage only, no tick
    assert buy_fill_price(t(1000.0), ExecutionRules(slippage_bps=5, spread_krw=0.0)).item() == pytest.approx(1000.5)
    assert sell_fill_price(t(1000.0), ExecutionRules(slippage_bps=5, spread_krw=0.0)).item() == pytest.approx(999.5)
    both = fill_price(t(1400.3, 1400.3), torch.tensor([True, False]), ExecutionRules(slippage_bps=10, tick_size_krw=0.5, spread_krw=0.0))
    assert both.tolist() == [1402.0, 1398.5]
    assert fill_price(price, False, ExecutionRules(tick_size_krw=0.5, spread_krw=0.0)).tolist() == [1400.0]


def test_buy_and_sell_with_slippage_and_tick_by_hand() -> None:
    buy = rebalance(t(1_000_000.0), t(0.0), t(1.0), t(1400.3), ExecutionRules(fee_rate=0.0005, slippage_bps=10, tick_size_krw=0.5, spread_krw=0.0))
    assert buy.fill_price.item() == 1402.0
    assert buy.usdt.item() == pytest.approx(1_000_000.0 * 0.9995 / 1402.0, rel=1e-15)
    assert buy.krw.item() == 0.0
    assert buy.fee_krw.item() == pytest.approx(500.0)
    sell = rebalance(t(0.0), t(700.0), t(0.0), t(1400.3), ExecutionRules(fee_rate=0.0005, slippage_bps=10, tick_size_krw=0.5, spread_krw=0.0))
    assert sell.fill_price.item() == 1398.5
    assert sell.krw.item() == pytest.approx(700.0 * 1398.5 * 0.9995, rel=1e-15)
    assert sell.notional_krw.item() == pytest.approx(700.0 * 1398.5)
    assert sell.fee_krw.item() == pytest.approx(700.0 * 1398.5 * 0.0005)


def test_orders_below_min_order_are_skipped() -> None:
    # buy 4,000 KRW, sell 3 USDT (4,200 KRW), sell 5,000 KRW exactly (fills), buy 6,000 KRW (fills)
    krw, usdt = t(4000.0, 0.0, 0.0, 6000.0), t(0.0, 3.0, 5.0, 0.0)
    fill = rebalance(krw, usdt, t(1.0, 0.0, 0.0, 1.0), t(1400.0, 1400.0, 1000.0, 1000.0), ExecutionRules(fee_rate=0.0005, min_order_krw=5000.0, spread_krw=0.0))
    assert fill.traded.tolist() == [False, False, True, True]
    assert fill.krw.tolist()[:2] == [4000.0, 0.0] and fill.usdt.tolist()[:2] == [0.0, 3.0]
    assert fill.fee_krw.tolist()[:2] == [0.0, 0.0] and fill.notional_krw.tolist()[:2] == [0.0, 0.0]
    assert math.isnan(fill.fill_price[0]) and math.isnan(fill.fill_price[1])
    assert fill.krw[2].item() == pytest.approx(5000.0 * 0.9995)


def test_nan_target_and_same_weight_do_not_trade() -> None:
    krw, usdt, price = t(1000.0, 0.0, 500_000.0), t(2.0, 700.0, 0.0), t(1400.0, 1400.0, 1400.0)
    fill = rebalance(krw, usdt, t(float("nan"), 1.0, 0.0), price, ExecutionRules(fee_rate=0.001, spread_krw=0.0))
    assert fill.traded.tolist() == [False, False, False]
    assert torch.equal(fill.krw, krw) and torch.equal(fill.usdt, usdt)
    assert fill.fee_krw.tolist() == [0.0, 0.0, 0.0]


def test_partial_target_weight_reaches_target_units() -> None:
    fill = rebalance(t(1_000_000.0), t(0.0), t(0.5), t(1000.0), ExecutionRules(fee_rate=0.001, spread_krw=0.0))
    assert fill.usdt.item() == pytest.approx(500.0)  # 0.5 * 1e6 / 1000 units
    assert fill.krw.item() == pytest.approx(1_000_000.0 - 500.0 * 1000.0 / 0.999)  # fee grossed up
    back = rebalance(fill.krw, fill.usdt, t(0.25), t(1000.0), ExecutionRules(fee_rate=0.001, spread_krw=0.0))
    value = portfolio_value(fill.krw, fill.usdt, t(1000.0)).item()
    assert back.usdt.item() == pytest.approx(0.25 * value / 1000.0)


def test_long_only_clips_targets_and_never_goes_negative() -> None:
    krw, usdt, price = t(1000.0, 1000.0), t(1.0, 1.0), t(1000.0, 1000.0)
    fill = rebalance(krw, usdt, t(1.7, -0.5), price, ExecutionRules(fee_rate=0.001, spread_krw=0.0))
    assert fill.krw[0].item() == 0.0  # 1.7 -> 1.0: buy with all KRW, no borrowing
    assert fill.usdt[1].item() == 0.0  # -0.5 -> 0.0: sell all, no short
    assert bool((fill.krw >= 0).all()) and bool((fill.usdt >= 0).all())


def test_short_sell_and_buy_back_by_hand() -> None:
    short = rebalance(t(1_000_000.0), t(0.0), t(-1.0), t(1000.0), ExecutionRules(fee_rate=0.001, allow_short=True, spread_krw=0.0))
    assert short.usdt.item() == -1000.0
    assert short.krw.item() == pytest.approx(1_000_000.0 + 1_000_000.0 * 0.999)
    cover = rebalance(short.krw, short.usdt, t(0.0), t(1000.0), ExecutionRules(fee_rate=0.001, allow_short=True, spread_krw=0.0))
    assert cover.usdt.item() == 0.0  # the whole short bought back, exactly
    assert cover.krw.item() == pytest.approx(1_999_000.0 - 1000.0 * 1000.0 / 0.999)
    # the same short target without allow_short sells nothing (already flat)
    assert not rebalance(t(1e6), t(0.0), t(-1.0), t(1000.0), ExecutionRules(spread_krw=0.0)).traded.item()


def test_weight_helpers() -> None:
    assert portfolio_value(t(500.0), t(1.0), t(500.0)).item() == 1000.0
    assert usdt_weight(t(500.0), t(1.0), t(500.0)).item() == 0.5


def test_spread_half_paid_on_each_side() -> None:
    price = t(1400.0)
    assert buy_fill_price(price, ExecutionRules(spread_krw=0.5)).tolist() == [1400.25]
    assert sell_fill_price(price, ExecutionRules(spread_krw=0.5)).tolist() == [1399.75]
    assert buy_fill_price(price, ExecutionRules(spread_bps=2.0, spread_krw=0.0)).item() == pytest.approx(1400.0 * (1 + 1e-4))
    # the half-spread comes before slippage and tick rounding (both against the trader)
    assert buy_fill_price(price, ExecutionRules(tick_size_krw=0.5, spread_krw=0.5)).tolist() == [1400.5]
    assert sell_fill_price(price, ExecutionRules(tick_size_krw=0.5, spread_krw=0.5)).tolist() == [1399.5]
    assert buy_fill_price(price, ExecutionRules(slippage_bps=10.0, spread_krw=0.5)).item() == pytest.approx(1400.25 * 1.001)


def test_rebalance_pays_the_half_spread_once_per_fill() -> None:
    buy = rebalance(t(1_000_000.0), t(0.0), t(1.0), t(1400.0), ExecutionRules(fee_rate=0.0, spread_krw=0.5))
    assert buy.usdt.item() == pytest.approx(1_000_000.0 / 1400.25, rel=1e-15)
    assert buy.fill_price.tolist() == [1400.25]
    sell = rebalance(buy.krw, buy.usdt, t(0.0), t(1400.0), ExecutionRules(fee_rate=0.0, spread_krw=0.5))
    assert sell.krw.item() == pytest.approx(1_000_000.0 * 1399.75 / 1400.25, rel=1e-14)
    hold = rebalance(buy.krw, buy.usdt, t(float("nan")), t(1400.0), ExecutionRules(fee_rate=0.0, spread_krw=0.5))
    assert not hold.traded.item() and hold.usdt.item() == buy.usdt.item()  # no order, no spread


# ------------------------------------------------------------------ fee conventions
UPBIT = ExecutionRules(fee_rate=0.0005, fee_convention="krw_on_top", spread_krw=0.0)


def test_krw_on_top_buy_matches_upbits_documented_order() -> None:
    """Upbit's bid of 0.00008 BTC at 100,000,000 KRW locks 8,004 KRW: 8,000 for the coins, 4 of fee on top.

    (The order sample in ccxt's upbit.py ``parse_order``: ``locked 8004``, ``reserved_fee 4``.)
    """
    buy = rebalance(t(8004.0), t(0.0), t(1.0), t(100_000_000.0), UPBIT)
    assert buy.notional_krw.item() == pytest.approx(8000.0, rel=1e-15)
    assert buy.fee_krw.item() == pytest.approx(4.0, rel=1e-12)
    assert buy.usdt.item() == pytest.approx(0.00008, rel=1e-12)  # the whole notional buys coins: no fee taken from them
    assert buy.krw.tolist() == [0.0]


def test_krw_on_top_partial_buy_costs_units_times_price_plus_fee() -> None:
    buy = rebalance(t(1_000_000.0), t(0.0), t(0.5), t(1400.0), UPBIT)
    units = 500_000.0 / 1400.0  # target units at the reference price
    assert buy.usdt.item() == pytest.approx(units, rel=1e-15)
    assert buy.notional_krw.item() == pytest.approx(500_000.0, rel=1e-15)
    assert buy.krw.item() == pytest.approx(1_000_000.0 - 500_000.0 * 1.0005, rel=1e-15)
    # from_received reaches the same units by spending notional / (1 - fee): a different KRW amount
    other = rebalance(t(1_000_000.0), t(0.0), t(0.5), t(1400.0), ExecutionRules(fee_rate=0.0005, spread_krw=0.0))
    assert other.usdt.item() == pytest.approx(units, rel=1e-15)
    assert other.krw.item() == pytest.approx(1_000_000.0 - 500_000.0 / 0.9995, rel=1e-15)


def test_sells_are_the_same_in_both_conventions_as_upbits_documented_ask() -> None:
    """Upbit's ask of 5.377594 USDT at 1,375: funds 7,394.19175 KRW, paid_fee 3.697095875 KRW (ccxt's sample)."""
    for rules in (UPBIT, ExecutionRules(fee_rate=0.0005, spread_krw=0.0)):
        sell = rebalance(t(0.0), t(5.377594), t(0.0), t(1375.0), rules)
        assert sell.notional_krw.item() == pytest.approx(7394.19175, rel=1e-14)
        assert sell.fee_krw.item() == pytest.approx(3.697095875, rel=1e-12)
        assert sell.krw.item() == pytest.approx(7394.19175 - 3.697095875, rel=1e-14)


def test_krw_on_top_minimum_order_is_on_the_amount_before_the_fee() -> None:
    rules = ExecutionRules(fee_rate=0.0005, fee_convention="krw_on_top", spread_krw=0.0, min_order_krw=5000.0)
    # 5,002 KRW of cash all-in: 4,999.50 KRW of coins + 2.50 fee: under Upbit's 5,000 KRW minimum
    assert rebalance(t(5002.0), t(0.0), t(1.0), t(1400.0), rules).traded.tolist() == [False]
    assert rebalance(t(5003.0), t(0.0), t(1.0), t(1400.0), rules).traded.tolist() == [True]


def test_unknown_fee_convention_is_one_line() -> None:
    from kpremia.core.errors import UserError

    with pytest.raises(UserError, match="from_received or krw_on_top"):
        ExecutionRules(fee_convention="on_top")
