"""Action schemes: how a discrete action becomes a USDT target weight.

A scheme turns the policy's integer actions into target USDT weights that
:func:`kpremia.envs.execution.rebalance` trades towards (NaN = hold, no order).
Keeping this mapping separate from the simulator lets the same env, oracle and
broker serve a 2-action signal policy and a many-action sizing policy.

Every scheme has ``n_actions``, ``action_names`` and
``target_weight(actions, usdt_weight) -> Tensor`` (float64, NaN = no trade).
Schemes are built by :func:`build_action_scheme` from a config node
``{name: <registered name>, ...options}`` (the ``env.action_scheme`` node): the
one builder training, evaluation, baselines and the live runner go through, so a
plug-in scheme receives its options the same way the built-in ones do.  The
mapping is a small lookup table on the actions' device, so it costs one or two
tensor ops per step and never syncs with the host.  Actions outside
``[0, n_actions)`` are the caller's bug (indexing fails for ``target_weight``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kpremia.core.errors import UserError
from kpremia.core.registry import ACTION_SCHEMES

if TYPE_CHECKING:  # torch is imported where a scheme acts: building one (a config check) needs no torch
    import torch
    from torch import Tensor

_NAN = float("nan")

# The hold_buy_sell action codes.  The baselines, the hindsight oracle, the model-based trader,
# the warm start's teacher and the live band rule all decide in them; HoldBuySellScheme turns
# them into target weights.
HOLD, BUY, SELL = 0, 1, 2


class _LookupScheme:
    """Base of the schemes: target weights looked up from a per-action table."""

    n_actions: int
    action_names: tuple[str, ...]
    _table: tuple[float, ...]

    def __init__(self) -> None:
        self._cache: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def _lut(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The per-action table on ``device`` (built once per device and dtype)."""
        key = (device, dtype)
        lut = self._cache.get(key)
        if lut is None:
            import torch

            lut = torch.tensor(self._table, dtype=dtype, device=device)
            self._cache[key] = lut
        return lut

    def target_weight(self, actions: Tensor, usdt_weight: Tensor) -> Tensor:
        """Target USDT weight per env ``[N]`` (NaN = no trade)."""
        return self._lut(usdt_weight.device, usdt_weight.dtype).index_select(0, actions)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_actions={self.n_actions}, action_names={self.action_names})"


@ACTION_SCHEMES.register("signal")
class SignalScheme(_LookupScheme):
    """Two actions: 0 hold, 1 signal.

    A signal buys with all KRW while the USDT weight is under ``sell_threshold``
    and sells all USDT otherwise: one action toggles the position, which is the
    reference design's policy and the easiest to learn.
    """

    n_actions = 2
    action_names = ("hold", "signal")

    def __init__(self, sell_threshold: float = 0.10, allow_short: bool = False) -> None:
        super().__init__()
        if not 0.0 < float(sell_threshold) <= 1.0:
            raise UserError(f"signal sell_threshold={sell_threshold} is outside (0, 1]; "
                            "set env.action_scheme.sell_threshold to e.g. 0.1")
        self.sell_threshold = float(sell_threshold)
        # hold -> NaN (+ anything stays NaN); signal -> 0, plus 1 where under the threshold.
        self._table = (_NAN, 0.0)

    def target_weight(self, actions: Tensor, usdt_weight: Tensor) -> Tensor:
        """1.0 (buy all) where signalled and under the threshold, 0.0 (sell all) where above, NaN on hold."""
        base = self._lut(usdt_weight.device, usdt_weight.dtype).index_select(0, actions)
        return base + (usdt_weight < self.sell_threshold)


@ACTION_SCHEMES.register("hold_buy_sell")
class HoldBuySellScheme(_LookupScheme):
    """Three actions: ``HOLD`` (0), ``BUY`` (1) with all KRW, ``SELL`` (2) all USDT."""

    n_actions = 3
    action_names = ("hold", "buy", "sell")  # indexed by HOLD, BUY, SELL

    def __init__(self, allow_short: bool = False) -> None:
        super().__init__()
        self._table = (_NAN, 1.0, 0.0)  # HOLD: no trade, BUY: all USDT, SELL: all KRW


