"""ObsSpec: the shapes of one observation, the vocabulary every layer shares.

An observation is a dict of float32 tensors with a leading batch dimension
``[N, ...]``.  The spec holds the per-env shapes (without ``N``).  Encoders take
a spec in ``__init__`` and never look at data or config to learn their sizes.

Why a module of its own, below ``data`` and ``envs``: the data layer builds the
market part of the observation, the simulator adds the account part, encoders
and the live runner read it.  Each of them imports the keys and the spec from
here, so none of them has to import another to agree on a shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

# The standard keys of the kimchi-premium observation, in a fixed order.
PRICE_BARS = "price_bars"  # last Wb closes (one per bar, at the run's bar size), log ratio to the current close, normalised
PRICE_1D = "price_1d"  # last W1d completed daily closes, log ratio to the current close, normalised
PREMIUM = "premium"  # last Wp completed-day premiums, normalised
ACCOUNT = "account"  # [krw_weight, usdt_weight, log(value / episode start value)]
FEATURES = "features"  # causal features at the current bar, normalised
SERIES_KEYS = (PRICE_BARS, PRICE_1D, PREMIUM)
OBS_KEYS = (PRICE_BARS, PRICE_1D, PREMIUM, ACCOUNT, FEATURES)
MARKET_KEYS = (PRICE_BARS, PRICE_1D, PREMIUM, FEATURES)  # the data layer's part (tables per bar)
N_ACCOUNT = 3  # the simulator's part: krw weight, usdt weight, log(V / V at episode start)


def account_obs(krw: torch.Tensor, value: torch.Tensor, usdt_weight: torch.Tensor,
                log_return: torch.Tensor) -> torch.Tensor:
    """The ``account`` columns ``[N, 3]`` float32: KRW weight, USDT weight, log(V / V at the start).

    The one place the account part of an observation is laid out: the simulator calls it
    on its batch, the live runner and the challenger's paper account through
    :func:`account_of` on theirs.
    """
    return torch.stack((krw / value, usdt_weight, log_return), dim=1).float()


def account_of(cash_krw: float, position_usdt: float, price: float, initial_krw: float) -> torch.Tensor:
    """:func:`account_obs` ``[1, 3]`` of one account given in floats, marked at ``price``."""
    f64 = torch.float64
    usdt_value = position_usdt * price if position_usdt != 0.0 else 0.0
    value = cash_krw + usdt_value
    return account_obs(torch.tensor([cash_krw], dtype=f64), torch.tensor([value], dtype=f64),
                       torch.tensor([usdt_value / value if usdt_value else 0.0], dtype=f64),
                       torch.log(torch.tensor([max(value, 1e-9) / initial_krw], dtype=f64)))


@dataclass(frozen=True)
class ObsSpec:
    """Per-env observation shapes: ``{key: shape}`` (batch dimension excluded)."""

    shapes: Mapping[str, tuple[int, ...]]
    feature_names: tuple[str, ...] = field(default=())

    @classmethod
    def default(
        cls,
        window_bars: int = 15,
        window_1d: int = 10,
        window_premium: int = 10,
        n_account: int = N_ACCOUNT,
        n_features: int | None = None,
        feature_names: Sequence[str] = (),
    ) -> "ObsSpec":
        """The spec of the standard keys: the one way kpremia builds a spec.

        The data layer (from its windows and feature names), the simulator (from
        its market tables) and offline encoder sizing all call this.
        ``n_features`` defaults to ``len(feature_names)``, or 16 when no names are
        given (a stand-in for sizing encoders without data).
        """
        names = tuple(feature_names)
        if n_features is None:
            n_features = len(names) if names else 16
        if names and len(names) != n_features:
            raise ValueError(f"n_features={n_features} but {len(names)} feature names were given")
        return cls(
            shapes={
                PRICE_BARS: (int(window_bars),),
                PRICE_1D: (int(window_1d),),
                PREMIUM: (int(window_premium),),
                ACCOUNT: (int(n_account),),
                FEATURES: (int(n_features),),
            },
            feature_names=names,
        )

    def __getitem__(self, key: str) -> tuple[int, ...]:
        return tuple(self.shapes[key])

    def keys(self) -> list[str]:
        return list(self.shapes)

    def zeros(self, batch: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """A zero observation batch of this spec (for shape checks and dummy forwards)."""
        return {k: torch.zeros((batch, *s), device=device) for k, s in self.shapes.items()}

    def sample(self, batch: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """A standard-normal observation batch of this spec (for tests)."""
        return {k: torch.randn((batch, *s), generator=generator) for k, s in self.shapes.items()}

    def to_dict(self) -> dict:
        return {"shapes": {k: list(v) for k, v in self.shapes.items()}, "feature_names": list(self.feature_names)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ObsSpec":
        return cls(shapes={k: tuple(v) for k, v in d["shapes"].items()},
                   feature_names=tuple(d.get("feature_names", ())))
