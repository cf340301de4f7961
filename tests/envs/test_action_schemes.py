"""Action schemes: actions -> USDT target weights (NaN = hold)."""

from __future__ import annotations

import math

import pytest
import torch

from kpremia.errors import UserError
from kpremia.registry import ACTION_SCHEMES


def targets(scheme, actions, weights) -> list[float]:
    out = scheme.target_weight(torch.tensor(actions), torch.tensor(weights, dtype=torch.float64))
    assert out.dtype == torch.float64
    return out.tolist()


def is_nan(x: float) -> bool:
    return math.isnan(x)


def test_registered_names() -> None:
    assert {"signal", "hold_buy_sell", "target_weight"} <= set(ACTION_SCHEMES.names())


def test_signal_buys_under_threshold_sells_at_or_above_and_holds_on_zero() -> None:
    scheme = ACTION_SCHEMES.get("signal")()
    assert scheme.n_actions == 2 and scheme.action_names == ("hold", "signal")
    out = targets(scheme, [1, 1, 1, 1, 0, 0], [0.0, 0.099, 0.10, 1.0, 0.0, 1.0])
    assert out[:4] == [1.0, 1.0, 0.0, 0.0]
    assert is_nan(out[4]) and is_nan(out[5])


def test_signal_threshold_is_configurable_and_validated() -> None:
    scheme = ACTION_SCHEMES.get("signal")(sell_threshold=0.6)
    assert targets(scheme, [1, 1], [0.5, 0.7]) == [1.0, 0.0]
    with pytest.raises(UserError, match="sell_threshold"):
        ACTION_SCHEMES.get("signal")(sell_threshold=0.0)


def test_hold_buy_sell() -> None:
    scheme = ACTION_SCHEMES.get("hold_buy_sell")()
    assert scheme.n_actions == 3 and scheme.action_names == ("hold", "buy", "sell")
    out = targets(scheme, [0, 1, 2, 1, 2], [0.3, 0.3, 0.3, 1.0, 0.0])
    assert is_nan(out[0]) and out[1:] == [1.0, 0.0, 1.0, 0.0]


def test_target_weight_default_and_custom_weights() -> None:
    scheme = ACTION_SCHEMES.get("target_weight")()
    assert scheme.n_actions == 3 and scheme.weights == (0.0, 0.5, 1.0)
    assert targets(scheme, [0, 1, 2], [0.2, 0.2, 0.2]) == [0.0, 0.5, 1.0]
    five = ACTION_SCHEMES.get("target_weight")(weights=[0, 0.25, 0.5, 0.75, 1])
    assert five.n_actions == 5 and five.action_names[1] == "w=0.25"
    assert targets(five, [4, 1], [0.0, 0.0]) == [1.0, 0.25]


def test_target_weight_short_needs_allow_short() -> None:
    with pytest.raises(UserError, match="env.allow_short"):
        ACTION_SCHEMES.get("target_weight")(weights=[-1.0, 0.0, 1.0])
    scheme = ACTION_SCHEMES.get("target_weight")(weights=[-1.0, 0.0, 1.0], allow_short=True)
    assert targets(scheme, [0, 2], [0.0, 0.0]) == [-1.0, 1.0]


@pytest.mark.parametrize("weights", [[0.0, 1.5], [], ["a"], [float("nan")]])
def test_target_weight_rejects_bad_weights(weights) -> None:
    with pytest.raises(UserError, match="weights"):
        ACTION_SCHEMES.get("target_weight")(weights=weights)


def test_unknown_scheme_is_a_user_error() -> None:
    with pytest.raises(UserError, match="signal"):
        ACTION_SCHEMES.get("signall")