@ACTION_SCHEMES.register("target_weight")
class TargetWeightScheme(_LookupScheme):
    """Action ``i`` sets the USDT weight to ``weights[i]``.

    Negative weights are shorts and need ``allow_short=True`` (the env passes its
    own ``allow_short``); weights outside ``[-1, 1]`` would be leverage, which the
    simulator does not model.

    ``rebalance_band``: no order while the current weight is within this distance
    of the target (``|target - weight| <= band``).  Without it, "stay at 1.0" after
    the price moved is a tiny rebalancing trade every bar, each paying the spread
    and the fee; with it, staying is free and only real changes of position trade.
    """

    def __init__(self, weights: Sequence[float] = (0.0, 0.5, 1.0), allow_short: bool = False,
                 rebalance_band: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= float(rebalance_band) < 1.0:
            raise UserError(f"target_weight rebalance_band={rebalance_band} must be in [0, 1); "
                            "set env.action_scheme.rebalance_band to e.g. 0.05")
        self.rebalance_band = float(rebalance_band)
        try:
            table = tuple(float(w) for w in weights)
        except (TypeError, ValueError):
            raise UserError(f"target_weight weights={weights!r} are not numbers; "
                            "set env.action_scheme.weights to a list like [0.0, 0.5, 1.0]") from None
        if not table:
            raise UserError("target_weight weights is empty; set env.action_scheme.weights to a list "
                            "like [0.0, 0.5, 1.0]")
        bad = [w for w in table if not math.isfinite(w) or not -1.0 <= w <= 1.0]
        if bad:
            raise UserError(f"target_weight weights {bad} are outside [-1, 1] (no leverage); "
                            "use weights between -1 and 1")
        if not allow_short and min(table) < 0:
            raise UserError(f"target_weight weights {[w for w in table if w < 0]} are short positions but "
                            "env.allow_short is false; set env.allow_short=true or use weights in [0, 1]")
        self.weights = table
        self._table = table
        self.n_actions = len(table)
        self.action_names = tuple(f"w={w:g}" for w in table)

    def target_weight(self, actions: Tensor, usdt_weight: Tensor) -> Tensor:
        """The action's weight, or NaN (no order) where the weight is already within the band."""
        target = super().target_weight(actions, usdt_weight)
        if self.rebalance_band <= 0.0:
            return target
        import torch

        return torch.where((target - usdt_weight).abs() <= self.rebalance_band,
                           torch.full_like(target, _NAN), target)

def scheme_node(scheme: str | Mapping[str, Any]) -> dict[str, Any]:
    """``{name, **options}`` from a scheme name or a config node (a copy; options untouched)."""
    if isinstance(scheme, str):
        return {"name": scheme}
    if not isinstance(scheme, Mapping) or not scheme.get("name"):
        raise UserError(f"env.action_scheme={scheme!r} needs a name; use a registered scheme name "
                        f"({', '.join(ACTION_SCHEMES.names())}) or {{name: <scheme>, ...options}}")
    return dict(scheme)


def build_action_scheme(scheme: str | Mapping[str, Any] | Any, *, allow_short: bool = False) -> Any:
    """The action scheme a name, a config node ``{name, **options}`` or a built scheme stands for.

    The env's ``allow_short`` is passed to every scheme whose constructor takes it
    (it wins over an ``allow_short`` option: the env decides whether shorts exist).
    A built scheme (anything with ``target_weight``) is returned as it is.
    """
    if hasattr(scheme, "target_weight"):
        return scheme
    options = scheme_node(scheme)
    name = options.pop("name")
    cls = ACTION_SCHEMES.get(name)
    params = inspect.signature(cls).parameters
    if "allow_short" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        options["allow_short"] = bool(allow_short)
    try:
        return cls(**options)
    except TypeError as exc:
        raise UserError(f"action scheme {name!r} rejected its options {sorted(options)}: {exc}; "
                        "fix the options under env.action_scheme") from None
